"""Location-scale meta-regression: moderators of the mean and of the heterogeneity.

Two-level model y_i = x_i'b + u_i + e_i, e_i ~ N(0, v_i), u_i ~ N(0, tau2_i) with
log tau2_i = z_i'a (Viechtbauer & López-López 2022, Psychological Methods 27, 673–699; metafor
``rma(yi, vi, mods = ~ x, scale = ~ z)`` with its default log link). The scale coefficients a
maximise the ML or REML log-likelihood with b profiled out (b = GLS at weights
1/(v_i + tau2_i)), as metafor does; their covariance is the inverse of the negative Hessian of
that profile log-likelihood (metafor differentiates it numerically; here analytically).

With M = diag(v_i + tau2_i), M_a = diag(tau2_i z_ia), M_ab = diag(tau2_i z_ia z_ib),
P = M^-1 - M^-1 X (X'M^-1 X)^-1 X'M^-1 and u = P y (the weighted residuals):
  ll = -1/2 (log|M| [+ log|X'M^-1 X| - log|X'X| for REML] + y'Py) + const,
  d ll / d a   = -1/2 tr(Q M_a) + 1/2 u'M_a u,
  d2 ll/ da db = -1/2 tr(Q M_ab) + 1/2 tr(Q M_a Q M_b) + 1/2 u'M_ab u - (M_a u)' P (M_b u),
with Q = M^-1 (ML) or P (REML).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special

from alliance_core.errors import AnalysisError
from alliance_core.formatting import format_p_console
from alliance_core.model import estimation as est
from alliance_core.model.design import ModelDesign
from alliance_core.model.wald import WaldTest, wald_test

LS_METHODS = ("ML", "REML")
MAX_ITERATIONS = 200
# Newton stops when the largest score is below this (the log-likelihood is then flat to
# well below 1e-12, far inside the 1e-6 agreement the tests ask of metafor's optimiser).
SCORE_TOLERANCE = 1e-10
# Below exp(-30) a tau2 is numerically zero next to any sampling variance: the scale
# coefficients are then running off to minus infinity, with no finite maximum.
DIVERGED_LOG_TAU2 = -30.0


@dataclass(frozen=True)
class _Profile:
    ll: float
    score: np.ndarray
    hessian: np.ndarray
    beta: np.ndarray
    vb: np.ndarray
    tau2: np.ndarray


def _profile(
    alpha: np.ndarray,
    y: np.ndarray,
    v: np.ndarray,
    X: np.ndarray,
    Z: np.ndarray,
    reml: bool,
    logdet_xtx: float,
) -> _Profile:
    """Profile (restricted) log-likelihood in the scale coefficients, its score and Hessian."""
    k, p = X.shape
    tau2 = np.exp(Z @ alpha)
    m = v + tau2
    w = 1.0 / m
    XtW = X.T * w
    XtWX = XtW @ X
    try:
        vb = np.linalg.inv(XtWX)
    except np.linalg.LinAlgError as error:
        raise AnalysisError("The location model's X'WX is singular at these scale values.") from (
            error
        )
    beta = vb @ (XtW @ y)
    u = w * (y - X @ beta)  # u = P y
    P = np.diag(w) - XtW.T @ vb @ XtW
    Q = P if reml else np.diag(w)
    Ma = tau2[:, None] * Z  # column a holds the diagonal of M_a
    q_diag = np.diag(Q)
    score = -0.5 * (q_diag @ Ma) + 0.5 * ((u * u) @ Ma)
    QMa = Q[:, :, None] * Ma[None, :, :]  # Q M_a for each a: k x k x q
    trace_pair = np.einsum("ija,jib->ab", QMa, QMa)
    Mab_q = np.einsum("i,ia,ib->ab", q_diag * tau2, Z, Z)
    Mab_u = np.einsum("i,ia,ib->ab", u * u * tau2, Z, Z)
    Mau = Ma * u[:, None]
    hessian = -0.5 * Mab_q + 0.5 * trace_pair + 0.5 * Mab_u - Mau.T @ P @ Mau
    rss = float(u @ (y - X @ beta))
    logdet_m = float(np.sum(np.log(m)))
    if reml:
        logdet_xtwx = float(np.linalg.slogdet(XtWX)[1])
        ll = -0.5 * ((k - p) * est.LOG_2PI + logdet_m + logdet_xtwx + rss) + 0.5 * logdet_xtx
    else:
        ll = -0.5 * (k * est.LOG_2PI + logdet_m + rss)
    return _Profile(ll, score, hessian, beta, vb, tau2)


def profile_loglik(alpha, y, v, X, Z, reml: bool, logdet_xtx: float) -> float:
    """The profile (restricted) log-likelihood at scale coefficients ``alpha`` (metafor's
    ``.ll.rma.ls`` with REMLf = TRUE)."""
    return _profile(np.asarray(alpha, dtype=float), y, v, X, Z, reml, logdet_xtx).ll


def _start(y: np.ndarray, v: np.ndarray, X: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """Starting values: regress log squared residuals of a weighted fit on Z (as metafor's
    start), shrunk towards the constant log of the method-of-moments tau2 for stability."""
    beta = np.linalg.lstsq(X / np.sqrt(v)[:, None], y / np.sqrt(v), rcond=None)[0]
    residuals = y - X @ beta
    tau2 = max(float(np.mean(residuals**2 - v)), 0.01 * float(np.mean(v)))
    alpha = np.zeros(Z.shape[1])
    alpha[0] = np.log(tau2)
    return alpha


def _maximise(y, v, X, Z, reml, logdet_xtx) -> tuple[np.ndarray, _Profile, int]:
    """Newton-Raphson on the profile log-likelihood, halving steps that do not increase it,
    and using the expected-information-like positive part when the Hessian is not negative
    definite far from the maximum."""
    alpha = _start(y, v, X, Z)
    current = _profile(alpha, y, v, X, Z, reml, logdet_xtx)
    for iteration in range(1, MAX_ITERATIONS + 1):
        info = -current.hessian
        values, vectors = np.linalg.eigh(info)
        # A step along the score where the information is not positive definite.
        values = np.maximum(np.abs(values), 1e-8 * max(1.0, float(np.max(np.abs(values)))))
        step = vectors @ ((vectors.T @ current.score) / values)
        for _ in range(60):
            candidate = alpha + step
            trial = _profile(candidate, y, v, X, Z, reml, logdet_xtx)
            if np.isfinite(trial.ll) and trial.ll >= current.ll - 1e-12 * abs(current.ll):
                break
            step = step / 2.0
        else:
            break
        alpha, current = candidate, trial
        if np.max(np.abs(current.score)) < SCORE_TOLERANCE:
            return alpha, current, iteration
        if np.min(Z @ alpha) < DIVERGED_LOG_TAU2:
            break
    raise AnalysisError(
        "The location-scale model did not converge: the heterogeneity of some studies is "
        "estimated as zero (a scale coefficient runs off to minus infinity), or the scale "
        "moderators explain more than the data can tell. Use fewer scale moderators."
    )


@dataclass(frozen=True, eq=False)
class LocationScaleResult:
    """A fitted location-scale model (metafor ``rma(yi, vi, mods, scale)``).

    ``coefficients``: the location part (b), as a MetaResult's; ``scale_coefficients``: the
    scale part (a, log tau2 = Z a) with se, z, p and CI (metafor's ``alpha``, ``se.alpha``,
    ...). ``QS``: Wald test that the scale moderators are all zero; ``QM`` that the location
    moderators are. ``tau2``: tau2_i of every fitted row. ``scale_test``: the
    likelihood-ratio test against the same model with one tau2 for all (``reduced_loglik``).
    """

    method: str
    level: float
    k: int
    p: int
    q: int
    design: ModelDesign
    scale_design: ModelDesign
    coefficients: pd.DataFrame
    scale_coefficients: pd.DataFrame
    beta: np.ndarray
    vb: np.ndarray
    alpha: np.ndarray
    va: np.ndarray
    tau2: pd.Series
    QM: WaldTest | None
    QS: WaldTest | None
    loglik: float
    aic: float
    bic: float
    aicc: float
    reduced_loglik: float
    LRT: float
    LRT_df: int
    LRT_pval: float
    iterations: int
    data: pd.DataFrame = field(repr=False)
    dropped: pd.DataFrame = field(repr=False)

    @property
    def parameters(self) -> int:
        return self.p + self.q

    def predict_tau2(self, newscale: pd.DataFrame | Mapping | Sequence[Mapping]) -> pd.DataFrame:
        """tau2 at given scale-moderator values (metafor ``predict(fit, newscale = ...,
        transf = exp)``): log tau2 = z'a with se sqrt(z' V_a z) and a z-based CI, then tau2 =
        exp of each (columns log_tau2, se, tau2, ci_lb, ci_ub, the moderator values)."""
        if isinstance(newscale, pd.DataFrame):
            frame = newscale.copy()
        elif isinstance(newscale, Mapping):
            frame = pd.DataFrame({key: np.atleast_1d(v) for key, v in newscale.items()})
        else:
            frame = pd.DataFrame(list(newscale))
        Zn = self.scale_design.matrix(frame, what="Scale prediction")
        log_tau2 = Zn @ self.alpha
        se = np.sqrt(np.einsum("ij,jk,ik->i", Zn, self.va, Zn))
        crit = float(special.ndtri(1.0 - (1.0 - self.level) / 2.0))
        out = pd.DataFrame(
            {
                "log_tau2": log_tau2,
                "se": se,
                "tau2": np.exp(log_tau2),
                "ci_lb": np.exp(log_tau2 - crit * se),
                "ci_ub": np.exp(log_tau2 + crit * se),
            },
            index=frame.index,
        )
        for column in self.scale_design.moderators:
            out[column] = frame[column].to_numpy()
        return out

    def summary(self) -> str:
        lines = [
            f"Location-scale model (k = {self.k}; method: {self.method}; tau2 = exp(Z alpha))",
            "",
            f"  logLik = {self.loglik:.4f}   AIC = {self.aic:.4f}   BIC = {self.bic:.4f}   "
            f"AICc = {self.aicc:.4f}",
            "",
        ]
        if self.QM is not None:
            lines.append(f"Test of location moderators: {self.QM}")
        if self.QS is not None:
            lines.append(f"Test of scale moderators: {self.QS}")
        lines.append(
            f"Likelihood-ratio test of the scale part: LRT({self.LRT_df}) = {self.LRT:.4f}, "
            f"p = {format_p_console(self.LRT_pval)}"
        )
        lines.append("")
        lines.append("Model results (location):")
        fmt = lambda v: f"{v:.4f}"  # noqa: E731
        lines.append(self.coefficients.to_string(float_format=fmt))
        lines.append("")
        lines.append("Scale coefficients (log tau2):")
        lines.append(self.scale_coefficients.to_string(float_format=fmt))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"<LocationScaleResult {self.method} k={self.k} p={self.p} q={self.q} "
            f"LRT={self.LRT:.4g} (df {self.LRT_df})>"
        )


def _table(names, estimate, cov, level) -> pd.DataFrame:
    se = np.sqrt(np.diag(cov))
    z = estimate / se
    crit = float(special.ndtri(1.0 - (1.0 - level) / 2.0))
    return pd.DataFrame(
        {
            "estimate": estimate,
            "se": se,
            "statistic": z,
            "pval": 2.0 * special.ndtr(-np.abs(z)),
            "ci_lb": estimate - crit * se,
            "ci_ub": estimate + crit * se,
        },
        index=pd.Index(list(names), name="term"),
    )


def fit_location_scale(
    frame: pd.DataFrame,
    y: np.ndarray,
    v: np.ndarray,
    X: np.ndarray,
    design: ModelDesign,
    Z: np.ndarray,
    scale_design: ModelDesign,
    method: str,
    test: str,
    level: float,
    dropped: pd.DataFrame,
    reduced_loglik: float,
) -> LocationScaleResult:
    """Fit the location-scale model on complete rows (arrays from :func:`fit`).

    ``reduced_loglik`` is the log-likelihood of the same location model with one tau2 (the
    ordinary fit by the same method), for the likelihood-ratio test of the scale part on
    q - 1 df (metafor ``anova(fit_ls, fit)``).
    """
    if method not in LS_METHODS:
        raise AnalysisError(f"The location-scale model is estimated by ML or REML, not '{method}'.")
    if test != "z":
        raise AnalysisError(
            "The location-scale model reports z tests only (test='z'); Knapp-Hartung and t "
            "tests are not available for it here."
        )
    k, p = X.shape
    q = Z.shape[1]
    if k <= p + q:
        raise AnalysisError(
            f"{k} effect size(s) for {p} location and {q} scale coefficient(s): the "
            "location-scale model needs more effect sizes than coefficients."
        )
    reml = method == "REML"
    logdet_xtx = est.logdet_crossprod(X)
    alpha, prof, iterations = _maximise(y, v, X, Z, reml, logdet_xtx)
    info = -prof.hessian
    try:
        va = np.linalg.inv(info)
    except np.linalg.LinAlgError as error:
        raise AnalysisError(
            "The scale coefficients' information matrix is singular: their standard errors "
            "cannot be computed."
        ) from error
    va = (va + va.T) / 2.0
    coefficients = _table(design.names, prof.beta, prof.vb, level)
    scale_coefficients = _table(scale_design.names, alpha, va, level)
    QM = wald_test(prof.beta, prof.vb, range(1, p), design.names, None) if p > 1 else None
    QS = wald_test(alpha, va, range(1, q), scale_design.names, None) if q > 1 else None
    parms = p + q
    n_eff = k - p if reml else k
    ll = prof.ll
    denominator = max(n_eff, parms + 2)
    LRT = max(0.0, 2.0 * (ll - reduced_loglik))
    LRT_df = q - 1
    return LocationScaleResult(
        method=method,
        level=level,
        k=k,
        p=p,
        q=q,
        design=design,
        scale_design=scale_design,
        coefficients=coefficients,
        scale_coefficients=scale_coefficients,
        beta=prof.beta,
        vb=prof.vb,
        alpha=alpha,
        va=va,
        tau2=pd.Series(prof.tau2, index=frame.index, name="tau2"),
        QM=QM,
        QS=QS,
        loglik=ll,
        aic=-2.0 * ll + 2.0 * parms,
        bic=-2.0 * ll + parms * np.log(n_eff),
        aicc=-2.0 * ll + 2.0 * parms * denominator / (denominator - parms - 1),
        reduced_loglik=reduced_loglik,
        LRT=LRT,
        LRT_df=LRT_df,
        LRT_pval=float(special.chdtrc(LRT_df, LRT)) if LRT_df > 0 else float("nan"),
        iterations=iterations,
        data=frame,
        dropped=dropped,
    )
