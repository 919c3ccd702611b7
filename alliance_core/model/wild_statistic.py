"""The Naive-F statistic of a cluster wild bootstrap for many refits at once, and CR2 residuals.

For R fits of the same model (leading axis: replicate) with coefficients b, bread
B = (X' W X)^-1, raw residuals r = y - X b and working-weighted residuals W r (W = M^-1),

    F = (C b)' (C V C')^-1 (C b) / q,  V = B (sum_j X_j' W_j A_j r_j r_j' A_j' W_j X_j) B,

clubSandwich's ``Wald_test(test = "Naive-F")`` on ``vcovCR(type)``: CR0 with A_j = I, CR1 the
same times J / (J - 1), CR2 with A_j = L_j (L_j' (M_j - X_j B X_j') L_j)^(-1/2) L_j',
M_j = L_j L_j' (the formula of :mod:`alliance_core.model.robust_variance`, eigenvalues at or below
1e-12 set to zero). M_j, a cluster's block of the marginal covariance, is
V_j + sigma2_es I + sigma2_study S_j (S_j: 1 where two rows share a study; a two-level model
is sigma2_study = 0, sigma2_es = tau2), so CR2 redoes its per-cluster algebra per replicate,
batched over the clusters of one size.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from alliance_core.model.robust_variance import EIGEN_TOLERANCE


class ClusterGeometry:
    """The clusters of study-sorted rows (``codes``: cluster per row) and, per cluster size,
    the sampling covariance blocks V_j and same-study indicators S_j (for CR2)."""

    def __init__(self, codes, v, study_of_row, rho: float | None, J: int):
        k = len(codes)
        self.J = J
        self.indicator = sparse.csr_array((np.ones(k), (codes, np.arange(k))), shape=(J, k))
        order = np.argsort(codes, kind="stable")
        sizes = np.bincount(codes, minlength=J)
        first = np.r_[0, np.cumsum(sizes)[:-1]]
        self.groups = []
        for size in np.unique(sizes):
            clusters = np.flatnonzero(sizes == size)
            rows = order[first[clusters][:, None] + np.arange(size)[None, :]]
            same = study_of_row[rows][:, :, None] == study_of_row[rows][:, None, :]
            vr = v[rows]
            V = np.where(same, (rho or 0.0) * np.sqrt(vr[:, :, None] * vr[:, None, :]), 0.0)
            diagonal = np.arange(size)
            V[:, diagonal, diagonal] = vr
            self.groups.append((clusters, rows, V, same.astype(float)))

    def scores(self, X: np.ndarray, weighted: np.ndarray) -> np.ndarray:
        """sum over each cluster's rows of X' (W r): R x J x p, from k x R weighted residuals."""
        k, p = X.shape
        R = weighted.shape[1]
        products = (X[:, :, None] * weighted[:, None, :]).reshape(k, p * R)
        return (self.indicator @ products).reshape(self.J, p, R).transpose(2, 0, 1)

    def cr2_residuals(self, X, resid, theta, bread, weighted: bool):
        """A_j r_j for every cluster (k x R, same rows as ``resid``), or W_j A_j r_j when
        ``weighted``; ``theta`` (R x 2) the components, ``bread`` (R x p x p) B."""
        out = np.empty_like(resid)
        a, b = theta[:, 0], theta[:, 1]
        for _clusters, rows, V, same in self.groups:
            n = rows.shape[1]
            M = (
                V[None] + b[:, None, None, None] * np.eye(n) + a[:, None, None, None] * same[None]
            )  # R x c x n x n
            L = np.linalg.cholesky(M)
            Lt = np.swapaxes(L, -1, -2)
            Xj = X[rows]  # c x n x p
            LtX = Lt @ Xj[None]
            T = Lt @ L
            G = T @ T - LtX @ bread[:, None] @ np.swapaxes(LtX, -1, -2)
            values, vectors = np.linalg.eigh((G + np.swapaxes(G, -1, -2)) / 2.0)
            keep = values > EIGEN_TOLERANCE
            scaled = np.where(keep, np.where(keep, values, 1.0) ** -0.5, 0.0)
            r = resid[rows].transpose(2, 0, 1)[..., None]  # R x c x n x 1
            inner = np.swapaxes(vectors, -1, -2) @ (Lt @ r)
            adjusted = L @ (vectors @ (scaled[..., None] * inner))
            if weighted:
                adjusted = np.linalg.solve(M, adjusted)
            out[rows] = adjusted[..., 0].transpose(1, 2, 0)
        return out


def naive_f(
    geometry: ClusterGeometry, X, idx, type_: str, beta, bread, weighted, resid=None, theta=None
) -> np.ndarray:
    """F per replicate (R); ``weighted`` = W r (k x R), ``resid`` and ``theta`` for CR2."""
    if type_ == "CR2":
        weighted = geometry.cr2_residuals(X, resid, theta, bread, weighted=True)
    scores = geometry.scores(X, weighted)  # R x J x p
    half = scores @ np.swapaxes(bread[:, idx, :], 1, 2)  # R x J x q: (C B X_j' W_j A_j r_j)'
    vcov_c = np.swapaxes(half, 1, 2) @ half
    if type_ == "CR1":
        vcov_c = vcov_c * geometry.J / (geometry.J - 1)
    b = beta[:, idx]
    return np.einsum("rq,rq->r", b, np.linalg.solve(vcov_c, b[..., None])[..., 0]) / len(idx)
