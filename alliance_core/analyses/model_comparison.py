"""The model and its neighbours: fit statistics and likelihood-ratio tests (metafor ``fitstats``
and ``anova``).

For a fitted model (the dashboard's sidebar model) the table lists that model and each
neighbour: every term dropped (a main effect together with the interactions that contain it,
as R's hierarchy requires), every PTR x categorical interaction added, and, for the variance
structure, each three-level component held at 0 (metafor ``sigma2 = c(0, NA)`` /
``c(NA, 0)``) or, for a two-level model, the heterogeneity made to depend on PTR (the
location-scale model, ``rma(scale = ~ ptr)``).

Which likelihood: REML likelihoods of models with different fixed effects are not comparable
(the REML criterion depends on the model matrix), so every comparison of moderators refits
the model and its neighbour by ML (Viechtbauer 2010, JSS 36(3), section on anova). Comparisons
of random-effects structures keep the fixed effects and use REML, whose variance estimates are
less biased. Each row's LRT is against the model fitted by the same method: the ML refit for
fixed-effect rows, the REML fit for random-effect rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from alliance_core.errors import AnalysisError
from alliance_core.model.components import parameter_count
from alliance_core.model.design import INTERACTION
from alliance_core.model.fitting import fit
from alliance_core.model.inference import compare
from alliance_core.model.results import MetaResult

FIXED = "moderators (ML)"
RANDOM = "heterogeneity (REML)"
COLUMNS = (
    "model",
    "terms",
    "comparison",
    "method",
    "k",
    "parameters",
    "loglik",
    "aic",
    "bic",
    "aicc",
    "LRT",
    "df",
    "pval",
)
WHY = (
    "Rows that change the moderators are refitted by maximum likelihood (ML): REML "
    "likelihoods of models with different moderators cannot be compared. Rows that change the "
    "heterogeneity keep the moderators and use REML. Each likelihood-ratio test (LRT) is "
    "against the analysed model fitted by the same method."
)


@dataclass(frozen=True, eq=False)
class ModelComparison:
    """The comparison table (one row per model; see the module docstring) and why ML/REML."""

    table: pd.DataFrame
    note: str = WHY

    def summary(self) -> str:
        shown = self.table.drop(columns=["terms"])
        return shown.to_string(float_format=lambda v: f"{v:.4f}") + "\n" + self.note

    def __str__(self) -> str:
        return self.summary()


def ptr_moderator(res: MetaResult) -> str | None:
    """The numeric moderator that measures PTR (its name contains 'ptr'), if any."""
    for term in res.design.terms:
        if term.kind == "numeric" and "ptr" in term.column.casefold():
            return term.column
    return None


def refit_with(res: MetaResult, terms, method: str, fix_sigma2=None, scale=None):
    """``res`` refitted to the same rows with other terms, estimator, fixed components or a
    scale part (e.g. the location-scale neighbour), keeping its reference levels, study
    column, rho and level."""
    reference = {t.column: t.reference for t in res.design.terms if t.kind == "categorical"}
    columns = {part for term in terms for part in term.split(INTERACTION)}
    fixed = dict(res.fix_sigma2 or {})
    fixed.update(fix_sigma2 or {})
    return fit(
        res.data,
        yi="yi",
        vi="vi",
        moderators=list(terms) or None,
        reference={c: r for c, r in reference.items() if c in columns} or None,
        method=method,
        cluster=res.cluster,
        rho=res.rho,
        fix_sigma2=fixed or None,
        level=res.level,
        scale=scale,
    )


def _row(label, terms, comparison, method, fitted, reference) -> dict:
    row = {
        "model": label,
        "terms": " + ".join(terms) or "1",
        "comparison": comparison,
        "method": method,
        "k": fitted.k,
        "parameters": fitted.parameters
        if not isinstance(fitted, MetaResult)
        else parameter_count(fitted),
        "loglik": float(fitted.loglik),
        "aic": float(fitted.aic),
        "bic": float(fitted.bic),
        "aicc": float(fitted.aicc),
        "LRT": np.nan,
        "df": np.nan,
        "pval": np.nan,
    }
    if reference is None:
        return row
    if isinstance(fitted, MetaResult):
        test = compare(reference, fitted)
        row.update(LRT=test.LRT, df=test.df, pval=test.pval)
    else:  # location-scale against the same location model with one tau2
        row.update(LRT=fitted.LRT, df=fitted.LRT_df, pval=fitted.LRT_pval)
    return row


def _neighbour_terms(res: MetaResult, ptr: str | None) -> list[tuple[str, list[str]]]:
    terms = list(res.design.term_labels)
    out = []
    for term in terms:
        if INTERACTION in term:
            kept = [t for t in terms if t != term]
            label = f"without {term}"
        else:
            # A main effect leaves with the interactions that contain it (R's hierarchy).
            gone = [t for t in terms if t == term or term in t.split(INTERACTION)]
            kept = [t for t in terms if t not in gone]
            label = f"without {term}" + (f" (and {', '.join(gone[1:])})" if len(gone) > 1 else "")
        out.append((label, kept))
    if ptr is not None:
        present = {frozenset(t.split(INTERACTION)) for t in terms if INTERACTION in t}
        for term in res.design.terms:
            if term.kind != "categorical" or frozenset((ptr, term.column)) in present:
                continue
            interaction = f"{ptr}{INTERACTION}{term.column}"
            out.append((f"with {interaction}", [*terms, interaction]))
    return out


def model_comparison(res: MetaResult, ptr: str | None = None) -> ModelComparison:
    """The comparison table of ``res`` and its neighbours (see the module docstring).

    ``ptr`` names the numeric PTR moderator to interact with each categorical moderator and
    to let the heterogeneity depend on (default: the numeric moderator whose name contains
    'ptr'; none: no interaction or scale rows). Neighbours that cannot be fitted (e.g. an
    interaction with an empty cell) are left out and listed in the ``note``.
    """
    if res.method == "EE":
        raise AnalysisError(
            "The comparison table compares random-effects models; this is an equal-effects fit."
        )
    ptr = ptr if ptr is not None else ptr_moderator(res)
    terms = list(res.design.term_labels)
    ml = res if res.method == "ML" else refit_with(res, terms, "ML")
    reml = res if res.method == "REML" else refit_with(res, terms, "REML")
    rows = [
        _row("analysed model", terms, FIXED, "ML", ml, None),
    ]
    skipped = []
    for label, kept in _neighbour_terms(res, ptr):
        try:
            neighbour = refit_with(res, kept, "ML")
        except AnalysisError as error:
            skipped.append(f"{label}: {error}")
            continue
        rows.append(_row(label, kept, FIXED, "ML", neighbour, ml))
    rows.append(_row("analysed model", terms, RANDOM, "REML", reml, None))
    random_neighbours = []
    if res.is_three_level:
        for name, words in (("study", "no between-study"), ("es", "no within-study")):
            if name not in (res.fix_sigma2 or {}):
                random_neighbours.append((f"{words} variance (sigma2.{name} = 0)", {name: 0.0}))
    for label, fixed in random_neighbours:
        try:
            neighbour = refit_with(res, terms, "REML", fix_sigma2=fixed)
        except AnalysisError as error:
            skipped.append(f"{label}: {error}")
            continue
        rows.append(_row(label, terms, RANDOM, "REML", neighbour, reml))
    if not res.is_three_level and ptr is not None:
        label = f"heterogeneity depends on {ptr} (location-scale)"
        try:
            neighbour = refit_with(res, terms, "REML", scale=[ptr])
        except AnalysisError as error:
            skipped.append(f"{label}: {error}")
        else:
            rows.append(_row(label, terms, RANDOM, "REML", neighbour, reml))
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table["df"] = table["df"].astype("Int64")
    note = WHY + ("".join(f"\nNot fitted: {s}" for s in skipped) if skipped else "")
    return ModelComparison(table=table, note=note)
