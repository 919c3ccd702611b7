"""Estimators of tau² built on (generalised) Q statistics, and the Q-profile interval.

The two-level model's non-likelihood estimators as metafor's ``rma.uni`` defines them:
DerSimonian–Laird (DL), Hedges (HE), Sidik–Jonkman (SJ) and Paule–Mandel (PM), with the
weighted residual Q they start from, and the Q-profile confidence interval for tau²
(Viechtbauer 2007; metafor ``confint.rma.uni``). Likelihood-based estimation is in
:mod:`alliance_core.model.estimation`.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from alliance_core.errors import AnalysisError


# -- two-level moment estimators (metafor rma.uni) ----------------------------------------
def weighted_residual_q(y: np.ndarray, X: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Q = sum w (y - X b)^2 at the weighted least-squares fit, and tr(P) for those weights."""
    Xw = X * weights[:, None]
    A = X.T @ Xw
    A_inv = np.linalg.inv(A)
    beta = A_inv @ (Xw.T @ y)
    resid = y - X @ beta
    q = float(np.sum(weights * resid**2))
    tr_p = float(np.sum(weights) - np.sum(A_inv * (Xw.T @ Xw)))
    return q, tr_p


def tau2_dersimonian_laird(y: np.ndarray, vi: np.ndarray, X: np.ndarray) -> float:
    """DerSimonian-Laird: tau2 = (Q - (k - p)) / tr(P), P at weights 1/vi; truncated at 0."""
    k, p = X.shape
    q, tr_p = weighted_residual_q(y, X, 1.0 / vi)
    return max(0.0, (q - (k - p)) / tr_p)


def tau2_hedges(y: np.ndarray, vi: np.ndarray, X: np.ndarray) -> float:
    """Hedges (HE): tau2 = (RSS_OLS - tr(P V)) / (k - p), P the OLS residual maker; truncated at 0."""
    k, p = X.shape
    return max(0.0, hedges_unbounded(y, vi, X))


def hedges_unbounded(y: np.ndarray, vi: np.ndarray, X: np.ndarray) -> float:
    k, p = X.shape
    XtX_inv = np.linalg.inv(X.T @ X)
    resid = y - X @ (XtX_inv @ (X.T @ y))
    tr_pv = float(np.sum(vi) - np.sum(XtX_inv * (X.T @ (X * vi[:, None]))))
    return (float(resid @ resid) - tr_pv) / (k - p)


def tau2_sidik_jonkman(y: np.ndarray, vi: np.ndarray, X: np.ndarray) -> tuple[float, float]:
    """Sidik-Jonkman: tau2_0 = var(y) (k-1)/k, then tau2 = tau2_0 * Q(tau2_0) / (k - p).

    Returns (tau2, tau2_0); metafor's starting value ignores the moderators.
    """
    k, p = X.shape
    tau2_0 = float(np.var(y))  # numpy's default ddof=0 is var(y) * (k - 1) / k
    q, _ = weighted_residual_q(y, X, 1.0 / (vi + tau2_0))
    return tau2_0 * q / (k - p), tau2_0


def generalised_q(tau2: float, y: np.ndarray, vi: np.ndarray, X: np.ndarray) -> float:
    """Generalised Q statistic sum w (y - X b)^2 with weights w = 1/(vi + tau2)."""
    return _generalised_q_and_slope(tau2, y, vi, X)[0]


def _generalised_q_and_slope(
    tau2: float, y: np.ndarray, vi: np.ndarray, X: np.ndarray
) -> tuple[float, float]:
    """Q(tau2) and dQ/dtau2 = -sum w^2 (y - X b)^2 (b is optimal, so it does not move Q)."""
    w = 1.0 / (vi + tau2)
    Xw = X * w[:, None]
    beta = np.linalg.solve(X.T @ Xw, Xw.T @ y)
    resid = y - X @ beta
    weighted_sq = w * resid * resid
    return float(weighted_sq.sum()), -float((w * weighted_sq).sum())


def _solve_generalised_q(target: float, y, vi, X, lower: float, upper: float) -> float:
    """tau2 in [lower, upper] with Q(tau2) = target, for Q decreasing in tau2.

    Newton steps, kept inside a bracket that shrinks with every evaluation (bisection when a
    step would leave it), so it converges like Newton but cannot diverge.
    """
    x = lower
    for _ in range(500):
        q, slope = _generalised_q_and_slope(x, y, vi, X)
        gap = q - target
        if gap > 0:
            lower = x
        else:
            upper = x
        if gap == 0.0:
            return x
        step = x - gap / slope if slope < 0 else np.inf
        candidate = step if lower < step < upper else 0.5 * (lower + upper)
        if abs(candidate - x) <= 1e-15 + 1e-13 * abs(x):
            return float(candidate)
        x = candidate
    return float(x)


def tau2_paule_mandel(y: np.ndarray, vi: np.ndarray, X: np.ndarray) -> float:
    """Paule-Mandel: the tau2 at which the generalised Q equals its expectation k - p."""
    k, p = X.shape
    target = k - p
    if generalised_q(0.0, y, vi, X) < target:
        return 0.0
    upper = max(100.0, 10.0 * _mad(y) ** 2)
    if generalised_q(upper, y, vi, X) > target:
        raise AnalysisError(
            "The Paule-Mandel estimator found no tau2 below "
            f"{upper:g}; the effect sizes are too heterogeneous for it. Try REML or DL."
        )
    return _solve_generalised_q(target, y, vi, X, 0.0, upper)


def _mad(values: np.ndarray) -> float:
    """Median absolute deviation scaled like R's mad() (constant 1.4826)."""
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def q_profile_interval(
    y: np.ndarray, vi: np.ndarray, X: np.ndarray, tau2: float, level: float
) -> tuple[float, float]:
    """Q-profile confidence interval for tau2 (Viechtbauer 2007; metafor ``confint.rma.uni``).

    The bounds are the tau2 values at which the generalised Q statistic equals the upper and
    lower alpha/2 quantiles of the chi-square distribution with k - p degrees of freedom;
    a bound whose equation has no solution in [0, max(100, 10 tau2)] sits at that end.
    """
    k, p = X.shape
    alpha = 1.0 - level
    crit_upper = float(special.chdtri(k - p, alpha / 2.0))  # upper alpha/2 quantile
    crit_lower = float(special.chdtri(k - p, 1.0 - alpha / 2.0))  # lower alpha/2 quantile
    upper_limit = max(100.0, 10.0 * tau2)
    q_at_zero = generalised_q(0.0, y, vi, X)
    q_at_max = generalised_q(upper_limit, y, vi, X)
    if q_at_zero < crit_lower:
        return 0.0, 0.0
    if q_at_max > crit_lower:
        upper = upper_limit
    else:
        upper = _solve_generalised_q(crit_lower, y, vi, X, 0.0, upper_limit)
    if q_at_zero < crit_upper:
        lower = 0.0
    elif q_at_max > crit_upper:
        lower = upper_limit
    else:
        lower = _solve_generalised_q(crit_upper, y, vi, X, 0.0, upper)
    return float(lower), float(upper)
