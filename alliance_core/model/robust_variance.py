"""Cluster-robust variance on arrays (RVE): working covariance blocks, CR2 and CR1 variances,
Satterthwaite df and HTZ tests.

:func:`cluster_robust` takes the model matrix X, the residuals and the rows of each cluster
with its working covariance block M_j (random effects plus sampling covariance;
:class:`ClusterBlocks`, built by :func:`marginal_blocks` or given per cluster) and returns a
:class:`RobustCore`: the robust variance of the coefficients, their Satterthwaite degrees of
freedom and the pieces for Hotelling-T^2-Z (HTZ) Wald tests (:func:`htz_test`). Nothing here
knows a fitted model: :mod:`alliance_core.model.robust` builds the blocks from one and reports
the results.

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

from alliance_core.errors import AnalysisError

METHODS = ("CR2", "CR1")
EIGEN_TOLERANCE = 1e-12


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
