"""The fail-safe N section of the Publication bias page: Orwin's target, the three numbers of
the state's pooled model (``alliance_core.analyses.fail_safe.fail_safe_numbers``) and their
caveat once."""

from __future__ import annotations

import numpy as np
import streamlit as st

from alliance_core.analyses.fail_safe import CAVEAT, fail_safe_numbers
from alliance_core.errors import AnalysisError
from alliance_core.formatting import escape_markdown
from alliance_core.model.results import MetaResult
from pages._ui import render

TARGET_KEY = "funnel:orwin_target"


def show(pooled: MetaResult, transform: str | None) -> None:
    """Orwin's target input, then Rosenthal's, Orwin's and Rosenberg's N in words."""
    st.subheader("Fail-safe N")
    on_r = transform == "r"
    target = st.number_input(
        "Orwin's target average" + (" (r)" if on_r else ""),
        min_value=-0.99 if on_r else None,
        max_value=0.99 if on_r else None,
        value=None,
        step=0.01,
        key=TARGET_KEY,
        placeholder="half the observed average",
        help="Orwin's fail-safe N counts the unpublished effect sizes of zero that would bring "
        "the unweighted average down to this value. Empty: half the observed average.",
    )
    # The analysis runs on Fisher's z for correlations: the chosen r is converted, not altered.
    goal = None if target is None else float(np.arctanh(target) if on_r else target)
    try:
        numbers = fail_safe_numbers(pooled, target=goal)
    except AnalysisError as error:
        st.warning(escape_markdown(f"Fail-safe N not available here: {error}"))
        return
    orwin = next(n for n in numbers if n.type == "Orwin")
    if goal is not None and orwin.target != goal:
        # fsn puts the target on the side of the average (metafor's rule): say so, never
        # use a different number than the one typed without a word.
        st.info(
            escape_markdown(
                f"Orwin's target lies on the side of the average effect, so the target "
                f"{target:g} you typed is read as {-target:g}."
            ),
            icon=":material/info:",
        )
    for number in numbers:
        render.markdown(
            f"**{number.type}.** {escape_markdown(number.describe(transform, caveat=False))}"
        )
    render.caption(escape_markdown(CAVEAT))
