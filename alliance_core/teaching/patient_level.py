"""Patient-level analysis: the alliance split into a therapist part and a patient part.

Baldwin, Wampold & Imel (2007) asked whose doing the alliance–outcome link is. With patient-level
data (patients nested in therapists) the alliance a_ij of patient i of therapist j splits into
the therapist's mean alliance ā_j (the therapist part) and the patient's deviation a_ij − ā_j
(the patient part), and both enter a linear mixed model with a random intercept per therapist:

    outcome_ij = β0 + β_B·ā_j + β_W·(a_ij − ā_j) [+ γ'x_ij] + u_j + ε_ij,
    u_j ~ N(0, τ²),  ε_ij ~ N(0, σ²).

β_B (``between``) is the between-therapist slope, β_W (``within``) the within-therapist slope.
Their difference β_B − β_W is computed from the two estimates and their covariance (a Wald
contrast of one fit). It equals the coefficient of ā_j when the model is written with raw
alliance and therapist mean instead (the "contextual effect"); the contrast was chosen because it
keeps the two slopes a reader asks about as the model's own coefficients.

Reading β_B. A therapist's mean alliance over a few patients is a noisy measure of the therapist
part: with σ²_u and σ²_e the therapist and patient variances of alliance and n patients per
therapist, its reliability is λ = σ²_u / (σ²_u + σ²_e/n) = n·ICC / (1 + (n − 1)·ICC). When the
outcome follows y = γ_B·u + γ_W·e + …, the model estimates β_B = γ_W + (γ_B − γ_W)·λ: the
between slope is pulled towards the within slope, and their difference shrinks by λ (Lüdtke et
al., 2008, "manifest aggregation"). The result reports the average λ so that a reader can judge
this; the tests use the formula as the truth the estimates must recover.

Inference. Fixed effects come from statsmodels' ``MixedLM`` (REML by default); their covariance
is (X'V̂⁻¹X)⁻¹ at the estimated variances, V = σ²I + τ²ZZ', the convention of lme4 (``vcov``) and
HLM, not the inverse of statsmodels' full observed Hessian, whose fixed-effects block gives
standard errors up to about 1% larger in unbalanced designs (it carries the estimation of τ² and
σ²; tests/fixtures/lme4). Tests and intervals
use t distributions with "containment" degrees of freedom, as HLM does (Raudenbush & Bryk, 2002):
a term that is constant within every therapist (the intercept, β_B, the difference, therapist-
level covariates) has T − p₂ df, where p₂ counts such terms; a term that varies within therapists
has N − T − p₁ df, p₁ counting those. With few therapists a normal reference would make the
between-slope interval too narrow.

Therapist ICCs come from intercept-only mixed models of alliance and of outcome:
ICC = τ² / (τ² + σ²).

Every user mistake raises :class:`~alliance_core.errors.AnalysisError` with a message naming the
row and column; statsmodels' warnings are captured and turned into notes on the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import special

from alliance_core.data.patient_data import (
    PatientDataReport,
    counted,
    validate_patient_data,
)
from alliance_core.errors import AnalysisError
from alliance_core.formatting import format_p
from alliance_core.teaching.mixed_model import MixedFit, fit_mixed

METHODS = ("REML", "ML")
INTERCEPT = "intercept"
BETWEEN = "alliance_between"
WITHIN = "alliance_within"
# Columns added to the analysed data: therapist mean and centred alliance, therapist mean outcome.
DERIVED_COLUMNS = ("alliance_mean", "alliance_within", "outcome_mean")
# Below this average reliability the therapist means are noisy enough to say so in the reading.
LOW_RELIABILITY = 0.7


# ---------------------------------------------------------------------------------------------
# The mixed model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slope:
    """One fixed effect: estimate, standard error, t statistic on ``df`` degrees of freedom,
    two-sided p-value and confidence interval at the result's level."""

    estimate: float
    se: float
    statistic: float
    df: int
    pval: float
    ci_lb: float
    ci_ub: float

    def confidence_interval(self) -> tuple[float, float]:
        return (self.ci_lb, self.ci_ub)


@dataclass(frozen=True, eq=False)
class PatientLevelResult:
    """A fitted patient-level model (Baldwin, Wampold & Imel, 2007); see the module docstring.

    ``between``, ``within`` and ``difference`` (between − within) are :class:`Slope` objects;
    ``coefficients`` lists every fixed effect, ``vb`` their covariance. ``therapist_var`` (τ²)
    and ``residual_var`` (σ²) are the outcome model's variance components. ``data`` holds the
    analysed patients with the therapist mean and centred alliance (columns ``alliance_mean``,
    ``alliance_within``, ``outcome_mean``).

    ``icc_alliance`` and ``icc_outcome`` (the therapists' shares of alliance and outcome
    variance, from intercept-only models) and ``alliance_mean_reliability`` (the average
    reliability of a therapist's mean alliance, n_j·ICC / (1 + (n_j − 1)·ICC)) need two more
    mixed-model fits; like metafor's derived statistics they are computed on first use and then
    kept. ``notes`` (exclusions, warnings, convergence) includes those fits' notes.
    """

    between: Slope
    within: Slope
    difference: Slope
    coefficients: pd.DataFrame
    vb: pd.DataFrame
    therapist_var: float
    residual_var: float
    n_patients: int
    n_therapists: int
    caseload: pd.Series
    method: str
    level: float
    therapist: str
    alliance: str
    outcome: str
    covariates: tuple[str, ...]
    data: pd.DataFrame
    validation: PatientDataReport
    model_converged: bool
    model_notes: tuple[str, ...] = ()

    # -- derived statistics that need more fitting, computed on first use -----------------
    # (cached_property writes to the instance __dict__, which a frozen dataclass allows)
    @cached_property
    def _icc_fits(self) -> tuple[MixedFit, MixedFit]:
        groups = pd.factorize(self.data[self.therapist])[0]
        intercept = np.ones((self.n_patients, 1))
        reml = self.method == "REML"
        return (
            fit_mixed(
                self.data[self.alliance].to_numpy(),
                intercept,
                groups,
                reml,
                "the alliance ICC model",
            ),
            fit_mixed(
                self.data[self.outcome].to_numpy(), intercept, groups, reml, "the outcome ICC model"
            ),
        )

    @property
    def icc_alliance(self) -> float:
        """τ²/(τ² + σ²) of alliance: the therapists' share of alliance variance."""
        return _icc(self._icc_fits[0])

    @property
    def icc_outcome(self) -> float:
        """τ²/(τ² + σ²) of outcome (no predictors): the therapists' share of outcome variance."""
        return _icc(self._icc_fits[1])

    @property
    def alliance_mean_reliability(self) -> float:
        """Average over therapists of n_j·ICC / (1 + (n_j − 1)·ICC) (Spearman–Brown)."""
        n = self.caseload.to_numpy(dtype=float)
        icc = self.icc_alliance
        return float(np.mean(n * icc / (1.0 + (n - 1.0) * icc)))

    @property
    def converged(self) -> bool:
        return self.model_converged and all(fit.converged for fit in self._icc_fits)

    @property
    def notes(self) -> tuple[str, ...]:
        icc_notes = [note for fit in self._icc_fits for note in fit.notes]
        return tuple(dict.fromkeys([*self.model_notes, *icc_notes]))

    def summary(self) -> str:
        return _format_summary(self)

    def describe(self, higher_is_better: bool | None = True, alpha: float = 0.05) -> str:
        """A plain-language reading of the two slopes and their difference.

        ``higher_is_better`` says how to word outcomes: True "better", False "worse" for higher
        scores (e.g. symptom scales), None neutral ("higher outcome scores").
        """
        return _describe(self, higher_is_better, alpha)

    def __repr__(self) -> str:
        return (
            f"<PatientLevelResult {self.method} patients={self.n_patients} "
            f"therapists={self.n_therapists} between={self.between.estimate:.4g} "
            f"within={self.within.estimate:.4g} difference={self.difference.estimate:.4g}>"
        )


def fit_patient_level(
    df: pd.DataFrame,
    therapist: str = "therapist",
    alliance: str = "alliance",
    outcome: str = "outcome",
    covariates: Sequence[str] = (),
    method: str = "REML",
    *,
    level: float = 0.95,
    decimal: str = ".",
    first_data_row: int = 2,
) -> PatientLevelResult:
    """Fit the between/within-therapist model of outcome on alliance (see the module docstring).

    The table is checked by :func:`validate_patient_data` first; rows it leaves out are listed
    in the notes, and any error raises ``AnalysisError`` with its message. ``method`` is "REML"
    (default) or "ML"; ``level`` the confidence level of the intervals. ``df`` is not changed.
    """
    method = str(method).upper()
    if method not in METHODS:
        raise AnalysisError(f"Unknown estimation method '{method}'; choose REML or ML.")
    if not 0.0 < level < 1.0:
        raise AnalysisError(f"Confidence level {level} must lie between 0 and 1 (e.g. 0.95).")
    covariates = tuple(covariates)
    report = validate_patient_data(
        df,
        therapist,
        alliance,
        outcome,
        covariates,
        decimal=decimal,
        first_data_row=first_data_row,
    )
    if not report.ok:
        raise AnalysisError(" ".join(dict.fromkeys(p.message for p in report.errors)))

    clash = [c for c in (therapist, alliance, outcome, *covariates) if c in DERIVED_COLUMNS]
    if clash:
        raise AnalysisError(
            f"Column '{clash[0]}' has a name the analysis uses for a column it computes "
            f"({', '.join(DERIVED_COLUMNS)}); rename it."
        )
    data = _decomposed(report.usable, therapist, alliance, outcome)
    groups = pd.factorize(data[therapist])[0]
    names = (INTERCEPT, BETWEEN, WITHIN, *covariates)
    X = np.column_stack(
        [np.ones(len(data)), *(data[c].to_numpy() for c in (*DERIVED_COLUMNS[:2], *covariates))]
    )
    _check_rank(X, names)
    reml = method == "REML"
    main = fit_mixed(data[outcome].to_numpy(), X, groups, reml, "the outcome model")

    slopes, difference = _inference(main, X, groups, names, level)
    caseload = data.groupby(therapist, sort=False).size().rename("patients")
    notes = [*_validation_notes(report), *main.notes]

    return PatientLevelResult(
        between=slopes[1],
        within=slopes[2],
        difference=difference,
        coefficients=_coefficient_table(names, slopes),
        vb=pd.DataFrame(main.cov_fe, index=list(names), columns=list(names)),
        therapist_var=main.therapist_var,
        residual_var=main.residual_var,
        n_patients=len(data),
        n_therapists=len(caseload),
        caseload=caseload,
        method=method,
        level=level,
        therapist=therapist,
        alliance=alliance,
        outcome=outcome,
        covariates=covariates,
        data=data,
        validation=report,
        model_converged=main.converged,
        model_notes=tuple(dict.fromkeys(notes)),
    )


def _decomposed(usable: pd.DataFrame, therapist: str, alliance: str, outcome: str) -> pd.DataFrame:
    """The usable rows with the therapist mean and the patient's deviation from it."""
    data = usable.copy()
    by_therapist = data.groupby(therapist, sort=False)
    data["alliance_mean"] = by_therapist[alliance].transform("mean")
    data["alliance_within"] = data[alliance] - data["alliance_mean"]
    data["outcome_mean"] = by_therapist[outcome].transform("mean")
    return data


def _check_rank(X: np.ndarray, names: Sequence[str]) -> None:
    """Name the first covariate that adds nothing the earlier columns do not already hold."""
    if np.linalg.matrix_rank(X) == X.shape[1]:
        return
    for p in range(2, X.shape[1] + 1):
        if np.linalg.matrix_rank(X[:, :p]) < p:
            culprit = names[p - 1]
            raise AnalysisError(
                f"Covariate '{culprit}' is a linear combination of the alliance parts and the "
                "covariates before it (for example a therapist-level variable that only "
                "restates the therapist's mean alliance); leave it out."
            )


def _containment_df(X: np.ndarray, groups: np.ndarray, names: Sequence[str]) -> list[int]:
    """Degrees of freedom per fixed effect: T − p₂ for therapist-level terms, N − T − p₁ else."""
    n, n_therapists = len(groups), int(groups.max()) + 1
    counts = np.bincount(groups)
    means = np.stack([np.bincount(groups, X[:, j]) / counts for j in range(X.shape[1])], axis=1)
    therapist_level = np.all(np.isclose(X, means[groups]), axis=0)
    p2 = int(therapist_level.sum())
    p1 = len(names) - p2
    df_between, df_within = n_therapists - p2, n - n_therapists - p1
    if df_between < 1:
        raise AnalysisError(
            f"{n_therapists} therapists for {p2} therapist-level terms (intercept, mean alliance "
            "and therapist-level covariates): the between-therapist slope needs more therapists "
            "than that. Remove therapist-level covariates or add therapists."
        )
    if df_within < 1:
        raise AnalysisError(
            "Too few patients beyond one per therapist to estimate the within-therapist slope "
            "and the patient-level covariates; remove covariates or add patients."
        )
    return [df_between if level else df_within for level in therapist_level]


def _inference(
    main: MixedFit, X: np.ndarray, groups: np.ndarray, names: Sequence[str], level: float
) -> tuple[list[Slope], Slope]:
    """t tests and intervals of every fixed effect, and of the contrast between − within."""
    df_by_term = _containment_df(X, groups, names)
    crit = {d: float(special.stdtrit(d, 0.5 + level / 2.0)) for d in set(df_by_term)}
    slopes = [
        _slope(main.fe_params[i], main.cov_fe[i, i], df_by_term[i], crit[df_by_term[i]])
        for i in range(len(names))
    ]
    contrast = np.zeros(len(names))
    contrast[[names.index(BETWEEN), names.index(WITHIN)]] = (1.0, -1.0)
    # The difference is a therapist-level contrast (the contextual effect), hence its df.
    df_between = df_by_term[names.index(BETWEEN)]
    difference = _slope(
        contrast @ main.fe_params,
        contrast @ main.cov_fe @ contrast,
        df_between,
        crit[df_between],
    )
    return slopes, difference


def _slope(estimate: float, variance: float, df: int, crit: float) -> Slope:
    se = float(np.sqrt(variance)) if variance > 0 else float("nan")
    statistic = float(estimate) / se if se > 0 else float("nan")
    pval = float(2.0 * special.stdtr(df, -abs(statistic))) if np.isfinite(statistic) else np.nan
    return Slope(
        estimate=float(estimate),
        se=se,
        statistic=statistic,
        df=int(df),
        pval=pval,
        ci_lb=float(estimate) - crit * se,
        ci_ub=float(estimate) + crit * se,
    )


def _coefficient_table(names: Sequence[str], slopes: Sequence[Slope]) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "estimate": [s.estimate for s in slopes],
            "se": [s.se for s in slopes],
            "tval": [s.statistic for s in slopes],
            "df": [s.df for s in slopes],
            "pval": [s.pval for s in slopes],
            "ci_lb": [s.ci_lb for s in slopes],
            "ci_ub": [s.ci_ub for s in slopes],
        },
        index=pd.Index(list(names), name="term"),
    )
    return table


def _icc(fit: MixedFit) -> float:
    total = fit.therapist_var + fit.residual_var
    return float(fit.therapist_var / total) if total > 0 else float("nan")


def _validation_notes(report: PatientDataReport) -> list[str]:
    notes = []
    if report.exclusions:
        notes.append(report._usable_sentence())
    notes.extend(dict.fromkeys(p.message for p in report.warnings if p.row is None))
    alone = [p for p in report.warnings if p.kind == "a therapist with one patient"]
    if alone:
        notes.append(
            f"{counted(len(alone), 'therapist')} with one patient: they count towards the "
            "between-therapist slope but carry no within-therapist information."
        )
    return notes


# ---------------------------------------------------------------------------------------------
# Reading and printing
# ---------------------------------------------------------------------------------------------


def slope_number(value: float) -> str:
    """Three significant digits with a true minus sign: slopes come in any outcome unit."""
    text = f"{value:.3g}"
    if float(text) == 0.0:
        text = text.lstrip("-")
    return text.replace("-", "\u2212")


def _p(p: float) -> str:
    if not np.isfinite(p):
        return "p not available"
    return format_p(p)


def _estimate_text(slope: Slope, level: float) -> str:
    return (
        f"{slope_number(slope.estimate)}, {level * 100:g}% CI {slope_number(slope.ci_lb)} to "
        f"{slope_number(slope.ci_ub)}, {_p(slope.pval)}"
    )


def _outcomes(sign: float, higher_is_better: bool | None) -> str:
    if higher_is_better is None:
        return "higher outcome scores" if sign > 0 else "lower outcome scores"
    better = (sign > 0) == higher_is_better
    return "better outcomes" if better else "worse outcomes"


def _describe(res: PatientLevelResult, higher_is_better: bool | None, alpha: float) -> str:
    between, within, difference = res.between, res.within, res.difference
    level = res.level
    if between.pval < alpha:
        first = (
            "Therapists whose patients on average report a stronger alliance get "
            f"{_outcomes(between.estimate, higher_is_better)} (between-therapist slope "
            f"{_estimate_text(between, level)})."
        )
    else:
        first = (
            "These data do not show that therapists whose patients on average report a stronger "
            f"alliance get different outcomes (between-therapist slope "
            f"{_estimate_text(between, level)})."
        )
    if within.pval < alpha:
        second = (
            "Within therapists, patients who report a stronger alliance than their therapist's "
            f"other patients get {_outcomes(within.estimate, higher_is_better)} (within-therapist "
            f"slope {_estimate_text(within, level)})."
        )
    else:
        second = (
            "Within therapists, a patient's alliance relative to their therapist's other "
            "patients shows no clear link with outcome (within-therapist slope "
            f"{_estimate_text(within, level)})."
        )
    sentences = [first, second, _difference_sentence(difference, level, alpha)]
    if res.alliance_mean_reliability < LOW_RELIABILITY:
        sentences.append(
            "Each therapist's mean alliance rests on few patients (average reliability "
            f"{res.alliance_mean_reliability:.2f}), which pulls the between-therapist slope "
            "towards the within-therapist slope, so a real difference would look smaller here "
            "than it is."
        )
    sentences.append(
        f"Based on {res.n_patients:,} patients of {counted(res.n_therapists, 'therapist')}; "
        f"therapists account for {res.icc_alliance:.0%} of the alliance variance and "
        f"{res.icc_outcome:.0%} of the outcome variance."
    )
    return " ".join(sentences)


def _difference_sentence(difference: Slope, level: float, alpha: float) -> str:
    text = _estimate_text(difference, level)
    if difference.pval >= alpha:
        return (
            f"The two slopes do not differ significantly (difference {text}), so these data "
            "cannot say whether the link lies more with therapists or with patients."
        )
    if difference.estimate > 0:
        return (
            f"The between-therapist slope is the larger one (difference {text}): here the "
            "alliance–outcome link runs more through therapists, whose patients as a group form "
            "better alliances, than through individual patients."
        )
    return (
        f"The within-therapist slope is the larger one (difference between − within {text}): "
        "here the link runs more through which patients form a good alliance than through the "
        "therapist."
    )


_TERM_LABELS = {
    INTERCEPT: "intercept",
    BETWEEN: "alliance: therapist mean (between)",
    WITHIN: "alliance: patient deviation (within)",
}


def _format_summary(res: PatientLevelResult) -> str:
    caseload = res.caseload.to_numpy()
    lines = [
        "Patient-level analysis: alliance split into therapist and patient parts "
        "(Baldwin, Wampold & Imel, 2007)",
        f"Linear mixed model, random intercept for therapist ({res.method}); "
        f"{res.n_patients:,} patients, {res.n_therapists:,} therapists "
        f"(caseload median {np.median(caseload):g}, range {caseload.min()}–{caseload.max()})",
        "",
        f"  {res.outcome} = b0 + b_between · therapist mean {res.alliance}"
        f" + b_within · ({res.alliance} − therapist mean)"
        + "".join(f" + b · {c}" for c in res.covariates)
        + " + u_therapist + e",
        "",
    ]
    table = res.coefficients.rename(index=lambda name: _TERM_LABELS.get(name, name))
    lines.append(table.to_string(float_format=lambda v: f"{v:.4f}"))
    d = res.difference
    lines += [
        "",
        f"Difference between − within = {d.estimate:.4f} (se {d.se:.4f}, t({d.df}) = "
        f"{d.statistic:.3f}, {_p(d.pval)}, {res.level * 100:g}% CI {d.ci_lb:.4f} to "
        f"{d.ci_ub:.4f})",
        f"Therapist variance (tau^2) = {res.therapist_var:.4f}   "
        f"residual variance (sigma^2) = {res.residual_var:.4f}",
        f"ICC of alliance = {res.icc_alliance:.3f} (average reliability of a therapist's mean "
        f"alliance = {res.alliance_mean_reliability:.3f});  ICC of outcome = "
        f"{res.icc_outcome:.3f}",
        "t tests with containment df: therapist-level terms T − p2, patient-level N − T − p1.",
    ]
    lines += list(res.notes)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Figure
# ---------------------------------------------------------------------------------------------
