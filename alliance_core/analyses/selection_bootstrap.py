"""The cluster bootstrap of a selection model: whole studies resampled with replacement.

Each replicate draws as many clusters as there are, with replacement (multinomial weights,
as metaselection's ``bootstrap = "multinomial"``), refits the step-function model from the
full fit's estimates and keeps its parameters; percentile intervals come from the replicates.
Reproducible by seed; a progress callback reports each replicate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize

from alliance_core.analyses.selection_likelihood import (
    Parameters,
    StepData,
    hessian,
    loglik_terms,
)


# -- the cluster bootstrap -----------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SelectionBootstrap:
    """Cluster-bootstrap replicates of a selection model and their percentile intervals.

    ``type`` "multinomial": each replicate draws the clusters with replacement (multinomial
    counts), refits the model with each effect size's log-likelihood weighted by its
    cluster's count, and keeps (beta, tau2, delta_2..N). ``intervals``: the (1 - level) / 2
    and (1 + level) / 2 quantiles (numpy's linear interpolation) of the replicates, one row
    per parameter. ``failed``: replicates left out, because an interval held no p-value in
    the resample or the fit did not converge.
    """

    type: str
    R: int
    seed: int | None
    replicates: pd.DataFrame
    failed: int
    intervals: pd.DataFrame


def _refit(
    data: StepData, spec: Parameters, start: np.ndarray, inverse: np.ndarray | None = None
) -> np.ndarray | None:
    """A bootstrap refit: BFGS on (beta, log tau2, log delta) from the full-sample estimate,
    its inverse Hessian started at the full sample's (``inverse``, on the same scale), which
    a resample's differs little from (no Newton polish: percentiles need no more than ~1e-7
    of precision)."""
    positive = np.zeros(spec.size, bool)
    if spec.tau2_fixed is None:
        positive[spec.p] = True
    positive[-(spec.intervals - 1) :] = True
    u0 = start.astype(float).copy()
    floor = 1e-4 * float(np.mean(data.v))
    u0[positive] = np.log(np.maximum(u0[positive], floor))

    def objective(u):
        theta = u.copy()
        theta[positive] = np.exp(u[positive])
        ll, s = loglik_terms(theta, data, spec)
        value = -(data.weights @ ll)
        grad = -(data.weights @ s) * np.where(positive, theta, 1.0)
        if not np.isfinite(value) or not np.all(np.isfinite(grad)):
            return np.inf, np.zeros_like(u)
        return value, grad

    options = {"gtol": 1e-6}
    if inverse is not None:
        options["hess_inv0"] = inverse
    fit = optimize.minimize(objective, u0, jac=True, method="BFGS", options=options)
    theta = fit.x.copy()
    theta[positive] = np.exp(fit.x[positive])
    if not np.all(np.isfinite(theta)) or np.max(np.abs(fit.jac)) > 1e-3:
        return None
    return theta


def cluster_bootstrap(
    data: StepData,
    spec: Parameters,
    estimate: np.ndarray,
    clusters: np.ndarray,
    names: Sequence[str],
    level: float,
    R: int,
    seed: int | None,
    progress: Callable[[int, int], None] | None = None,
) -> SelectionBootstrap:
    """Multinomial cluster bootstrap of the composite-likelihood estimate (Pustejovsky,
    Citkowicz & Joshi 2025): ``R`` resamples of the clusters from ``numpy``'s default
    generator seeded with ``seed``; ``progress(done, R)`` after each replicate."""
    rng = np.random.default_rng(seed)
    n_clusters = int(clusters.max() + 1)
    # the full sample's inverse information on the refit's scale (log tau2, log delta)
    inverse = None
    at_zero = spec.tau2_fixed is None and estimate[spec.p] <= 0
    if not at_zero:
        scale = np.ones(spec.size)
        if spec.tau2_fixed is None:
            scale[spec.p] = estimate[spec.p]
        scale[-(spec.intervals - 1) :] = estimate[-(spec.intervals - 1) :]
        with suppress(np.linalg.LinAlgError):
            H = hessian(estimate, data, spec, False) * np.outer(scale, scale)
            candidate = np.linalg.inv(-H)
            candidate = (candidate + candidate.T) / 2
            np.linalg.cholesky(candidate)  # positive definite, or LinAlgError: no start
            inverse = candidate
    rows = []
    failed = 0
    for r in range(R):
        counts = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters))
        weight = counts[clusters]
        drawn = weight > 0  # effect sizes of clusters not drawn add nothing
        if np.any(np.bincount(data.group[drawn], minlength=data.intervals) == 0):
            # an interval without p-values: its weight is not identified in this resample
            failed += 1
            if progress is not None:
                progress(r + 1, R)
            continue
        weighted = StepData(
            data.y[drawn],
            data.v[drawn],
            data.X[drawn],
            data.steps,
            data.cut_z,
            data.group[drawn],
            weight[drawn].astype(float),
        )
        theta = _refit(weighted, spec, estimate, inverse)
        if theta is None:
            failed += 1
        else:
            rows.append(theta)
        if progress is not None:
            progress(r + 1, R)
    replicates = pd.DataFrame(np.array(rows).reshape(-1, spec.size), columns=list(names))
    tail = (1.0 - level) / 2.0
    intervals = pd.DataFrame(
        {
            "ci_lb": replicates.quantile(tail),
            "ci_ub": replicates.quantile(1.0 - tail),
        }
    )
    return SelectionBootstrap("multinomial", R, seed, replicates, failed, intervals)
