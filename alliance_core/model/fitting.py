"""``fit``: two-level (metafor ``rma.uni``) and three-level (``rma.mv``, ~ 1 | study/es) models.

Every reported number follows metafor 3.8's definitions, so a table from this package lines up
row by row with the same model fitted in R; the project's tests check that against fixtures
made by metafor itself.
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
from alliance_core.model.components import (
    BLAS,
    SIGMA2_NAMES,
    estimate_dependent_sigma2,
    estimate_sigma2,
    estimate_tau2,
)
from alliance_core.model.design import (
    ModelDesign,
    build_design_matrix,
    check_full_rank,
    split_moderators,
)
from alliance_core.model.fit_inputs import (
    check_fix_sigma2,
    check_rho,
    check_settings,
    complete_rows,
    finite_numbers,
    normalise_method,
)
from alliance_core.model.location_scale import LocationScaleResult, fit_location_scale
from alliance_core.model.results import (
    MODEL_THREE_LEVEL,
    MODEL_TWO_LEVEL,
    MetaResult,
    ModelInputs,
    wald_test,
)


def fit(
    data: pd.DataFrame,
    yi: str = "yi",
    vi: str = "vi",
    moderators: Sequence[str] | None = None,
    reference: Mapping[str, object] | None = None,
    method: str = "REML",
    cluster: str | None = None,
    test: str = "z",
    level: float = 0.95,
    es_id: str | None = None,
    rho: float | None = None,
    fix_sigma2: Mapping[str, float] | None = None,
    scale: Sequence[str] | None = None,
) -> MetaResult | LocationScaleResult:
    """Fit a random/mixed-effects meta-analysis or meta-regression.

    ``cluster=None`` fits the two-level model y_i = x_i'b + u_i + e_i, u_i ~ N(0, tau2),
    e_i ~ N(0, vi) with estimator ``method`` (EE/FE, DL, HE, PM, SJ, ML, REML) and tests
    ``z`` or ``knha`` (Knapp-Hartung: t on k - p df with the variance scaled by the weighted
    residual mean square). ``cluster="study"`` fits y_ij = x_ij'b + u_i + w_ij + e_ij with
    u_i ~ N(0, sigma2_study), w_ij ~ N(0, sigma2_es) by ML or REML and tests ``z`` or ``t``
    (t on k - p df, metafor's default ``dfs="residual"``). ``es_id`` optionally names the
    effect-size column (every row is one effect size either way). ``moderators`` may name
    interactions beside their main effects, ``["log_ptr", "rater", "log_ptr:rater"]``, coded
    as metafor's ``mods = ~ log_ptr * rater`` (see :mod:`alliance_core.model.design`).

    ``rho`` (three-level only) assumes the correlated-and-hierarchical-effects (CHE) working
    model: the sampling errors of one study's effect sizes correlate with ``rho``,
    V_i[j, l] = rho sqrt(v_j v_l) (metafor ``vcalc(vi, cluster = study, obs = es, rho = rho)``,
    then ``rma.mv(yi, V, random = ~ 1 | study/es)``); ``None`` keeps independent sampling
    errors. With a V matrix, QE is r' V^-1 r at the fixed-effects fit (metafor rma.mv), and I2
    uses the typical sampling variance (k - p) / tr(P) with P built from W = V^-1 (metafor's
    "I^2 for multilevel and multivariate models", which reduces to W = diag(1/vi) when
    rho is None or 0). ``fix_sigma2`` (three-level only) holds components at given values,
    e.g. ``{"es": 0}`` (metafor ``sigma2 = c(NA, 0)``); fixed components do not count as
    parameters in AIC/BIC or likelihood-ratio tests.

    ``scale`` (two-level, ML or REML, z tests) names moderators of the heterogeneity: the
    location-scale model log tau2_i = z_i'alpha (metafor ``rma(yi, vi, mods = ~ ...,
    scale = ~ ...)``), returned as a
    :class:`~alliance_core.model.location_scale.LocationScaleResult`.

    Rows with a missing value in any used column are left out and listed in ``result.dropped``.
    """
    with BLAS.limit(limits=1, user_api="blas"):
        return _fit(
            data,
            yi,
            vi,
            moderators,
            reference,
            method,
            cluster,
            test,
            level,
            rho,
            fix_sigma2,
            scale,
        )


def _fit(
    data,
    yi,
    vi,
    moderators,
    reference,
    method,
    cluster,
    test,
    level,
    rho=None,
    fix_sigma2=None,
    scale=None,
) -> MetaResult | LocationScaleResult:
    method = normalise_method(method)
    model = MODEL_TWO_LEVEL if cluster is None else MODEL_THREE_LEVEL
    check_settings(model, method, test, level)
    rho = check_rho(rho, cluster)
    fixed = check_fix_sigma2(fix_sigma2, cluster)
    moderators = list(moderators or [])
    # Interactions ("a:b") are built from their parts' columns.
    columns = split_moderators(moderators, data.columns)[0]
    scale = list(scale or [])
    if scale and (cluster is not None or rho is not None):
        raise AnalysisError(
            "Moderators of the heterogeneity (scale) are available for the two-level model "
            "(also on aggregated data), not for the three-level or CHE model."
        )
    scale_columns = split_moderators(scale, data.columns)[0]
    used_columns = [yi, vi, *([cluster] if cluster else []), *columns, *scale_columns]
    for column in used_columns:
        if column not in data.columns:
            raise AnalysisError(
                f"Column '{column}' is not in the data (columns: {', '.join(map(str, data.columns))})."
            )

    complete, dropped = complete_rows(data, used_columns)
    y = finite_numbers(complete, yi, "effect size")
    v = finite_numbers(complete, vi, "sampling variance")
    nonpositive = v <= 0
    if nonpositive.any():
        row = complete.index[np.argmax(nonpositive)]
        raise AnalysisError(
            f"Row {row}, column '{vi}': sampling variance {v[np.argmax(nonpositive)]:g} must be "
            "positive."
        )

    design, X = build_design_matrix(complete, moderators, reference)
    k, p = X.shape
    if k <= p:
        raise AnalysisError(
            f"{k} effect size(s) for {p} coefficient(s): the model needs more effect sizes than "
            "coefficients. Remove moderators or add data."
        )
    moderator_of = {label: term.column for term in design.terms for label in term.labels}
    check_full_rank(X, design.names, moderator_of)

    frame = complete.copy()
    frame["yi"] = y
    frame["vi"] = v
    if scale:
        # A moderator in both parts keeps its reference level (one factor, as in R).
        scale_reference = {c: r for c, r in (reference or {}).items() if c in scale_columns}
        scale_design, Z = build_design_matrix(complete, scale, reference=scale_reference)
        check_full_rank(
            Z, scale_design.names, {lab: t.column for t in scale_design.terms for lab in t.labels}
        )
        if method not in ("ML", "REML"):
            raise AnalysisError(
                f"The location-scale model is estimated by ML or REML, not '{method}'."
            )
        reduced = _fit_two_level(frame, y, v, X, design, method, "z", level, dropped, yi, vi)
        return fit_location_scale(
            frame, y, v, X, design, Z, scale_design, method, test, level, dropped, reduced.loglik
        )
    if model == MODEL_TWO_LEVEL:
        return _fit_two_level(frame, y, v, X, design, method, test, level, dropped, yi, vi)
    if rho is None and fixed is None:
        return _fit_three_level(
            frame, y, v, X, design, method, test, level, dropped, yi, vi, cluster
        )
    return _fit_dependent(
        frame, y, v, X, design, method, test, level, dropped, yi, vi, cluster, rho, fixed
    )


# -- shared pieces of both models ---------------------------------------------------------
# scipy.special's distribution functions are what scipy.stats evaluates underneath, without
# the per-call overhead that would dominate a fit that takes a few milliseconds.
def two_sided_p(statistic: np.ndarray, ddf: int | None) -> np.ndarray:
    """Two-sided p-value of a z (ddf None) or t statistic."""
    if ddf is None:
        return 2.0 * special.ndtr(-np.abs(statistic))
    return 2.0 * special.stdtr(ddf, -np.abs(statistic))


def critical_value(level: float, ddf: int | None) -> float:
    """Two-sided critical value of the standard normal (ddf None) or t distribution."""
    upper = 1.0 - (1.0 - level) / 2.0
    if ddf is None:
        return float(special.ndtri(upper))
    return float(special.stdtrit(ddf, upper))


def _fixed_effects_q(y: np.ndarray, v: np.ndarray, X: np.ndarray) -> tuple[float, float]:
    """QE = sum (y - X b_FE)^2 / vi and tr(P) at the fixed-effects weights 1/vi."""
    k, p = X.shape
    if k <= p:
        return 0.0, 0.0
    q, tr_p = qe.weighted_residual_q(y, X, 1.0 / v)
    return max(0.0, q), tr_p


def _coefficient_table(
    names: Sequence[str], beta: np.ndarray, vb: np.ndarray, ddf: int | None, level: float
) -> pd.DataFrame:
    se = np.sqrt(np.diag(vb))
    statistic = beta / se
    pval = two_sided_p(statistic, ddf)
    crit = critical_value(level, ddf)
    return pd.DataFrame(
        {
            "estimate": beta,
            "se": se,
            "statistic": statistic,
            "pval": pval,
            "ci_lb": beta - crit * se,
            "ci_ub": beta + crit * se,
        },
        index=pd.Index(names, name="term"),
    )


def _omnibus(
    beta: np.ndarray, vb: np.ndarray, design: ModelDesign, ddf: int | None
) -> tuple[float | None, int | None, int | None, float | None]:
    if beta.size == 1:
        return None, None, None, None
    result = wald_test(beta, vb, range(1, beta.size), design.names, ddf)
    return result.statistic, result.df, result.df2, result.pval


def _fit_statistics(
    loglik_ml: float,
    loglik_reml: float,
    y: np.ndarray,
    v: np.ndarray,
    k: int,
    p: int,
    parms: int,
    reml: bool,
    logdet_V: float | None = None,
) -> dict[str, float]:
    """metafor's fit statistics for the method's own likelihood (``fitstats(fit)``).

    The ML deviance is -2 (ll - ll_saturated), ll_saturated = -k/2 log(2 pi) - 1/2 log|V|
    (``logdet_V``; by default V = diag(v))."""
    if reml:
        ll = loglik_reml
        deviance = -2.0 * ll
        n_eff = k - p
    else:
        ll = loglik_ml
        if logdet_V is None:
            saturated = -0.5 * float(np.sum(np.log(2.0 * np.pi * v)))
        else:
            saturated = -0.5 * (k * est.LOG_2PI + logdet_V)
        deviance = -2.0 * (ll - saturated) if k > p else 0.0
        n_eff = k
    aic = -2.0 * ll + 2.0 * parms
    bic = -2.0 * ll + parms * np.log(n_eff)
    denominator = max(n_eff, parms + 2)
    aicc = -2.0 * ll + 2.0 * parms * denominator / (denominator - parms - 1)
    return {"loglik": ll, "deviance": deviance, "aic": aic, "bic": bic, "aicc": aicc}


def _weights_series(values: np.ndarray, index: pd.Index) -> pd.Series:
    return pd.Series(100.0 * values / values.sum(), index=index, name="weight")


def _fit_two_level(
    frame, y, v, X, design, method, test, level, dropped, yi_col, vi_col
) -> MetaResult:
    k, p = X.shape
    logdet_xtx = est.logdet_crossprod(X)
    tau2, tau2_se, iterations = estimate_tau2(y, v, X, method, logdet_xtx)
    cov = est.NestedCovariance(v, None, 0.0, tau2)
    gls = est.gls(y, X, cov)
    vb = gls.vb
    ddf = None
    if test in ("knha", "t"):
        ddf = k - p
        if test == "knha":
            if gls.rss <= np.finfo(float).eps:
                # metafor sets the scale to 0 here, so every SE is 0 and every interval has
                # zero width: a degenerate result no one should read as certainty.
                raise AnalysisError(
                    "Knapp–Hartung tests are not available for these data: the model fits "
                    "every effect size exactly (weighted residual sum of squares 0), so its "
                    "variance scale is 0 and every interval would have zero width. Use z tests."
                )
            vb = vb * (gls.rss / (k - p))
    QE, tr_p_fe = _fixed_effects_q(y, v, X)
    QE_pval = float(special.chdtrc(k - p, QE)) if k > p else 1.0
    vt = (k - p) / tr_p_fe if tr_p_fe > 0 else 0.0
    if method == "EE":
        I2 = max(0.0, 100.0 * (QE - (k - p)) / QE) if QE > 0 else 0.0
        H2 = QE / (k - p)
    else:
        # With no typical sampling variance (vt = 0) the shares are undefined, not an error.
        I2 = 100.0 * tau2 / (vt + tau2) if vt + tau2 > 0 else float("nan")
        H2 = tau2 / vt + 1.0 if vt > 0 else float("nan")
    QM, QM_df, QM_df2, QM_pval = _omnibus(gls.beta, vb, design, ddf)

    loglik_ml = est.log_likelihood(gls, k, p, reml=False, logdet_XtX=logdet_xtx)
    loglik_reml = est.log_likelihood(gls, k, p, reml=True, logdet_XtX=logdet_xtx)
    parms = p + (0 if method == "EE" else 1)
    fit_stats = _fit_statistics(loglik_ml, loglik_reml, y, v, k, p, parms, reml=(method == "REML"))

    return MetaResult(
        model=MODEL_TWO_LEVEL,
        method=method,
        test=test,
        level=level,
        k=k,
        p=p,
        n_studies=k,
        design=design,
        coefficients=_coefficient_table(design.names, gls.beta, vb, ddf, level),
        beta=gls.beta,
        vb=vb,
        ddf=ddf,
        tau2=tau2,
        tau2_se=tau2_se if method != "EE" else None,
        sigma2=None,
        QE=QE,
        QE_df=k - p,
        QE_pval=QE_pval,
        QM=QM,
        QM_df=QM_df,
        QM_df2=QM_df2,
        QM_pval=QM_pval,
        I2=I2,
        I2_levels=None,
        H2=H2,
        weights=_weights_series(1.0 / (v + tau2), frame.index),
        data=frame,
        dropped=dropped,
        yi_column=yi_col,
        vi_column=vi_col,
        cluster=None,
        iterations=iterations,
        inputs=ModelInputs(y=y, v=v, X=X, typical_variance=vt),
        **fit_stats,
    )


@dataclass(frozen=True)
class _Multilevel:
    """What a three-level fit (independent or correlated sampling errors) was given; its
    rows sorted by study are ``order``, and study j starts at row ``starts[j]``."""

    frame: pd.DataFrame
    y: np.ndarray
    v: np.ndarray
    X: np.ndarray
    design: ModelDesign
    method: str
    test: str
    level: float
    dropped: pd.DataFrame
    yi_col: str
    vi_col: str
    cluster: str
    order: np.ndarray
    starts: np.ndarray

    def result(
        self,
        theta: np.ndarray,
        iterations: int,
        cov,
        *,
        QE: float,
        typical_variance: float,
        logdet_xtx: float,
        parms: int,
        logdet_V: float | None = None,
        rho: float | None = None,
        fixed: Mapping[str, float] | None = None,
    ) -> MetaResult:
        """The MetaResult at the estimated components ``theta`` with marginal covariance
        ``cov`` (of the sorted rows): GLS coefficients, heterogeneity, tests, fit statistics."""
        y, v, X, design, order = self.y, self.v, self.X, self.design, self.order
        k, p = X.shape
        gls = est.gls(y[order], X[order], cov)
        vb = gls.vb
        ddf = k - p if self.test == "t" else None
        vt = typical_variance
        total = float(theta.sum())
        denominator = total + vt if total + vt > 0 else float("nan")
        QM, QM_df, QM_df2, QM_pval = _omnibus(gls.beta, vb, design, ddf)
        reml = self.method == "REML"
        loglik_ml = est.log_likelihood(gls, k, p, reml=False, logdet_XtX=logdet_xtx)
        loglik_reml = est.log_likelihood(gls, k, p, reml=True, logdet_XtX=logdet_xtx)
        fit_stats = _fit_statistics(
            loglik_ml, loglik_reml, y, v, k, p, parms, reml=reml, logdet_V=logdet_V
        )
        weights = np.empty(k)
        weights[order] = cov.inverse_diagonal()
        return MetaResult(
            model=MODEL_THREE_LEVEL,
            method=self.method,
            test=self.test,
            level=self.level,
            k=k,
            p=p,
            n_studies=len(self.starts),
            design=design,
            coefficients=_coefficient_table(design.names, gls.beta, vb, ddf, self.level),
            beta=gls.beta,
            vb=vb,
            ddf=ddf,
            tau2=None,
            tau2_se=None,
            sigma2=pd.Series(theta, index=list(SIGMA2_NAMES), name="sigma2"),
            QE=QE,
            QE_df=k - p,
            QE_pval=float(special.chdtrc(k - p, QE)) if k > p else 1.0,
            QM=QM,
            QM_df=QM_df,
            QM_df2=QM_df2,
            QM_pval=QM_pval,
            I2=100.0 * total / denominator,
            I2_levels=pd.Series(100.0 * theta / denominator, index=list(SIGMA2_NAMES), name="I2"),
            H2=(total + vt) / vt if vt > 0 else float("nan"),
            weights=_weights_series(weights, self.frame.index),
            data=self.frame,
            dropped=self.dropped,
            yi_column=self.yi_col,
            vi_column=self.vi_col,
            cluster=self.cluster,
            iterations=iterations,
            inputs=ModelInputs(y=y, v=v, X=X, typical_variance=vt, order=order, starts=self.starts),
            rho=rho,
            fix_sigma2=dict(fixed) if fixed else None,
            **fit_stats,
        )


def _fit_three_level(
    frame, y, v, X, design, method, test, level, dropped, yi_col, vi_col, cluster
) -> MetaResult:
    k, p = X.shape
    order, starts, n_studies = est.study_blocks(frame[cluster].to_numpy())
    if n_studies < 2:
        raise AnalysisError(
            f"Column '{cluster}' names a single study; the three-level model needs effect sizes from "
            "two or more studies. Use the two-level model instead."
        )
    if n_studies == k:
        raise AnalysisError(
            f"Every study in '{cluster}' has exactly one effect size, so variation between studies "
            "and between effect sizes within studies cannot be told apart. Use the two-level model."
        )
    ys, vs, Xs = y[order], v[order], X[order]
    logdet_xtx = est.logdet_crossprod(X)
    theta, iterations = estimate_sigma2(ys, vs, Xs, starts, method, logdet_xtx)
    cov = est.NestedCovariance(vs, starts, theta[0], theta[1])
    QE, tr_p_fe = _fixed_effects_q(y, v, X)
    fitted = _Multilevel(
        frame, y, v, X, design, method, test, level, dropped, yi_col, vi_col, cluster, order, starts
    )
    return fitted.result(
        theta,
        iterations,
        cov,
        QE=QE,
        typical_variance=(k - p) / tr_p_fe if tr_p_fe > 0 else 0.0,
        logdet_xtx=logdet_xtx,
        parms=p + 2,
    )


def _fit_dependent(
    frame, y, v, X, design, method, test, level, dropped, yi_col, vi_col, cluster, rho, fixed
) -> MetaResult:
    k, p = X.shape
    order, starts, n_studies = est.study_blocks(frame[cluster].to_numpy())
    if n_studies < 2:
        raise AnalysisError(
            f"Column '{cluster}' names a single study; the three-level model needs effect sizes from "
            "two or more studies. Use the two-level model instead."
        )
    if n_studies == k and not fixed:
        raise AnalysisError(
            f"Every study in '{cluster}' has exactly one effect size, so variation between studies "
            "and between effect sizes within studies cannot be told apart. Use the two-level model "
            "or hold one component fixed (fix_sigma2)."
        )
    rho_value = 0.0 if rho is None else rho
    ys, vs, Xs = y[order], v[order], X[order]
    logdet_xtx = est.logdet_crossprod(X)
    summary = che.fixed_effects_summary(ys, Xs, vs, starts, rho_value)
    theta, iterations = estimate_dependent_sigma2(
        ys,
        vs,
        Xs,
        starts,
        rho_value,
        method,
        logdet_xtx,
        fixed,
        start=che.start_from_residuals(summary.residuals, vs),
    )
    cov = che.CheCovariance(vs, starts, theta[0], theta[1], rho_value)
    fitted = _Multilevel(
        frame, y, v, X, design, method, test, level, dropped, yi_col, vi_col, cluster, order, starts
    )
    return fitted.result(
        theta,
        iterations,
        cov,
        QE=summary.QE,
        typical_variance=summary.typical_variance,
        logdet_xtx=logdet_xtx,
        parms=p + 2 - len(fixed or {}),
        logdet_V=summary.logdet_V,
        rho=rho,
        fixed=fixed,
    )
