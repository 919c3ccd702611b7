"""Several effect sizes per study in a two-level model: aggregate them, or warn.

A two-level random-effects model assumes every row is an independent study. When a study
contributes several effect sizes (several raters, measures or outcomes on the same patients),
their sampling errors are correlated and they share the study's true effect; fitting the
two-level model to every row as if independent overstates the precision of every estimate.
A valid two-level analysis of nested data first aggregates each study's effect sizes to one
(metafor ``aggregate.escalc(struct = "CS", rho = ρ)``, see :func:`alliance_core.aggregate`);
the three-level model keeps every row and models the nesting.

This module decides, for a table and the user's model choice, which rows and moderators the
two-level model receives, and words what was done so a page can say it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from alliance_core.errors import AnalysisError
from alliance_core.model.aggregation import COUNT_COLUMN, aggregate
from alliance_core.model.design import INTERACTION

AGGREGATED = "two-level-aggregated"
INDEPENDENT = "two-level-independent"

RHO_HELP = (
    "The correlation between the sampling errors of two effect sizes from the same study (they "
    "come from the same patients). Studies rarely report it, so it is assumed: 0.6 to 0.8 is the "
    "usual assumption (Pustejovsky & Tipton, 2022). The three-level model uses it as its "
    "working model (CHE), the aggregated two-level model to combine a study's effect sizes. "
    "The Sensitivity page shows the PTR result across ρ = 0 to 0.8."
)
INFERENCE_HELP = (
    "Model-based: standard errors from the fitted model, correct only if the model (including "
    "ρ) is right. Cluster-robust (CR2): standard errors computed from how much the studies "
    "actually vary, valid even if ρ is wrong, with small-sample (Satterthwaite) degrees of "
    "freedom; it needs enough studies (about 10 or more, and df of 4 or more per test)."
)


def is_nested(table: pd.DataFrame, study: str | None) -> bool:
    """Whether some study contributes more than one row."""
    if not study or study not in table.columns:
        return False
    return bool(table[study].dropna().duplicated().any())


def model_name(model: str, rho: float | None = None) -> str:
    """The model in a few words a reader of a results section knows."""
    if model == "three-level":
        return "Three-level (effect sizes nested in studies)"
    if model == AGGREGATED:
        rho_text = f", ρ = {rho:g}" if rho is not None else ""
        return f"Two-level, one aggregated effect per study{rho_text}"
    if model == INDEPENDENT:
        return "Two-level, effect sizes treated as independent (not recommended)"
    return "Two-level (one effect size per study)"


def independence_warning(k: int, n_studies: int) -> str:
    """Why the numbers of a two-level fit to nested rows are too precise, for a student."""
    return (
        f"These numbers treat all {k:,} effect sizes as if they came from {k:,} separate "
        f"studies, but they come from only {n_studies:,} studies, and effect sizes from the "
        "same study share patients. The model therefore believes it has more information than "
        "it does: confidence intervals are too narrow and p-values too small. Use "
        "“Two-level, one aggregated effect per study” or the three-level model for conclusions."
    )


def aggregated_rows(
    rows: pd.DataFrame, study: str, rho: float, moderators: Sequence[str]
) -> tuple[pd.DataFrame, tuple[str, ...], tuple[str, ...]]:
    """One row per study for the two-level model, the moderators it can use, and notes.

    Moderators whose value differs between effect sizes of one study (e.g. the alliance rater
    when a study reports patient- and observer-rated alliance) have no single study value, so
    they are left out of the model and named in a note; nothing is averaged silently.
    """
    if COUNT_COLUMN in rows.columns:
        rows = rows.drop(columns=COUNT_COLUMN)
    studies = aggregate(rows, cluster=study, rho=rho, yi="yi", vi="vi")
    varying = set(studies.attrs.get("dropped_columns", ()))

    def left_out_of_model(moderator: str) -> bool:
        # An interaction leaves with any of its parts (it is read beside its main effects).
        return moderator in varying or (
            moderator not in rows.columns
            and any(part in varying for part in moderator.split(INTERACTION))
        )

    kept = tuple(m for m in moderators if not left_out_of_model(m))
    left_out = [m for m in moderators if left_out_of_model(m)]
    notes = [
        f"Two-level model on one aggregated effect per study: the {len(rows):,} effect sizes "
        f"of {len(studies):,} studies were combined within each study (inverse-variance "
        f"weighted, sampling correlation ρ = {rho:g}, as metafor's aggregate.escalc with "
        "compound symmetry); the model sees one effect per study."
    ]
    if left_out:
        names = ", ".join(display_name(m) for m in left_out)
        notes.append(
            f"Left out of this model: {names}. Its value differs between the effect sizes of "
            "some studies, so one aggregated effect per study has no single value of it. Use "
            "the three-level model to study it."
        )
    return studies, kept, tuple(notes)


def check_enough_rows(rows: pd.DataFrame, aggregated: bool = False) -> None:
    """AnalysisError when fewer than two effects are left: one effect cannot be pooled."""
    if len(rows) == 1:
        what = "one study" if aggregated else "one effect size"
        raise AnalysisError(
            f"Only {what} is left to analyse, and a meta-analysis needs at least two: with a "
            "single effect there is nothing to pool and no way to tell how much effects differ. "
            "Add rows (or widen the filter)."
        )


def display_name(column: str) -> str:
    """A column as a reader sees it: the computed PTR columns get their plain names."""
    return {"log_PTR": "log PTR", "log_ptr": "log PTR"}.get(column, column)
