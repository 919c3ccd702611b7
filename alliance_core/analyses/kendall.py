"""Kendall's tau test as metafor's ``ranktest`` uses it: the exact null distribution of the
number of discordant pairs for up to 500 pairs without ties (Kendall 1938's recursion), else the
normal approximation with the variance corrected for ties (Kendall 1945; R's ``cor.test``).
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

# Up to this many effect sizes without ties the rank test's p-value is exact (0.1 s at 500);
# beyond, the normal approximation, which is then within about 1e-3 of the exact p-value.
EXACT_KENDALL_MAX = 500


def kendall_test(x: np.ndarray, y: np.ndarray) -> tuple[float, float, bool]:
    """Kendall's tau-b and the two-sided p-value of R's ``cor.test(x, y, "kendall", exact=TRUE)``.

    Without ties: the exact null distribution of the number of concordant pairs. With ties:
    the normal approximation to S = tau_b sqrt((n0 - n1)(n0 - n2)) with the tie-corrected
    variance (Kendall 1970), no continuity correction. Beyond ``EXACT_KENDALL_MAX`` effect
    sizes the exact distribution costs seconds (its work grows like n^3) and the normal
    approximation is used, as R would have to (its exact computation overflows above 170).
    """
    n = len(x)
    tau = float(stats.kendalltau(x, y).statistic)
    if not np.isfinite(tau):
        return float("nan"), float("nan"), False
    ties = min(len(np.unique(x)), len(np.unique(y))) < n
    if not ties and n <= EXACT_KENDALL_MAX:
        q = round((tau + 1.0) * n * (n - 1) / 4.0)
        return tau, _kendall_exact_p(q, n), True
    return tau, _kendall_normal_p(x, y, tau), False


def _kendall_exact_p(q: int, n: int) -> float:
    """Two-sided exact p for q concordant pairs among n(n - 1)/2 (no ties)."""
    pairs = n * (n - 1) // 2
    # The distribution is symmetric about pairs / 2: use the lower tail, which is accurate.
    lower = min(q, pairs - q)
    p = float(kendall_cdf(lower, n))
    return min(2.0 * p, 1.0)


def kendall_cdf(q: int, n: int) -> float:
    """P(T <= q) for the number T of inversions of a random permutation of n elements.

    The probabilities f_m(t) satisfy f_m(t) = (1/m) sum_{j=0}^{m-1} f_{m-1}(t - j) (the m-th
    element adds 0..m-1 inversions); only t <= q is needed, so the arrays stay short.
    """
    if q < 0:
        return 0.0
    f = np.zeros(q + 1)
    f[0] = 1.0
    for m in range(2, n + 1):
        # after m elements the support is 0..m(m-1)/2: work only on that part
        top = min(q, m * (m - 1) // 2) + 1
        cumulative = np.cumsum(f[:top])
        f[:top] = cumulative
        if m < top:
            f[m:top] -= cumulative[: top - m]
        f[:top] /= m
    return float(np.sum(f))


def _kendall_normal_p(x: np.ndarray, y: np.ndarray, tau: float) -> float:
    n = len(x)

    def tie_sizes(values: np.ndarray) -> np.ndarray:
        counts = np.unique(values, return_counts=True)[1]
        return counts[counts > 1].astype(float)

    tx, ty = tie_sizes(x), tie_sizes(y)
    n0 = n * (n - 1) / 2.0
    n1 = float(np.sum(tx * (tx - 1))) / 2.0
    n2 = float(np.sum(ty * (ty - 1))) / 2.0
    s = tau * np.sqrt((n0 - n1) * (n0 - n2))
    v0 = n * (n - 1) * (2 * n + 5)
    vt = np.sum(tx * (tx - 1) * (2 * tx + 5))
    vu = np.sum(ty * (ty - 1) * (2 * ty + 5))
    v1 = np.sum(tx * (tx - 1)) * np.sum(ty * (ty - 1))
    v2 = np.sum(tx * (tx - 1) * (tx - 2)) * np.sum(ty * (ty - 1) * (ty - 2))
    var_s = (v0 - vt - vu) / 18.0 + v1 / (2.0 * n * (n - 1)) + v2 / (9.0 * n * (n - 1) * (n - 2))
    z = s / np.sqrt(var_s)
    return float(2.0 * special.ndtr(-abs(z)))
