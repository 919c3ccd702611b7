"""Influence diagnostics of a fitted model (metafor ``influence``, ``hatvalues``, ``rstandard``,
``cooks.distance``): which study or effect size moves the result, and by how much.

Two-level models get metafor's full set (studentised deleted residuals, DFFITS, Cook's
distance, covariance ratio, leave-one-out tau², QE, hat values, DFBETAS) with its rule for
"influential"; three-level models get hat values, standardised residuals and Cook's distances
per study. CHE fits (rho > 0) are refused with a message: their case deletion is not metafor's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from alliance_core.analyses.sensitivity import SINGULAR, analysis_units, plural
from alliance_core.errors import AnalysisError
from alliance_core.model import estimation as est
from alliance_core.model.components import BLAS
from alliance_core.model.refitting import ModelRefits, variance_components
from alliance_core.model.results import MetaResult


# -- influence diagnostics -----------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class InfluenceDiagnostics:
    """Case diagnostics of a fitted model (metafor ``influence`` / ``rma.mv`` methods).

    Two-level: ``effect_sizes`` has metafor's ``influence(fit)`` columns, ``rstudent``,
    ``dffits``, ``cook_d``, ``cov_r``, ``tau2_del``, ``QE_del``, ``hat``, ``weight`` (percent),
    ``dfbs_<coefficient>`` for each coefficient, and ``influential`` (metafor's ``is.infl``:
    |DFFITS| > 3 sqrt(p / (k - p)), or P(chi2_p <= Cook's D) > .5, or hat > 3 p / k, or some
    |DFBETAS| > 1); ``studies`` is None.

    Three-level: ``effect_sizes`` has ``study``, the standardized residuals of
    ``rstandard(fit)`` (``resid``, ``se``, ``z``; se from the diagonal of (I - H) M (I - H)'),
    ``hat`` (diagonal of H = X (X'M^-1 X)^-1 X'M^-1) and ``weight``; ``studies`` has ``k``,
    ``X2`` (``rstandard(fit, cluster=study)``: e_i' Var(e_i)^-1 e_i over the study's
    residuals), ``cook_d`` (``cooks.distance(fit, cluster=study)``: the change in all
    coefficients when the study is left out, in the metric of the full model's vb) and
    ``influential`` (the Cook's distance part of metafor's two-level rule; metafor flags no
    cases for rma.mv fits).
    """

    model: str
    effect_sizes: pd.DataFrame
    studies: pd.DataFrame | None
    p: int

    def describe(self) -> str:
        if self.studies is None:
            flagged = self.effect_sizes.index[self.effect_sizes["influential"]]
            unit, total = "effect size", len(self.effect_sizes)
        else:
            flagged = self.studies.index[self.studies["influential"]]
            unit, total = "study", len(self.studies)
        names = ", ".join(map(str, flagged[:8])) + (", ..." if len(flagged) > 8 else "")
        found = (
            f"{len(flagged)} of {total} {plural(unit)} "
            f"{'is' if len(flagged) == 1 else 'are'} flagged as influential"
            + (f" ({names})." if len(flagged) else ".")
        )
        rule = (
            "metafor's rule (large DFFITS, Cook's distance, hat value or DFBETAS)"
            if self.studies is None
            else "a Cook's distance beyond the median of a chi-square on p degrees of freedom"
        )
        return (
            "Influence diagnostics show how much each "
            f"{unit} pulls the results: how far it lies from the fit without it, and how much "
            f"the coefficients move when it is left out. Using {rule}, {found} "
            "Influential is not the same as wrong: such a case deserves a second look at its "
            "coding and a sensitivity analysis without it, not automatic removal."
        )


def influence_diagnostics(res: MetaResult) -> InfluenceDiagnostics:
    """metafor's ``influence(fit)`` (two-level) or its ``rma.mv`` diagnostics (three-level)."""
    if res.rho is not None or res.fix_sigma2:
        raise AnalysisError(
            "Influence diagnostics are not available yet for models with a within-study sampling "
            "correlation (rho) or fixed variance components; leave-one-out and cumulative "
            "analyses are."
        )
    with BLAS.limit(limits=1, user_api="blas"):
        if res.is_three_level:
            return _three_level_influence(res)
        return _two_level_influence(res)


def _two_level_influence(res: MetaResult) -> InfluenceDiagnostics:
    inputs = res.inputs
    y, v, X = inputs.y, inputs.v, inputs.X
    k, p = X.shape
    tau2 = float(res.tau2)
    hat = _hat_two_level(v, X, tau2)
    pred_full = X @ res.beta
    vb_inv = np.linalg.inv(res.vb)
    det_vb = np.linalg.det(res.vb)
    columns = {
        name: np.full(k, np.nan)
        for name in ("rstudent", "dffits", "cook_d", "cov_r", "tau2_del", "QE_del")
    }
    dfbs = np.full((k, p), np.nan)
    start = variance_components(res)
    refits = ModelRefits(res)
    for i in range(k):
        keep = np.arange(k) != i
        try:
            fitted = refits(keep, start=start)
        except AnalysisError:
            continue  # metafor leaves the row empty (NA) when a refit fails
        tau2_del, s2w = float(fitted.theta[0]), fitted.s2w
        x_i = X[i]
        delpred = float(x_i @ fitted.beta)
        resid = y[i] - delpred
        if abs(resid) < 100 * np.finfo(float).eps:
            resid = 0.0
        se_resid = np.sqrt(v[i] * s2w + x_i @ fitted.vb @ x_i + tau2_del * s2w)
        columns["rstudent"][i] = resid / se_resid
        columns["dffits"][i] = (pred_full[i] - delpred) / np.sqrt(s2w * hat[i] * (tau2_del + v[i]))
        # DFBETAS scale by the full data's (X'WX)^-1 at the left-out fit's tau2 (metafor).
        w_del = 1.0 / (v + tau2_del)
        vb_del_all = np.linalg.inv(X.T @ (X * w_del[:, None]))
        dfb = res.beta - fitted.beta
        dfbs[i] = dfb / np.sqrt(s2w * np.diag(vb_del_all))
        columns["cook_d"][i] = float(dfb @ vb_inv @ dfb)
        columns["cov_r"][i] = np.linalg.det(fitted.vb) / det_vb
        columns["tau2_del"][i] = tau2_del
        columns["QE_del"][i] = fitted.QE

    table = pd.DataFrame(columns, index=res.data.index)
    table["hat"] = hat
    table["weight"] = res.weights.to_numpy()
    for j, name in enumerate(res.design.names):
        table[f"dfbs_{name}"] = dfbs[:, j]
    table["influential"] = _metafor_is_influential(table, dfbs, k, p)
    return InfluenceDiagnostics(model=res.model, effect_sizes=table, studies=None, p=p)


def _hat_two_level(v: np.ndarray, X: np.ndarray, tau2: float) -> np.ndarray:
    """Diagonal of H = X (X'WX)^-1 X'W, W = diag(1/(vi + tau2)); 1 where it rounds to 1."""
    w = 1.0 / (v + tau2)
    A_inv = np.linalg.inv(X.T @ (X * w[:, None]))
    hat = w * np.einsum("ij,jk,ik->i", X, A_inv, X)
    return np.where(hat > 1.0 - 10.0 * np.finfo(float).eps, 1.0, hat)


def _metafor_is_influential(table: pd.DataFrame, dfbs: np.ndarray, k: int, p: int) -> np.ndarray:
    """metafor's ``is.infl`` (influence.rma.uni): any one of four cut-offs exceeded."""
    with np.errstate(invalid="ignore"):
        flags = (
            (np.abs(table["dffits"].to_numpy()) > 3.0 * np.sqrt(p / (k - p)))
            | (special.chdtr(p, table["cook_d"].to_numpy()) > 0.5)
            | (table["hat"].to_numpy() > 3.0 * p / k)
            | (np.abs(dfbs) > 1.0).any(axis=1)
        )
    return np.asarray(flags, dtype=bool)


def _three_level_influence(res: MetaResult) -> InfluenceDiagnostics:
    inputs = res.inputs
    order, starts = inputs.order, inputs.starts
    y, v, X = inputs.y[order], inputs.v[order], inputs.X[order]
    s_study, s_es = (float(s) for s in res.sigma2)
    cov = est.NestedCovariance(v, starts, s_study, s_es)
    G = cov.solve(X)  # M^-1 X
    vb = np.linalg.inv(X.T @ G)  # (X'M^-1 X)^-1, never scaled in rma.mv
    hat = np.einsum("ij,jk,ik->i", X, vb, G)
    hat = np.where(hat > 1.0 - 10.0 * np.finfo(float).eps, 1.0, hat)
    resid = y - X @ res.beta
    resid[np.abs(resid) < 100 * np.finfo(float).eps] = 0.0
    # Var(e) = (I - H) M (I - H)' = M - X vb X' (H M = X vb X' is symmetric).
    xvx = np.einsum("ij,jk,ik->i", X, vb, X)
    se = np.sqrt(v + s_study + s_es - xvx)

    unsorted = np.empty_like(order)
    unsorted[order] = np.arange(len(order))
    study = res.data[res.cluster]
    effect_sizes = pd.DataFrame(
        {
            "study": study.to_numpy(),
            "resid": resid[unsorted],
            "se": se[unsorted],
            "z": (resid / se)[unsorted],
            "hat": hat[unsorted],
            "weight": res.weights.to_numpy(),
        },
        index=res.data.index,
    )
    studies = _study_diagnostics(res, X, v, resid, vb, starts, s_study, s_es)
    return InfluenceDiagnostics(
        model=res.model, effect_sizes=effect_sizes, studies=studies, p=res.p
    )


def _study_diagnostics(res, X, v, resid, vb, starts, s_study, s_es) -> pd.DataFrame:
    """Per study: X2 of its residuals (rstandard, cluster) and Cook's distance (refit)."""
    ends = np.append(starts[1:], len(v))
    sorted_labels = res.data[res.cluster].to_numpy()[res.inputs.order]
    labels, sizes, x2 = [], [], []
    for begin, end in zip(starts, ends, strict=True):
        Xs, e = X[begin:end], resid[begin:end]
        ve = s_study + np.diag(v[begin:end] + s_es) - Xs @ vb @ Xs.T
        # A study whose residuals are tied by the fit (e.g. the only study at a moderator
        # level) has a singular residual covariance and no X2; metafor skips it. Its smallest
        # eigenvalue is then rounding noise, so the test is relative (metafor: <= machine eps).
        eigenvalues = np.linalg.eigvalsh(ve)
        if eigenvalues[0] <= SINGULAR * eigenvalues[-1]:
            x2.append(np.nan)
        else:
            x2.append(float(e @ np.linalg.solve(ve, e)))
        labels.append(sorted_labels[begin])
        sizes.append(end - begin)
    table = pd.DataFrame({"k": sizes, "X2": x2}, index=pd.Index(labels, name="study"))
    index, masks = analysis_units(res)
    table = table.loc[index]
    table.index.name = "study"
    table["cook_d"] = _cooks_distances(res, masks)
    table["influential"] = special.chdtr(res.p, table["cook_d"].to_numpy()) > 0.5
    return table


def _cooks_distances(res: MetaResult, masks: list[np.ndarray]) -> np.ndarray:
    """(b - b_(i))' vb^-1 (b - b_(i)) for each left-out unit; refits start at the full fit."""
    vb_inv = np.linalg.inv(res.vb)
    start = variance_components(res)
    refits = ModelRefits(res)
    out = np.full(len(masks), np.nan)
    for i, keep in enumerate(masks):
        try:
            fitted = refits(keep, start=start)
        except AnalysisError:
            continue
        dfb = res.beta - fitted.beta
        out[i] = float(dfb @ vb_inv @ dfb)
    return out
