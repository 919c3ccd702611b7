"""Small-study effects and publication bias: Egger's test, the rank test, trim-and-fill, PET-PEESE.

The first three follow metafor 3.8 and report the same numbers:

* :func:`egger_test` is ``regtest(fit)`` (model = "rma", predictor = "sei"; Egger et al. 1997,
  in the mixed-effects form of Sterne & Egger 2005): the same model refitted with each effect
  size's standard error as an added moderator, and the test of that coefficient. For a
  three-level model (``regtest`` is not defined for ``rma.mv``) the standard error enters the
  three-level model as a moderator in the same way.
* :func:`rank_correlation_test` is ``ranktest(fit)`` (Begg & Mazumdar 1994): Kendall's tau
  between standardized effects and their sampling variances.
* :func:`trim_and_fill` is ``trimfill(fit)`` (Duval & Tweedie 2000a, 2000b) with the L0 or R0
  estimator, for two-level models without moderators. :func:`aggregate_by_study` turns a
  three-level data set into one effect per study so that trim-and-fill can be applied.

:func:`pet_peese` is the conditional PET-PEESE estimator of Stanley & Doucouliagos (2014); it has
no metafor function, and its two fits are ordinary meta-regressions on the standard error
(PET) or the sampling variance (PEESE).

All of these read a funnel plot's asymmetry. Asymmetry is what they detect; publication bias is
only one of its causes (true heterogeneity related to study size, chance, and choices of
analysis are others), so every result's ``describe()`` says what the test cannot tell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special, stats

from alliance_core.analyses.kendall import kendall_test
from alliance_core.data.effect_sizes import transf
from alliance_core.errors import AnalysisError
from alliance_core.formatting import format_p
from alliance_core.model.aggregation import COUNT_COLUMN, aggregate
from alliance_core.model.components import BLAS
from alliance_core.model.fitting import fit
from alliance_core.model.refitting import refit
from alliance_core.model.results import MetaResult

PREDICTORS = {"sei": "standard error", "vi": "sampling variance"}
# Few studies give these tests little power (Sterne et al. 2011 advise at least 10).
FEW_STUDIES = 10


# -- shared pieces -------------------------------------------------------------------------
def _refit_with_predictor(res: MetaResult, predictor: str) -> tuple[MetaResult, str]:
    """``res``'s model refitted with sqrt(vi) ("sei") or vi as the last moderator."""
    if predictor not in PREDICTORS:
        raise AnalysisError(f"Unknown predictor '{predictor}'; choose 'sei' or 'vi'.")
    data = res.data.copy()
    name = predictor  # "vi": the sampling-variance column itself is the moderator
    if predictor == "sei":
        while name in data.columns:
            name += "_"
        data[name] = np.sqrt(data["vi"].to_numpy(float))
    reference = {t.column: t.reference for t in res.design.terms if t.kind == "categorical"}
    try:
        refitted = fit(
            data,
            yi="yi",
            vi="vi",
            moderators=[*res.moderators, name],
            reference=reference or None,
            method=res.method,
            cluster=res.cluster,
            test=res.test,
            level=res.level,
            rho=res.rho,
            fix_sigma2=res.fix_sigma2,
        )
    except AnalysisError as error:
        raise AnalysisError(
            f"The model with the {PREDICTORS[predictor]} as a moderator cannot be estimated "
            f"({error}) Small-study tests need effect sizes of different precision."
        ) from error
    return refitted, name


def _study_count_text(res: MetaResult) -> str:
    if res.is_three_level:
        return f"{res.k} effect sizes from {res.n_studies} studies"
    return f"{res.k} effect sizes"


def _caveats(res: MetaResult) -> list[str]:
    notes = [
        "Funnel asymmetry is not proof of publication bias: smaller studies can differ for "
        "real reasons (other patients, settings or measures), and chance alone produces some "
        "asymmetry."
    ]
    if res.n_studies < FEW_STUDIES:
        notes.append(
            f"With only {res.n_studies} studies the test has little power: a non-significant "
            "result says little."
        )
    if res.is_three_level:
        notes.append(
            "Effect sizes of one study share its patients and its design, so they are not "
            "independent pieces of evidence about asymmetry."
        )
    return notes


def _p_text(p: float) -> str:
    return format_p(p)


def _value(value: float, transform: str | None) -> str:
    return f"{float(transf(np.asarray(value), transform)):.3f}"


# -- Egger's regression test ---------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class EggerTest:
    """Regression test for funnel-plot asymmetry (metafor ``regtest``).

    ``statistic``/``pval`` test the coefficient of the predictor (``slope``) in the model
    refitted with it (``fit``): a z test, or a t test on ``ddf`` degrees of freedom when the
    model uses Knapp-Hartung or t tests. For a model without moderators, ``limit_estimate``
    (with ``limit_ci``) is the intercept of that model: the effect expected for a study of
    infinite precision (standard error 0). metafor reports it only then; with moderators it
    is None.
    """

    predictor: str
    statistic: float
    pval: float
    ddf: int | None
    slope: float
    slope_se: float
    limit_estimate: float | None
    limit_ci: tuple[float, float] | None
    fit: MetaResult
    model: str
    k: int
    n_studies: int
    level: float
    caveats: tuple[str, ...]

    def funnel_line(self) -> dict[str, float] | None:
        """{"intercept", "slope"} for ``funnel_figure(egger_line=...)`` (models without
        moderators and predictor "sei", where the line lives in the funnel's coordinates)."""
        if self.limit_estimate is None or self.predictor != "sei":
            return None
        return {"intercept": self.limit_estimate, "slope": self.slope}

    def describe(self, transform: str | None = None) -> str:
        """Plain-language account; ``transform="r"`` shows the limit estimate as r."""
        what = (
            "Egger's regression test asks whether less precise studies report systematically "
            f"different effects: the model was refitted with each effect size's "
            f"{PREDICTORS[self.predictor]} as a moderator."
        )
        stat = f"{'z' if self.ddf is None else f't({self.ddf})'} = {self.statistic:.2f}"
        direction = "larger" if self.slope > 0 else "smaller"
        if self.pval < 1.0 - self.level:
            found = (
                f"It found asymmetry ({stat}, {_p_text(self.pval)}): less precise studies "
                f"report {direction} effects."
            )
        else:
            found = (
                f"It found no clear asymmetry ({stat}, {_p_text(self.pval)}); that is not "
                "evidence that there is none."
            )
        parts = [what, found]
        if self.limit_estimate is not None:
            lo, hi = self.limit_ci
            parts.append(
                f"The effect expected for a study with {PREDICTORS[self.predictor]} 0 is "
                f"{_value(self.limit_estimate, transform)} "
                f"({self.level:.0%} CI {_value(lo, transform)} to {_value(hi, transform)})."
            )
        return " ".join([*parts, *self.caveats])


def egger_test(res: MetaResult, predictor: str = "sei") -> EggerTest:
    """Egger's regression test: metafor ``regtest(fit)`` (model = "rma", predictor = "sei").

    Refits ``res``'s model (same moderators, estimator, test and, for three-level models,
    the same study/effect-size structure) with ``sqrt(vi)`` (``predictor="sei"``) or ``vi``
    added as the last moderator, and tests its coefficient.
    """
    refitted, name = _refit_with_predictor(res, predictor)
    row = refitted.coefficients.loc[name]
    intercept_only = res.p == 1
    intercept = refitted.coefficients.iloc[0]
    return EggerTest(
        predictor=predictor,
        statistic=float(row["statistic"]),
        pval=float(row["pval"]),
        ddf=refitted.ddf,
        slope=float(row["estimate"]),
        slope_se=float(row["se"]),
        limit_estimate=float(intercept["estimate"]) if intercept_only else None,
        limit_ci=(float(intercept["ci_lb"]), float(intercept["ci_ub"])) if intercept_only else None,
        fit=refitted,
        model=res.model,
        k=res.k,
        n_studies=res.n_studies,
        level=res.level,
        caveats=tuple(_caveats(res)),
    )


# -- Begg and Mazumdar's rank correlation test ---------------------------------------------
@dataclass(frozen=True)
class RankCorrelationTest:
    """Kendall's tau between standardized effects and sampling variances (metafor ``ranktest``).

    ``exact`` says whether the p-value comes from the exact null distribution of Kendall's
    statistic (no ties, as R's ``cor.test(..., exact=TRUE)``) or from the normal
    approximation with R's tie-corrected variance.
    """

    tau: float
    pval: float
    exact: bool
    k: int
    caveats: tuple[str, ...]

    def describe(self) -> str:
        what = (
            "Begg and Mazumdar's rank correlation test asks whether effect sizes (standardized "
            "around the pooled estimate) rise or fall with their sampling variance."
        )
        if self.pval < 0.05:
            found = (
                f"Kendall's tau = {self.tau:.3f} ({_p_text(self.pval)}): less precise effect "
                f"sizes tend to be {'larger' if self.tau > 0 else 'smaller'}."
            )
        else:
            found = f"Kendall's tau = {self.tau:.3f} ({_p_text(self.pval)}): no clear trend."
        limits = (
            "The test ignores moderators and has less power than the regression test, "
            "especially with few studies."
        )
        return " ".join([what, found, limits, *self.caveats])


def rank_correlation_test(res: MetaResult) -> RankCorrelationTest:
    """Begg & Mazumdar's test: metafor ``ranktest(fit)``.

    yi* = (yi - b) / sqrt(vi - vb) with b the equal-effects (inverse-variance) mean and
    vb = 1 / sum(1/vi); tau is Kendall's tau-b of (yi*, vi) and its p-value is two-sided.
    As in metafor, the moderators and the nesting of a three-level model play no part.
    Without ties the p-value is exact (R returns NaN for 170 < k, where it is computed here
    up to k = 500; beyond, the normal approximation is used).
    """
    y = res.data["yi"].to_numpy(float)
    v = res.data["vi"].to_numpy(float)
    w = 1.0 / v
    pooled = float(np.sum(w * y) / np.sum(w))
    y_star = (y - pooled) / np.sqrt(v - 1.0 / np.sum(w))
    tau, pval, exact = kendall_test(y_star, v)
    return RankCorrelationTest(
        tau=tau, pval=pval, exact=exact, k=len(y), caveats=tuple(_caveats(res))
    )


# -- trim and fill -------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class TrimAndFill:
    """Duval and Tweedie's trim-and-fill (metafor ``trimfill``).

    ``k0`` effect sizes were estimated missing on ``side`` (with standard error ``se_k0``;
    for R0 also ``p_k0``, the probability of at least k0 under no asymmetry). ``filled``
    holds the imputed effects (columns yi, vi: mirror images 2 b - yi of the most extreme
    effects on the other side); ``adjusted`` is the model fitted to the observed and imputed
    effects (the original fit when k0 = 0).
    """

    estimator: str
    side: str
    k0: int
    se_k0: float
    p_k0: float | None
    filled: pd.DataFrame
    adjusted: MetaResult
    original: MetaResult
    caveats: tuple[str, ...]

    @property
    def estimate(self) -> float:
        return float(self.adjusted.beta[0])

    def describe(self, transform: str | None = None) -> str:
        what = (
            "Trim-and-fill assumes that the funnel plot would be symmetric without bias, "
            f"estimates how many effect sizes are missing on the {self.side} side "
            f"({self.estimator} estimator), and adds their mirror images."
        )
        before = _value(self.original.beta[0], transform)
        if self.k0 == 0:
            found = f"It estimated that no effect sizes are missing; the estimate stays {before}."
        else:
            ci = self.adjusted.coefficients.iloc[0]
            found = (
                f"It estimated {self.k0} missing effect size(s). With them the pooled estimate "
                f"moves from {before} to {_value(self.estimate, transform)} ({self.adjusted.level:.0%} "
                f"CI {_value(ci['ci_lb'], transform)} to {_value(ci['ci_ub'], transform)})."
            )
        limits = (
            "The imputed studies are not data: the adjusted estimate is a sensitivity "
            "analysis, and it can mislead when the effects are truly heterogeneous."
        )
        return " ".join([what, found, *self._test_note(), limits, *self.caveats])

    def _test_note(self) -> list[str]:
        """Say so when the adjusted model's test differs from the original model's."""
        if self.k0 == 0 or self.adjusted.test == self.original.test:
            return []
        if self.adjusted.test == "z":
            return [
                "As in metafor's trimfill, the model with the filled effect sizes uses z "
                "tests, although the original model used the Knapp–Hartung adjustment."
            ]
        return ["The model with the filled effect sizes keeps the Knapp–Hartung adjustment."]


def trim_and_fill(
    res: MetaResult,
    side: str | None = None,
    estimator: str = "L0",
    maxiter: int = 100,
    test: str = "z",
) -> TrimAndFill:
    """metafor ``trimfill(fit, side, estimator)`` for a two-level model without moderators.

    ``side=None`` chooses the side as metafor does: "right" if the slope of yi on sqrt(vi)
    (same estimator) is negative, else "left". The rank-based k0 estimate is iterated on the
    trimmed data (the pooled estimate of the k - k0 least extreme effects) until it is
    stable. The adjusted model uses the original estimator and ``test``: z by default, as
    metafor's ``trimfill(fit)`` refits the filled data with z tests whatever the original
    test; ``test=res.test`` keeps a Knapp–Hartung test (``trimfill(fit, test = "knha")``).
    """
    _check_trim_and_fill(res, estimator)
    y, v = res.inputs.y, res.inputs.v
    with BLAS.limit(limits=1, user_api="blas"):
        side = side or _asymmetry_side(res)
        if side not in ("left", "right"):
            raise AnalysisError(f"Trim-and-fill side '{side}': choose 'left' or 'right'.")
        k0, se_k0, beta, sorted_index = _estimate_missing(res, side, estimator, maxiter)
    p_k0 = 0.5 ** (k0 + 1) if estimator == "R0" else None
    if k0 == 0:
        filled = pd.DataFrame({"yi": [], "vi": []})
        adjusted = res
    else:
        extreme = sorted_index[len(y) - k0 :]
        filled = pd.DataFrame({"yi": 2.0 * beta - y[extreme], "vi": v[extreme]})
        adjusted = _fit_with_filled(res, filled, test)
    return TrimAndFill(
        estimator=estimator,
        side=side,
        k0=k0,
        se_k0=se_k0,
        p_k0=p_k0,
        filled=filled,
        adjusted=adjusted,
        original=res,
        caveats=tuple(_caveats(res)),
    )


def _check_trim_and_fill(res: MetaResult, estimator: str) -> None:
    if estimator not in ("L0", "R0"):
        raise AnalysisError(f"Unknown trim-and-fill estimator '{estimator}'; choose L0 or R0.")
    if res.is_three_level:
        raise AnalysisError(
            f"Trim-and-fill counts and mirrors independent studies, but this model has "
            f"{res.k} effect sizes nested in {res.n_studies} studies: dependent effect sizes "
            "would be counted as separate studies. Aggregate to one effect per study first, "
            "e.g. trim_and_fill(fit(aggregate_by_study(res))), and read the result as a rough "
            "check."
        )
    if res.p > 1:
        raise AnalysisError(
            "Trim-and-fill is defined for models without moderators (funnel asymmetry around "
            "one pooled estimate). Fit the model without moderators to use it."
        )


def _asymmetry_side(res: MetaResult) -> str:
    """metafor's default side: "right" when yi decreases with sqrt(vi), else "left"."""
    y, v = res.inputs.y, res.inputs.v
    X = np.column_stack([np.ones_like(v), np.sqrt(v)])
    try:
        slope = refit(y, v, X, method=res.method, names=("intrcpt", "sei")).beta[1]
    except AnalysisError as error:
        raise AnalysisError(
            "Trim-and-fill could not tell on which side effect sizes are missing: the slope of "
            f"effect size on standard error cannot be estimated ({error}). Give side='left' or "
            "side='right'."
        ) from error
    return "right" if slope < 0 else "left"


def _estimate_missing(res: MetaResult, side: str, estimator: str, maxiter: int):
    """Iterate k0 (Duval & Tweedie's L0 or R0) on the trimmed data; metafor's algorithm.

    Works with effects flipped when the missing side is the right one, sorted increasingly,
    so that trimming removes the k0 largest. Returns k0, its standard error, the pooled
    estimate of the trimmed data (original scale) and the sort order.
    """
    sign = -1.0 if side == "right" else 1.0
    y = sign * res.inputs.y
    v = res.inputs.v
    order = np.argsort(y, kind="stable")
    y, v = y[order], v[order]
    k = len(y)
    ones = np.ones((k, 1))
    k0, previous, iterations = 0, -1, 0
    se_k0, beta = float("nan"), float("nan")
    while k0 != previous:
        previous = k0
        iterations += 1
        if iterations > maxiter:
            raise AnalysisError("Trim-and-fill did not converge (k0 kept changing).")
        kept = k - k0
        if kept < 2:
            raise AnalysisError(
                "Trim-and-fill would trim all but one effect size; the funnel is too lopsided "
                "for the method."
            )
        beta = refit(y[:kept], v[:kept], ones[:kept], method=res.method).beta[0]
        centred = y - beta
        ranks = stats.rankdata(np.abs(centred), method="ordinal")  # ties: first come first
        signed = np.sign(centred) * ranks
        k0, se_k0 = _k0_estimate(signed, k, estimator)
    return k0, se_k0, sign * beta, order


def _k0_estimate(signed_ranks: np.ndarray, k: int, estimator: str) -> tuple[int, float]:
    if estimator == "R0":
        negative = -signed_ranks[signed_ranks < 0]
        # The rightmost run of positive ranks; without any negative rank it is all of them.
        longest = k - (negative.max() if negative.size else 0)
        k0 = longest - 1
        se = np.sqrt(2.0 * max(0.0, k0) + 2.0)
    else:
        sr = float(np.sum(signed_ranks[signed_ranks > 0]))
        k0 = (4.0 * sr - k * (k + 1)) / (2.0 * k - 1.0)
        var_sr = (
            k * (k + 1) * (2 * k + 1)
            + 10 * k0**3
            + 27 * k0**2
            + 17 * k0
            - 18 * k * k0**2
            - 18 * k * k0
            + 6 * k**2 * k0
        ) / 24.0
        se = 4.0 * np.sqrt(var_sr) / (2.0 * k - 1.0) if var_sr >= 0 else float("nan")
    # R's round() halves to even, like numpy's; a NaN standard error stays NaN (R's max).
    k0 = max(0, int(np.round(k0)))
    return k0, float(se) if np.isnan(se) else max(0.0, float(se))


def _fit_with_filled(res: MetaResult, filled: pd.DataFrame, test: str) -> MetaResult:
    observed = pd.DataFrame({"yi": res.inputs.y, "vi": res.inputs.v, "filled": False})
    imputed = filled.assign(filled=True)
    combined = pd.concat([observed, imputed], ignore_index=True)
    return fit(combined, method=res.method, test=test, level=res.level)


def aggregate_by_study(res: MetaResult, study: str | None = None) -> pd.DataFrame:
    """One effect size per study: inverse-variance weighted means under independence.

    yi_s = sum(yi / vi) / sum(1 / vi) and vi_s = 1 / sum(1 / vi) over the study's effect
    sizes, as metafor's ``aggregate(escalc, cluster = study, struct = "ID")``; for a CHE fit
    (``res.rho`` set) compound symmetry with that rho (``struct = "CS"``) instead. Treating a
    study's effect sizes as independent understates vi_s when they share patients (they
    usually do), so a study with many effect sizes looks more precise than it is; the result
    suits trim-and-fill and funnel plots as a rough check, not a final analysis. Columns:
    the study column, yi, vi, k (effect sizes aggregated) and every other column whose value
    is the same throughout each study; studies keep their order of first appearance.
    """
    study = study or res.cluster
    if study is None or study not in res.data.columns:
        raise AnalysisError(
            "Aggregating needs a study column: fit the three-level model or name the column."
        )
    if res.rho:
        # The model's own working assumption: sampling errors of a study's effect sizes
        # correlate with rho, so aggregate under compound symmetry with that rho (metafor
        # aggregate(struct = "CS", rho)); independence would understate the variances.
        out = aggregate(res.data, cluster=study, rho=res.rho, yi="yi", vi="vi")
        return out.rename(columns={COUNT_COLUMN: "k"})
    data = res.data
    w = 1.0 / data["vi"].to_numpy(float)
    frame = pd.DataFrame(
        {"key": data[study].to_numpy(), "w": w, "wy": w * data["yi"].to_numpy(float)}
    )
    sums = frame.groupby("key", sort=False).agg(w=("w", "sum"), wy=("wy", "sum"), k=("w", "size"))
    out = pd.DataFrame(
        {study: sums.index, "yi": sums["wy"] / sums["w"], "vi": 1.0 / sums["w"], "k": sums["k"]}
    ).reset_index(drop=True)
    grouped = data.groupby(study, sort=False)
    for column in data.columns:
        if column in (study, "yi", "vi", "k"):
            continue
        if (grouped[column].nunique(dropna=False) <= 1).all():
            out[column] = grouped[column].first().to_numpy()
    return out


# -- PET-PEESE -----------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class PetPeese:
    """Conditional PET-PEESE estimate (Stanley & Doucouliagos 2014).

    ``pet`` is the model refitted with the standard error sqrt(vi) as a moderator, ``peese``
    with the sampling variance vi. Rule: if PET's intercept is significantly greater than 0
    (one-sided p < ``alpha``), there is a real effect and PEESE's intercept estimates it with
    less bias; otherwise PET's intercept is used. ``chosen`` names the model used;
    ``estimate``, ``ci`` and ``pval`` are its intercept's (two-sided p).
    """

    pet: MetaResult
    peese: MetaResult
    chosen: str
    pet_one_sided_p: float
    alpha: float
    estimate: float
    se: float
    ci: tuple[float, float]
    pval: float
    has_moderators: bool
    caveats: tuple[str, ...]

    def describe(self, transform: str | None = None) -> str:
        what = (
            "PET-PEESE extrapolates the effect to a study of perfect precision: PET regresses "
            "effect sizes on their standard errors, PEESE on their sampling variances, and the "
            "intercept is the effect at zero error."
        )
        rule = (
            f"PET's intercept was {'significantly' if self.chosen == 'PEESE' else 'not significantly'} "
            f"above zero (one-sided {format_p(self.pet_one_sided_p)}, alpha = {self.alpha:g}), so "
            f"the {self.chosen} estimate is used: {_value(self.estimate, transform)} "
            f"({self.pet.level:.0%} CI {_value(self.ci[0], transform)} to "
            f"{_value(self.ci[1], transform)})."
        )
        parts = [what, rule]
        if self.has_moderators:
            parts.append(
                "With moderators the intercept is the effect at zero error for the reference "
                "levels and moderator values of 0."
            )
        parts.append(
            "PET-PEESE is known to overcorrect when effects are heterogeneous and studies "
            "few or similar in size (Stanley 2017)."
        )
        return " ".join([*parts, *self.caveats])


def pet_peese(res: MetaResult, alpha: float = 0.05) -> PetPeese:
    """Stanley & Doucouliagos (2014) PET-PEESE with the conditional rule.

    PET: ``res``'s model + sqrt(vi); PEESE: ``res``'s model + vi (same estimator, test and
    structure, so for a three-level model both are three-level meta-regressions rather than
    the original weighted least squares). PEESE is used when the PET intercept is
    significantly greater than 0 at one-sided ``alpha`` (PET's t or z statistic); this assumes
    effects are expected to be positive, as alliance-outcome correlations are.
    """
    if not 0.0 < alpha < 1.0:
        raise AnalysisError(f"PET-PEESE: alpha {alpha} must lie between 0 and 1.")
    pet, _ = _refit_with_predictor(res, "sei")
    peese, _ = _refit_with_predictor(res, "vi")
    statistic = float(pet.coefficients["statistic"].iloc[0])
    if pet.ddf is None:
        one_sided = float(special.ndtr(-statistic))
    else:
        one_sided = float(special.stdtr(pet.ddf, -statistic))
    chosen = "PEESE" if one_sided < alpha else "PET"
    row = (peese if chosen == "PEESE" else pet).coefficients.iloc[0]
    return PetPeese(
        pet=pet,
        peese=peese,
        chosen=chosen,
        pet_one_sided_p=one_sided,
        alpha=alpha,
        estimate=float(row["estimate"]),
        se=float(row["se"]),
        ci=(float(row["ci_lb"]), float(row["ci_ub"])),
        pval=float(row["pval"]),
        has_moderators=res.p > 1,
        caveats=tuple(_caveats(res)),
    )
