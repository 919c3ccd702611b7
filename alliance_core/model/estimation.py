"""Numerical core: marginal covariances, generalised least squares and variance components.

Two models share this code. The two-level random-effects model has the marginal covariance
M = diag(vi + tau2). The three-level model with effect sizes nested in studies has
M = sigma2_study * Z Z' + diag(vi + sigma2_es), where Z maps effect sizes to studies: a block
per study, each block a diagonal plus a constant. Every product with M^-1 uses the closed form of
that block's inverse (Sherman-Morrison), so no k x k matrix is ever formed and time and memory
grow linearly in the number of effect sizes.

Variance components are found by maximising the (restricted) log-likelihood with Newton steps
on the observed information, falling back to Fisher scoring (metafor's algorithm for rma.uni)
where the observed information is not positive definite, with step halving and the constraint
that variances are non-negative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from alliance_core.errors import AnalysisError

LOG_2PI = float(np.log(2.0 * np.pi))
# Fisher scoring leads (it follows metafor's path between local maxima); once its steps are
# this small, Newton steps on the observed information finish in a few iterations.
NEWTON_FROM = 1e-2


class NestedCovariance:
    """M = sigma2_study * Z Z' + diag(vi + sigma2_es) for rows sorted by study.

    ``starts`` are the first row of each study (for ``np.add.reduceat``); ``None`` means each
    row is its own unit and there is no study component (the two-level model, sigma2_es = tau2).
    """

    def __init__(
        self, vi: np.ndarray, starts: np.ndarray | None, sigma2_study: float, sigma2_es: float
    ):
        self.vi = vi
        self.starts = starts
        self.sigma2_study = float(sigma2_study) if starts is not None else 0.0
        self.sigma2_es = float(sigma2_es)
        d = vi + self.sigma2_es
        if np.any(d <= 0):
            raise AnalysisError("Some marginal variances are not positive; check the vi column.")
        self.u = 1.0 / d
        if starts is not None:
            sizes = np.diff(np.append(starts, len(vi)))
            self.study_of_row = np.repeat(np.arange(len(starts)), sizes)
            self.s = np.add.reduceat(self.u, starts)
            self.alpha = self.sigma2_study / (1.0 + self.sigma2_study * self.s)
        else:
            self.study_of_row = None
            self.s = None
            self.alpha = None

    # -- products with M^-1 -------------------------------------------------------------
    def study_sum(self, values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values, self.starts, axis=0)

    def solve(self, values: np.ndarray) -> np.ndarray:
        """M^-1 @ values, block by block: D^-1 v - alpha_i u (u' v) with u = D^-1 1."""
        u = self.u if values.ndim == 1 else self.u[:, None]
        weighted = u * values
        if self.starts is None or self.sigma2_study == 0.0:
            return weighted
        alpha = self.alpha if values.ndim == 1 else self.alpha[:, None]
        correction = (alpha * self.study_sum(weighted))[self.study_of_row]
        return weighted - u * correction

    def logdet(self) -> float:
        value = -float(np.sum(np.log(self.u)))
        if self.starts is not None and self.sigma2_study > 0.0:
            value += float(np.sum(np.log1p(self.sigma2_study * self.s)))
        return value

    def inverse_diagonal(self) -> np.ndarray:
        if self.starts is None or self.sigma2_study == 0.0:
            return self.u
        return self.u - self.alpha[self.study_of_row] * self.u**2


@dataclass(frozen=True)
class GLSFit:
    """Generalised least squares under a given marginal covariance."""

    beta: np.ndarray
    vb: np.ndarray  # (X' M^-1 X)^-1
    residuals: np.ndarray
    rss: float  # r' M^-1 r
    logdet_M: float
    logdet_XtWX: float
    G: np.ndarray  # M^-1 X
    e: np.ndarray  # M^-1 r  (equals P y)


def inverse_and_logdet(A: np.ndarray) -> tuple[np.ndarray, float]:
    """Inverse and log-determinant of the positive definite X' M^-1 X, via Cholesky."""
    try:
        chol = np.linalg.cholesky(A)
    except np.linalg.LinAlgError as error:
        raise AnalysisError(
            "The weighted moderator matrix is singular; a moderator may be constant or collinear."
        ) from error
    inv_chol = np.linalg.inv(chol)
    return inv_chol.T @ inv_chol, 2.0 * float(np.sum(np.log(np.diag(chol))))


def gls(y: np.ndarray, X: np.ndarray, cov: NestedCovariance) -> GLSFit:
    """Weighted least squares b = (X'M^-1 X)^-1 X'M^-1 y, with the pieces later steps reuse."""
    p = X.shape[1]
    solved = cov.solve(np.column_stack([X, y]))  # one pass over the studies for X and y
    G, Wy = solved[:, :p], solved[:, p]
    vb, logdet_A = inverse_and_logdet(X.T @ G)
    beta = vb @ (X.T @ Wy)
    residuals = y - X @ beta
    e = Wy - G @ beta  # M^-1 (y - X b)
    return GLSFit(
        beta=beta,
        vb=vb,
        residuals=residuals,
        rss=float(residuals @ e),
        logdet_M=cov.logdet(),
        logdet_XtWX=logdet_A,
        G=G,
        e=e,
    )


def log_likelihood(fit: GLSFit, k: int, p: int, reml: bool, logdet_XtX: float) -> float:
    """metafor's log-likelihood: ML, or REML including +1/2 log|X'X| (metafor's ``REMLf=TRUE``)."""
    if reml:
        return (
            -0.5 * ((k - p) * LOG_2PI + fit.logdet_M + fit.logdet_XtWX + fit.rss) + 0.5 * logdet_XtX
        )
    return -0.5 * (k * LOG_2PI + fit.logdet_M + fit.rss)


def logdet_crossprod(X: np.ndarray) -> float:
    sign, value = np.linalg.slogdet(X.T @ X)
    return float(value)


# -- the likelihood from per-study sums ---------------------------------------------------
class StudySums:
    """Everything the (restricted) likelihood and its derivatives need, from per-study sums.

    For study i with u_j = 1/(vi_j + sigma2_es), M_i^-1 = diag(u) - alpha_i u u' with
    alpha_i = sigma2_study / (1 + sigma2_study s_i), s_i = sum u_j. Then, for the augmented
    matrix Xa = [X, y] and B^(j)_i = sum_(rows of i) u^j Xa (a row vector),
      Xa' M^-1 Xa = Xa' U Xa   - sum_i alpha_i B1_i' B1_i,
    and Xa' M^-2 Xa, Xa' M^-3 Xa expand the same way in B1, B2, B3 and the sums of u^2, u^3.
    One pass over the effect sizes per likelihood evaluation, then only p x p and
    per-study work: that is what keeps a fit on 100,000 effect sizes linear in k.
    """

    def __init__(self, Xa: np.ndarray, vi: np.ndarray, studies, theta: np.ndarray, order: int):
        self.theta = theta
        self.with_study = studies is not None
        sigma2_study = float(theta[0]) if self.with_study else 0.0
        sigma2_es = float(theta[-1])
        u = 1.0 / (vi + sigma2_es)
        self.u = u
        q = Xa.shape[1]
        powers = [u] if order == 1 else [u, u * u, u * u * u]
        weighted = np.hstack([Xa * w[:, None] for w in powers] + [w[:, None] for w in powers])
        # Xa' U^j Xa for j = 1..order in one matrix product.
        stacked = weighted[:, : order * q].T @ Xa
        self.cross = [stacked[j * q : (j + 1) * q] for j in range(order)]
        self.logdet_M = -float(np.sum(np.log(u)))
        if not self.with_study:
            self.C = list(self.cross)
            return
        # Per-study sums as one sparse product with the study indicator matrix (studies x k).
        sums = studies @ weighted
        self.B = [sums[:, j * q : (j + 1) * q] for j in range(order)]
        self.s = [sums[:, order * q + j] for j in range(order)]  # sums of u, u^2, u^3
        s1 = self.s[0]
        self.alpha = sigma2_study / (1.0 + sigma2_study * s1)
        self.damp = 1.0 / (1.0 + sigma2_study * s1)
        self.logdet_M += float(np.sum(np.log1p(sigma2_study * s1)))
        a, B1 = self.alpha, self.B[0]
        self.C = [self.cross[0] - (B1 * a[:, None]).T @ B1]
        if order >= 3:
            B2, B3 = self.B[1], self.B[2]
            s2, s3 = self.s[1], self.s[2]
            b21 = (B2 * a[:, None]).T @ B1
            self.C.append(self.cross[1] - (b21 + b21.T) + (B1 * (a * a * s2)[:, None]).T @ B1)
            b31 = (B3 * a[:, None]).T @ B1
            b21_sq = (B2 * (a * a * s2)[:, None]).T @ B1
            self.C.append(
                self.cross[2]
                - (b31 + b31.T + (B2 * a[:, None]).T @ B2)
                + (b21_sq + b21_sq.T + (B1 * (a * a * s3)[:, None]).T @ B1)
                - (B1 * (a**3 * s2 * s2)[:, None]).T @ B1
            )


def study_indicator(starts: np.ndarray, k: int) -> sparse.csr_array:
    """Sparse (studies x k) matrix with a 1 where an effect size belongs to a study."""
    sizes = np.diff(np.append(starts, k))
    rows = np.repeat(np.arange(len(starts)), sizes)
    return sparse.csr_array((np.ones(k), (rows, np.arange(k))), shape=(len(starts), k))


@dataclass(frozen=True)
class ProfiledFit:
    """beta and the likelihood at given variance components, from ``StudySums``."""

    sums: StudySums
    beta: np.ndarray
    A_inv: np.ndarray  # (X' M^-1 X)^-1
    c: np.ndarray  # (-beta, 1): residuals are Xa @ c
    rss: float
    loglik: float


def profile(sums: StudySums, p: int, k: int, reml: bool, logdet_XtX: float) -> ProfiledFit:
    C1 = sums.C[0]
    A_inv, logdet_A = inverse_and_logdet(C1[:p, :p])
    beta = A_inv @ C1[:p, p]
    c = np.append(-beta, 1.0)
    rss = float(c @ C1 @ c)
    if reml:
        ll = -0.5 * ((k - p) * LOG_2PI + sums.logdet_M + logdet_A + rss) + 0.5 * logdet_XtX
    else:
        ll = -0.5 * (k * LOG_2PI + sums.logdet_M + rss)
    return ProfiledFit(sums=sums, beta=beta, A_inv=A_inv, c=c, rss=rss, loglik=ll)


def _derivatives(fit: ProfiledFit, p: int, reml: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score, expected information and observed information for (sigma2_study, sigma2_es).

    With P = M^-1 - G A^-1 G' (G = M^-1 X; REML; M^-1 alone for ML), M_study = Z Z', M_es = I:
      score_r     = -1/2 tr(P M_r) + 1/2 y'P M_r P y
      expected_rs =  1/2 tr(P M_r P M_s)
      observed_rs = -1/2 tr(P M_r P M_s) + (M_r P y)' P (M_s P y)
    (for ML the traces use M^-1 and the quadratic forms keep P: beta is profiled out).
    Every term reduces to the p x p matrices X' M^-j X and per-study sums (``StudySums``).
    """
    sums = fit.sums
    C2, C3 = sums.C[1], sums.C[2]
    A_inv, c = fit.A_inv, fit.c
    G_G = C2[:p, :p]  # X' M^-2 X
    G_MG = C3[:p, :p]  # X' M^-3 X
    Gt_e = C2[:p, :] @ c  # X' M^-2 r
    e_e = float(c @ C2 @ c)  # r' M^-2 r
    e_M_e = float(c @ C3 @ c)  # r' M^-3 r
    AG = A_inv @ G_G

    if sums.with_study:
        s1, s2, s3 = sums.s
        alpha, damp = sums.alpha, sums.damp
        tr_minv = float(np.sum(s1 - alpha * s2))
        frob_minv = float(np.sum(s2 - 2.0 * alpha * s3 + alpha**2 * s2**2))
    else:
        u = sums.u
        tr_minv = float(np.sum(u))
        frob_minv = float(np.sum(u * u))

    tr_P_es, tr_PP = tr_minv, frob_minv
    if reml:
        tr_P_es -= float(np.trace(AG))
        tr_PP += -2.0 * float(np.sum(A_inv * G_MG)) + float(np.sum(AG * AG.T))
    quad_ee = e_M_e - float(Gt_e @ A_inv @ Gt_e)

    if not sums.with_study:
        score = np.array([-0.5 * tr_P_es + 0.5 * e_e])
        expected = np.array([[0.5 * tr_PP]])
        observed = -expected + quad_ee
        return score, expected, observed

    B1, B2 = sums.B[0], sums.B[1]
    cs = s1 * damp  # 1' M_i^-1 1
    S = damp[:, None] * B1[:, :p]  # Z' M^-1 X
    Q = damp[:, None] * (B2[:, :p] - (alpha * s2)[:, None] * B1[:, :p])  # Z' M^-2 X
    t = damp * (B1 @ c)  # Z' M^-1 r  (= Z' P y)
    v = damp * (B2 @ c - alpha * s2 * (B1 @ c))  # Z' M^-2 r
    tr_P_st = float(np.sum(cs))
    tr_PZZPZZ = float(np.sum(cs**2))
    tr_PZZP = float(np.sum(damp**2 * s2))
    StS = S.T @ S
    AS = A_inv @ StS
    if reml:
        row_quad = np.sum((S @ A_inv) * S, axis=1)
        tr_P_st -= float(np.trace(AS))
        tr_PZZPZZ += -2.0 * float(np.sum(cs * row_quad)) + float(np.sum(AS * AS.T))
        tr_PZZP += -2.0 * float(np.sum((Q @ A_inv) * S)) + float(np.sum(AG * AS.T))
    score = np.array([-0.5 * tr_P_st + 0.5 * float(t @ t), -0.5 * tr_P_es + 0.5 * e_e])
    expected = 0.5 * np.array([[tr_PZZPZZ, tr_PZZP], [tr_PZZP, tr_PP]])
    St = S.T @ t
    A_St = A_inv @ St
    quad_ss = float(np.sum(cs * t * t)) - float(St @ A_St)
    quad_se = float(t @ v) - float(A_St @ Gt_e)
    observed = -expected + np.array([[quad_ss, quad_se], [quad_se, quad_ee]])
    return score, expected, observed


@dataclass(frozen=True)
class VarianceFit:
    theta: np.ndarray  # (sigma2_study, sigma2_es) or (tau2,)
    iterations: int
    loglik: float


def maximise_likelihood(
    y: np.ndarray,
    X: np.ndarray,
    vi: np.ndarray,
    starts: np.ndarray | None,
    theta0: np.ndarray,
    reml: bool,
    logdet_XtX: float,
    tol: float = 1e-11,
    max_iter: int = 300,
) -> VarianceFit:
    """Maximise the (restricted) log-likelihood over non-negative variance components.

    Fisher scoring (metafor's algorithm for ``rma.uni``) until the steps are small, then Newton
    steps on the observed information for fast final convergence. Steps are never projected
    onto the boundary: a step that would make a variance negative is shortened until it
    stays feasible, and any step that lowers the likelihood is halved. The likelihood in a
    variance component need not be concave, and jumping to zero could land on a local
    maximum at the boundary that metafor's path never visits.
    """
    k, p = X.shape
    Xa = np.column_stack([X, y])
    theta = np.maximum(np.asarray(theta0, dtype=float), 0.0)
    studies = study_indicator(starts, k) if starts is not None else None

    def evaluate(t: np.ndarray, order: int = 3) -> ProfiledFit:
        # Sums up to order 3 (for the derivatives) cost little more than order 1 in one
        # stacked product, and most line searches accept their first step.
        return profile(StudySums(Xa, vi, studies, t, order), p, k, reml, logdet_XtX)

    def with_derivatives(t: np.ndarray) -> tuple[ProfiledFit, float]:
        fitted = evaluate(t, order=3)
        return fitted, fitted.loglik

    fit, ll = with_derivatives(theta)
    # A variance this small is zero for every reported digit; below it, a component heading
    # for the boundary is put there so the others can converge.
    negligible = 1e-10 * float(np.mean(vi))
    use_newton = False
    for iteration in range(1, max_iter + 1):
        if len(fit.sums.C) < 3:  # accepted by a line search: add the higher-order sums
            fit, ll = with_derivatives(theta)
        score, expected, observed = _derivatives(fit, p, reml)
        at_boundary = (theta <= negligible) & (score <= 0.0)
        if at_boundary.any() and (theta[at_boundary] > 0).any():
            theta = np.where(at_boundary, 0.0, theta)
            fit, ll = with_derivatives(theta)
            score, expected, observed = _derivatives(fit, p, reml)
            at_boundary = (theta <= 0.0) & (score <= 0.0)
        free = ~at_boundary
        if not free.any():
            return VarianceFit(theta=theta, iterations=iteration, loglik=ll)
        directions = []
        if use_newton and positive_definite(observed[np.ix_(free, free)]):
            directions.append(observed)
        directions.append(expected)
        directions.append(np.diag(np.maximum(np.diag(expected), 1e-300)))
        candidate, new_fit = theta, fit
        for info in directions:
            step = constrained_step(theta, score, info, free)
            accepted = line_search(theta, step, score, ll, evaluate)
            if accepted is not None:
                candidate, new_fit = accepted
                break
        change = float(np.max(np.abs(candidate - theta) / (1.0 + np.abs(theta))))
        theta, fit, ll = candidate, new_fit, new_fit.loglik
        if change < NEWTON_FROM:
            use_newton = True
        if change < tol:
            return VarianceFit(
                theta=np.where(theta <= negligible, 0.0, theta), iterations=iteration, loglik=ll
            )
    raise AnalysisError(
        f"The {'REML' if reml else 'ML'} estimation of the variance components did not converge "
        f"in {max_iter} iterations. Try the {'ML' if reml else 'REML'} estimator, fewer moderators, "
        "or check the data for extreme values."
    )


def positive_definite(matrix: np.ndarray) -> bool:
    try:
        np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        return False
    return True


def constrained_step(
    theta: np.ndarray, score: np.ndarray, info: np.ndarray, free: np.ndarray
) -> np.ndarray:
    """Step info^-1 score for the free components, kept inside the non-negative region.

    A component whose step would cross zero covers 90% of its distance to zero instead, and
    the other components are re-solved given that shorter step (the maximiser of the same
    quadratic model along the rest). A variance whose maximum is at the boundary then
    approaches zero geometrically instead of jumping there: the likelihood need not be concave
    in a variance, and a jump could land on a local maximum at zero that a continuous path,
    like metafor's, never reaches.
    """
    step = np.zeros_like(theta)
    active = free.copy()
    fixed = np.zeros_like(free)
    for _ in range(theta.size):
        rest = active & ~fixed
        if rest.any():
            rhs = score[rest] - info[np.ix_(rest, fixed)] @ step[fixed]
            step[rest] = _solve_or_scale(info[np.ix_(rest, rest)], rhs)
        crossing = rest & (theta + step < 0.0)
        if not crossing.any():
            break
        step[crossing] = -0.9 * theta[crossing]
        fixed |= crossing
    return step


def _solve_or_scale(info: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(info, rhs)
    except np.linalg.LinAlgError:
        return rhs / max(float(np.max(np.abs(np.diag(info)))), 1e-300)


def line_search(theta, step, score, ll, evaluate, max_halvings: int = 40):
    """First of step, step/2, step/4, ... that does not lower the log-likelihood.

    Close to the maximum the gain a step promises (about score . step / 2) falls below the
    rounding noise of the log-likelihood itself; such a step is taken as it is, since the
    quadratic model that proposed it is then accurate.
    """
    if not np.any(step):
        return None
    promised = 0.5 * float(score @ step)
    shrink = 1.0
    for _ in range(max_halvings):
        candidate = np.maximum(theta + shrink * step, 0.0)
        new_fit = evaluate(candidate)
        if new_fit.loglik >= ll - 1e-13 * abs(ll) or (
            shrink == 1.0 and 0.0 <= promised < 1e-10 * (1.0 + abs(ll))
        ):
            return candidate, new_fit
        shrink /= 2.0
    return None


# -- the three-level model's bookkeeping -----------------------------------------------------
def study_blocks(studies) -> tuple[np.ndarray, np.ndarray, int]:
    """Row order grouping each study's rows together, where each study starts, and the count.

    ``studies`` holds study labels, or integer codes (which skip the coding step).
    """
    studies = np.asarray(studies)
    codes = studies if studies.dtype.kind in "iu" else pd.factorize(studies, sort=False)[0]
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    return order, starts, len(starts)


def three_level_start(y: np.ndarray, v: np.ndarray, X: np.ndarray) -> np.ndarray:
    """metafor's starting values: half each of max(0.002, var(y - X b_FE) - 1/mean(1/vi))."""
    w = 1.0 / v
    Xw = X * w[:, None]
    beta_fe = np.linalg.solve(X.T @ Xw, Xw.T @ y)
    total = max(0.002, float(np.var(y - X @ beta_fe, ddof=1)) - 1.0 / float(np.mean(w)))
    return np.array([total / 2.0, total / 2.0])
