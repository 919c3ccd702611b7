"""What the pages computed beyond the state's two models, for the downloads and the report.

The Publication bias page's cut choice, and the Moderators page's comparison table and
heterogeneity (location-scale) model when the reader opened them: the results file, both
reproduction zips and the report then hold the same numbers the pages showed. The choices are
read once, when the page runs (downloads are made later, on a click).
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from alliance_core.analyses.model_comparison import ModelComparison, model_comparison, refit_with
from alliance_core.analyses.run import AnalysisRun
from alliance_core.analyses.selection import THREE_PSM, TWO_CUTS
from alliance_core.errors import AnalysisError
from alliance_core.handover.bias_results import PublicationBias, state_publication_bias
from alliance_core.model.location_scale import LocationScaleResult
from pages._ui import loading

CUT_CHOICES = ("3PSM (.025)", "Two cuts (.025 and .5)")
# Cut choice -> its name in a link (cuts=...); the 3PSM, the default, stays out of the link.
CUT_LINK_NAMES = {CUT_CHOICES[0]: "3psm", CUT_CHOICES[1]: "two"}
CUTS_KEY = "funnel:cuts"
COMPARE_KEY = "means:compare"
SCALE_KEY = "tau2:on"


def chosen_steps() -> tuple[float, ...]:
    """The Publication bias page's cuts (the 3PSM until the reader chooses two cuts)."""
    return (
        THREE_PSM if st.session_state.get(CUTS_KEY, CUT_CHOICES[0]) == CUT_CHOICES[0] else TWO_CUTS
    )


def heterogeneity_eligible(run: AnalysisRun) -> bool:
    """The location-scale model needs a two-level model fitted by ML or REML, and PTR."""
    res = run.result
    return run.ptr_column is not None and not res.is_three_level and res.method in ("ML", "REML")


def heterogeneity_model(run: AnalysisRun) -> LocationScaleResult:
    """τ² as exp(α0 + α1 PTR) beside the sidebar model's moderators (the Moderators page's)."""
    res = run.result
    return refit_with(res, list(res.design.term_labels), res.method, scale=[run.ptr_column])


@dataclass(frozen=True)
class Extras:
    """The page choices the hand-over follows: cuts, and whether the comparison table and the
    heterogeneity model were opened."""

    steps: tuple[float, ...]
    comparison: bool
    heterogeneity: bool

    @property
    def key(self) -> str:
        return f"{self.steps}:{self.comparison}:{self.heterogeneity}"


def requested() -> Extras:
    ss = st.session_state
    return Extras(chosen_steps(), bool(ss.get(COMPARE_KEY)), bool(ss.get(SCALE_KEY)))


def publication_bias(ctx: loading.Context, steps: tuple[float, ...]) -> PublicationBias:
    """The state's publication-bias results with the page's cached tests and selection model."""
    current = loading.state(ctx)
    selection, _ = loading.selection_model(ctx, current.pooled.result, steps)
    return state_publication_bias(
        current, steps, selection=selection, tests=loading.bias_tests(ctx)
    )


def comparison(run: AnalysisRun, extras: Extras) -> ModelComparison | None:
    if not extras.comparison or run.result.p < 2:
        return None
    try:
        return model_comparison(run.result)
    except AnalysisError:
        return None  # the page shows why; the hand-over leaves the table out


def heterogeneity(run: AnalysisRun, extras: Extras) -> LocationScaleResult | None:
    if not extras.heterogeneity or not heterogeneity_eligible(run):
        return None
    try:
        return heterogeneity_model(run)
    except AnalysisError:
        return None
