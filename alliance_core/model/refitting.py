"""Refits of a model to arrays or to subsets of its rows, without any table work.

The sensitivity analyses (leave one out, influence, cumulative), the small-study tests and the
specification curve refit a model many times; :func:`refit` uses the engine's estimators
(metafor ``rma.uni`` / ``rma.mv`` definitions, including the CHE working model and fixed
variance components) and returns only the numbers those analyses report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from alliance_core.errors import AnalysisError
from alliance_core.model import che
from alliance_core.model import estimation as est
from alliance_core.model import q_estimators as qe
from alliance_core.model.components import estimate_dependent_sigma2
from alliance_core.model.design import check_full_rank
from alliance_core.model.fit_inputs import THREE_LEVEL_METHODS, TWO_LEVEL_METHODS
from alliance_core.model.fitting import critical_value, two_sided_p


# -- one refit on arrays -------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Refit:
    """The numbers of one refit that sensitivity analyses report (metafor's definitions).

    ``vb`` is scaled by the Knapp-Hartung factor ``s2w`` for ``test="knha"`` (as
    ``MetaResult.vb``); ``theta`` is (tau2,) for the two-level model and
    (sigma2_study, sigma2_es) for the three-level model.
    """

    beta: np.ndarray
    vb: np.ndarray
    ddf: int | None
    level: float
    k: int
    n_studies: int
    theta: np.ndarray
    s2w: float
    QE: float
    QE_pval: float
    I2: float
    H2: float

    def coefficient(self, j: int) -> dict[str, float]:
        """Estimate, standard error, test and confidence interval of coefficient ``j``."""
        estimate = float(self.beta[j])
        se = float(np.sqrt(self.vb[j, j]))
        statistic = estimate / se if se > 0 else np.nan
        crit = critical_value(self.level, self.ddf)
        return {
            "estimate": estimate,
            "se": se,
            "statistic": statistic,
            "pval": float(two_sided_p(np.array(statistic), self.ddf)),
            "ci_lb": estimate - crit * se,
            "ci_ub": estimate + crit * se,
        }


def refit(
    y: np.ndarray,
    v: np.ndarray,
    X: np.ndarray,
    *,
    method: str = "REML",
    test: str = "z",
    level: float = 0.95,
    studies: np.ndarray | None = None,
    start: np.ndarray | None = None,
    names: Sequence[str] | None = None,
    rho: float | None = None,
    fix_sigma2: Mapping[str, float] | None = None,
) -> Refit:
    """Fit the two-level (``studies=None``) or three-level model to arrays.

    The estimators, tests and heterogeneity statistics are those of :func:`alliance_core.fit`
    (and metafor's ``rma.uni`` / ``rma.mv``); only the table work is skipped. ``studies``
    labels the study of each row. ``start`` optionally starts the ML/REML iterations of the
    variance components elsewhere than metafor's starting values (e.g. at the full model's
    estimates, which a leave-one-out refit is close to); the maximum found is the same.
    ``rho`` and ``fix_sigma2`` (three-level only) are those of :func:`alliance_core.fit`: the
    CHE sampling correlation and variance components held fixed.
    Raises AnalysisError when the model cannot be estimated on these rows.
    """
    method = "EE" if method == "FE" else method
    offered = THREE_LEVEL_METHODS if studies is not None else TWO_LEVEL_METHODS
    if method not in offered:
        raise AnalysisError(f"Unknown estimator '{method}'; choose one of {', '.join(offered)}.")
    k, p = X.shape
    if k <= p:
        raise AnalysisError(
            f"{k} effect size(s) for {p} coefficient(s): too few to estimate the model."
        )
    names = tuple(names) if names is not None else tuple(f"column {j + 1}" for j in range(p))
    check_full_rank(X, names, {})
    if studies is None:
        if rho is not None or fix_sigma2:
            raise AnalysisError("rho and fix_sigma2 need a study column (three-level model).")
        return _refit_two_level(y, v, X, method, test, level, start)
    if rho is not None or fix_sigma2:
        return _refit_dependent(y, v, X, studies, method, test, level, start, rho, fix_sigma2)
    return _refit_three_level(y, v, X, studies, method, test, level, start)


def tau2_estimate(
    y: np.ndarray, v: np.ndarray, X: np.ndarray, method: str, start: float | None = None
) -> float:
    """tau2 by metafor's ``rma.uni`` estimators (EE, DL, HE, SJ, PM, ML, REML)."""
    if method == "EE":
        return 0.0
    if method == "DL":
        return qe.tau2_dersimonian_laird(y, v, X)
    if method == "HE":
        return qe.tau2_hedges(y, v, X)
    if method == "SJ":
        return qe.tau2_sidik_jonkman(y, v, X)[0]
    if method == "PM":
        return qe.tau2_paule_mandel(y, v, X)
    # ML / REML start, like metafor, from the Hedges estimate unless told otherwise.
    theta0 = qe.tau2_hedges(y, v, X) if start is None else float(start)
    result = est.maximise_likelihood(
        y,
        X,
        v,
        None,
        np.array([theta0]),
        reml=(method == "REML"),
        logdet_XtX=est.logdet_crossprod(X),
    )
    return float(result.theta[0])


def _test_scaling(
    gls: est.GLSFit, k: int, p: int, test: str
) -> tuple[np.ndarray, int | None, float]:
    """vb, denominator df and the Knapp-Hartung factor s2w (1 unless ``test="knha"``)."""
    if test == "z":
        return gls.vb, None, 1.0
    if test == "knha":
        s2w = gls.rss / (k - p) if gls.rss > np.finfo(float).eps else 0.0
        return gls.vb * s2w, k - p, s2w
    return gls.vb, k - p, 1.0


def _fixed_effects_q(y, v, X) -> tuple[float, float, float]:
    """QE, its p-value and metafor's typical sampling variance vt = (k - p) / tr(P)."""
    k, p = X.shape
    q, tr_p = qe.weighted_residual_q(y, X, 1.0 / v)
    q = max(0.0, q)
    return q, float(special.chdtrc(k - p, q)), (k - p) / tr_p if tr_p > 0 else 0.0


def _refit_two_level(y, v, X, method, test, level, start) -> Refit:
    k, p = X.shape
    tau2 = tau2_estimate(y, v, X, method, None if start is None else float(np.ravel(start)[0]))
    gls = est.gls(y, X, est.NestedCovariance(v, None, 0.0, tau2))
    vb, ddf, s2w = _test_scaling(gls, k, p, test)
    QE, QE_pval, vt = _fixed_effects_q(y, v, X)
    if method == "EE":
        I2 = max(0.0, 100.0 * (QE - (k - p)) / QE) if QE > 0 else 0.0
        H2 = QE / (k - p)
    else:
        I2 = 100.0 * tau2 / (vt + tau2)
        H2 = tau2 / vt + 1.0
    return Refit(gls.beta, vb, ddf, level, k, k, np.array([tau2]), s2w, QE, QE_pval, I2, H2)


def _refit_three_level(y, v, X, studies, method, test, level, start) -> Refit:
    k, p = X.shape
    order, starts, n_studies = est.study_blocks(studies)
    if n_studies < 2 or n_studies == k:
        raise AnalysisError(
            f"{n_studies} stud{'y' if n_studies == 1 else 'ies'} with {k} effect sizes: the "
            "three-level model needs two or more studies, at least one with several effect sizes."
        )
    ys, vs, Xs = y[order], v[order], X[order]
    theta0 = est.three_level_start(ys, vs, Xs) if start is None else np.asarray(start, float)
    result = est.maximise_likelihood(
        ys,
        Xs,
        vs,
        starts,
        theta0,
        reml=(method == "REML"),
        logdet_XtX=est.logdet_crossprod(Xs),
    )
    theta = result.theta
    gls = est.gls(ys, Xs, est.NestedCovariance(vs, starts, theta[0], theta[1]))
    ddf = k - p if test == "t" else None
    QE, QE_pval, vt = _fixed_effects_q(y, v, X)
    total = float(theta.sum())
    I2 = 100.0 * total / (total + vt)
    H2 = (total + vt) / vt if vt > 0 else float("nan")
    return Refit(gls.beta, gls.vb, ddf, level, k, n_studies, theta, 1.0, QE, QE_pval, I2, H2)


def _refit_dependent(y, v, X, studies, method, test, level, start, rho, fix_sigma2) -> Refit:
    """The three-level refit under the CHE working model and/or fixed components."""
    k, p = X.shape
    order, starts, n_studies = est.study_blocks(studies)
    if n_studies < 2 or (n_studies == k and not fix_sigma2):
        raise AnalysisError(
            f"{n_studies} stud{'y' if n_studies == 1 else 'ies'} with {k} effect sizes: the "
            "three-level model needs two or more studies, at least one with several effect sizes."
        )
    ys, vs, Xs = y[order], v[order], X[order]
    rho_value = rho or 0.0
    theta, _ = estimate_dependent_sigma2(
        ys, vs, Xs, starts, rho_value, method, est.logdet_crossprod(Xs), fix_sigma2, start=start
    )
    gls = est.gls(ys, Xs, che.CheCovariance(vs, starts, theta[0], theta[1], rho_value))
    ddf = k - p if test == "t" else None
    summary = che.fixed_effects_summary(ys, Xs, vs, starts, rho_value)
    QE = summary.QE
    QE_pval = float(special.chdtrc(k - p, QE)) if k > p else 1.0
    vt = summary.typical_variance
    total = float(theta.sum())
    I2 = 100.0 * total / (total + vt)
    H2 = (total + vt) / vt if vt > 0 else float("nan")
    return Refit(gls.beta, gls.vb, ddf, level, k, n_studies, theta, 1.0, QE, QE_pval, I2, H2)


# -- helpers shared by the analyses --------------------------------------------------------
class ModelRefits:
    """Refits of one fitted model to subsets of its rows (same estimator, test, level, coding).

    The study of each row is coded once, so that each refit does only the fitting itself.
    """

    def __init__(self, res):
        self.res = res
        self.codes = (
            pd.factorize(res.data[res.cluster].to_numpy())[0] if res.is_three_level else None
        )

    def __call__(self, keep: np.ndarray | None = None, start: np.ndarray | None = None) -> Refit:
        res, inputs = self.res, self.res.inputs
        keep = slice(None) if keep is None else keep
        return refit(
            inputs.y[keep],
            inputs.v[keep],
            inputs.X[keep],
            method=res.method,
            test=res.test,
            level=res.level,
            studies=None if self.codes is None else self.codes[keep],
            start=start,
            names=res.design.names,
            rho=res.rho,
            fix_sigma2=res.fix_sigma2,
        )


def variance_components(res) -> np.ndarray:
    """(tau2,) or (sigma2_study, sigma2_es) of a fitted model, e.g. to warm-start refits."""
    return res.sigma2.to_numpy(float) if res.is_three_level else np.array([float(res.tau2)])
