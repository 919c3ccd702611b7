"""Wald tests that a set of coefficients are all zero (metafor ``anova(fit, btt = ...)``).

Shared by the model-based inference of a fit and its cluster-robust inference, so neither
needs the other's module to say what a test is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from alliance_core.errors import AnalysisError
from alliance_core.formatting import format_p_console


@dataclass(frozen=True)
class WaldTest:
    """Omnibus test that a set of coefficients are all zero (metafor ``anova(fit, btt=...)``).

    With a z test the statistic is chi-square on ``df`` degrees of freedom; with Knapp-Hartung
    or t tests it is the F statistic (chi-square / df) on (``df``, ``df2``) degrees of freedom.
    """

    terms: tuple[str, ...]
    statistic: float
    df: int
    df2: float | None  # int for Knapp-Hartung/t tests; fractional for robust HTZ tests
    pval: float
    distribution: str  # "chi2" or "F"

    def __str__(self) -> str:
        if self.distribution == "F":
            df2 = f"{self.df2:.0f}" if float(self.df2).is_integer() else f"{self.df2:.2f}"
            return f"F({self.df}, {df2}) = {self.statistic:.4f}, p = {format_p_console(self.pval)}"
        return f"QM(df = {self.df}) = {self.statistic:.4f}, p = {format_p_console(self.pval)}"


def wald_test(
    beta: np.ndarray, vb: np.ndarray, indices: Sequence[int], names: Sequence[str], ddf: int | None
) -> WaldTest:
    idx = list(indices)
    b = beta[idx]
    try:
        statistic = float(b @ np.linalg.solve(vb[np.ix_(idx, idx)], b))
    except np.linalg.LinAlgError as error:
        raise AnalysisError(
            f"The test of {', '.join(names[i] for i in idx)} is not available: the covariance "
            "matrix of these coefficients is singular (they are estimated without any "
            "uncertainty or not separately)."
        ) from error
    m = len(idx)
    terms = tuple(names[i] for i in idx)
    if ddf is None:
        return WaldTest(terms, statistic, m, None, float(special.chdtrc(m, statistic)), "chi2")
    f_value = statistic / m
    pval = float(special.fdtrc(m, ddf, f_value)) if ddf > 0 else float("nan")
    return WaldTest(terms, f_value, m, ddf, pval, "F")
