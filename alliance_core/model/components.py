"""Variance components: their estimators on arrays, and the statistics of a fit that need more of them.

The estimators (metafor ``rma.uni``'s tau2 estimators with their standard errors; ML/REML for
the three-level and CHE models) work on y, v and X alone, so that fitting, refitting and the
result object's derived statistics (pseudo-R², Q-profile and profile-likelihood intervals, the
parameter count) share them without importing each other. The derived statistics take a fitted
result and read its ``inputs``; they never build a result.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import optimize, special
from threadpoolctl import ThreadpoolController

from alliance_core.errors import AnalysisError
from alliance_core.model import che
from alliance_core.model import estimation as est
from alliance_core.model import q_estimators as qe

# The matrices of a meta-analysis are small (p x p, k x p): BLAS threads cost more in
# start-up and contention than they save, and on a busy two-core server they can slow a fit
# down tenfold. Fits therefore run single-threaded; the limit is restored afterwards.
BLAS = ThreadpoolController()
VARIANCE_CI_COLUMNS = ["estimate", "ci_lb", "ci_ub"]


SIGMA2_NAMES = ("study", "es")


# -- two-level model ----------------------------------------------------------------------
def estimate_tau2(y: np.ndarray, v: np.ndarray, X: np.ndarray, method: str, logdet_xtx: float):
    """tau2 and its standard error by the chosen estimator (metafor ``rma.uni`` definitions)."""
    k, p = X.shape
    if method == "EE":
        return 0.0, None, 0
    if method == "DL":
        tau2 = qe.tau2_dersimonian_laird(y, v, X)
        w = 1.0 / v
        tr_p = trace_p(w, X, np.ones(k))
        pp = trace_pdpe(w, X, np.ones(k), np.ones(k))
        se = np.sqrt((2 * (k - p) + 4 * tau2 * tr_p + 2 * tau2**2 * pp) / tr_p**2)
        return tau2, float(se), 0
    if method == "HE":
        tau2 = qe.tau2_hedges(y, v, X)
        ones = np.ones(k)
        tr_pv = trace_p(ones, X, v)
        pvpv = trace_pdpe(ones, X, v, v)
        se = np.sqrt((2 * pvpv + 4 * tau2 * tr_pv + 2 * tau2**2 * (k - p)) / (k - p) ** 2)
        return tau2, float(se), 0
    if method == "SJ":
        tau2, tau2_0 = qe.tau2_sidik_jonkman(y, v, X)
        w = 1.0 / (v + tau2_0)
        ones = np.ones(k)
        pvpv = trace_pdpe(w, X, v, v)
        ppv = trace_pdpe(w, X, ones, v)
        pp = trace_pdpe(w, X, ones, ones)
        se = np.sqrt(tau2_0**2 / (k - p) ** 2 * (2 * pvpv + 4 * tau2 * ppv + 2 * tau2**2 * pp))
        return tau2, float(se), 0
    if method == "PM":
        tau2 = qe.tau2_paule_mandel(y, v, X)
        w = 1.0 / (v + tau2)
        return tau2, float(np.sqrt(2 * k**2 / (k - p) / np.sum(w) ** 2)), 0
    # ML / REML: Newton/Fisher scoring from the Hedges estimate, as metafor starts from it.
    start = max(0.0, qe.hedges_unbounded(y, v, X))
    result = est.maximise_likelihood(
        y, X, v, None, np.array([start]), reml=(method == "REML"), logdet_XtX=logdet_xtx
    )
    tau2 = float(result.theta[0])
    w = 1.0 / (v + tau2)
    if method == "ML":
        se = np.sqrt(2.0 / np.sum(w**2))
    else:
        se = np.sqrt(2.0 / trace_pdpe(w, X, np.ones(k), np.ones(k)))
    return tau2, float(se), result.iterations


def trace_p(w: np.ndarray, X: np.ndarray, d: np.ndarray) -> float:
    """tr(P D) for P = W - W X (X'WX)^-1 X'W with W = diag(w), D = diag(d); no k x k matrix."""
    A_inv = np.linalg.inv(X.T @ (X * w[:, None]))
    return float(np.sum(w * d) - np.sum(A_inv * (X.T @ (X * (w**2 * d)[:, None]))))


def trace_pdpe(w: np.ndarray, X: np.ndarray, d: np.ndarray, e: np.ndarray) -> float:
    """tr(P D P E) for P as in ``trace_p`` and diagonal D, E; no k x k matrix."""
    A_inv = np.linalg.inv(X.T @ (X * w[:, None]))
    B_d = X.T @ (X * (w**2 * d)[:, None])
    B_e = X.T @ (X * (w**2 * e)[:, None])
    middle = X.T @ (X * (w**3 * d * e)[:, None])
    return float(
        np.sum(w**2 * d * e)
        - 2.0 * np.sum(A_inv * middle)
        + np.sum((A_inv @ B_d) * (A_inv @ B_e).T)
    )


def _pseudo_r2_two_level(y, v, X, method, tau2, logdet_xtx) -> float:
    """metafor's R^2: max(0, 100 (tau2_RE - tau2) / tau2_RE); for EE the weighted adjusted R^2."""
    k, p = X.shape
    if method == "EE":
        w = 1.0 / v
        mean = np.sum(w * y) / np.sum(w)
        total = float(np.sum(w * (y - mean) ** 2))
        if total == 0.0:
            return 0.0
        resid_q, _ = qe.weighted_residual_q(y, X, w)
        r2 = 1.0 - resid_q / total
        adjusted = 1.0 - (1.0 - r2) * (k - 1) / (k - p)
        return max(0.0, 100.0 * adjusted)
    intercept = np.ones((k, 1))
    tau2_re, _, _ = estimate_tau2(y, v, intercept, method, 0.0)
    if tau2_re == 0.0:
        return 0.0
    return max(0.0, 100.0 * (tau2_re - tau2) / tau2_re)


# -- three-level model --------------------------------------------------------------------
def estimate_sigma2(y, v, X, starts, method, logdet_xtx, start=None):
    result = est.maximise_likelihood(
        y,
        X,
        v,
        starts,
        est.three_level_start(y, v, X) if start is None else start,
        reml=(method == "REML"),
        logdet_XtX=logdet_xtx,
    )
    return result.theta, result.iterations


# -- three-level model with correlated sampling errors and/or fixed components -------------
def fixed_mask(fixed: Mapping[str, float] | None) -> tuple[np.ndarray, np.ndarray]:
    """(mask of fixed components, their values) in the order (study, es)."""
    fixed = fixed or {}
    mask = np.array([name in fixed for name in SIGMA2_NAMES])
    values = np.array([float(fixed.get(name, 0.0)) for name in SIGMA2_NAMES])
    return mask, values


def estimate_dependent_sigma2(ys, vs, Xs, starts, rho, method, logdet_xtx, fixed, start=None):
    """(sigma2_study, sigma2_es) of the CHE model; rows sorted by study (``starts``)."""
    mask, values = fixed_mask(fixed)
    theta0 = che.che_start(ys, Xs, vs, starts, rho) if start is None else np.asarray(start, float)
    theta0 = np.where(mask, values, theta0)
    result = che.maximise_che_likelihood(
        ys, Xs, vs, starts, rho, theta0, reml=(method == "REML"), logdet_XtX=logdet_xtx, fixed=mask
    )
    return result.theta, result.iterations


# -- derived statistics computed on first use (MetaResult.R2, MetaResult.tau2_ci) ----------
def pseudo_r2(res) -> float | None:
    """Pseudo-R^2 in percent against the same model without moderators; None without them.

    Two-level: metafor's max(0, 100 (tau2_0 - tau2) / tau2_0) (0 when tau2_0 = 0), and for
    equal-effects models the weighted adjusted R^2. Three-level: the same on
    sigma2_study + sigma2_es (None when the model without moderators has no heterogeneity).
    """
    if res.p == 1:
        return None
    with BLAS.limit(limits=1, user_api="blas"):
        return _pseudo_r2(res)


def _pseudo_r2(res) -> float | None:
    inputs = res.inputs
    if not res.is_three_level:
        return _pseudo_r2_two_level(inputs.y, inputs.v, inputs.X, res.method, res.tau2, 0.0)
    ys, vs = inputs.y[inputs.order], inputs.v[inputs.order]
    total = res.total_heterogeneity
    if res.rho is not None or res.fix_sigma2:
        # The model without moderators keeps the same V (rho) and the same fixed components.
        theta0, _ = estimate_dependent_sigma2(
            ys,
            vs,
            np.ones((res.k, 1)),
            inputs.starts,
            res.rho or 0.0,
            res.method,
            0.0,
            res.fix_sigma2,
        )
        total0 = float(theta0.sum())
        return max(0.0, 100.0 * (total0 - total) / total0) if total0 > 0 else None
    # The optimum of the model without moderators does not depend on the starting point;
    # starting near the full model's total (split evenly, kept away from zero) saves work.
    warm = np.full(2, max(total, 1e-3 * float(np.mean(vs))) / 2.0)
    theta0, _ = estimate_sigma2(
        ys, vs, np.ones((res.k, 1)), inputs.starts, res.method, 0.0, start=warm
    )
    total0 = float(theta0.sum())
    return max(0.0, 100.0 * (total0 - total) / total0) if total0 > 0 else None


def tau2_confidence_interval(res) -> tuple[float, float] | None:
    """Q-profile interval for tau2 of a two-level random-effects model, else None."""
    if res.is_three_level or res.method == "EE" or res.k <= res.p:
        return None
    inputs = res.inputs
    with BLAS.limit(limits=1, user_api="blas"):
        return qe.q_profile_interval(inputs.y, inputs.v, inputs.X, res.tau2, res.level)


# -- confidence intervals for variance components -----------------------------------------
def variance_ci(res) -> pd.DataFrame:
    """One row per estimated variance component: estimate, ci_lb, ci_ub at ``res.level``.

    Index labels: ``tau2`` (two-level), ``sigma2.study`` and ``sigma2.es`` (three-level;
    components held fixed with ``fix_sigma2`` have no interval and no row, as in metafor).
    """
    if not res.is_three_level:
        if res.method == "EE":
            raise AnalysisError(
                "An equal-effects model has no variance component, so no interval for one."
            )
        interval = tau2_confidence_interval(res)
        if interval is None:
            raise AnalysisError(
                "No interval for tau2: the model has no residual degrees of freedom."
            )
        return pd.DataFrame(
            [[float(res.tau2), *interval]],
            index=pd.Index(["tau2"], name="component"),
            columns=VARIANCE_CI_COLUMNS,
        )
    mask, values = fixed_mask(res.fix_sigma2)
    if mask.all():
        raise AnalysisError("Every variance component is held fixed; none has an interval.")
    with BLAS.limit(limits=1, user_api="blas"):
        rows, labels = [], []
        for j, name in enumerate(SIGMA2_NAMES):
            if mask[j]:
                continue
            rows.append([float(res.sigma2.iloc[j]), *profile_interval(res, j)])
            labels.append(f"sigma2.{name}")
    return pd.DataFrame(rows, index=pd.Index(labels, name="component"), columns=VARIANCE_CI_COLUMNS)


def profile_interval(res, component: int) -> tuple[float, float]:
    """Profile-likelihood interval of sigma2 ``component`` (0 study, 1 es) of a three-level fit."""
    inputs = res.inputs
    ys, vs, Xs = inputs.y[inputs.order], inputs.v[inputs.order], inputs.X[inputs.order]
    starts = inputs.starts
    rho = res.rho or 0.0
    reml = res.method == "REML"
    logdet_xtx = est.logdet_crossprod(inputs.X)
    mask, values = fixed_mask(res.fix_sigma2)
    estimate = res.sigma2.to_numpy(float)
    objective = float(special.chdtri(1, 1.0 - res.level))  # qchisq(level, 1)
    held = mask.copy()
    held[component] = True

    def excess(value: float) -> float:
        theta0 = estimate.copy()
        theta0[component] = value
        fitted = che.maximise_che_likelihood(
            ys, Xs, vs, starts, rho, theta0, reml=reml, logdet_XtX=logdet_xtx, fixed=held
        )
        return -2.0 * (fitted.loglik - res.loglik) - objective

    vc = float(estimate[component])
    # metafor's search limits for a variance component.
    upper_limit = 10.0 if vc <= np.sqrt(np.finfo(float).eps) else max(10.0, 100.0 * vc)
    if excess(0.0) < 0:
        lower = 0.0
    else:
        lower = optimize.brentq(excess, 0.0, vc, xtol=1e-14, rtol=1e-12, maxiter=500)
    if excess(upper_limit) < 0:
        upper = upper_limit
    else:
        upper = optimize.brentq(excess, vc, upper_limit, xtol=1e-14, rtol=1e-12, maxiter=500)
    return float(lower), float(upper)


def parameter_count(res) -> int:
    """Estimated parameters: coefficients plus free variance components (metafor ``parms``)."""
    if not res.is_three_level:
        return res.p + (0 if res.method == "EE" else 1)
    return res.p + len(SIGMA2_NAMES) - len(res.fix_sigma2 or {})
