"""Small-study effects and publication bias: the rank test and trim-and-fill (and, re-exported
from :mod:`alliance_core.analyses.small_study`, Egger's test and PET-PEESE).

These follow metafor 3.8 and report the same numbers:

* :func:`egger_test` is ``regtest(fit)`` (model = "rma", predictor = "sei"; Egger et al. 1997,
  in the mixed-effects form of Sterne & Egger 2005); for a three-level model the standard
  error enters the three-level (CHE) model as a moderator, tested model-based or with CR2
  (see :mod:`alliance_core.analyses.small_study`, also for :func:`pet_peese`).
* :func:`rank_correlation_test` is ``ranktest(fit)`` (Begg & Mazumdar 1994): Kendall's tau
  between standardized effects and their sampling variances.
* :func:`trim_and_fill` is ``trimfill(fit)`` (Duval & Tweedie 2000a, 2000b) with the L0 or R0
  estimator, for two-level models without moderators. :func:`aggregate_by_study` turns a
  three-level data set into one effect per study so that trim-and-fill can be applied.

All of these read a funnel plot's asymmetry. Asymmetry is what they detect; publication bias is
only one of its causes (true heterogeneity related to study size, chance, and choices of
analysis are others), so ``describe()`` ends with that caveat (:data:`NOT_PROOF`) unless the
caller says it once elsewhere (``caveat=False``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from alliance_core.analyses.kendall import kendall_test
from alliance_core.analyses.small_study import (
    FEW_STUDIES,
    NOT_PROOF,
    PREDICTORS,
    EggerTest,
    PetPeese,
    dependence_notes,
    egger_test,
    few_studies_reason,
    pet_peese,
    value_text,
)
from alliance_core.errors import AnalysisError
from alliance_core.formatting import format_p
from alliance_core.model.aggregation import COUNT_COLUMN, aggregate
from alliance_core.model.components import BLAS
from alliance_core.model.fitting import fit
from alliance_core.model.refitting import refit
from alliance_core.model.results import MetaResult

# Egger's test and PET-PEESE live in small_study; their names stay importable from here.
__all__ = [
    "FEW_STUDIES",
    "NOT_PROOF",
    "PREDICTORS",
    "EggerTest",
    "PetPeese",
    "RankCorrelationTest",
    "TrimAndFill",
    "aggregate_by_study",
    "egger_test",
    "pet_peese",
    "rank_correlation_test",
    "trim_and_fill",
]


def _caveats(res: MetaResult) -> list[str]:
    """Notes of the tests here, which ignore the nesting of dependent effect sizes."""
    return dependence_notes(res, respected=False)


# -- Begg and Mazumdar's rank correlation test ---------------------------------------------
@dataclass(frozen=True)
class RankCorrelationTest:
    """Kendall's tau between standardized effects and sampling variances (metafor ``ranktest``).

    ``exact`` says whether the p-value comes from the exact null distribution of Kendall's
    statistic (no ties, as R's ``cor.test(..., exact=TRUE)``) or from the normal
    approximation with R's tie-corrected variance. ``caution`` says why the test cannot be
    read (fewer than 10 studies; None: it can).
    """

    tau: float
    pval: float
    exact: bool
    k: int
    caveats: tuple[str, ...]
    caution: str | None = None

    def describe(self, caveat: bool = True) -> str:
        what = (
            "Begg and Mazumdar's rank correlation test asks whether effect sizes (standardized "
            "around the pooled estimate) rise or fall with their sampling variance."
        )
        if self.caution:
            found = (
                f"Kendall's tau = {self.tau:.3f} ({format_p(self.pval)}). It cannot be read as "
                f"finding a trend or as finding none: {self.caution}."
            )
        elif self.pval < 0.05:
            found = (
                f"Kendall's tau = {self.tau:.3f} ({format_p(self.pval)}): less precise effect "
                f"sizes tend to be {'larger' if self.tau > 0 else 'smaller'}."
            )
        else:
            found = f"Kendall's tau = {self.tau:.3f} ({format_p(self.pval)}): no clear trend."
        limits = (
            "The test ignores moderators and has less power than the regression test, "
            "especially with few studies."
        )
        return " ".join([what, found, limits, *self.caveats, *([NOT_PROOF] if caveat else [])])


def rank_correlation_test(res: MetaResult, n_studies: int | None = None) -> RankCorrelationTest:
    """Begg & Mazumdar's test: metafor ``ranktest(fit)``.

    yi* = (yi - b) / sqrt(vi - vb) with b the equal-effects (inverse-variance) mean and
    vb = 1 / sum(1/vi); tau is Kendall's tau-b of (yi*, vi) and its p-value is two-sided.
    As in metafor, the moderators and the nesting of a three-level model play no part.
    ``n_studies`` (default: the model's) sets the few-studies ``caution``.
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
        tau=tau,
        pval=pval,
        exact=exact,
        k=len(y),
        caveats=tuple(_caveats(res)),
        caution=few_studies_reason(res.n_studies if n_studies is None else n_studies),
    )


# -- trim and fill -------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class TrimAndFill:
    """Duval and Tweedie's trim-and-fill (metafor ``trimfill``).

    ``k0`` effect sizes were estimated missing on ``side`` (with standard error ``se_k0``;
    for R0 also ``p_k0``, the probability of at least k0 under no asymmetry). ``filled``
    holds the imputed effects (columns yi, vi: mirror images 2 b - yi of the most extreme
    effects on the other side); ``adjusted`` is the model fitted to the observed and imputed
    effects (the original fit when k0 = 0). ``caution`` says why its count of missing studies
    cannot be relied on (fewer than 10 studies, the rule of the other small-study tests;
    None: it can).
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
    caution: str | None = None
    # What one imputed point is: an effect size, or a study when it ran on one aggregated
    # effect per study (a three-level model's, see bias_tests.trim_and_fill_of).
    aggregated: bool = False

    @property
    def estimate(self) -> float:
        return float(self.adjusted.beta[0])

    def units(self, n: int) -> str:
        """What ``n`` imputed (or missing) points are, in words: "effect sizes", or
        "studies" when trim-and-fill ran on study aggregates."""
        if self.aggregated:
            return "study" if n == 1 else "studies"
        return "effect size" if n == 1 else "effect sizes"

    def describe(self, transform: str | None = None, caveat: bool = True) -> str:
        what = (
            "Trim-and-fill assumes that the funnel plot would be symmetric without bias, "
            f"estimates how many {self.units(2)} are missing on the {self.side} side "
            f"({self.estimator} estimator), and adds their mirror images."
        )
        before = value_text(self.original.beta[0], transform)
        if self.k0 == 0:
            found = (
                f"It estimated that no {self.units(2)} are missing; the estimate stays {before}."
            )
        else:
            ci = self.adjusted.coefficients.iloc[0]
            found = (
                f"It estimated {self.k0} missing {self.units(self.k0)}. With them the pooled estimate "
                f"moves from {before} to {value_text(self.estimate, transform)} ({self.adjusted.level:.0%} "
                f"CI {value_text(ci['ci_lb'], transform)} to {value_text(ci['ci_ub'], transform)})."
            )
        limits = (
            "The imputed studies are not data: the adjusted estimate is a sensitivity "
            "analysis, and it can mislead when the effects are truly heterogeneous."
        )
        caution = (
            [f"The count of missing {self.units(2)} cannot be relied on here: {self.caution}."]
            if self.caution
            else []
        )
        return " ".join(
            [
                what,
                found,
                *caution,
                *self._test_note(),
                limits,
                *self.caveats,
                *([NOT_PROOF] if caveat else []),
            ]
        )

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
    n_studies: int | None = None,
) -> TrimAndFill:
    """metafor ``trimfill(fit, side, estimator)`` for a two-level model without moderators.

    ``side=None`` chooses the side as metafor does: "right" if the slope of yi on sqrt(vi)
    (same estimator) is negative, else "left". The rank-based k0 estimate is iterated on the
    trimmed data (the pooled estimate of the k - k0 least extreme effects) until it is
    stable. The adjusted model uses the original estimator and ``test``: z by default, as
    metafor's ``trimfill(fit)`` refits the filled data with z tests whatever the original
    test; ``test=res.test`` keeps a Knapp–Hartung test (``trimfill(fit, test = "knha")``).
    ``n_studies`` (default: the model's) sets the few-studies ``caution``.
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
        caution=few_studies_reason(res.n_studies if n_studies is None else n_studies),
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
