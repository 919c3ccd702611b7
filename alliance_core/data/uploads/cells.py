"""What one cell of a coding sheet holds: missing, a number, or text.

Shared by reading a file (``uploads_reading``), checking it (``uploads_validation``) and the
patient-level reader. Also the few phrases every upload message uses ("3 rows", "rows 4, 7").

Missing values
    A cell is missing when it is empty or spells a missing value in one of the usual ways of
    coding sheets: ``MISSING_SPELLINGS`` (NA, N/A, n.a., na, n.r., NR, n/r, not reported, -, –,
    —, ., ?, missing, unknown, #N/A, NaN, null, none), in every column. Spellings are compared
    without case and without spaces ("N. A." is "n.a.", "Not Reported" is "not reported"). A
    user may declare a spelling a real value (``missing_markers(real_values=...)``), for example
    "none" in a column of comorbidities, or add a code of their own sheet
    (``missing_markers(extra_codes=...)``, for example "k.A." or "-99").
"""

from __future__ import annotations

import decimal as _decimal
import functools
import math
import numbers
import re
from collections.abc import Iterable
from typing import Literal

import numpy as np
import pandas as pd

# The spellings read as missing, as ``spelling_key`` writes them. The empty cell comes first.
MISSING_SPELLINGS = (
    "",
    "na",
    "n/a",
    "n.a.",
    "n.r.",
    "nr",
    "n/r",
    "notreported",
    "-",
    "–",
    "—",
    ".",
    "?",
    "missing",
    "unknown",
    "#n/a",
    "nan",
    "null",
    "none",
)
MISSING_MARKERS = frozenset(MISSING_SPELLINGS)
# How a spelling is shown when ``spelling_key`` took its spaces out.
_SHOWN = {"notreported": "not reported"}
_LONGEST_WRITTEN = 20  # a default missing-value spelling with spaces is never longer
DECIMAL_NAMES = {".": "decimal point", ",": "decimal comma"}

COMMA_DECIMAL = re.compile(r"[+\-\u2212]?[0-9]*,[0-9]+")

CellKind = Literal["missing", "number", "text"]


def spelling_key(text: str) -> str:
    """A spelling without case and spaces: " N. A. " → "n.a."."""
    return "".join(text.split()).casefold()


def shown_spelling(key: str) -> str:
    """A spelling key as a reader writes it ("notreported" → "not reported")."""
    return _SHOWN.get(key, key)


def missing_markers(
    real_values: Iterable[str] = (), extra_codes: Iterable[str] = ()
) -> frozenset[str]:
    """The missing-value spellings, with the user's own codes and less those the user declared
    real values (an empty cell stays missing; a code both added and declared real is real)."""
    real = {spelling_key(value) for value in real_values} - {""}
    extra = {spelling_key(str(value)) for value in extra_codes} - {""}
    return (MISSING_MARKERS | extra) - real


@functools.lru_cache(maxsize=64)
def _marker_shape(markers: frozenset[str]) -> tuple[frozenset[str], int]:
    """First letters of the spellings (case-folded) and their longest written length: most
    cells ("0.25", "RCT") are ruled out by their first letter, which keeps reading a
    200,000-row sheet fast."""
    starts = frozenset(spelling[0] for spelling in markers if spelling) | {"\u2212"}
    longest = max([_LONGEST_WRITTEN, *(2 * len(spelling) for spelling in markers)])
    return starts, longest


def read_cell(value, decimal: str = ".", markers: frozenset[str] = MISSING_MARKERS):
    """Classify one cell as missing, a number (returned as float) or text.

    Text is a number only in plain notation with the given decimal mark: ASCII digits, an
    optional sign, decimal mark and exponent, or "inf"/"infinity" ("0.25", " 0.25 ", "-1e3";
    "0,25" only with ``decimal=","``, and then "0.25" is text). A Unicode minus sign counts as
    a minus. Thousands separators are not read. Text whose ``spelling_key`` is in ``markers``
    is missing.
    """
    if isinstance(value, str):
        return _read_text_cell(value, decimal, markers)
    if value is None:
        return "missing", math.nan
    if isinstance(value, bool | np.bool_):
        return "text", math.nan
    if isinstance(value, numbers.Real | _decimal.Decimal):
        number = as_float(value)
        return ("missing", math.nan) if math.isnan(number) else ("number", number)
    if pd.api.types.is_scalar(value) and pd.isna(value):  # pd.NA, NaT, numpy NaT
        return "missing", math.nan
    return "text", math.nan


def _read_text_cell(value: str, decimal: str, markers: frozenset[str]) -> tuple[CellKind, float]:
    stripped = value.strip().replace("\u2212", "-")
    if stripped.casefold() in markers or (
        _could_be_spelling(stripped, markers) and spelling_key(stripped) in markers
    ):
        return "missing", math.nan
    if decimal == ",":
        if "." in stripped:
            return "text", math.nan
        stripped = stripped.replace(",", ".")
    # float() reads exactly the plain notation once digits outside ASCII, digit-group
    # underscores ("1_000") and its "nan" spellings are ruled out; it is much faster than a regex.
    if not stripped.isascii() or "_" in stripped:
        return "text", math.nan
    try:
        number = float(stripped)
    except ValueError:
        return "text", math.nan
    return ("text", math.nan) if math.isnan(number) else ("number", number)


def missing_spelling(value, markers: frozenset[str] = MISSING_MARKERS) -> str | None:
    """The missing-value spelling a text cell holds ("n.a."), or None (blank cells: None)."""
    if not isinstance(value, str):
        return None
    stripped = value.strip()
    if not _could_be_spelling(stripped, markers):
        return None
    key = spelling_key(stripped.replace("\u2212", "-"))
    return key if key in markers else None


def _could_be_spelling(stripped: str, markers: frozenset[str]) -> bool:
    starts, longest = _marker_shape(markers)
    return 0 < len(stripped) <= longest and stripped[0].casefold() in starts


def as_float(value) -> float:
    if isinstance(value, _decimal.Decimal) and value.is_nan():
        return math.nan  # float() refuses a signalling Decimal NaN
    try:
        return float(value)
    except OverflowError:  # an integer beyond the range of a float
        return math.inf if value > 0 else -math.inf


def parse_numbers(
    series: pd.Series, decimal: str, markers: frozenset[str] = MISSING_MARKERS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Numbers of a column as floats, with masks of missing and of non-numeric cells."""
    dtype = series.dtype
    if dtype.kind in "iuf":
        values = series.to_numpy(dtype=float, na_value=np.nan)
        missing = np.isnan(values)
        return values, missing, np.zeros(len(series), dtype=bool)
    readings = [read_cell(value, decimal, markers) for value in series.tolist()]
    values = np.array([number for _, number in readings], dtype=float)
    missing = np.array([kind == "missing" for kind, _ in readings], dtype=bool)
    text = np.array([kind == "text" for kind, _ in readings], dtype=bool)
    return values, missing, text


def missing_mask(series: pd.Series, markers: frozenset[str] = MISSING_MARKERS) -> np.ndarray:
    """Cells that count as missing: NaN/None/NaT, blank text and the missing-value spellings."""
    if series.dtype.kind in "iufcmMb":
        return series.isna().to_numpy(dtype=bool)
    return np.array(
        [read_cell(value, ".", markers)[0] == "missing" for value in series.tolist()], dtype=bool
    )


def cell_text(cell) -> str:
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell)


def number_text(number, decimal: str = ".") -> str:
    """A number of a numeric column in plain text with the table's decimal mark (1.1 → "1,1"
    with a decimal comma): how a reader shows a number whose typed text is not kept."""
    return cell_text(float(number)).replace(".", decimal)


def count_of(number: int, noun: str) -> str:
    """ "1 row", "2 rows"."""
    return f"{number:,} {noun}" + ("" if number == 1 else "s")


def row_list(rows: list[int], shown: int = 5) -> str:
    """ "row 4", "rows 4, 7, 9, 12, 15, …"."""
    word = "row" if len(rows) == 1 else "rows"
    listed = ", ".join(str(row) for row in rows[:shown])
    return f"{word} {listed}" + (", …" if len(rows) > shown else "")
