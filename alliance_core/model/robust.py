"""Cluster-robust inference on a fitted model (RVE): metafor's ``robust()``, with CR2 as
clubSandwich computes it.

:func:`robust` builds each cluster's working covariance block from a fitted
:class:`~alliance_core.MetaResult` (:func:`marginal_blocks`) and :func:`robust_from_blocks`
turns the array-level core of :mod:`alliance_core.model.robust_variance` (CR2/CR1 variance,
Satterthwaite df, HTZ tests; the formulas are in its docstring) into a :class:`RobustResult`:
coefficient table, omnibus test, reliability warnings, summary, predictions and Wald tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special
from threadpoolctl import ThreadpoolController

from alliance_core.errors import AnalysisError
from alliance_core.formatting import format_p_console
from alliance_core.model.robust_contrasts import robust_predict
from alliance_core.model.robust_variance import (
    METHODS,
    ClusterBlocks,
    RobustCore,
    cluster_robust,
    htz_test,
    marginal_blocks,
)
from alliance_core.model.summary import robust_result_html
from alliance_core.model.wald import WaldTest

# Below this many Satterthwaite df (or this few clusters) robust p-values are unreliable
# (Tipton 2015, Psychol Methods 20, 375-393; Pustejovsky & Tipton 2022).
MIN_RELIABLE_DF = 4.0
FEW_CLUSTERS = 10
# The matrices here are small and many; BLAS threads cost more than they save (as in fit).
_BLAS = ThreadpoolController()


# -- the result object and the wrapper for fitted models -------------------------------------
@dataclass(frozen=True, eq=False)
class RobustResult:
    """Cluster-robust inference on a fitted model (metafor ``robust(fit, cluster, ...)``).

    ``coefficients``: estimate, se, statistic (t), df, pval, ci_lb, ci_ub, with Satterthwaite
    df per coefficient for CR2 (clubSandwich ``coef_test``/``conf_int``) or J - p for CR1
    (metafor's ``robust(adjust = TRUE)``). ``QM`` is the F statistic of the test that all
    moderator coefficients are zero, on ``QM_df = (df1, df2)`` (HTZ for CR2).
    """

    method: str
    cluster: str | None
    n_clusters: int
    level: float
    coefficients: pd.DataFrame
    vcov: np.ndarray
    QM: float | None
    QM_df: tuple[int, float] | None
    QM_pval: float | None
    warnings: tuple[str, ...]
    beta: np.ndarray = field(repr=False)
    names: tuple[str, ...] = field(repr=False)
    core: RobustCore = field(repr=False)
    design: object | None = field(default=None, repr=False)
    # The model's variance components summed (tau2, or sigma2_study + sigma2_es), for
    # prediction intervals; NaN for equal-effects fits and when not known.
    heterogeneity: float = field(default=float("nan"), repr=False)

    @property
    def df(self) -> np.ndarray:
        return self.coefficients["df"].to_numpy()

    def predict(self, newmods=None, transform: str | None = None, fill_typical: bool = True):
        """Predictions with their own robust df: metafor ``predict(robust(fit, cluster,
        clubSandwich = TRUE), newmods)``; see :func:`alliance_core.model.robust_contrasts.robust_predict`."""
        if self.design is None:
            raise AnalysisError("Predictions need the model's design (use res.robust()).")
        with _BLAS.limit(limits=1, user_api="blas"):
            return robust_predict(self, newmods, transform=transform, fill_typical=fill_typical)

    def wald_test(self, terms: Sequence[str]):
        """Robust test that the named coefficients (or all dummies of a moderator) are zero.

        CR2: HTZ (clubSandwich ``Wald_test(test = "HTZ")``); CR1: F on (q, J - p) df.
        Returns a :class:`~alliance_core.model.results.WaldTest` with distribution "F"
        (``df2`` may be fractional).
        """
        if isinstance(terms, str):
            terms = [terms]
        if self.design is not None:
            indices = self.design.coefficient_indices(terms)
        else:
            unknown = [t for t in terms if t not in self.names]
            if unknown:
                raise AnalysisError(
                    f"'{unknown[0]}' is not a coefficient ({', '.join(self.names)})."
                )
            indices = sorted(self.names.index(t) for t in terms)
        with _BLAS.limit(limits=1, user_api="blas"):
            F, q, df2, pval = htz_test(self.core, self.beta, indices)
        return WaldTest(tuple(self.names[i] for i in indices), F, q, df2, pval, "F")

    def summary(self) -> str:
        kind = (
            "CR2 with Satterthwaite df (clubSandwich)"
            if self.method == "CR2"
            else "CR1 with df = clusters - coefficients (metafor robust, adjust = TRUE)"
        )
        lines = [
            f"Cluster-robust inference: {kind}",
            f"  clusters: {self.n_clusters}"
            + (f" (column '{self.cluster}')" if self.cluster else ""),
            "",
        ]
        if self.QM is not None:
            test = "HTZ " if self.method == "CR2" else ""
            lines.append(
                f"{test}Test of moderators: F(df1 = {self.QM_df[0]}, df2 = {self.QM_df[1]:.2f}) = "
                f"{self.QM:.4f}, p = {format_p_console(self.QM_pval)}"
            )
            lines.append("")
        table = self.coefficients.rename(columns={"statistic": "tval"})
        lines.append(table.to_string(float_format=lambda v: f"{v:.4f}"))
        for warning in self.warnings:
            lines.append(f"Warning: {warning}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        """Jupyter's rich display: a compact table like clubSandwich's coef_test."""
        return robust_result_html(self)

    def __repr__(self) -> str:
        qm = (
            ""
            if self.QM is None
            else f" QM={self.QM:.4g} df=({self.QM_df[0]}, {self.QM_df[1]:.3g})"
        )
        return (
            f"<RobustResult {self.method} clusters={self.n_clusters} p={len(self.names)}{qm}"
            f" warnings={len(self.warnings)}>"
        )


def robust_from_blocks(
    X: np.ndarray,
    y: np.ndarray,
    beta: np.ndarray,
    blocks: ClusterBlocks,
    names: Sequence[str],
    method: str = "CR2",
    level: float = 0.95,
    cluster_name: str | None = None,
    design=None,
    heterogeneity: float = float("nan"),
) -> RobustResult:
    """Robust coefficient table and omnibus test from arrays and working covariance blocks.

    ``heterogeneity``: the model's summed variance components, for prediction intervals."""
    with _BLAS.limit(limits=1, user_api="blas"):
        return _robust_from_blocks(
            X, y, beta, blocks, names, method, level, cluster_name, design, heterogeneity
        )


def _robust_from_blocks(
    X, y, beta, blocks, names, method, level, cluster_name, design, heterogeneity
):
    X = np.asarray(X, dtype=float)
    beta = np.asarray(beta, dtype=float)
    p = X.shape[1]
    J = blocks.n_clusters
    if J < 2:
        raise AnalysisError(
            "Cluster-robust inference needs two or more clusters; the data have one."
        )
    if method == "CR1" and p >= J:
        raise AnalysisError(
            f"CR1 needs more clusters ({J}) than coefficients ({p}). Remove moderators or use CR2."
        )
    core = cluster_robust(X, np.asarray(y, dtype=float) - X @ beta, blocks, method)
    se = np.sqrt(np.diag(core.vcov))
    df = core.satterthwaite_df()
    statistic = beta / se
    pval = 2.0 * special.stdtr(df, -np.abs(statistic))
    crit = special.stdtrit(df, 1.0 - (1.0 - level) / 2.0)
    coefficients = pd.DataFrame(
        {
            "estimate": beta,
            "se": se,
            "statistic": statistic,
            "df": df,
            "pval": pval,
            "ci_lb": beta - crit * se,
            "ci_ub": beta + crit * se,
        },
        index=pd.Index(list(names), name="term"),
    )
    QM = QM_df = QM_pval = None
    if p > 1:
        F, q, df2, QM_pval = htz_test(core, beta, range(1, p))
        QM, QM_df = F, (q, df2)
    warnings = _reliability_warnings(method, J, p, coefficients, QM_df)
    return RobustResult(
        method=method,
        cluster=cluster_name,
        n_clusters=J,
        level=level,
        coefficients=coefficients,
        vcov=core.vcov,
        QM=QM,
        QM_df=QM_df,
        QM_pval=QM_pval,
        warnings=warnings,
        beta=beta,
        names=tuple(names),
        core=core,
        design=design,
        heterogeneity=float(heterogeneity),
    )


def _reliability_warnings(method, J, p, coefficients, QM_df) -> tuple[str, ...]:
    out = []
    if J < FEW_CLUSTERS:
        out.append(
            f"only {J} clusters: robust p-values are unreliable with fewer than "
            f"{FEW_CLUSTERS} clusters."
        )
    df = coefficients["df"]
    small = df.index[~(df >= MIN_RELIABLE_DF)].tolist()
    if method == "CR2" and small:
        out.append(
            "Satterthwaite df below 4 for "
            + ", ".join(f"{name} (df = {df[name]:.2f})" for name in small)
            + ": robust p-values unreliable for these coefficients."
        )
    if method == "CR2" and QM_df is not None and not QM_df[1] >= MIN_RELIABLE_DF:
        out.append(
            f"the HTZ test of moderators has df2 = {QM_df[1]:.2f} (< 4): its p-value is unreliable."
        )
    if method == "CR1":
        out.append(
            f"CR1 uses df = clusters - coefficients = {J - p} (metafor's robust(adjust = TRUE)); "
            "CR2 with Satterthwaite df is preferred with few clusters."
        )
    return tuple(out)


def robust(res, cluster=None, method: str = "CR2") -> RobustResult:
    """Cluster-robust inference on a fitted model: ``res.robust()`` / metafor ``robust()``.

    ``cluster``: a column of ``res.data`` or an array with one label per analysed row;
    defaults to the study column of a three-level fit (a two-level fit needs one named).
    Robust clusters must contain whole studies of the model (equal or coarser). The working
    covariance is the model's: diag(v + tau2) (two-level) or per study
    sigma2_study J + sigma2_es I + V_i (three-level; V_i with ``res.rho`` off the diagonal).
    """
    method = str(method).upper()
    if method not in METHODS:
        raise AnalysisError(f"Unknown robust variance '{method}'; choose one of CR2, CR1.")
    data = res.data
    if cluster is None:
        if res.cluster is None:
            raise AnalysisError(
                "Robust inference on a two-level model needs a cluster: name the study column "
                "(e.g. robust(res, cluster='study'))."
            )
        cluster = res.cluster
    if isinstance(cluster, str):
        if cluster not in data.columns:
            raise AnalysisError(
                f"Cluster column '{cluster}' is not in the analysed data "
                f"(columns: {', '.join(map(str, data.columns))})."
            )
        name, labels = cluster, data[cluster].to_numpy()
    else:
        name, labels = None, np.asarray(cluster, dtype=object)
        if labels.shape != (res.k,):
            raise AnalysisError(
                f"The cluster array has {labels.size} value(s); the model has {res.k} "
                "analysed rows (one label per row of res.data is needed)."
            )
    missing = pd.isna(pd.Series(labels, dtype=object)).to_numpy()
    if missing.any():
        where = f"column '{name}'" if name else "the cluster array"
        raise AnalysisError(
            f"Row {data.index[np.argmax(missing)]}, {where}: the cluster is missing."
        )
    inputs = res.inputs
    if res.is_three_level:
        study = data[res.cluster].to_numpy()
        _check_nested(study, labels, res.cluster, name)
        blocks = marginal_blocks(
            labels,
            inputs.v,
            study=study,
            sigma2_study=float(res.sigma2.iloc[0]),
            sigma2_es=float(res.sigma2.iloc[1]),
            rho=res.rho,
        )
    else:
        blocks = marginal_blocks(labels, inputs.v, sigma2_es=float(res.tau2))
    return robust_from_blocks(
        inputs.X,
        inputs.y,
        res.beta,
        blocks,
        res.design.names,
        method=method,
        level=res.level,
        cluster_name=name,
        design=res.design,
        # An equal-effects model assumes no heterogeneity: no prediction interval (metafor NA).
        heterogeneity=float("nan") if res.method == "EE" else res.total_heterogeneity,
    )


def _check_nested(study, labels, study_name: str, cluster_name: str | None) -> None:
    """Each study of the model must lie within one robust cluster."""
    study_codes, study_labels = pd.factorize(pd.Series(study, dtype=object))
    cluster_codes = pd.factorize(pd.Series(labels, dtype=object))[0]
    first_cluster = np.full(len(study_labels), -1)
    first_cluster[study_codes[::-1]] = cluster_codes[::-1]  # any one cluster per study
    split = first_cluster[study_codes] != cluster_codes
    if split.any():
        bad = study_labels[study_codes[np.argmax(split)]]
        where = f"'{cluster_name}'" if cluster_name else "the cluster array"
        raise AnalysisError(
            f"Study '{bad}' (column '{study_name}') spans several clusters of {where}: robust "
            "clusters must contain whole studies (the same or a coarser grouping)."
        )
