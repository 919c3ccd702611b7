"""Effect sizes whose form differs from row to row.

Coding sheets mix forms: most studies report r with n, a few report Fisher's z with its
standard error, some an effect size yi with its variance. When a mapping names more than one
complete form (``ColumnMapping.row_forms``), each row takes the **first complete form** in this
order, and its sampling variance follows that form:

========  =========================  ============================  =====================
form      columns                    yi                            vi
========  =========================  ============================  =====================
r         r, n                       atanh(r) (escalc "ZCOR")      1/(n − 3)
z_sei     z, sei                     z                             sei²
z_vi      z, vi                      z                             vi
z         z, n                       z                             1/(n − 3)
vi        yi, vi                     yi                            vi
sei       yi, sei                    yi                            sei²
========  =========================  ============================  =====================

The variance and standard error columns belong to yi when yi is mapped, else to z. yi is
pooled with correlations only when the mapping declares it a correlation on Fisher's z scale
(``measure="correlation"``).

Two forms of one row that disagree are flagged (``disagreements``): r and z when
|r − tanh(z)| > ``R_TOLERANCE`` (0.01, beyond rounding to two decimals), z and yi (both on
the z scale) when |z − yi| > ``R_TOLERANCE``, vi and sei² when they differ by more than 10 %.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from alliance_core.data.mapping import ColumnMapping

FORM_NAMES = {
    "r": "r and n",
    "z_sei": "Fisher's z and its standard error",
    "z_vi": "Fisher's z and its sampling variance",
    "z": "Fisher's z and n",
    "vi": "yi and vi",
    "sei": "yi and sei",
}
R_TOLERANCE = 0.01
VARIANCE_TOLERANCE = 0.10


def form_columns(mapping: ColumnMapping, form: str) -> tuple[str, str]:
    """The two columns a form reads."""
    return {
        "r": (mapping.r, mapping.n),
        "z_sei": (mapping.z, mapping.sei),
        "z_vi": (mapping.z, mapping.vi),
        "z": (mapping.z, mapping.n),
        "vi": (mapping.yi, mapping.vi),
        "sei": (mapping.yi, mapping.sei),
    }[form]


def _numbers(frame: pd.DataFrame, column: str | None) -> np.ndarray:
    if column is None or column not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)


def row_forms(frame: pd.DataFrame, mapping: ColumnMapping) -> np.ndarray:
    """The form each row takes (first complete form), or None where no form is complete."""
    chosen = np.full(len(frame), None, dtype=object)
    for form in mapping.row_forms:
        first, second = (_numbers(frame, column) for column in form_columns(mapping, form))
        complete = np.isfinite(first) & np.isfinite(second) & (chosen == None)  # noqa: E711
        chosen[complete] = form
    return chosen


def effect_sizes_by_row(
    frame: pd.DataFrame, mapping: ColumnMapping
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """yi, vi and the form of each row by the table in the module docstring (NaN where no
    form is complete)."""
    forms = row_forms(frame, mapping)
    yi = np.full(len(frame), np.nan)
    vi = np.full(len(frame), np.nan)
    for form in mapping.row_forms:
        rows = forms == form
        if not rows.any():
            continue
        first, second = (_numbers(frame, column)[rows] for column in form_columns(mapping, form))
        if form == "r":
            yi[rows], vi[rows] = np.arctanh(first), 1.0 / (second - 3.0)
        elif form == "z":
            yi[rows], vi[rows] = first, 1.0 / (second - 3.0)
        elif form in ("z_sei", "sei"):
            yi[rows], vi[rows] = first, second**2
        else:
            yi[rows], vi[rows] = first, second
    return yi, vi, forms


@dataclass(frozen=True)
class Disagreement:
    """Two forms of one row that do not match."""

    position: int
    columns: tuple[str, str]
    message: str


def disagreements(frame: pd.DataFrame, mapping: ColumnMapping) -> list[Disagreement]:
    """Rows whose forms disagree (rules in the module docstring), in row order."""
    found: list[Disagreement] = []
    r, z, yi = (_numbers(frame, c) for c in (mapping.r, mapping.z, mapping.yi))
    vi, sei = (_numbers(frame, c) for c in (mapping.vi, mapping.sei))
    with np.errstate(invalid="ignore"):
        r_vs_z = np.abs(r - np.tanh(z)) > R_TOLERANCE
        z_vs_yi = np.abs(z - yi) > R_TOLERANCE
        vi_vs_sei = np.abs(vi - sei**2) > VARIANCE_TOLERANCE * np.maximum(vi, sei**2)
    for position in np.flatnonzero(r_vs_z):
        found.append(
            Disagreement(
                int(position),
                (mapping.r, mapping.z),
                f"r = {r[position]:g} but z = {z[position]:g} is r = {np.tanh(z[position]):.3f}",
            )
        )
    if mapping.measure == "correlation":
        for position in np.flatnonzero(z_vs_yi):
            found.append(
                Disagreement(
                    int(position),
                    (mapping.z, mapping.yi),
                    f"z = {z[position]:g} but yi = {yi[position]:g} (both Fisher's z)",
                )
            )
    for position in np.flatnonzero(vi_vs_sei):
        found.append(
            Disagreement(
                int(position),
                (mapping.vi, mapping.sei),
                f"vi = {vi[position]:g} but sei² = {sei[position] ** 2:.4g}",
            )
        )
    return sorted(found, key=lambda d: d.position)
