"""Linear contrasts c'b under cluster-robust inference, each with its own degrees of freedom.

A prediction at moderator values x is the contrast c = x; a change between two PTR values is
c = x(to) - x(from). Under CR2 each contrast is tested on its own Satterthwaite df, as
clubSandwich's ``linear_contrast(fit, vcov = "CR2", contrasts = C)`` and metafor's
``predict(robust(fit, cluster, clubSandwich = TRUE), newmods)`` do; borrowing a coefficient's
df (e.g. the smallest) gives a different, and usually wrong, interval. CR1 (metafor's
``robust(adjust = TRUE)``) keeps df = clusters - coefficients for every contrast.

Satterthwaite df of c'b (Pustejovsky & Tipton 2018, J Bus Econ Stat 36, 672-683, eq. 11;
Bell & McCaffrey 2002), from the per-cluster pieces of
:class:`~alliance_core.model.robust_variance.RobustCore` with g_j = c'K_j c and h_j = c'H_j:

    df = E^2 / V',  E = sum_j (g_j - |h_j|^2),
    V' = sum_j g_j^2 - 2 sum_j g_j |h_j|^2 + |sum_j h_j h_j'|_F^2

(the coefficient df of :meth:`RobustCore.satterthwaite_df` is the case c = e_i).

The prediction interval follows metafor's ``predict`` for robust fits: pred +/- t(df) *
sqrt(se^2 + tau2) (two-level) or sqrt(se^2 + sigma2_study + sigma2_es) (three-level), with
the contrast's own df in the t quantile and the model's variance components.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import special

from alliance_core.data.effect_sizes import transf
from alliance_core.model.design import prediction_frame

PREDICTION_COLUMNS = ("pred", "se", "df", "ci_lb", "ci_ub", "pi_lb", "pi_ub")


def contrast_df(core, C: np.ndarray) -> np.ndarray:
    """Satterthwaite df of each row c of ``C`` (contrasts x coefficients) under ``core``.

    CR2: the formula of the module docstring, batched over rows (O(J r p^2), no J x J
    matrix); CR1: clusters - coefficients for every row (metafor ``robust(adjust = TRUE)``).
    """
    C = np.atleast_2d(np.asarray(C, dtype=float))
    p = core.vcov.shape[0]
    if core.method == "CR1":
        return np.full(C.shape[0], float(core.n_clusters - p))
    g = np.einsum("ru,juv,rv->jr", C, core.K, C)  # J x r
    h = np.einsum("ru,juv->jrv", C, core.H)  # J x r x p
    hh = np.einsum("jrv,jrv->jr", h, h)
    S = np.einsum("jru,jrv->ruv", h, h)  # r x p x p
    expectation = np.sum(g - hh, axis=0)
    half_variance = (
        np.sum(g * g, axis=0) - 2.0 * np.sum(g * hh, axis=0) + np.sum(S * S, axis=(1, 2))
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        return expectation**2 / half_variance


def linear_contrast(robust, C: np.ndarray, level: float | None = None) -> pd.DataFrame:
    """clubSandwich ``linear_contrast(fit, vcov, contrasts = C)``: one row per contrast c.

    Columns: estimate c'b, se sqrt(c' V c) with V the robust covariance, df (own
    Satterthwaite df, :func:`contrast_df`), statistic (t), pval, ci_lb, ci_ub (t on df).
    """
    C = np.atleast_2d(np.asarray(C, dtype=float))
    level = robust.level if level is None else level
    estimate = C @ robust.beta
    se = np.sqrt(np.einsum("ij,jk,ik->i", C, robust.vcov, C))
    df = contrast_df(robust.core, C)
    crit = _t_quantile(df, level)
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = estimate / se
        pval = np.where(df > 0, 2.0 * special.stdtr(df, -np.abs(statistic)), np.nan)
    return pd.DataFrame(
        {
            "estimate": estimate,
            "se": se,
            "df": df,
            "statistic": statistic,
            "pval": pval,
            "ci_lb": estimate - crit * se,
            "ci_ub": estimate + crit * se,
        }
    )


def robust_predict(
    robust,
    newmods: pd.DataFrame | Mapping | Sequence[Mapping] | None = None,
    transform: str | None = None,
    fill_typical: bool = True,
) -> pd.DataFrame:
    """Predicted average effects under robust inference, each on its own df.

    metafor ``predict(robust(fit, cluster, clubSandwich = TRUE), newmods)``. ``newmods`` as
    :meth:`alliance_core.model.results.MetaResult.predict`'s ``newdata`` (moderator values; missing moderators held at
    their mean or reference level when ``fill_typical``; None: one row at typical values).
    Columns ``pred, se, df, ci_lb, ci_ub, pi_lb, pi_ub`` and the moderator values used;
    ``transform="r"`` back-transforms pred and the bounds with tanh (se then NaN, as metafor
    gives NA); None leaves the measure's scale. The PI is NaN without variance components
    (equal-effects models).
    """
    frame = prediction_frame(robust.design, newmods, fill_typical)
    X_new = robust.design.matrix(frame, what="Prediction")
    out = _prediction_table(robust, X_new, frame.index)
    if transform not in (None, "none", "z"):
        for column in ("pred", "ci_lb", "ci_ub", "pi_lb", "pi_ub"):
            out[column] = transf(out[column].to_numpy(), transform)
        out["se"] = np.nan
    for column in robust.design.moderators:
        out[column] = frame[column].to_numpy()
    return out


def _prediction_table(robust, X_new: np.ndarray, index) -> pd.DataFrame:
    contrast = linear_contrast(robust, X_new)
    pred, se, df = (contrast[c].to_numpy() for c in ("estimate", "se", "df"))
    crit = _t_quantile(df, robust.level)
    # metafor adds the model's variance components to se^2 for a new study's true effect.
    pi_se = np.sqrt(se**2 + robust.heterogeneity)
    return pd.DataFrame(
        {
            "pred": pred,
            "se": se,
            "df": df,
            "ci_lb": contrast["ci_lb"].to_numpy(),
            "ci_ub": contrast["ci_ub"].to_numpy(),
            "pi_lb": pred - crit * pi_se,
            "pi_ub": pred + crit * pi_se,
        },
        index=index,
    )


def _t_quantile(df: np.ndarray, level: float) -> np.ndarray:
    df = np.asarray(df, dtype=float)
    with np.errstate(invalid="ignore"):
        # metafor gives NA for a contrast without positive df
        return np.where(df > 0, special.stdtrit(np.where(df > 0, df, 1.0), 0.5 + level / 2), np.nan)
