"""Effect sizes for correlations: metafor's ``escalc`` for measures ZCOR and COR.

Fisher's z transformation (``ZCOR``) makes the sampling variance of a correlation depend on the
sample size alone, vi = 1/(n - 3), which is why the dashboard analyses alliance-outcome
correlations on the z scale and only shows results back on the r scale. Papers that report
Fisher's z directly (with n), or an effect size with its standard error (vi = sei², as metafor's
``escalc(yi = , sei = )``) are taken in those forms too.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import pandas as pd

from alliance_core.errors import AnalysisError

MEASURES = ("ZCOR", "COR", "precomputed")


def r_to_z(r):
    """Fisher's z transformation, z = atanh(r)."""
    return np.arctanh(r)


def z_to_r(z):
    """Back-transformation of Fisher's z to a correlation, r = tanh(z) (metafor ``transf.ztor``)."""
    return np.tanh(z)


def transf(values, transform: str | None):
    """Apply a named back-transformation: ``None``/"none" leaves values as they are, "r" maps z to r."""
    if transform in (None, "none", "z"):
        return values
    if transform == "r":
        return z_to_r(values)
    raise AnalysisError(f"Unknown transformation '{transform}'. Use None (model scale) or 'r'.")


def patient_therapist_ratio(n_patients, n_therapists):
    """Patient-Therapist Ratio, PTR = patients / therapists (Del Re et al., 2012)."""
    patients = np.asarray(n_patients, dtype=float)
    therapists = np.asarray(n_therapists, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = patients / therapists
    return np.where(therapists > 0, ratio, np.nan)


def _numeric_column(df: pd.DataFrame, column: str) -> pd.Series:
    if column not in df.columns:
        raise AnalysisError(
            f"Column '{column}' is not in the data (columns: {', '.join(map(str, df.columns))})."
        )
    values = pd.to_numeric(df[column], errors="coerce")
    bad = df[column].notna() & values.isna()
    if bad.any():
        row = bad[bad].index[0]
        raise AnalysisError(
            f"Row {_row_label(row)}, column '{column}': '{df.at[row, column]}' is not a number."
        )
    return values.astype(float)


def _row_label(label: Hashable) -> str:
    return str(label)


def escalc(
    df: pd.DataFrame,
    r: str = "r",
    n: str = "n",
    measure: str = "ZCOR",
    yi: str | None = None,
    vi: str | None = None,
) -> pd.DataFrame:
    """Return a copy of ``df`` with effect sizes ``yi`` and sampling variances ``vi`` added.

    measure="ZCOR": yi = atanh(r), vi = 1/(n - 3)  (metafor ``escalc("ZCOR")``);
    measure="COR":  yi = r,        vi = (1 - r^2)^2/(n - 1)  (metafor ``escalc("COR")``);
    measure="precomputed": the columns named by ``yi`` and ``vi`` are taken as they are.

    Rows with a missing r or n get missing yi/vi (the fit drops and reports them); values that
    cannot be an effect size (|r| >= 1, n <= 3 for ZCOR, vi <= 0) raise ``AnalysisError`` naming
    the row and column. The caller's frame is never changed.
    """
    if measure not in MEASURES:
        raise AnalysisError(f"Unknown measure '{measure}'. Choose one of {', '.join(MEASURES)}.")
    out = df.copy()
    if measure == "precomputed":
        if yi is None or vi is None:
            raise AnalysisError("measure='precomputed' needs the names of the yi and vi columns.")
        effect = _numeric_column(df, yi)
        variance = _numeric_column(df, vi)
        _check_variances(variance, vi)
        out["yi"] = effect
        out["vi"] = variance
        return out

    correlation = _numeric_column(df, r)
    size = _numeric_column(df, n)
    too_large = correlation.abs() >= 1
    if too_large.any():
        row = too_large[too_large].index[0]
        raise AnalysisError(
            f"Row {_row_label(row)}, column '{r}': r = {correlation[row]:g}; a correlation must lie "
            "strictly between -1 and 1."
        )
    minimum_n = 3 if measure == "ZCOR" else 1
    too_small = size <= minimum_n
    if too_small.any():
        row = too_small[too_small].index[0]
        raise AnalysisError(
            f"Row {_row_label(row)}, column '{n}': n = {size[row]:g}; the sampling variance of "
            f"{'Fisher z' if measure == 'ZCOR' else 'r'} needs n > {minimum_n}."
        )
    if measure == "ZCOR":
        out["yi"] = np.arctanh(correlation)
        out["vi"] = 1.0 / (size - 3.0)
    else:
        out["yi"] = correlation
        out["vi"] = (1.0 - correlation**2) ** 2 / (size - 1.0)
    return out


def from_fisher_z(df: pd.DataFrame, z: str, n: str) -> pd.DataFrame:
    """A copy of ``df`` with yi = z (Fisher's z as reported) and vi = 1/(n − 3).

    The same sampling variance as ``escalc(measure="ZCOR")``; n ≤ 3 raises ``AnalysisError``
    naming the row and column, missing values give missing yi/vi.
    """
    effect = _numeric_column(df, z)
    size = _numeric_column(df, n)
    bad = ~np.isfinite(effect) & effect.notna()
    if bad.any():
        row = bad[bad].index[0]
        raise AnalysisError(f"Row {_row_label(row)}, column '{z}': z must be a finite number.")
    too_small = size <= 3
    if too_small.any():
        row = too_small[too_small].index[0]
        raise AnalysisError(
            f"Row {_row_label(row)}, column '{n}': n = {size[row]:g}; the sampling variance of "
            "Fisher z needs n > 3."
        )
    out = df.copy()
    out["yi"] = effect
    out["vi"] = 1.0 / (size - 3.0)
    return out


def from_standard_errors(df: pd.DataFrame, yi: str, sei: str) -> pd.DataFrame:
    """A copy of ``df`` with yi as given and vi = sei² (metafor ``escalc(yi=, sei=)``)."""
    effect = _numeric_column(df, yi)
    errors = _numeric_column(df, sei)
    _check_variances(errors, sei, what="standard error")
    out = df.copy()
    out["yi"] = effect
    out["vi"] = errors**2
    return out


def _check_variances(variance: pd.Series, column: str, what: str = "sampling variance") -> None:
    bad = variance.notna() & ~(np.isfinite(variance) & (variance > 0))
    if bad.any():
        row = bad[bad].index[0]
        raise AnalysisError(
            f"Row {_row_label(row)}, column '{column}': {what} {variance[row]:g} "
            "must be a positive finite number."
        )
