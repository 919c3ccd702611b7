"""CSV files for download, with spreadsheet formulas in text cells neutralised.

A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a
formula by Excel, LibreOffice and Google Sheets when the CSV is opened there, so an uploaded
label such as ``=HYPERLINK("http://…","click")`` could run in the reader's spreadsheet. Following
OWASP's guidance on CSV injection (https://owasp.org/www-community/attacks/CSV_Injection), such
text cells and column names are prefixed with a single quote, which spreadsheets show as text.
Numbers are never touched: -0.25 stays the number -0.25. Spreadsheets also skip leading spaces
and quotes before a formula, so a trigger after any run of them counts too (``  "=1+1``).

Files that the reproduction scripts read back (the zips' ``data.csv`` and
``dashboard_results.csv``) are neutralised *reversibly*: text that already starts with ``'``
gets one more, so that taking exactly one leading ``'`` off every quoted text cell
(``restore_formula``; the scripts do the same in R and Python) gives back every value.
"""

from __future__ import annotations

import re

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"
# A formula character at the start, or after spaces and double quotes a spreadsheet skips.
_FORMULA = re.compile(r'[\s"]*[=+\-@]|[\t\r]')


def starts_formula(text: str) -> bool:
    """Whether a spreadsheet could read the text cell ``text`` as a formula (OWASP)."""
    return _FORMULA.match(text) is not None


def neutralise_formula(value: object, *, reversible: bool = False) -> object:
    """``value`` with a leading ``'`` if it is text a spreadsheet would read as a formula;
    ``reversible`` also quotes text that starts with ``'`` (see ``restore_formula``)."""
    if isinstance(value, str) and (
        starts_formula(value) or (reversible and value.startswith(QUOTE))
    ):
        return QUOTE + value
    return value


def restore_formula(value: object) -> object:
    """The inverse of ``neutralise_formula(value, reversible=True)``: one leading ``'`` off."""
    if isinstance(value, str) and value.startswith(QUOTE):
        return value[1:]
    return value


def neutralised(frame: pd.DataFrame, *, reversible: bool = False) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells, column names and index labels are neutralised."""

    def guard(value: object) -> object:
        return neutralise_formula(value, reversible=reversible)

    out = frame.copy()
    for position in range(out.shape[1]):
        column = out.iloc[:, position]
        if _may_hold_text(column.dtype):
            values = column.astype(object).map(guard)
            out.isetitem(position, values)
    out.columns = [guard(name) for name in out.columns]
    if _may_hold_text(out.index.dtype):
        out.index = out.index.map(guard)
    return out


def csv_bytes(frame: pd.DataFrame, *, index: bool = False) -> bytes:
    """``frame`` as UTF-8 CSV for download, formulas in text neutralised.

    Lines end in CRLF (RFC 4180), so a cell holding a carriage return is quoted and stays one
    cell instead of starting a new row.
    """
    return neutralised(frame).to_csv(index=index, lineterminator="\r\n").encode("utf-8")


def _may_hold_text(dtype) -> bool:
    return (
        pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
    )
