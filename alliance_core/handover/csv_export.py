"""CSV files for download, with spreadsheet formulas in text cells neutralised.

A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a
formula by Excel, LibreOffice and Google Sheets when the CSV is opened there, so an uploaded
label such as ``=HYPERLINK("http://…","click")`` could run in the reader's spreadsheet. Following
OWASP's guidance on CSV injection (https://owasp.org/www-community/attacks/CSV_Injection), such
text cells and column names are prefixed with a single quote, which spreadsheets show as text.
Numbers are never touched: -0.25 stays the number -0.25.
"""

from __future__ import annotations

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value: object) -> object:
    """``value`` with a leading ``'`` if it is text a spreadsheet would read as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def neutralised(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells, column names and index labels are neutralised."""
    out = frame.copy()
    for position in range(out.shape[1]):
        column = out.iloc[:, position]
        if _may_hold_text(column.dtype):
            values = column.astype(object).map(neutralise_formula)
            out.isetitem(position, values)
    out.columns = [neutralise_formula(name) for name in out.columns]
    if _may_hold_text(out.index.dtype):
        out.index = out.index.map(neutralise_formula)
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
