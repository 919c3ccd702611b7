"""The step-function selection model's likelihood (Vevea & Hedges 1995) and its maximisation.

Effect sizes y_i ~ N(x_i'b, v_i + tau2) are observed with a weight delta_j for the one-sided
p-value interval j they fall in (delta_1 = 1): the log-likelihood of each effect size is the
normal log density plus log delta_j minus the log of sum_j delta_j P_ij, where P_ij is the
probability of interval j under the model. The score and Hessian are analytic; maximisation is
Newton's method on (b, log tau2, log delta) within bounds, as :func:`maximise`.
:mod:`alliance_core.analyses.selection` builds results and inference on top of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

# metafor bounds each delta to [0, 100] and warns when an estimate is within these margins
# of a bound (eps^0.25 below, 100 eps^0.25 above).
DELTA_MAX = 100.0


AT_LOWER = np.finfo(float).eps ** 0.25


AT_UPPER = 100.0 * np.finfo(float).eps ** 0.25


# -- the likelihood ------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class StepData:
    """The fixed inputs of the likelihood: effect sizes, their interval and the cuts.

    ``cut_z`` holds Phi^-1(1 - a_j) for the N - 1 inner cuts; ``group`` the 0-based interval
    of each p-value (p <= a_j first, as metafor assigns a p-value on a cut to the lower
    interval); ``weights`` multiply each effect size's log-likelihood (1, or a cluster
    bootstrap's counts).
    """

    y: np.ndarray
    v: np.ndarray
    X: np.ndarray
    steps: np.ndarray  # the cuts with 1 appended
    cut_z: np.ndarray
    group: np.ndarray
    weights: np.ndarray

    @property
    def intervals(self) -> int:
        return len(self.steps)


def one_sided_p(y: np.ndarray, v: np.ndarray) -> np.ndarray:
    """One-sided p-value of each effect size for H1: effect > 0, 1 - Phi(y / sqrt(v))."""
    return special.ndtr(-np.asarray(y, float) / np.sqrt(np.asarray(v, float)))


def step_data(y, v, X, steps: Sequence[float], weights=None) -> StepData:
    cuts = np.asarray(steps, float)
    full = np.append(cuts, 1.0) if cuts[-1] != 1.0 else cuts
    p = one_sided_p(y, v)
    group = np.searchsorted(full, p, side="left")
    w = np.ones(len(y)) if weights is None else np.asarray(weights, float)
    return StepData(
        np.asarray(y, float),
        np.asarray(v, float),
        np.asarray(X, float),
        full,
        special.ndtri(1.0 - full[:-1]),
        group,
        w,
    )


@dataclass(frozen=True)
class Parameters:
    """Which parameters are free: ``tau2_fixed`` (a value, or None when estimated) and
    whether the deltas are estimated (False: all held at 1, the model without selection)."""

    p: int
    intervals: int
    tau2_fixed: float | None
    selection: bool = True

    @property
    def size(self) -> int:
        return self.p + (self.tau2_fixed is None) + (self.intervals - 1 if self.selection else 0)

    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
        beta = theta[: self.p]
        at = self.p
        if self.tau2_fixed is None:
            tau2 = float(theta[at])
            at += 1
        else:
            tau2 = self.tau2_fixed
        delta = np.ones(self.intervals)
        if self.selection:
            delta[1:] = theta[at:]
        return beta, tau2, delta


def interval_probabilities(data: StepData, mu: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """P_ij: probability of effect size i falling in p-value interval j without selection.

    Differences of upper tails where both limits are positive keep the small probabilities
    of far tails accurate."""
    b = (np.sqrt(data.v)[:, None] * data.cut_z[None, :] - mu[:, None]) / eta[:, None]
    below = special.ndtr(b)  # Phi(b_j)
    above = special.ndtr(-b)  # 1 - Phi(b_j), accurate in the upper tail
    P = np.empty((len(mu), data.intervals))
    P[:, 0] = above[:, 0]
    P[:, -1] = below[:, -1]
    if data.intervals > 2:
        # interval j lies between b_j (lower) and b_{j-1} (upper)
        left = below[:, :-1] - below[:, 1:]
        right = above[:, 1:] - above[:, :-1]
        P[:, 1:-1] = np.where(b[:, 1:] > 0, right, left)
    return P, b


def loglik_terms(
    theta: np.ndarray, data: StepData, spec: Parameters
) -> tuple[np.ndarray, np.ndarray]:
    """Each effect size's log-likelihood and its score (gradient in ``theta``), unweighted.

    d log f / d mu = (y - mu) / eta^2 - A'_mu / A,
    d log f / d tau2 = -1 / (2 eta^2) + (y - mu)^2 / (2 eta^4) - A'_tau2 / A,
    d log f / d delta_m = [g = m] / delta_m - P_m / A,
    using A = delta_1 + sum_{j<N} (delta_{j+1} - delta_j) Phi(b_j), so that
    A'_mu = -sum_j (delta_{j+1} - delta_j) phi(b_j) / eta and
    A'_tau2 = -sum_j (delta_{j+1} - delta_j) phi(b_j) b_j / (2 eta^2).
    """
    beta, tau2, delta = spec.unpack(theta)
    X, y = data.X, data.y
    mu = X @ beta
    eta2 = data.v + tau2
    eta = np.sqrt(eta2)
    resid = y - mu
    with np.errstate(divide="ignore"):
        log_delta = np.log(delta)
    if spec.selection:
        P, b = interval_probabilities(data, mu, eta)
        A = P @ delta
        steps_up = delta[1:] - delta[:-1]
        phi_b = np.exp(-0.5 * b * b) / np.sqrt(2.0 * np.pi)
        dA_dmu = -(phi_b @ steps_up) / eta
        dA_dtau2 = -((phi_b * b) @ steps_up) / (2.0 * eta2)
        log_a = np.log(A)
    else:
        dA_dmu = dA_dtau2 = np.zeros_like(y)
        A = np.ones_like(y)
        log_a = 0.0
    ll = log_delta[data.group] - 0.5 * np.log(2.0 * np.pi * eta2) - resid**2 / (2 * eta2) - log_a
    columns = [X * (resid / eta2 - dA_dmu / A)[:, None]]
    if spec.tau2_fixed is None:
        columns.append((-0.5 / eta2 + resid**2 / (2 * eta2**2) - dA_dtau2 / A)[:, None])
    if spec.selection:
        in_group = data.group[:, None] == np.arange(1, data.intervals)[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            own = np.where(in_group, 1.0 / delta[None, 1:], 0.0)
        columns.append(own - P[:, 1:] / A[:, None])
    return ll, np.hstack(columns)


def loglik(theta: np.ndarray, data: StepData, spec: Parameters) -> float:
    ll, _ = loglik_terms(theta, data, spec)
    return float(data.weights @ ll)


def score(theta: np.ndarray, data: StepData, spec: Parameters) -> np.ndarray:
    _, s = loglik_terms(theta, data, spec)
    return data.weights @ s


def hessian(theta: np.ndarray, data: StepData, spec: Parameters, at_zero: bool) -> np.ndarray:
    """Hessian of the log-likelihood by Richardson-extrapolated central differences of the
    analytic score (one-sided, forward, in tau2 when tau2 sits at its bound 0)."""
    q = len(theta)
    H = np.empty((q, q))
    tau_index = spec.p if spec.tau2_fixed is None else -1
    for i in range(q):
        h = 1e-4 * max(abs(theta[i]), 1e-2)

        def diff(step, i=i):
            up = theta.copy()
            up[i] += step
            if i == tau_index and at_zero:
                return (score(up, data, spec) - score(theta, data, spec)) / step
            down = theta.copy()
            down[i] -= step
            return (score(up, data, spec) - score(down, data, spec)) / (2 * step)

        if i == tau_index and at_zero:
            H[:, i] = 2 * diff(h / 2) - diff(h)
        else:
            H[:, i] = (4 * diff(h / 2) - diff(h)) / 3
    return (H + H.T) / 2


# -- maximisation --------------------------------------------------------------------------
@dataclass(frozen=True)
class Maximum:
    theta: np.ndarray
    loglik: float
    tau2_at_zero: bool
    converged: bool


def maximise(data: StepData, spec: Parameters, start: np.ndarray) -> Maximum:
    """Maximise the (weighted) log-likelihood: BFGS on (beta, log tau2, log delta), which
    keeps tau2 and the deltas positive (metafor also optimises log tau2), then Newton steps
    on the natural parameters within tau2 >= 0 and 0 <= delta <= 100 (metafor's bounds)
    until the step is at rounding level; tau2 below 1e-10 after the first phase is tried at
    its bound 0."""
    positive = np.zeros(spec.size, bool)
    tau_index = spec.p if spec.tau2_fixed is None else None
    if tau_index is not None:
        positive[tau_index] = True
    if spec.selection:
        positive[-(spec.intervals - 1) :] = True
    lower = np.where(positive, 0.0, -np.inf)
    upper = np.full(spec.size, np.inf)
    if spec.selection:
        upper[-(spec.intervals - 1) :] = DELTA_MAX
    floor = 1e-3 * float(np.mean(data.v))
    start = start.astype(float).copy()
    if tau_index is not None:
        start[tau_index] = max(start[tau_index], floor)
    scale = np.where(positive, 1.0, np.maximum(np.abs(start), 0.05))

    def natural(u):
        theta = u * scale
        theta[positive] = np.exp(u[positive])
        return theta

    def objective(u):
        theta = natural(u)
        ll, s = loglik_terms(theta, data, spec)
        value = -(data.weights @ ll)
        grad = -(data.weights @ s) * np.where(positive, theta, scale)
        if not np.isfinite(value) or not np.all(np.isfinite(grad)):
            return np.inf, np.zeros_like(u)
        return value, grad

    u0 = start / scale
    u0[positive] = np.log(start[positive])
    fit = optimize.minimize(
        objective, u0, jac=True, method="BFGS", options={"maxiter": 5000, "gtol": 1e-9}
    )
    theta = np.clip(natural(fit.x), lower, upper)
    if tau_index is not None and theta[tau_index] < 1e-10:
        theta[tau_index] = 0.0
    theta, converged = _newton(theta, data, spec, lower, upper)
    at_zero = tau_index is not None and theta[tau_index] <= 1e-12
    if at_zero:
        theta[tau_index] = 0.0
    return Maximum(theta, loglik(theta, data, spec), bool(at_zero), converged)


def _newton(theta, data, spec, lower, upper, iterations: int = 60):
    """Newton-Raphson on the parameters not held at a bound (a parameter at a bound whose
    score points outwards stays there), with step halving."""
    current = loglik(theta, data, spec)
    for _ in range(iterations):
        g = score(theta, data, spec)
        at_lower = (theta <= lower) & (g <= 0)
        at_upper = (theta >= upper) & (g >= 0)
        free = ~(at_lower | at_upper)
        if not free.any():
            return theta, True
        tau_index = spec.p if spec.tau2_fixed is None else -1
        at_zero = tau_index >= 0 and theta[tau_index] <= 0
        H = hessian(theta, data, spec, at_zero)[np.ix_(free, free)]
        try:
            step = np.linalg.solve(H, g[free])
        except np.linalg.LinAlgError:
            return theta, False
        t = 1.0
        while t > 1e-8:
            trial = theta.copy()
            trial[free] -= t * step
            trial = np.clip(trial, lower, upper)
            value = loglik(trial, data, spec)
            if np.isfinite(value) and value >= current - 1e-12 * abs(current):
                break
            t /= 2
        else:
            return theta, True
        moved = np.max(np.abs(trial - theta) / np.maximum(np.abs(theta), 1e-3))
        theta, current = trial, value
        if moved < 1e-13:
            return theta, True
    return theta, False
