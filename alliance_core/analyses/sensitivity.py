"""Sensitivity analyses of a fitted model: leave one out and cumulative meta-analysis (influence
diagnostics are in :mod:`alliance_core.analyses.influence`).

The verbs follow metafor 3.8 (Viechtbauer 2010; Viechtbauer & Cheung 2010 for the influence
measures) and report the same numbers for two-level models:

* :func:`leave_one_out` is ``leave1out(fit)``: the model refitted without each effect size in
  turn. Three-level models leave out each *study* with all its effect sizes, since effect sizes
  of one study are not independent. Unlike ``leave1out``, models with moderators are allowed;
  the table then also follows one chosen coefficient (PTR, say).
* :func:`influence_diagnostics` is ``influence(fit)`` for two-level models (externally
  studentized residuals, DFFITS, Cook's distance, covariance ratio, leave-one-out tau2 and QE,
  hat values, weights, DFBETAS and metafor's rule that flags influential cases). For three-level
  models it gives what metafor computes for ``rma.mv`` fits: ``hatvalues``, ``rstandard``
  (with the study-level X2 of ``rstandard(fit, cluster=study)``) and the study-level Cook's
  distance of ``cooks.distance(fit, cluster=study)``.
* :func:`cumulative` is ``cumul(fit, order=...)``: the pooled estimate as effect sizes (for
  three-level models: whole studies) are added in order, e.g. by publication year.

Every refit re-estimates the variance components. The refits share one array-level fitting
routine, :func:`alliance_core.model.refitting.refit`, which uses the engine's estimators without any table work and starts
from the full model's variance components (a two-level refit of 150 effect sizes takes a few
milliseconds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from alliance_core.data.effect_sizes import transf
from alliance_core.errors import AnalysisError
from alliance_core.formatting import format_number, format_p
from alliance_core.model.components import BLAS
from alliance_core.model.fitting import critical_value, two_sided_p
from alliance_core.model.nesting import display_name
from alliance_core.model.refitting import (  # noqa: F401  (refit, Refit: used by other modules)
    ModelRefits,
    Refit,
    refit,
    tau2_estimate,
    variance_components,
)
from alliance_core.model.results import MetaResult

# Coefficient names that mean the Patient-Therapist Ratio, picked by default when present.
PTR_NAMES = ("log_PTR", "PTR", "log_ptr", "ptr")
SINGULAR = 1e-10  # relative size of an eigenvalue taken as zero


def _heterogeneity_columns(fitted: Refit, three_level: bool) -> dict[str, float]:
    values = {"QE": fitted.QE, "QE_pval": fitted.QE_pval}
    if three_level:
        values["sigma2_study"], values["sigma2_es"] = (float(t) for t in fitted.theta)
    else:
        values["tau2"] = float(fitted.theta[0])
    values["I2"] = fitted.I2
    if not three_level:
        values["H2"] = fitted.H2
    return values


def analysis_units(res: MetaResult) -> tuple[pd.Index, list[np.ndarray]]:
    """What is left out in turn: each effect size (two-level) or each study (three-level)."""
    if not res.is_three_level:
        index = pd.Index(res.data.index, name="left_out")
        masks = []
        for i in range(res.k):
            keep = np.ones(res.k, dtype=bool)
            keep[i] = False
            masks.append(keep)
        return index, masks
    studies = res.data[res.cluster]
    labels = pd.unique(studies)
    values = studies.to_numpy()
    return pd.Index(labels, name="left_out"), [values != label for label in labels]


def chosen_coefficient(res: MetaResult, coefficient: str | None) -> str | None:
    """The coefficient to follow besides the intercept: as named, or PTR when in the model."""
    names = res.design.names
    if coefficient is not None:
        if coefficient not in names:
            raise AnalysisError(
                f"'{coefficient}' is not a coefficient of this model ({', '.join(names)})."
            )
        return coefficient
    return next((name for name in PTR_NAMES if name in names), None)


def _unit_word(res: MetaResult) -> str:
    return "study" if res.is_three_level else "effect size"


def plural(unit: str) -> str:
    return "studies" if unit == "study" else f"{unit}s"


def _fmt(value: float) -> str:
    return "NA" if value is None or not np.isfinite(value) else f"{value:.3f}"


def _effect(value: float, transform: str | None) -> str:
    """An effect on the scale of the table beside the sentence (r for correlations), with
    the three decimals and the minus sign of that table."""
    if value is None or not np.isfinite(value):
        return "NA"
    return format_number(float(transf(np.asarray(value, dtype=float), transform)), 3)


def _scale_words(transform: str | None) -> str:
    return " (r)" if transform == "r" else ""


# -- leave one out -------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class LeaveOneOut:
    """The model refitted without each effect size (two-level) or each study (three-level).

    ``table`` has one row per left-out unit (index ``left_out``: the row label of
    ``res.data``, or the study): ``k`` effect sizes left, the intercept's ``estimate``, ``se``,
    ``statistic``, ``pval``, ``ci_lb``, ``ci_ub`` (for a model without moderators: the pooled
    estimate, as in metafor's ``leave1out``), the followed coefficient's ``coef_*`` columns
    when ``coefficient`` is set, ``QE``, ``QE_pval``, ``tau2`` (two-level) or ``sigma2_study``
    and ``sigma2_es`` (three-level), ``I2`` (and ``H2`` two-level), and ``error`` (why a refit
    was not possible, else None).
    """

    table: pd.DataFrame
    unit: str  # "effect size" or "study"
    coefficient: str | None
    full: dict[str, float]  # the same quantities for the full model
    level: float
    moderated: bool = False  # the model has moderators: the intercept is not a pooled estimate

    def by_change(self) -> pd.DataFrame:
        """The refits, the one that moves the followed quantity furthest from the full
        model's value first: the coefficient when one is followed, else the intercept (the
        quantity and distance of :meth:`describe`'s "moved it most"). Failed refits last."""
        column = "coef_estimate" if self.coefficient is not None else "estimate"
        change = (self.table[column] - self.full[column]).abs()
        order = change.sort_values(ascending=False, kind="stable", na_position="last").index
        return self.table.loc[order]

    def describe(self, transform: str | None = None, caution: str | None = None) -> str:
        """What was done, what it showed, and what it cannot show, in plain words.

        ``transform="r"`` states the intercept as r (the scale of the table shown beside
        it); the followed coefficient stays on the model's scale and, then, says it is
        Fisher's z. None: every number on the model's scale. ``caution`` (why the followed
        coefficient's test cannot be trusted, ``ModelFlags.coefficient_caution``) replaces
        the count of significant refits: a flagged test is never called significant or
        non-significant."""
        ok = self.table[self.table["error"].isna()]
        n = len(self.table)
        lines = [
            f"Leave-one-out analysis: the model was refitted {n} times, each time without one "
            f"{self.unit}{' and all its effect sizes' if self.unit == 'study' else ''}."
        ]
        if ok.empty:
            lines.append("No refit could be estimated.")
            return " ".join(lines)
        shift = (ok["estimate"] - self.full["estimate"]).abs()
        most = shift.idxmax()
        what = (
            "The intercept (the expected effect with every moderator at zero or its reference "
            "level)"
            if self.moderated
            else "The pooled estimate"
        )
        lines.append(
            f"{what}{_scale_words(transform)} ranged from "
            f"{_effect(ok['estimate'].min(), transform)} to "
            f"{_effect(ok['estimate'].max(), transform)}; with all data it is "
            f"{_effect(self.full['estimate'], transform)}. Leaving out {self.unit} {most} "
            f"moved it most (to {_effect(ok.at[most, 'estimate'], transform)})."
        )
        if self.coefficient is not None:
            alpha = 1.0 - self.level
            significant = int((ok["coef_pval"] < alpha).sum())
            on_z = " (on Fisher's z)" if transform == "r" else ""
            ranged = (
                f"The {display_name(self.coefficient)} coefficient{on_z} ranged from "
                f"{_fmt(ok['coef_estimate'].min())} to {_fmt(ok['coef_estimate'].max())} (all "
                f"data: {_fmt(self.full['coef_estimate'])}, {format_p(self.full['coef_pval'])})"
            )
            if caution:
                lines.append(
                    f"{ranged}; its test cannot be trusted ({caution}), so the refits' tests "
                    "are not read as showing an effect or as showing none."
                )
            else:
                lines.append(
                    f"{ranged}; it was significant at p < {alpha:g} in {significant} of "
                    f"{len(ok)} refits."
                )
        failed = n - len(ok)
        if failed:
            lines.append(f"{failed} refit(s) could not be estimated (see the error column).")
        lines.append(
            "A result that survives leaving out any single "
            f"{self.unit} is not thereby safe: several {plural(self.unit)} "
            "sharing one problem (e.g. the same design or a common bias) can still drive it."
        )
        return " ".join(lines)


def leave_one_out(res: MetaResult, coefficient: str | None = None) -> LeaveOneOut:
    """metafor's ``leave1out(fit)``, with whole studies left out of three-level models.

    ``coefficient`` names a coefficient to follow besides the intercept; by default the PTR
    coefficient (``log_PTR``/``PTR``) when the model has one. Refits start their variance
    components at the full model's estimates, which converge to the same maximum faster.
    """
    coefficient = chosen_coefficient(res, coefficient)
    j = res.design.names.index(coefficient) if coefficient is not None else None
    index, masks = analysis_units(res)
    start = variance_components(res)
    refits = ModelRefits(res)
    rows = []
    with BLAS.limit(limits=1, user_api="blas"):
        for label, keep in zip(index, masks, strict=True):
            try:
                fitted = refits(keep, start=start)
            except AnalysisError as error:
                rows.append({"k": int(keep.sum()), "error": f"Without {label}: {error}"})
                continue
            rows.append(_leave_one_out_row(fitted, j, res.is_three_level))
    table = pd.DataFrame(rows, index=index, columns=_leave_one_out_columns(res, j))
    table["error"] = table["error"].astype(object).where(table["error"].notna(), None)
    return LeaveOneOut(
        table=table,
        unit=_unit_word(res),
        coefficient=coefficient,
        full=_full_values(res, j),
        level=res.level,
        moderated=res.p > 1,
    )


def _leave_one_out_columns(res: MetaResult, j: int | None) -> list[str]:
    columns = ["k", "estimate", "se", "statistic", "pval", "ci_lb", "ci_ub"]
    if j is not None:
        columns += [f"coef_{c}" for c in ("estimate", "se", "statistic", "pval", "ci_lb", "ci_ub")]
    columns += ["QE", "QE_pval"]
    columns += ["sigma2_study", "sigma2_es", "I2"] if res.is_three_level else ["tau2", "I2", "H2"]
    return [*columns, "error"]


def _leave_one_out_row(fitted: Refit, j: int | None, three_level: bool) -> dict:
    row: dict[str, object] = {"k": fitted.k, **fitted.coefficient(0)}
    if j is not None:
        row.update({f"coef_{key}": value for key, value in fitted.coefficient(j).items()})
    row.update(_heterogeneity_columns(fitted, three_level))
    row["error"] = None
    return row


def _full_values(res: MetaResult, j: int | None) -> dict[str, float]:
    table = res.coefficients
    values = {key: float(table[key].iloc[0]) for key in ("estimate", "se", "pval")}
    if j is not None:
        for key in ("estimate", "se", "pval"):
            values[f"coef_{key}"] = float(table[key].iloc[j])
    return values


# -- cumulative meta-analysis --------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Cumulative:
    """The pooled estimate as effect sizes (three-level: studies) are added in order.

    ``table`` has one row per step (index ``added``: the row label or study added), the
    ordering value ``order``, ``k`` (and ``n_studies``), ``estimate``, ``se``, ``statistic``,
    ``pval``, ``ci_lb``, ``ci_ub``, ``QE``, ``QE_pval``, ``tau2`` or ``sigma2_study`` /
    ``sigma2_es``, ``I2`` (``H2`` two-level) and ``error`` for steps that cannot be fitted.
    """

    table: pd.DataFrame
    order_by: str
    unit: str
    level: float

    def describe(self, transform: str | None = None) -> str:
        """The drift of the pooled estimate in words; ``transform="r"`` states it as r (the
        scale of the chart beside it), None on the model's scale."""
        ok = self.table[self.table["error"].isna()]
        if ok.empty:
            return "Cumulative meta-analysis: no step could be fitted."
        first, last = ok.iloc[0], ok.iloc[-1]
        return (
            f"Cumulative meta-analysis: {plural(self.unit)} were added one "
            f"at a time in order of {self.order_by}. The pooled estimate{_scale_words(transform)} "
            f"moved from {_effect(first['estimate'], transform)} (first fitted step, "
            f"k = {int(first['k'])}) to {_effect(last['estimate'], transform)} (all "
            f"{int(last['k'])} effect sizes). A drift over time "
            "can reflect changing methods or populations as well as early, larger effects "
            "being published first; the plot cannot tell these apart."
        )


def cumulative(
    res: MetaResult, order_by: str | Sequence = "year", decreasing: bool = False
) -> Cumulative:
    """metafor's ``cumul(fit, order=...)`` for models without moderators.

    ``order_by`` is a column of ``res.data`` or one value per analysed row; ties keep the data
    order and missing values come last (R's ``order``). Two-level: effect sizes are added one
    at a time; the first step is the single effect size itself (metafor then fits an
    equal-effects model with a z test). Three-level: whole studies are added, ordered by the
    value in their first row; a step is fitted once it has two studies and one of them has
    several effect sizes (before that the three-level model is not identified).
    """
    if res.p > 1:
        raise AnalysisError(
            "Cumulative meta-analysis follows the pooled estimate of a model without "
            "moderators; fit the model without moderators first."
        )
    name, values = _order_values(res, order_by)
    with BLAS.limit(limits=1, user_api="blas"):
        if res.is_three_level:
            table = _cumulative_three_level(res, values, decreasing)
        else:
            table = _cumulative_two_level(res, values, decreasing)
    table.insert(0, "order", table.pop("order"))
    table["error"] = table["error"].astype(object).where(table["error"].notna(), None)
    return Cumulative(table=table, order_by=name, unit=_unit_word(res), level=res.level)


def _order_values(res: MetaResult, order_by) -> tuple[str, np.ndarray]:
    if isinstance(order_by, str):
        if order_by not in res.data.columns:
            raise AnalysisError(
                f"Cumulative meta-analysis: the data have no column '{order_by}' to order by."
            )
        return order_by, res.data[order_by].to_numpy()
    values = np.asarray(order_by)
    if len(values) != res.k:
        raise AnalysisError(
            f"Cumulative meta-analysis: {len(values)} ordering values for {res.k} effect sizes."
        )
    return "the given values", values


def _r_order(values: np.ndarray, decreasing: bool) -> np.ndarray:
    """R's ``order()``: stable, missing values last."""
    series = pd.Series(values)
    return series.sort_values(
        ascending=not decreasing, kind="stable", na_position="last"
    ).index.to_numpy()


def _cumulative_two_level(res: MetaResult, values, decreasing) -> pd.DataFrame:
    inputs = res.inputs
    order = _r_order(values, decreasing)
    y, v, X = inputs.y[order], inputs.v[order], inputs.X[order]
    rows = []
    for i in range(1, res.k + 1):
        if i == 1:
            rows.append(_single_effect_row(y[0], v[0], res))
            continue
        try:
            fitted = refit(y[:i], v[:i], X[:i], method=res.method, test=res.test, level=res.level)
        except AnalysisError as error:
            rows.append({"k": i, "error": str(error)})
            continue
        rows.append(
            {
                "k": i,
                **fitted.coefficient(0),
                **_heterogeneity_columns(fitted, False),
                "error": None,
            }
        )
    table = pd.DataFrame(rows, index=pd.Index(res.data.index[order], name="added"))
    if res.method == "EE":
        table["tau2"] = np.nan  # an equal-effects model has no tau2 (metafor drops it)
    table["order"] = values[order]
    return table


def _single_effect_row(y: float, v: float, res: MetaResult) -> dict:
    """One effect size: metafor fits it as an equal-effects model with a z test."""
    se = float(np.sqrt(v))
    crit = critical_value(res.level, None)
    statistic = y / se
    return {
        "k": 1,
        "estimate": float(y),
        "se": se,
        "statistic": statistic,
        "pval": float(two_sided_p(np.array(statistic), None)),
        "ci_lb": y - crit * se,
        "ci_ub": y + crit * se,
        "QE": 0.0,
        "QE_pval": 1.0,
        "tau2": 0.0,
        "I2": 0.0,
        "H2": 1.0,
        "error": None,
    }


def _cumulative_three_level(res: MetaResult, values, decreasing) -> pd.DataFrame:
    study = res.data[res.cluster].to_numpy()
    first_rows = ~pd.Series(study).duplicated().to_numpy()
    study_order = _r_order(values[first_rows], decreasing)
    labels = study[first_rows][study_order]
    rows, included = [], np.zeros(res.k, dtype=bool)
    refits = ModelRefits(res)
    for j, label in enumerate(labels, start=1):
        included |= study == label
        n_rows = int(included.sum())
        try:
            fitted = refits(included)
        except AnalysisError as error:
            rows.append({"k": n_rows, "n_studies": j, "error": str(error)})
            continue
        rows.append(
            {
                "k": n_rows,
                "n_studies": j,
                **fitted.coefficient(0),
                **_heterogeneity_columns(fitted, True),
                "error": None,
            }
        )
    table = pd.DataFrame(rows, index=pd.Index(labels, name="added"))
    table["order"] = values[first_rows][study_order]
    return table
