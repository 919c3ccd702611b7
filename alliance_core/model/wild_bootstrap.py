"""Cluster wild bootstrap tests of meta-regression coefficients (few studies).

Joshi, Pustejovsky & Beretvas (2022), Research Synthesis Methods 13, 457–477 (R package
wildmeta, ``Wald_test_cwb``): to test that the coefficients C b are zero,

1. fit the null model (the moderators without the tested coefficients; same variance
   structure, its components estimated afresh), with fitted values f and residuals e;
2. in replicate r draw one auxiliary weight eta_j per cluster (Rademacher: +-1; Webb's six
   points +-sqrt(1/2), +-1, +-sqrt(3/2), equally likely) and form y* = f + eta_j e
   (``adjust="CR1"`` first multiplies e by sqrt(J / (J - 1)), clubSandwich's CR1
   adjustment; ``"CR2"`` by the null model's CR2 adjustment matrices A_j, e_j -> A_j e_j;
   ``"CR0"`` leaves it);
3. refit the full model to y* (variance components re-estimated) and compute the Wald
   statistic with the cluster-robust covariance ``type``:
   CR0 = B (sum_j X_j' W_j e_j e_j' W_j X_j) B, B = (X' W X)^-1, W = M^-1 the model's
   working weights; CR1 = CR0 J / (J - 1) (clubSandwich's CR1, not metafor's J / (J - p));
   CR2 with W_j A_j e_j in place of W_j e_j (clubSandwich ``vcovCR(type = "CR2")``; see
   :mod:`alliance_core.model.wild_statistic`);
   ``test="Naive-F"``: F = (C b)' (C V C')^-1 (C b) / q (clubSandwich ``Wald_test``);
4. p = the share of replicates whose F exceeds the observed one (failed refits left out).

Each refit starts its variance components at the full model's estimates; the maximum it finds
is the same as from metafor's starting values. Three-level models (without fixed components)
are refitted a block of replicates at a time by :mod:`alliance_core.model.wild_refits`, the
same iteration vectorised over replicates (the few replicates it leaves, and two-level models,
are refitted one at a time). Weights are drawn with numpy's generator
seeded by ``seed`` (not R's, so the draws differ from wildmeta's); pass ``weights`` to use
given draws.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

from alliance_core.errors import AnalysisError
from alliance_core.formatting import format_p_console
from alliance_core.model import che
from alliance_core.model import estimation as est
from alliance_core.model.components import (
    estimate_dependent_sigma2,
    estimate_sigma2,
    estimate_tau2,
)
from alliance_core.model.wild_refits import BatchedCheRefits
from alliance_core.model.wild_statistic import ClusterGeometry, naive_f

AUXILIARY = {
    "Rademacher": np.array([-1.0, 1.0]),
    "Webb six": np.array([-np.sqrt(3.0), -np.sqrt(2.0), -1.0, 1.0, np.sqrt(2.0), np.sqrt(3.0)])
    / np.sqrt(2.0),
}
# Rademacher weights give only 2^J distinct bootstrap samples; below 10 clusters Webb's six
# points are the better default (Webb 2014; Joshi et al. 2022).
WEBB_BELOW_CLUSTERS = 10
TYPES = ("CR0", "CR1", "CR2")
ADJUSTMENTS = ("CR0", "CR1", "CR2")
# Replicates refitted together (vectorised); progress is reported after each block. Large
# data get smaller blocks: the arrays of a block hold about BLOCK_ELEMENTS numbers at most.
BLOCK = 100
BLOCK_ELEMENTS = 4_000_000
TESTS = ("Naive-F",)
_BLAS = ThreadpoolController()


@dataclass(frozen=True, eq=False)
class WildBootstrapResult:
    """A cluster wild bootstrap test (wildmeta ``Wald_test_cwb``).

    ``statistic``: the observed Naive-F statistic (clubSandwich ``Wald_test``); ``boot``: the
    statistic of every replicate (NaN where the refit failed); ``pval``: the share of
    successful replicates above the observed statistic.
    """

    terms: tuple[str, ...]
    statistic: float
    pval: float
    R: int
    auxiliary: str
    adjust: str
    type: str
    test: str
    n_clusters: int
    clusters: tuple[str, ...] = field(repr=False)
    boot: np.ndarray = field(repr=False)
    seed: int | None = None

    @property
    def failed(self) -> int:
        return int(np.isnan(self.boot).sum())

    def summary(self) -> str:
        adjusted = " (adjusted residuals)" if self.adjust != "CR0" else ""
        failed = f"; {self.failed} replicate(s) failed and left out" if self.failed else ""
        return (
            f"Cluster wild bootstrap test{adjusted} of {', '.join(self.terms)}: "
            f"{self.test} = {self.statistic:.4f} ({self.type}), p = "
            f"{format_p_console(self.pval)} ({self.R} replicates, {self.auxiliary} weights, "
            f"{self.n_clusters} clusters{failed})"
        )

    def __str__(self) -> str:
        return self.summary()


class _ModelRefitter:
    """Refits of one model's structure (rows sorted by study) to new outcomes: the GLS fit
    and the components (sigma2_study, sigma2_es), or (0, tau2) for a two-level model."""

    def __init__(self, res, X: np.ndarray, order: np.ndarray, starts: np.ndarray | None):
        self.method = res.method
        self.v = res.inputs.v[order]
        self.X = X[order]
        self.starts = starts
        self.rho = res.rho
        self.fixed = res.fix_sigma2
        self.logdet_xtx = est.logdet_crossprod(self.X)
        self.dependent = res.is_three_level and (res.rho is not None or bool(res.fix_sigma2))
        self.start = None if not res.is_three_level else res.sigma2.to_numpy(float)

    def __call__(self, y: np.ndarray):
        X, v, starts = self.X, self.v, self.starts
        if starts is None:
            tau2, _, _ = estimate_tau2(y, v, X, self.method, self.logdet_xtx)
            cov = est.NestedCovariance(v, None, 0.0, tau2)
            theta = np.array([0.0, tau2])
        elif self.dependent:
            rho = self.rho or 0.0
            theta, _ = estimate_dependent_sigma2(
                y, v, X, starts, rho, self.method, self.logdet_xtx, self.fixed, start=self.start
            )
            cov = che.CheCovariance(v, starts, theta[0], theta[1], rho)
        else:
            theta, _ = estimate_sigma2(y, v, X, starts, self.method, self.logdet_xtx, self.start)
            cov = est.NestedCovariance(v, starts, theta[0], theta[1])
        return est.gls(y, X, cov), np.asarray(theta, dtype=float)

    def batched(self) -> BatchedCheRefits | None:
        """The vectorised refits of a three-level model without fixed components, else None."""
        if self.starts is None or self.fixed or self.method not in ("ML", "REML"):
            return None
        return BatchedCheRefits(
            self.X, self.v, self.starts, self.rho or 0.0, self.method == "REML", self.logdet_xtx
        )


def _cluster_codes(res, cluster) -> tuple[np.ndarray, tuple[str, ...]]:
    """Cluster code per analysed row, clusters in sorted order of their labels (the order of
    R's factor levels, which is the order of the weights' columns)."""
    if cluster is None:
        if res.cluster is None:
            raise AnalysisError(
                "The wild bootstrap of a two-level model needs a cluster: name the study column "
                "(cluster='study')."
            )
        cluster = res.cluster
    labels = res.data[cluster] if isinstance(cluster, str) else pd.Series(cluster)
    if len(labels) != res.k:
        raise AnalysisError(f"The cluster has {len(labels)} value(s) for {res.k} analysed rows.")
    if labels.isna().any():
        raise AnalysisError("A cluster label is missing.")
    text = labels.astype(str).to_numpy()
    clusters, codes = np.unique(text, return_inverse=True)
    if res.is_three_level:
        study = pd.factorize(res.data[res.cluster].to_numpy())[0]
        per_study = pd.Series(codes).groupby(study).nunique()
        if (per_study > 1).any():
            raise AnalysisError(
                "Each study must lie within one cluster (clusters are studies or coarser)."
            )
    return codes, tuple(clusters)


def wild_bootstrap(
    res,
    terms: Sequence[str],
    R: int = 1999,
    seed: int | None = 1,
    auxiliary: str | None = None,
    adjust: str = "CR0",
    type: str = "CR0",  # noqa: A002 (wildmeta's argument name)
    test: str = "Naive-F",
    cluster=None,
    weights: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> WildBootstrapResult:
    """Cluster wild bootstrap test that the coefficients ``terms`` are zero (see the module
    docstring). ``terms``: coefficient labels or moderator names (all their coefficients).
    ``auxiliary``: "Rademacher" or "Webb six" (default: Webb six below 10 clusters).
    ``weights``: an R x J array of auxiliary weights (columns in the order of the result's
    ``clusters``) replacing the random draws. ``progress(done, R)`` is called after
    each block of replicates (``BLOCK``, fewer on large data; a dashboard's progress bar)."""
    if isinstance(terms, str):
        terms = [terms]
    if type not in TYPES:
        raise AnalysisError(f"type must be one of {', '.join(TYPES)} (wildmeta's default CR0).")
    if adjust not in ADJUSTMENTS:
        raise AnalysisError(f"adjust must be one of {', '.join(ADJUSTMENTS)}.")
    if test not in TESTS:
        raise AnalysisError(f"test must be one of {', '.join(TESTS)}.")
    if res.method not in ("ML", "REML", "DL", "HE", "PM", "SJ"):
        raise AnalysisError("The wild bootstrap refits random-effects models, not equal-effects.")
    idx = res.design.coefficient_indices(terms)
    if 0 in idx and len(idx) == res.p:
        raise AnalysisError("Testing every coefficient leaves no null model to bootstrap from.")
    codes, clusters = _cluster_codes(res, cluster)
    J = len(clusters)
    if J < 2:
        raise AnalysisError("The wild bootstrap needs two or more clusters.")
    if weights is not None:
        W = np.asarray(weights, dtype=float)
        if W.ndim != 2 or W.shape[1] != J:
            raise AnalysisError(f"weights must be an R x {J} array (one column per cluster).")
        R = W.shape[0]
        auxiliary = auxiliary or "given"
    else:
        auxiliary = auxiliary or ("Webb six" if J < WEBB_BELOW_CLUSTERS else "Rademacher")
        if auxiliary not in AUXILIARY:
            raise AnalysisError(f"auxiliary must be one of {', '.join(AUXILIARY)}.")
        if int(R) < 1:
            raise AnalysisError("R, the number of bootstrap replicates, must be at least 1.")
        R = int(R)
        W = np.random.default_rng(seed).choice(AUXILIARY[auxiliary], size=(R, J))
    with _BLAS.limit(limits=1, user_api="blas"):
        return _run(res, idx, codes, clusters, W, auxiliary, adjust, type, test, seed, progress)


def _run(res, idx, codes, clusters, W, auxiliary, adjust, type_, test, seed, progress):
    inputs = res.inputs
    J = len(clusters)
    if res.is_three_level:
        order, starts = inputs.order, inputs.starts
        study_of_row = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, res.k)))
    else:
        order, starts, study_of_row = np.arange(res.k), None, np.arange(res.k)
    y = inputs.y[order]
    codes = codes[order]
    X_full = inputs.X
    keep = [j for j in range(res.p) if j not in idx]
    full = _ModelRefitter(res, X_full, order, starts)
    null = _ModelRefitter(res, X_full[:, keep], order, starts)
    geometry = ClusterGeometry(codes, full.v, study_of_row, res.rho, J)

    def statistic(Y, beta, bread, weighted, theta):
        resid = Y - full.X @ beta.T if type_ == "CR2" else None
        return naive_f(geometry, full.X, idx, type_, beta, bread, weighted, resid, theta)

    def one_by_one(y_star):
        gls, theta = full(y_star)
        return statistic(y_star[:, None], gls.beta[None], gls.vb[None], gls.e[:, None], theta[None])

    statistic_observed = float(one_by_one(y)[0])
    null_fit, null_theta = null(y)
    fitted = y - null_fit.residuals
    residuals = null_fit.residuals
    if adjust == "CR1":
        residuals = residuals * np.sqrt(J / (J - 1))
    elif adjust == "CR2":
        residuals = geometry.cr2_residuals(
            null.X, residuals[:, None], null_theta[None], null_fit.vb[None], weighted=False
        )[:, 0]
    batched = full.batched()
    R = W.shape[0]
    boot = np.full(R, np.nan)
    per_replicate = res.k * (res.p + 2)
    if type_ == "CR2" or adjust == "CR2":
        per_replicate = max(per_replicate, sum(group[2].size for group in geometry.groups))
    size = int(np.clip(BLOCK_ELEMENTS // per_replicate, 1, BLOCK))
    for first in range(0, R, size):
        block = np.arange(first, min(first + size, R))
        Y = fitted[:, None] + residuals[:, None] * W[block][:, codes].T  # k x block
        sequential = block
        if batched is not None:
            fits = batched.refit(Y, full.start)
            done = ~fits.pending
            with contextlib.suppress(np.linalg.LinAlgError):
                boot[block[done]] = statistic(
                    Y[:, done], fits.beta[done], fits.vb[done], fits.e[:, done], fits.theta[done]
                )
            sequential = block[np.isnan(boot[block])]
        for r in sequential:
            # a failed refit counts as missing, as wildmeta's NA
            with contextlib.suppress(AnalysisError, np.linalg.LinAlgError):
                boot[r] = one_by_one(Y[:, r - first])[0]
        if progress is not None:
            progress(int(block[-1]) + 1, R)
    ok = ~np.isnan(boot)
    pval = float(np.mean(boot[ok] > statistic_observed)) if ok.any() else float("nan")
    names = tuple(res.design.names[i] for i in idx)
    return WildBootstrapResult(
        terms=names,
        statistic=statistic_observed,
        pval=pval,
        R=R,
        auxiliary=auxiliary,
        adjust=adjust,
        type=type_,
        test=test,
        n_clusters=J,
        clusters=clusters,
        boot=boot,
        seed=seed,
    )
