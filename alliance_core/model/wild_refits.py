"""REML/ML refits of one three-level (CHE) model to many outcome vectors at once.

The cluster wild bootstrap refits the same model (same X, V and study blocks) to R outcome
vectors that differ only in y. Everything that depends on X and V alone is computed once:

* per study, the eigendecomposition V_i = Q_i diag(lambda_i) Q_i' (CHE: diag((1 - rho) v)
  + rho s s', s = sqrt(v); plain three-level: diag(v)); in the rotated rows Q_i' X_i,
  Q_i' y_i the marginal covariance becomes

      Q_i' M_i Q_i = diag(lambda_i + sigma2_es) + sigma2_study w_i w_i',  w_i = Q_i' 1,

  a diagonal plus one rank-one term, so M_i^-1 = U - alpha_i (U w)(U w)' with
  U = diag(1 / (lambda + sigma2_es)), alpha_i = sigma2_study / (1 + sigma2_study w'U w);
* every quantity the likelihood and its derivatives need is then X_a' U^j X_a
  (X_a = [X, y]), the per-study sums B_j = sum u^j w x_a and s_j = sum u^j w^2 (j = 1..3),
  and sums of u and u^2 (the algebra of
  :class:`alliance_core.model.estimation.StudySums` with the study direction w for 1).

Each replicate keeps its own variance components, and the iteration of
:func:`alliance_core.model.che.maximise_che_likelihood` (Fisher scoring, then Newton steps on
the observed information once steps are below 1e-2, step halving, convergence when the
relative change is below 1e-11) runs for all replicates at once, vectorised over them. A
replicate that would need the sequential routine's rarer moves (a component heading for
zero, a step needing more than the first direction, no convergence) is handed back as
``pending`` so its caller refits it one at a time; the maxima found are the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alliance_core.model import estimation as est

MAX_ITER = 300
TOL = 1e-11
MAX_HALVINGS = 40


@dataclass(frozen=True)
class BatchFits:
    """Refits of R outcome vectors: per replicate (leading axis) the components, beta,
    (X' M^-1 X)^-1, and in the rows sorted by study M^-1 r (k x R); ``pending`` marks the
    replicates left to the sequential routine (their other entries are meaningless)."""

    theta: np.ndarray  # R x 2
    beta: np.ndarray  # R x p
    vb: np.ndarray  # R x p x p
    e: np.ndarray  # k x R, M^-1 (y - X b) in the original (study-sorted) rows
    pending: np.ndarray  # R, bool


@dataclass(frozen=True)
class _Sums:
    """The per-replicate sums at (sigma2_study, sigma2_es) and the profiled fit."""

    theta: np.ndarray  # R x 2
    C: tuple[np.ndarray, np.ndarray, np.ndarray]  # X_a' M^-j X_a, R x q x q
    B: tuple[np.ndarray, np.ndarray]  # B_1, B_2: R x n x q
    s: tuple[np.ndarray, np.ndarray]  # s_1, s_2: R x n
    alpha: np.ndarray  # R x n
    damp: np.ndarray  # R x n, 1 / (1 + sigma2_study s_1)
    tr_minv: np.ndarray  # R, tr(M^-1)
    frob_minv: np.ndarray  # R, ||M^-1||_F^2
    A_inv: np.ndarray  # R x p x p
    c: np.ndarray  # R x q, (-beta, 1)
    loglik: np.ndarray  # R


class BatchedCheRefits:
    """Refits of a three-level model (rows sorted by study, study ``starts``; ``rho`` 0 for
    independent sampling errors) to the columns of a k x R outcome matrix."""

    def __init__(self, X, v, starts, rho: float, reml: bool, logdet_xtx: float):
        k, p = X.shape
        self.k, self.p, self.reml, self.logdet_xtx = k, p, reml, logdet_xtx
        self.X, self.v = X, v
        self.negligible = 1e-10 * float(np.mean(v))
        sizes = np.diff(np.append(starts, k))
        self.study_of_row = np.repeat(np.arange(len(starts)), sizes)
        self.indicator = est.study_indicator(starts, k)
        Q_blocks = {}
        lam = np.empty(k)
        w = np.empty(k)
        for size in np.unique(sizes):
            first = starts[sizes == size]
            rows = first[:, None] + np.arange(size)[None, :]  # studies x size
            s = np.sqrt(v[rows])
            V = rho * s[:, :, None] * s[:, None, :]
            diag = np.arange(size)
            V[:, diag, diag] = v[rows]
            values, vectors = np.linalg.eigh(V)
            lam[rows] = values
            w[rows] = vectors.sum(axis=1)  # Q' 1
            Q_blocks[int(size)] = (rows, vectors)
        self.blocks = Q_blocks
        self.lam, self.w = lam, w
        self.Xt = self.rotate(X)
        self.wX = self.Xt * w[:, None]
        self.XX = (self.Xt[:, :, None] * self.Xt[:, None, :]).reshape(k, p * p)

    def rotate(self, values: np.ndarray, back: bool = False) -> np.ndarray:
        """Q' values per study (``back``: Q values), for a k-vector or k x m matrix."""
        out = np.empty_like(values)
        for rows, vectors in self.blocks.values():
            block = values[rows]  # studies x size (x m)
            Q = vectors if back else np.swapaxes(vectors, 1, 2)
            out[rows] = Q @ block if block.ndim == 3 else (Q @ block[:, :, None])[:, :, 0]
        return out

    def _study_sums(self, values: np.ndarray) -> np.ndarray:
        """Per-study sums of a k x m matrix: studies x m."""
        return self.indicator @ values

    def _evaluate(self, Yt: np.ndarray, theta: np.ndarray) -> _Sums:
        """Sums and the profiled (restricted) log-likelihood of the columns of ``Yt`` (rotated
        outcomes, k x R) at their components ``theta`` (R x 2)."""
        k, p = self.k, self.p
        R = Yt.shape[1]
        q = p + 1
        a, b = theta[:, 0], theta[:, 1]
        u1 = 1.0 / (self.lam[:, None] + b[None, :])  # k x R
        powers = (u1, u1 * u1, u1 * u1 * u1)
        cross, Bs, ss = [], [], []
        n = self.indicator.shape[0]
        w, w2 = self.w[:, None], (self.w * self.w)[:, None]
        for u in powers:
            uy = u * Yt
            C = np.empty((R, q, q))
            C[:, :p, :p] = (self.XX.T @ u).T.reshape(R, p, p)
            xy = (self.Xt.T @ uy).T
            C[:, :p, p] = xy
            C[:, p, :p] = xy
            C[:, p, p] = np.einsum("kr,kr->r", uy, Yt)
            cross.append(C)
            stacked = np.concatenate(
                [(self.wX[:, :, None] * u[:, None, :]).reshape(k, p * R), w * uy, w2 * u], axis=1
            )
            sums = self._study_sums(stacked)
            B = np.empty((R, n, q))
            B[:, :, :p] = sums[:, : p * R].reshape(n, p, R).transpose(2, 0, 1)
            B[:, :, p] = sums[:, p * R : (p + 1) * R].T
            Bs.append(B)
            ss.append(sums[:, (p + 1) * R :].T)
        s1, s2, s3 = ss
        B1, B2, B3 = Bs
        damp = 1.0 / (1.0 + a[:, None] * s1)
        alpha = a[:, None] * damp
        a2s2 = alpha * alpha * s2

        def outer(weight, left, right):  # sum_i weight_i left_i' right_i, per replicate
            return np.swapaxes(weight[:, :, None] * left, 1, 2) @ right

        C1 = cross[0] - outer(alpha, B1, B1)
        b21 = outer(alpha, B2, B1)
        C2 = cross[1] - (b21 + np.swapaxes(b21, 1, 2)) + outer(a2s2, B1, B1)
        b31 = outer(alpha, B3, B1)
        b21_sq = outer(a2s2, B2, B1)
        C3 = (
            cross[2]
            - (b31 + np.swapaxes(b31, 1, 2) + outer(alpha, B2, B2))
            + (b21_sq + np.swapaxes(b21_sq, 1, 2) + outer(alpha * alpha * s3, B1, B1))
            - outer(alpha**3 * s2 * s2, B1, B1)
        )
        tr_minv = u1.sum(axis=0) - np.sum(alpha * s2, axis=1)
        frob_minv = (
            powers[1].sum(axis=0) - 2.0 * np.sum(alpha * s3, axis=1) + np.sum(a2s2 * s2, axis=1)
        )
        logdet_M = -np.log(u1).sum(axis=0) + np.log1p(a[:, None] * s1).sum(axis=1)
        chol = np.linalg.cholesky(C1[:, :p, :p])
        eye = np.broadcast_to(np.eye(p), chol.shape)
        L_inv = np.linalg.solve(chol, eye)
        A_inv = np.swapaxes(L_inv, 1, 2) @ L_inv
        logdet_A = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        beta = np.einsum("rij,rj->ri", A_inv, C1[:, :p, p])
        c = np.concatenate([-beta, np.ones((R, 1))], axis=1)
        rss = np.einsum("ri,rij,rj->r", c, C1, c)
        if self.reml:
            ll = -0.5 * ((k - p) * est.LOG_2PI + logdet_M + logdet_A + rss) + 0.5 * self.logdet_xtx
        else:
            ll = -0.5 * (k * est.LOG_2PI + logdet_M + rss)
        return _Sums(
            theta, (C1, C2, C3), (B1, B2), (s1, s2), alpha, damp, tr_minv, frob_minv, A_inv, c, ll
        )

    def _derivatives(self, f: _Sums):
        """Score, expected and observed information (R x 2, R x 2 x 2) as
        :func:`alliance_core.model.estimation._derivatives` computes them for one replicate."""
        p = self.p
        C1, C2, C3 = f.C
        A_inv, c = f.A_inv, f.c
        B1, B2 = f.B
        s1, s2 = f.s
        alpha, damp = f.alpha, f.damp
        G_G = C2[:, :p, :p]
        G_MG = C3[:, :p, :p]
        Gt_e = np.einsum("rij,rj->ri", C2[:, :p, :], c)
        e_e = np.einsum("ri,rij,rj->r", c, C2, c)
        e_M_e = np.einsum("ri,rij,rj->r", c, C3, c)
        AG = A_inv @ G_G
        tr_P_es, tr_PP = f.tr_minv.copy(), f.frob_minv.copy()
        if self.reml:
            tr_P_es -= np.trace(AG, axis1=1, axis2=2)
            tr_PP += -2.0 * np.sum(A_inv * G_MG, axis=(1, 2)) + np.sum(
                AG * np.swapaxes(AG, 1, 2), axis=(1, 2)
            )
        quad_ee = e_M_e - np.einsum("ri,rij,rj->r", Gt_e, A_inv, Gt_e)
        cs = s1 * damp
        S = damp[:, :, None] * B1[:, :, :p]
        Q = damp[:, :, None] * (B2[:, :, :p] - (alpha * s2)[:, :, None] * B1[:, :, :p])
        B1c = np.einsum("rnq,rq->rn", B1, c)
        t = damp * B1c
        v = damp * (np.einsum("rnq,rq->rn", B2, c) - alpha * s2 * B1c)
        tr_P_st = cs.sum(axis=1)
        tr_PZZPZZ = np.sum(cs * cs, axis=1)
        tr_PZZP = np.sum(damp * damp * s2, axis=1)
        StS = np.swapaxes(S, 1, 2) @ S
        AS = A_inv @ StS
        if self.reml:
            row_quad = np.sum((S @ A_inv) * S, axis=2)
            tr_P_st -= np.trace(AS, axis1=1, axis2=2)
            tr_PZZPZZ += -2.0 * np.sum(cs * row_quad, axis=1) + np.sum(
                AS * np.swapaxes(AS, 1, 2), axis=(1, 2)
            )
            tr_PZZP += -2.0 * np.sum((Q @ A_inv) * S, axis=(1, 2)) + np.sum(
                AG * np.swapaxes(AS, 1, 2), axis=(1, 2)
            )
        score = np.stack(
            [-0.5 * tr_P_st + 0.5 * np.sum(t * t, axis=1), -0.5 * tr_P_es + 0.5 * e_e], 1
        )
        expected = 0.5 * np.stack(
            [np.stack([tr_PZZPZZ, tr_PZZP], 1), np.stack([tr_PZZP, tr_PP], 1)], 1
        )
        St = np.einsum("rnp,rn->rp", S, t)
        A_St = np.einsum("rij,rj->ri", A_inv, St)
        quad_ss = np.sum(cs * t * t, axis=1) - np.sum(St * A_St, axis=1)
        quad_se = np.sum(t * v, axis=1) - np.sum(A_St * Gt_e, axis=1)
        quad = np.stack([np.stack([quad_ss, quad_se], 1), np.stack([quad_se, quad_ee], 1)], 1)
        return score, expected, -expected + quad

    def refit(self, Y: np.ndarray, start: np.ndarray) -> BatchFits:
        """Refit every column of ``Y`` (k x R, rows sorted by study), all starting at ``start``."""
        R = Y.shape[1]
        Yt = self.rotate(Y)
        theta = np.tile(np.maximum(np.asarray(start, dtype=float), 0.0), (R, 1))
        fit = self._evaluate(Yt, theta)
        use_newton = np.zeros(R, dtype=bool)
        pending = np.zeros(R, dtype=bool)
        thetas = np.zeros((R, 2))
        store = {}
        active = np.arange(R)
        for _ in range(MAX_ITER):
            if active.size == 0:
                break
            score, expected, observed = self._derivatives(fit)
            th = fit.theta
            boundary = np.any((th <= self.negligible) & (score <= 0.0), axis=1)
            newton = use_newton[active] & _positive_definite(observed)
            info = np.where(newton[:, None, None], observed, expected)
            step, ok = _step(th, score, info)
            ok &= ~boundary
            accepted, new_fit, ok = self._line_search(Yt[:, active], fit, step, score, ok)
            # replicates the vectorised path does not follow go to the sequential routine
            pending[active[~ok]] = True
            keep = ok
            change = np.max(np.abs(accepted - th) / (1.0 + np.abs(th)), axis=1)
            use_newton[active] |= change < est.NEWTON_FROM
            converged = keep & (change < TOL)
            # the sequential routine puts a negligible component at zero: leave those to it
            small = converged & np.any(accepted <= self.negligible, axis=1)
            pending[active[small]] = True
            keep &= ~small
            converged &= ~small
            if converged.any():
                store_rows = active[converged]
                thetas[store_rows] = accepted[converged]
                store[len(store)] = (store_rows, _take(new_fit, converged))
            still = keep & ~converged
            active = active[still]
            fit = _take(new_fit, still)
        pending[active] = True
        return self._collect(Y, Yt, thetas, store, pending)

    def _line_search(self, Yt, fit: _Sums, step, score, ok):
        """Per replicate the first of step, step/2, ... that does not lower the likelihood
        (the acceptance rule of :func:`alliance_core.model.estimation.line_search`)."""
        th, ll = fit.theta, fit.loglik
        zero = ~np.any(step != 0.0, axis=1)
        promised = 0.5 * np.sum(score * step, axis=1)
        accepted = th.copy()
        result = fit
        todo = np.flatnonzero(ok & ~zero)
        shrink = 1.0
        first = True
        pieces = []
        for _ in range(MAX_HALVINGS):
            if todo.size == 0:
                break
            candidate = np.maximum(th[todo] + shrink * step[todo], 0.0)
            trial = self._evaluate(Yt[:, todo], candidate)
            good = trial.loglik >= ll[todo] - 1e-13 * np.abs(ll[todo])
            if first:
                good |= (promised[todo] >= 0.0) & (
                    promised[todo] < 1e-10 * (1.0 + np.abs(ll[todo]))
                )
            if good.any():
                accepted[todo[good]] = candidate[good]
                pieces.append((todo[good], _take(trial, good)))
            todo = todo[~good]
            shrink /= 2.0
            first = False
        ok = ok & ~np.isin(np.arange(len(ok)), todo)
        # a zero step: the sequential routine stops where it is (no change, converged)
        if pieces:
            result = _merge(fit, pieces)
        return accepted, result, ok

    def _collect(self, Y, Yt, thetas, store, pending) -> BatchFits:
        R = Y.shape[1]
        p = self.p
        beta = np.zeros((R, p))
        vb = np.zeros((R, p, p))
        resid_t = np.zeros_like(Yt)
        alpha_rows = np.zeros((self.k, R))
        for rows, f in store.values():
            beta[rows] = -f.c[:, :p]
            vb[rows] = f.A_inv
            resid_t[:, rows] = Yt[:, rows] - self.Xt @ beta[rows].T
            B1c = np.einsum("rnq,rq->rn", f.B[0], f.c)
            alpha_rows[:, rows] = (f.alpha * B1c).T[self.study_of_row]
        u = 1.0 / (self.lam[:, None] + thetas[:, 1][None, :])
        e_t = u * resid_t - (u * self.w[:, None]) * alpha_rows
        e = self.rotate(e_t, back=True)
        return BatchFits(theta=thetas, beta=beta, vb=vb, e=e, pending=pending)


def _positive_definite(info: np.ndarray) -> np.ndarray:
    """2 x 2 symmetric matrices: positive definite (as a Cholesky factorisation succeeds)."""
    return (info[:, 0, 0] > 0) & (info[:, 0, 0] * info[:, 1, 1] - info[:, 0, 1] ** 2 > 0)


def _step(theta, score, info):
    """info^-1 score per replicate, with :func:`alliance_core.model.estimation.constrained_step`'s
    rule for a component that would cross zero (it covers 90% of the way, the other is
    re-solved); ``ok`` is False where the 2 x 2 system is singular."""
    det = info[:, 0, 0] * info[:, 1, 1] - info[:, 0, 1] * info[:, 1, 0]
    ok = np.isfinite(det) & (det != 0.0)
    safe = np.where(ok, det, 1.0)
    step = np.stack(
        [
            (info[:, 1, 1] * score[:, 0] - info[:, 0, 1] * score[:, 1]) / safe,
            (info[:, 0, 0] * score[:, 1] - info[:, 1, 0] * score[:, 0]) / safe,
        ],
        axis=1,
    )
    fixed = np.zeros_like(step, dtype=bool)
    for _ in range(2):
        crossing = ~fixed & (theta + step < 0.0)
        if not crossing.any():
            break
        step = np.where(crossing, -0.9 * theta, step)
        fixed |= crossing
        for c, o in ((0, 1), (1, 0)):
            resolve = fixed[:, c] & ~fixed[:, o]
            diag = info[:, o, o]
            good = resolve & (diag != 0.0)
            ok &= ~(resolve & (diag == 0.0))
            step[:, o] = np.where(
                good,
                (score[:, o] - info[:, o, c] * step[:, c]) / np.where(good, diag, 1.0),
                step[:, o],
            )
    return step, ok & np.all(np.isfinite(step), axis=1)


def _take(f: _Sums, mask) -> _Sums:
    return _Sums(
        f.theta[mask],
        tuple(C[mask] for C in f.C),
        tuple(B[mask] for B in f.B),
        tuple(s[mask] for s in f.s),
        f.alpha[mask],
        f.damp[mask],
        f.tr_minv[mask],
        f.frob_minv[mask],
        f.A_inv[mask],
        f.c[mask],
        f.loglik[mask],
    )


def _merge(base: _Sums, pieces) -> _Sums:
    """``base`` with the rows of each (positions, sums) piece replaced."""
    arrays = {
        "theta": base.theta.copy(),
        "C": [C.copy() for C in base.C],
        "B": [B.copy() for B in base.B],
        "s": [s.copy() for s in base.s],
        "alpha": base.alpha.copy(),
        "damp": base.damp.copy(),
        "tr_minv": base.tr_minv.copy(),
        "frob_minv": base.frob_minv.copy(),
        "A_inv": base.A_inv.copy(),
        "c": base.c.copy(),
        "loglik": base.loglik.copy(),
    }
    for rows, f in pieces:
        for name in ("theta", "alpha", "damp", "tr_minv", "frob_minv", "A_inv", "c", "loglik"):
            arrays[name][rows] = getattr(f, name)
        for name in ("C", "B", "s"):
            for target, value in zip(arrays[name], getattr(f, name), strict=True):
                target[rows] = value
    return _Sums(
        arrays["theta"],
        tuple(arrays["C"]),
        tuple(arrays["B"]),
        tuple(arrays["s"]),
        arrays["alpha"],
        arrays["damp"],
        arrays["tr_minv"],
        arrays["frob_minv"],
        arrays["A_inv"],
        arrays["c"],
        arrays["loglik"],
    )
