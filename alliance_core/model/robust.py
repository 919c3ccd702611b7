"""Cluster-robust inference (RVE): CR2 and CR1 variances, Satterthwaite df and HTZ tests.

Two layers:

* an array-level core, :func:`cluster_robust`, that takes the model matrix X, the residuals
  and the rows of each cluster with its working covariance block M_j (random effects plus
  sampling covariance; :class:`ClusterBlocks`, built by :func:`marginal_blocks` or given per
  cluster) and returns a :class:`RobustCore`: the robust variance of the coefficients, their
  Satterthwaite degrees of freedom and the pieces for Hotelling-T^2-Z (HTZ) Wald tests
  (:func:`htz_test`);
* :func:`robust`, which builds the blocks from a fitted :class:`~alliance_core.MetaResult`
  and returns a :class:`RobustResult` (coefficient table, omnibus test, warnings, summary).

Definitions follow Pustejovsky & Tipton (2018, J Bus Econ Stat 36, 672-683; 2022, Prev Sci
23, 425-438) as implemented in R's clubSandwich 0.5 (``vcovCR``, ``coef_test``,
``Wald_test(test = "HTZ")``) for metafor fits, where the working weights are the inverse of
the model's marginal covariance (W_j = M_j^-1) and the target variance is M_j itself:

    B = (sum_j X_j' W_j X_j)^-1
    A_j = L_j (L_j' (M_j - X_j B X_j') L_j)^(-1/2) L_j',  M_j = L_j L_j'   (CR2 adjustment)
    V_CR2 = B (sum_j X_j' W_j A_j e_j e_j' A_j W_j X_j) B

with the inverse square root taken over eigenvalues above 1e-12 (others set to 0), as
clubSandwich does. CR1 is metafor's ``robust(fit, cluster, adjust = TRUE)``: A_j = I and
V scaled by J / (J - p), with t tests on J - p df.

The Satterthwaite df of c'b and the HTZ df are functions of the per-cluster matrices
G_j = C B X_j' W_j A_j L_j and H_j = C B X_j' W_j A_j X_j chol(B); the J x J matrices they
define are never formed: every sum over pairs of clusters is rewritten as a Frobenius norm
of a small (p x p, or (q p) x (q p)) sum over clusters, so the cost is O(sum_j n_j^3 + J p^3).
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
from alliance_core.model.summary import robust_result_html
from alliance_core.model.wald import WaldTest

METHODS = ("CR2", "CR1")
# Below this many Satterthwaite df (or this few clusters) robust p-values are unreliable
# (Tipton 2015, Psychol Methods 20, 375-393; Pustejovsky & Tipton 2022).
MIN_RELIABLE_DF = 4.0
FEW_CLUSTERS = 10
EIGEN_TOLERANCE = 1e-12
# The matrices here are small and many; BLAS threads cost more than they save (as in fit).
_BLAS = ThreadpoolController()


# -- working covariance blocks --------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ClusterBlocks:
    """Rows grouped by cluster, with each cluster's working covariance block.

    ``order`` sorts the rows by cluster; cluster j owns ``order[starts[j]:starts[j] + sizes[j]]``.
    Clusters of equal size are stored together (``groups``: size -> (cluster indices, their
    blocks as an array n x size x size)) so that the algebra runs batched per size.
    """

    order: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray
    labels: np.ndarray
    groups: dict[int, tuple[np.ndarray, np.ndarray]]

    @property
    def n_clusters(self) -> int:
        return len(self.starts)

    @classmethod
    def from_blocks(cls, cluster, blocks: Sequence[np.ndarray]) -> ClusterBlocks:
        """Blocks given one per cluster, in order of the clusters' first appearance in
        ``cluster``, each indexed by that cluster's rows in data order."""
        _, order, starts, sizes, labels = group_rows(cluster)
        if len(blocks) != len(labels):
            raise AnalysisError(
                f"{len(blocks)} covariance block(s) for {len(labels)} clusters; give one per cluster."
            )
        for label, size, block in zip(labels, sizes, blocks, strict=True):
            if np.shape(block) != (size, size):
                raise AnalysisError(
                    f"Cluster '{label}' has {size} row(s) but its covariance block has shape "
                    f"{np.shape(block)}."
                )
        groups = {}
        for size in np.unique(sizes):
            clusters = np.flatnonzero(sizes == size)
            stacked = np.array([np.asarray(blocks[j], dtype=float) for j in clusters])
            groups[int(size)] = (clusters, stacked.reshape(len(clusters), size, size))
        return cls(order, starts, sizes, labels, groups)

    def rows(self, clusters: np.ndarray, size: int) -> np.ndarray:
        """Row positions (clusters x size) of the given clusters, all of this size."""
        return self.order[self.starts[clusters][:, None] + np.arange(size)[None, :]]


def group_rows(cluster) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Integer code per row (order of first appearance), row order, starts, sizes, labels."""
    codes, labels = pd.factorize(pd.Series(np.asarray(cluster, dtype=object)), sort=False)
    codes = np.asarray(codes)
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes, minlength=len(labels))
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    return codes, order, starts, sizes, np.asarray(labels, dtype=object)


def marginal_blocks(
    cluster,
    v: np.ndarray,
    study=None,
    sigma2_study: float = 0.0,
    sigma2_es: float = 0.0,
    rho: float | None = None,
) -> ClusterBlocks:
    """Blocks of the marginal covariance of the three-level / CHE working model.

    M[a, b] = (v_a + sigma2_es) if a = b, plus sigma2_study + rho sqrt(v_a v_b) (a != b) when
    rows a and b belong to the same study; rows of different studies are independent.
    Two-level: ``study=None`` (each row its own study) and ``sigma2_es = tau2`` give
    M = diag(v + tau2). ``rho=None`` means independent sampling errors.
    """
    v = np.asarray(v, dtype=float)
    _, order, starts, sizes, labels = group_rows(cluster)
    study_codes = (
        np.arange(len(v)) if study is None else pd.factorize(pd.Series(np.asarray(study)))[0]
    )
    groups = {}
    for size in np.unique(sizes):
        clusters = np.flatnonzero(sizes == size)
        rows = order[starts[clusters][:, None] + np.arange(size)[None, :]]
        vr = v[rows]
        same = study_codes[rows][:, :, None] == study_codes[rows][:, None, :]
        off = np.full(same.shape, sigma2_study)
        if rho is not None:
            off = off + rho * np.sqrt(vr[:, :, None] * vr[:, None, :])
        blocks = np.where(same, off, 0.0)
        diagonal = np.arange(size)
        blocks[:, diagonal, diagonal] = vr + sigma2_es + sigma2_study
        groups[int(size)] = (clusters, blocks)
    return ClusterBlocks(order, starts, sizes, labels, groups)


# -- the core ------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class RobustCore:
    """Robust variance and the per-cluster pieces its small-sample tests need.

    ``K[j] = B X_j' W_j A_j M_j A_j W_j X_j B`` (so that G_j G_j' = C K_j C') and
    ``H[j] = B X_j' W_j A_j X_j chol(B)`` (p x p each), for Satterthwaite and HTZ.
    """

    method: str
    vcov: np.ndarray
    bread: np.ndarray
    n_clusters: int
    K: np.ndarray | None = field(repr=False)
    H: np.ndarray | None = field(repr=False)

    def satterthwaite_df(self) -> np.ndarray:
        """Satterthwaite df of each coefficient (clubSandwich ``coef_test``); CR1: J - p.

        For coefficient i with g_j = K_j[i, i] and h_j = H_j[i, :]:
        df = E^2 / V' with E = sum_j (g_j - |h_j|^2) and
        V' = sum_j g_j^2 - 2 sum_j g_j |h_j|^2 + |sum_j h_j h_j'|_F^2
        (half the variance 2 sum_jk P_jk^2 of clubSandwich's P array, without forming it).
        """
        p = self.vcov.shape[0]
        if self.method == "CR1":
            return np.full(p, float(self.n_clusters - p))
        g = np.diagonal(self.K, axis1=1, axis2=2)  # J x p
        hh = np.einsum("jiu,jiu->ji", self.H, self.H)
        S = np.einsum("jiu,jiv->iuv", self.H, self.H)
        expectation = np.sum(g - hh, axis=0)
        half_variance = (
            np.sum(g * g, axis=0) - 2.0 * np.sum(g * hh, axis=0) + np.sum(S * S, axis=(1, 2))
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            return expectation**2 / half_variance

    def htz_df(self, C: np.ndarray) -> float:
        """nu of the HTZ test of C b = 0 (CR2): q (q + 1) / sum_{s,t} Var_st.

        Var is clubSandwich's ``total_variance_mat`` after the change of basis
        Omega^(-1/2); for q = 1, nu is the Satterthwaite df.
        """
        q = C.shape[0]
        a = C @ self.K @ C.T  # C K_j C'
        h = C @ self.H  # C H_j
        omega = a.sum(axis=0) - np.tensordot(h, h, axes=([0, 2], [0, 2]))
        omega_isqrt = _symmetric_power(omega, -0.5)
        a = omega_isqrt @ a @ omega_isqrt
        h = omega_isqrt @ h
        hh = h @ np.swapaxes(h, 1, 2)
        # sum_{s,t} sum_{j,k} B_st[j,k] B_ts[j,k], with B_st[j,k] = d_jk a_j[s,t] - h_j[s].h_k[t]
        u = h.shape[2]
        flat = h.reshape(h.shape[0], -1)
        RR = flat.T @ flat
        R = RR.reshape(q, u, q, u)  # R[s,a,t,b] = sum_j h_j[s,a] h_j[t,b]
        swapped = np.einsum("satb,tasb->", R, R)
        first = np.sum(a * a) - 2.0 * np.sum(a * hh) + swapped
        # sum_{s,t} sum_{j,k} B_ss[j,k] B_tt[j,k]
        tr_a = np.trace(a, axis1=1, axis2=2)
        norm_h = np.sum(flat * flat, axis=1)
        second = np.sum(tr_a**2) - 2.0 * np.sum(tr_a * norm_h) + np.sum(RR * RR)
        total = float(first + second)
        return q * (q + 1) / total if total > 0 else float("nan")


def _symmetric_power(matrices: np.ndarray, power: float) -> np.ndarray:
    """A^power of symmetric PSD matrices (batched), eigenvalues <= 1e-12 mapped to 0."""
    values, vectors = np.linalg.eigh(matrices)
    keep = values > EIGEN_TOLERANCE
    scaled = np.where(keep, np.where(keep, values, 1.0) ** power, 0.0)
    return (vectors * scaled[..., None, :]) @ np.swapaxes(vectors, -1, -2)


def cluster_robust(
    X: np.ndarray, residuals: np.ndarray, blocks: ClusterBlocks, method: str = "CR2"
) -> RobustCore:
    """Cluster-robust variance of GLS coefficients with working weights W_j = M_j^-1.

    ``X`` (k x p) and ``residuals`` (k) in the row order that ``blocks`` indexes. See the
    module docstring for the formulas; no k x k matrix is formed.
    """
    if method not in METHODS:
        raise AnalysisError(f"Unknown robust variance '{method}'; choose one of CR2, CR1.")
    X = np.asarray(X, dtype=float)
    residuals = np.asarray(residuals, dtype=float)
    p = X.shape[1]
    J = blocks.n_clusters
    per_group = []
    XtWX = np.zeros((p, p))
    for size, (clusters, M) in blocks.groups.items():
        rows = blocks.rows(clusters, size)
        Xg = X[rows]  # n x s x p
        try:
            L = np.linalg.cholesky(M)
        except np.linalg.LinAlgError:
            bad = int(np.argmin(np.linalg.eigvalsh(M)[:, 0]))
            raise AnalysisError(
                f"The working covariance of cluster '{blocks.labels[clusters[bad]]}' is not "
                "positive definite (check rho and the sampling variances)."
            ) from None
        W = _cholesky_inverse(L)
        XtW = np.swapaxes(Xg, 1, 2) @ W  # n x p x s
        XtWX += np.tensordot(XtW, Xg, axes=([0, 2], [0, 1]))
        per_group.append((clusters, Xg, residuals[rows], M, L, XtW))
    bread = np.linalg.inv(XtWX)
    bread = (bread + bread.T) / 2.0
    meat_scores = np.zeros((J, p))
    K = np.zeros((J, p, p)) if method == "CR2" else None
    H = np.zeros((J, p, p)) if method == "CR2" else None
    bread_chol = np.linalg.cholesky(bread) if method == "CR2" else None
    for clusters, Xg, eg, M, L, XtW in per_group:
        if method == "CR1":
            meat_scores[clusters] = (XtW @ eg[:, :, None])[:, :, 0]
            continue
        leverage = (Xg @ bread) @ np.swapaxes(Xg, 1, 2)
        Lt = np.swapaxes(L, 1, 2)
        G = Lt @ (M - leverage) @ L
        A = L @ _symmetric_power((G + np.swapaxes(G, 1, 2)) / 2.0, -0.5) @ Lt
        E = XtW @ A  # X_j' W_j A_j: p x s
        meat_scores[clusters] = (E @ eg[:, :, None])[:, :, 0]
        BE = bread @ E
        K[clusters] = BE @ M @ np.swapaxes(BE, 1, 2)
        H[clusters] = BE @ Xg @ bread_chol
    vcov = bread @ (meat_scores.T @ meat_scores) @ bread
    if method == "CR1":
        vcov = vcov * J / (J - p)
    vcov = (vcov + vcov.T) / 2.0
    return RobustCore(method, vcov, bread, J, K, H)


def _cholesky_inverse(L: np.ndarray) -> np.ndarray:
    eye = np.broadcast_to(np.eye(L.shape[-1]), L.shape)
    L_inv = np.linalg.solve(L, eye)
    return np.swapaxes(L_inv, -1, -2) @ L_inv


def htz_test(
    core: RobustCore, beta: np.ndarray, indices: Sequence[int]
) -> tuple[float, int, float, float]:
    """HTZ Wald test of b[indices] = 0: (F, q, df2, p) as clubSandwich ``Wald_test(test="HTZ")``.

    F = delta Q / q with Q = b_C' (C V C')^-1 b_C, nu from :meth:`RobustCore.htz_df`,
    delta = max((nu - q + 1) / nu, 0) and F on (q, nu - q + 1) df. CR1 uses metafor's
    F = Q / q on (q, J - p) df instead.
    """
    idx = list(indices)
    q = len(idx)
    b = beta[idx]
    Q = float(b @ np.linalg.solve(core.vcov[np.ix_(idx, idx)], b))
    if core.method == "CR1":
        df2 = float(core.n_clusters - core.vcov.shape[0])
        return Q / q, q, df2, float(special.fdtrc(q, df2, Q / q))
    C = np.eye(len(beta))[idx]
    nu = core.htz_df(C)
    delta = max((nu - q + 1.0) / nu, 0.0)
    df2 = nu - q + 1.0
    F = delta * Q / q
    pval = float(special.fdtrc(q, df2, F)) if df2 > 0 else float("nan")
    return F, q, df2, pval


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
