"""The correlated-and-hierarchical-effects (CHE) working model, linear in the number of rows.

Effect sizes j, l of one study i have correlated sampling errors, Cov(e_ij, e_il) =
rho sqrt(v_ij v_il) (metafor ``vcalc(vi, cluster = study, obs = es, rho = rho)``), and the
three-level random effects of ``rma.mv(yi, V, random = ~ 1 | study/es)``. Per study the marginal
covariance is

    M_i = diag((1 - rho) v + sigma2_es) + U_i C U_i',   U_i = [1, sqrt(v)],
    C = diag(sigma2_study, rho),

a diagonal plus a rank-2 term. With D = diag(d), u = 1/d and G_i = U_i' D^-1 U_i (2 x 2),
Woodbury's identity in the form that allows a singular C gives

    M_i^-1 = D^-1 - D^-1 U_i H_i U_i' D^-1,   H_i = C (I + G_i C)^-1,
    log|M_i| = sum log d + log|I + G_i C|,

so every product with M^-1 costs a few passes over the rows and per-study 2 x 2 work; no k x k
(or even k_i x k_i) matrix is formed. The sampling covariance V alone is the case
sigma2_study = sigma2_es = 0. With rho = 0 the algebra is that of
:class:`alliance_core.model.estimation.NestedCovariance`.

Variance components are estimated as in :func:`alliance_core.model.estimation.maximise_likelihood`:
Fisher scoring, then Newton steps on the observed information, with feasible step shortening
and step halving; the score and both information matrices are analytic (formulas in
:func:`likelihood_derivatives`). A component may be held fixed at a given value (metafor
``rma.mv(sigma2 = c(NA, 0))``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alliance_core.errors import AnalysisError
from alliance_core.model import estimation as est


class CheCovariance:
    """M = blockdiag(diag((1 - rho) v + sigma2_es) + U_i diag(sigma2_study, rho) U_i').

    Rows must be sorted by study; ``starts`` are the first row of each study.
    """

    def __init__(
        self,
        vi: np.ndarray,
        starts: np.ndarray,
        sigma2_study: float,
        sigma2_es: float,
        rho: float,
        indicator=None,
    ):
        self.vi = vi
        self.starts = starts
        self.sigma2_study = float(sigma2_study)
        self.sigma2_es = float(sigma2_es)
        self.rho = float(rho)
        d = (1.0 - self.rho) * vi + self.sigma2_es
        if np.any(d <= 0):
            raise AnalysisError("Some marginal variances are not positive; check the vi column.")
        self.u = 1.0 / d
        self.sd = np.sqrt(vi)
        sizes = np.diff(np.append(starts, len(vi)))
        self.study_of_row = np.repeat(np.arange(len(starts)), sizes)
        # Sums over a study's rows of several columns at once: one sparse product with the
        # (studies x k) indicator matrix, much faster than reduceat along axis 0.
        self.indicator = est.study_indicator(starts, len(vi)) if indicator is None else indicator
        u, s = self.u, self.sd
        sums = self.study_sum(np.column_stack([u, u * s, u * s * s]))
        self.g00, self.g01, self.g11 = sums[:, 0], sums[:, 1], sums[:, 2]
        a, r = self.sigma2_study, self.rho
        # |I + G C| and H = C (I + G C)^-1, written out for the 2 x 2 case.
        self.core_det = (1.0 + self.g00 * a) * (1.0 + self.g11 * r) - self.g01**2 * a * r
        self.h00 = a * (1.0 + self.g11 * r) / self.core_det
        self.h01 = -a * r * self.g01 / self.core_det
        self.h11 = r * (1.0 + self.g00 * a) / self.core_det

    def study_sum(self, values: np.ndarray) -> np.ndarray:
        if values.ndim == 1:
            return np.add.reduceat(values, self.starts)
        return self.indicator @ values

    def solve_ones(self) -> np.ndarray:
        """M^-1 1, from the per-study sums already at hand (1' D^-1 1 = g00, s' D^-1 1 = g01)."""
        rows = self.study_of_row
        first = self.h00 * self.g00 + self.h01 * self.g01
        second = self.h01 * self.g00 + self.h11 * self.g01
        return self.u - self.u * (first[rows] + self.sd * second[rows])

    def solve(self, values: np.ndarray) -> np.ndarray:
        """M^-1 @ values (a vector or a k x q matrix)."""
        column = values.ndim == 1
        W = values[:, None] if column else values
        q = W.shape[1]
        u, s = self.u[:, None], self.sd[:, None]
        weighted = u * W
        sums = self.study_sum(np.hstack([weighted, s * weighted]))
        a, b = sums[:, :q], sums[:, q:]  # 1' D^-1 W and s' D^-1 W per study
        first = self.h00[:, None] * a + self.h01[:, None] * b
        second = self.h01[:, None] * a + self.h11[:, None] * b
        rows = self.study_of_row
        out = weighted - u * (first[rows] + s * second[rows])
        return out[:, 0] if column else out

    def logdet(self) -> float:
        return -float(np.sum(np.log(self.u))) + float(np.sum(np.log(self.core_det)))

    def inverse_diagonal(self) -> np.ndarray:
        rows = self.study_of_row
        s = self.sd
        return self.u - self.u**2 * (
            self.h00[rows] + 2.0 * self.h01[rows] * s + self.h11[rows] * s * s
        )

    def frobenius_sq(self) -> float:
        """sum_i ||M_i^-1||_F^2 = sum u^2 - 2 tr(H G3) + tr(H G2 H G2), G_j = U'D^-j U."""
        u, s = self.u, self.sd
        u2, u3 = u * u, u * u * u
        sums = self.study_sum(np.column_stack([u2, u2 * s, u2 * s * s, u3, u3 * s, u3 * s * s]))
        a00, a01, a11, b00, b01, b11 = sums.T
        h00, h01, h11 = self.h00, self.h01, self.h11
        tr_hg3 = h00 * b00 + 2.0 * h01 * b01 + h11 * b11
        # HG2 = [[p, q], [r, t]]; tr((HG2)^2) = p^2 + 2 q r + t^2
        p_ = h00 * a00 + h01 * a01
        q_ = h00 * a01 + h01 * a11
        r_ = h01 * a00 + h11 * a01
        t_ = h01 * a01 + h11 * a11
        return float(np.sum(u2) - 2.0 * np.sum(tr_hg3) + np.sum(p_ * p_ + 2.0 * q_ * r_ + t_ * t_))


def sampling_covariance(vi: np.ndarray, starts: np.ndarray, rho: float) -> CheCovariance:
    """V alone: diag(v) with correlation rho between a study's sampling errors."""
    return CheCovariance(vi, starts, 0.0, 0.0, rho)


@dataclass(frozen=True)
class FixedEffectsSummary:
    """Generalised least squares with V alone: what QE, I2 and the start values need."""

    QE: float  # r' V^-1 r at b_FE (metafor rma.mv's QE)
    typical_variance: float  # (k - p) / tr(P_V), P_V = V^-1 - V^-1 X (X'V^-1 X)^-1 X'V^-1
    logdet_V: float
    residuals: np.ndarray


def fixed_effects_summary(
    y: np.ndarray, X: np.ndarray, vi: np.ndarray, starts: np.ndarray, rho: float
) -> FixedEffectsSummary:
    k, p = X.shape
    cov = sampling_covariance(vi, starts, rho)
    fit = est.gls(y, X, cov)
    tr_p = float(np.sum(cov.inverse_diagonal())) - float(np.sum(fit.vb * (fit.G.T @ fit.G)))
    return FixedEffectsSummary(
        QE=max(0.0, fit.rss) if k > p else 0.0,
        typical_variance=(k - p) / tr_p if tr_p > 0 else 0.0,
        logdet_V=fit.logdet_M,
        residuals=fit.residuals,
    )


def che_start(y, X, vi, starts, rho) -> np.ndarray:
    """metafor rma.mv's start: half each of max(0.002, var(y - X b_FE) - 1/mean(1/diag V))."""
    return start_from_residuals(fixed_effects_summary(y, X, vi, starts, rho).residuals, vi)


def start_from_residuals(residuals: np.ndarray, vi: np.ndarray) -> np.ndarray:
    """``che_start`` from the residuals of the fixed-effects fit with V."""
    total = max(0.002, float(np.var(residuals, ddof=1)) - 1.0 / float(np.mean(1.0 / vi)))
    return np.array([total / 2.0, total / 2.0])


@dataclass(frozen=True)
class CheProfile:
    """beta and the (restricted) log-likelihood at given (sigma2_study, sigma2_es)."""

    cov: CheCovariance
    G: np.ndarray  # M^-1 X
    A_inv: np.ndarray  # (X' M^-1 X)^-1
    beta: np.ndarray
    e: np.ndarray  # M^-1 (y - X b) = P y
    rss: float
    loglik: float


def profile(
    y, X, vi, starts, rho, theta, reml: bool, logdet_XtX: float, Xa=None, indicator=None
) -> CheProfile:
    """``Xa`` = [X, y] and the study ``indicator`` may be passed in when reused."""
    k, p = X.shape
    cov = CheCovariance(vi, starts, theta[0], theta[1], rho, indicator)
    solved = cov.solve(np.column_stack([X, y]) if Xa is None else Xa)
    G, Wy = solved[:, :p], solved[:, p]
    A_inv, logdet_A = est.inverse_and_logdet(X.T @ G)
    beta = A_inv @ (X.T @ Wy)
    resid = y - X @ beta
    e = Wy - G @ beta
    rss = float(resid @ e)
    logdet_M = cov.logdet()
    if reml:
        ll = -0.5 * ((k - p) * est.LOG_2PI + logdet_M + logdet_A + rss) + 0.5 * logdet_XtX
    else:
        ll = -0.5 * (k * est.LOG_2PI + logdet_M + rss)
    return CheProfile(cov=cov, G=G, A_inv=A_inv, beta=beta, e=e, rss=rss, loglik=ll)


def likelihood_derivatives(fit: CheProfile, reml: bool):
    """Score, expected and observed information for (sigma2_study, sigma2_es).

    With M_study = Z Z' (Z the study indicator), M_es = I, P = M^-1 - G A^-1 G' (REML; the
    traces of ML use M^-1), e = P y:
      score_r     = -1/2 tr(P M_r) + 1/2 e' M_r e
      expected_rs =  1/2 tr(P M_r P M_s)
      observed_rs = -1/2 tr(P M_r P M_s) + (M_r e)' P (M_s e).
    The traces reduce to c_i = 1' M_i^-1 1, ||M_i^-1 1||^2, ||M_i^-1||_F^2 and the p x p
    products of S = Z' M^-1 X, G = M^-1 X and F = M^-1 G.
    """
    cov, G, A_inv, e = fit.cov, fit.G, fit.A_inv, fit.e
    m1 = cov.solve_ones()
    c = cov.study_sum(m1)
    tr_z = float(np.sum(c))  # tr(M^-1 Z Z')
    tr_i = float(np.sum(cov.inverse_diagonal()))  # tr(M^-1)
    e_zz = float(np.sum(c**2))  # tr(M^-1 ZZ' M^-1 ZZ')
    e_zi = float(np.sum(cov.study_sum(m1 * m1)))  # tr(M^-1 ZZ' M^-1)
    e_ii = cov.frobenius_sq()  # tr(M^-2)
    if reml:
        S = cov.study_sum(G)
        F = cov.solve(G)
        K_z = S.T @ S
        K_i = G.T @ G
        L_zz = (S * c[:, None]).T @ S
        L_zi = S.T @ cov.study_sum(F)
        L_ii = G.T @ F
        AKz, AKi = A_inv @ K_z, A_inv @ K_i
        tr_z -= float(np.trace(AKz))
        tr_i -= float(np.trace(AKi))
        e_zz += -2.0 * float(np.sum(A_inv * L_zz)) + float(np.sum(AKz * AKz.T))
        e_zi += -2.0 * float(np.sum(A_inv * L_zi.T)) + float(np.sum(AKz * AKi.T))
        e_ii += -2.0 * float(np.sum(A_inv * L_ii)) + float(np.sum(AKi * AKi.T))
    e_sums = cov.study_sum(e)
    ez = e_sums[cov.study_of_row]  # Z Z' e
    score = np.array([-0.5 * tr_z + 0.5 * float(e_sums @ e_sums), -0.5 * tr_i + 0.5 * float(e @ e)])
    expected = 0.5 * np.array([[e_zz, e_zi], [e_zi, e_ii]])
    both = np.column_stack([ez, e])
    P_both = cov.solve(both) - G @ (A_inv @ (G.T @ both))
    observed = -expected + both.T @ P_both
    return score, expected, 0.5 * (observed + observed.T)


def maximise_che_likelihood(
    y: np.ndarray,
    X: np.ndarray,
    vi: np.ndarray,
    starts: np.ndarray,
    rho: float,
    theta0: np.ndarray,
    reml: bool,
    logdet_XtX: float,
    fixed: np.ndarray | None = None,
    tol: float = 1e-11,
    max_iter: int = 300,
) -> est.VarianceFit:
    """Maximise over the components not ``fixed`` (a boolean mask; those keep theta0's value).

    The same path as :func:`alliance_core.model.estimation.maximise_likelihood`: Fisher scoring
    until the steps are small, then Newton steps on the observed information; feasible step
    shortening, step halving, and a component heading for zero is put there.
    """
    fixed = np.zeros(2, dtype=bool) if fixed is None else np.asarray(fixed, dtype=bool)
    theta = np.where(fixed, theta0, np.maximum(np.asarray(theta0, dtype=float), 0.0))

    Xa = np.column_stack([X, y])
    indicator = est.study_indicator(starts, len(y))

    def evaluate(t: np.ndarray) -> CheProfile:
        return profile(y, X, vi, starts, rho, t, reml, logdet_XtX, Xa, indicator)

    fit = evaluate(theta)
    ll = fit.loglik
    if fixed.all():
        return est.VarianceFit(theta=theta, iterations=0, loglik=ll)
    negligible = 1e-10 * float(np.mean(vi))
    use_newton = False
    for iteration in range(1, max_iter + 1):
        score, expected, observed = likelihood_derivatives(fit, reml)
        at_boundary = ~fixed & (theta <= negligible) & (score <= 0.0)
        if at_boundary.any() and (theta[at_boundary] > 0).any():
            theta = np.where(at_boundary, 0.0, theta)
            fit = evaluate(theta)
            ll = fit.loglik
            score, expected, observed = likelihood_derivatives(fit, reml)
            at_boundary = ~fixed & (theta <= 0.0) & (score <= 0.0)
        free = ~at_boundary & ~fixed
        if not free.any():
            return est.VarianceFit(theta=theta, iterations=iteration, loglik=ll)
        directions = []
        if use_newton and est.positive_definite(observed[np.ix_(free, free)]):
            directions.append(observed)
        directions.append(expected)
        directions.append(np.diag(np.maximum(np.diag(expected), 1e-300)))
        candidate, new_fit = theta, fit
        for info in directions:
            step = est.constrained_step(theta, score, info, free)
            accepted = est.line_search(theta, step, score, ll, evaluate)
            if accepted is not None:
                candidate, new_fit = accepted
                break
        change = float(np.max(np.abs(candidate - theta) / (1.0 + np.abs(theta))))
        theta, fit, ll = candidate, new_fit, new_fit.loglik
        if change < est.NEWTON_FROM:
            use_newton = True
        if change < tol:
            final = np.where(~fixed & (theta <= negligible), 0.0, theta)
            return est.VarianceFit(theta=final, iterations=iteration, loglik=ll)
    raise AnalysisError(
        f"The {'REML' if reml else 'ML'} estimation of the variance components did not converge "
        f"in {max_iter} iterations. Try the {'ML' if reml else 'REML'} estimator, fewer moderators, "
        "or check the data for extreme values."
    )
