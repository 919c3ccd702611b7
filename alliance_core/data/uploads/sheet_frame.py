"""From the cells of a sheet to a table: shared by text files and Excel workbooks.

Names the columns, squares the rows, gives each column numbers or text, lists the
missing-value spellings found, and picks the decimal mark of numbers stored as text (the rule
is in ``alliance_core.data.uploads.reading``).
"""

from __future__ import annotations

import math
import numbers
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from alliance_core.data.uploads.cells import (
    COMMA_DECIMAL,
    DECIMAL_NAMES,
    cell_text,
    count_of,
    missing_markers,
    missing_spelling,
    number_text,
    read_cell,
    row_list,
)
from alliance_core.data.uploads.control import clean_control_characters
from alliance_core.data.uploads.read_report import MissingSpelling, ReadReport, UploadedTable
from alliance_core.errors import AnalysisError

MAX_COLUMNS = 1_000  # far beyond any coding sheet; stops a garbled file from building a huge frame


def is_blank(cells: Sequence) -> bool:
    """No cell holds anything but spaces (cells are text, or None for empty Excel cells)."""
    return all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in cells)


def is_blank_record(record: list[str]) -> bool:
    """``is_blank`` for a record of a text file, in one pass in C (files have many rows)."""
    return not "".join(record).strip()


def too_many_rows(file_name: str, max_rows: int) -> AnalysisError:
    return AnalysisError(
        f"'{file_name}' has more than {max_rows:,} data rows; at most {max_rows:,} can be read. "
        "Keep the rows you need in a smaller file."
    )


_POINT_DECIMAL = re.compile(r"[+\-\u2212]?[0-9]*\.[0-9]+")
# "1,234" and "1.234" may be a thousand and thirty-four: such cells do not vote.
_THOUSANDS_LIKE = re.compile(r"[+\-\u2212]?[1-9][0-9]{0,2}[.,][0-9]{3}")


def detect_decimal(rows: Iterable[Sequence]) -> tuple[str, list[str]]:
    """Pick the decimal mark by the rule in ``alliance_core.data.uploads.reading``; return it and notes."""
    comma_votes = point_votes = undecided = 0
    for row in rows:
        for cell in row:
            if not isinstance(cell, str):
                continue
            if "," not in cell and "." not in cell:
                continue
            cell = cell.strip()
            if _THOUSANDS_LIKE.fullmatch(cell):
                undecided += 1
            elif COMMA_DECIMAL.fullmatch(cell):
                comma_votes += 1
            elif _POINT_DECIMAL.fullmatch(cell):
                point_votes += 1
    chosen = "," if comma_votes > point_votes else "."
    notes = []
    if comma_votes and point_votes:
        notes.append(
            f"{comma_votes:,} cells look like decimal commas and {point_votes:,} like decimal "
            f"points; read with a {DECIMAL_NAMES[chosen]}, so cells in the other style are "
            "reported as not numbers."
        )
    elif undecided and not (comma_votes or point_votes):
        notes.append(
            f"{undecided:,} cells such as '1,234' or '1.234' could use a thousands separator; "
            "they were read with a decimal point. Choose the decimal mark if that is wrong."
        )
    return chosen, notes


def uploaded_table(
    header: list,
    rows: list[list],
    header_row: int,
    decimal: str,
    file_name: str,
    notes: list[str],
    *,
    real_values: tuple[str, ...],
    extra_codes: tuple[str, ...],
    file_format: str,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet_name: str | None = None,
    sheet_names: tuple[str, ...] = (),
) -> UploadedTable:
    """The records of a text file or a sheet as a table, with the report of how it was read
    (the last step both readers share)."""
    markers = missing_markers(real_values, extra_codes)
    frame, found, typed, stored = build_frame(
        header,
        rows,
        header_row + 1,
        decimal,
        file_name,
        notes,
        markers,
        is_text=file_format == "text",
    )
    report = ReadReport(
        file_name=file_name,
        file_format=file_format,
        encoding=encoding,
        delimiter=delimiter,
        decimal=decimal,
        sheet_name=sheet_name,
        sheet_names=sheet_names,
        n_rows=len(frame),
        n_columns=frame.shape[1],
        first_data_row=header_row + 1,
        notes=tuple(notes),
        missing_spellings=found,
        real_values=real_values,
        extra_codes=extra_codes,
    )
    return UploadedTable(frame, report, typed, stored)


def build_frame(
    header: list,
    rows: list[list],
    first_data_row: int,
    decimal: str,
    file_name: str,
    notes: list[str],
    markers: frozenset[str],
    *,
    is_text: bool,
) -> tuple[
    pd.DataFrame,
    tuple[MissingSpelling, ...],
    dict[str, dict[int, str]],
    dict[str, tuple[str, ...]],
]:
    """Name the columns, square the rows and give each column numbers or text; also the
    missing-value spellings found, the typed text of numeric cells that their number does
    not spell (``typed_texts``) and a workbook's numbers with decimals stored as numbers
    (``stored_decimals``)."""
    while rows and is_blank(rows[-1]):
        rows.pop()
    if not rows:
        shown = ", ".join(cell_text(cell) for cell in header[:6] if not is_blank([cell]))
        raise AnalysisError(f"'{file_name}' has a header row ({shown}) but no data rows below it.")
    header = _without_trailing_blanks(header)
    if len(header) > MAX_COLUMNS:
        raise AnalysisError(
            f"'{file_name}' has {len(header):,} columns; at most {MAX_COLUMNS:,} can be read."
            + (" If that is not right, choose the separator." if is_text else "")
        )
    rows = _square_rows(rows, len(header), first_data_row, file_name, is_text=is_text)
    header, rows, cleaned = clean_control_characters(header, rows, first_data_row, _column_letter)
    if cleaned:
        notes.append(cleaned)
    names = _column_names(header, notes)
    cells_by_column = list(zip(*rows, strict=True))
    columns = {
        name: _column_values(cells, decimal, markers)
        for name, cells in zip(names, cells_by_column, strict=True)
    }
    typed, stored = {}, {}
    for name, cells in zip(names, cells_by_column, strict=True):
        if columns[name].dtype.kind in "if":
            texts = typed_texts(cells, columns[name], decimal)
            if texts:
                typed[name] = texts
        if columns[name].dtype.kind == "f" and not is_text:
            shown = stored_decimals(cells, decimal)
            if shown:
                stored[name] = shown
    found = _missing_spellings(names, cells_by_column, markers)
    return pd.DataFrame(columns), found, typed, stored


def stored_decimals(cells: Sequence, decimal: str) -> tuple[str, ...]:
    """The distinct numbers with decimals that a workbook stores as numbers, as shown.

    A workbook keeps the number, not what was typed: "1.10" typed in a General cell is 1.1.
    In a column of ids that is a merge the reader cannot undo, so the user is told
    (``UploadedTable.validate``).
    """
    shown: dict[str, None] = {}
    for cell in cells:
        if isinstance(cell, str | bool) or not isinstance(cell, numbers.Real):
            continue
        number = float(cell)
        if math.isfinite(number) and not number.is_integer():
            shown[number_text(number, decimal)] = None
    return tuple(shown)


def typed_texts(cells: Sequence, values: pd.Series, decimal: str) -> dict[int, str]:
    """The cells of a numeric column whose text is not how their number is written
    (``number_text``), by row position: "1.10" (1.1), "01" (1), "1.0" (1).

    Kept because a number column may be mapped to a role that names rather than counts (a
    study id), where "1.1" and "1.10" are two studies. Only these few cells are kept, not the
    text of every number: a large sheet is read without a second copy of its numbers. Cells a
    workbook stores as numbers have no typed text (the workbook already holds only the number).
    """
    texts: dict[int, str] = {}
    whole = values.dtype.kind == "i"
    for position, (cell, value) in enumerate(zip(cells, values.tolist(), strict=True)):
        if not isinstance(cell, str):
            continue
        text = cell.strip()
        # Fast paths for the usual cells ("12", "0.25"), which spell their number: a sheet of
        # 200,000 rows would otherwise be read markedly slower.
        if whole and text.isdigit() and (text[0] != "0" or len(text) == 1):
            continue
        if not whole and decimal == "." and text == repr(value) and not value.is_integer():
            continue  # a whole float's repr is "1.0", but its number_text is "1"
        if math.isnan(value):
            continue
        if text != number_text(value, decimal):
            texts[position] = text
    return texts


def _missing_spellings(
    names: list[str], cells_by_column: list[Sequence], markers: frozenset[str]
) -> tuple[MissingSpelling, ...]:
    """Which spellings were read as missing, in how many cells and which columns."""
    cells: Counter[str] = Counter()
    columns: dict[str, dict[str, None]] = {}
    for name, column_cells in zip(names, cells_by_column, strict=True):
        for cell in column_cells:
            spelling = missing_spelling(cell, markers)
            if spelling is not None:
                cells[spelling] += 1
                columns.setdefault(spelling, {})[name] = None
    return tuple(
        MissingSpelling(spelling, count, tuple(columns[spelling]))
        for spelling, count in cells.most_common()
    )


def _without_trailing_blanks(header: list) -> list:
    """The header up to its last named column (trailing separators leave empty cells)."""
    width = len(header)
    while width > 1 and is_blank(header[width - 1 : width]):
        width -= 1
    return list(header[:width])


def _square_rows(
    rows: list[list], width: int, first_data_row: int, file_name: str, *, is_text: bool
) -> list:
    """Pad short rows with empty cells; a row with extra filled cells is an error."""
    squared = []
    too_long: list[int] = []
    for offset, row in enumerate(rows):
        if len(row) > width and not is_blank(row[width:]):
            too_long.append(first_data_row + offset)
            continue
        if len(row) == width:
            squared.append(row)
        else:
            squared.append(list(row[:width]) + [None] * (width - len(row)))
    if too_long:
        separator_hint = (
            " Or a separator sits inside a cell, such as a comma in a name or a decimal comma "
            "in a comma-separated file: put such cells in quotes, or save the file with "
            "semicolons."
            if is_text
            else ""
        )
        raise AnalysisError(
            f"'{file_name}': {count_of(len(too_long), 'row')} ({row_list(too_long)}) "
            f"{'has' if len(too_long) == 1 else 'have'} filled cells beyond the "
            f"{count_of(width, 'column')} named in the header (row {first_data_row - 1}). Give "
            "every column a name in the header, and delete any title rows above the header."
            + separator_hint
        )
    return squared


def _column_names(header: list, notes: list[str]) -> list[str]:
    """Header cells as names: unnamed columns get their letter, repeated names a number."""
    names: list[str] = []
    for position, cell in enumerate(header):
        name = cell_text(cell).replace("\ufeff", "").strip() if cell is not None else ""
        if not name:
            name = f"column {_column_letter(position)}"
            notes.append(f"Column {_column_letter(position)} has no name; it is called '{name}'.")
        if name in names:
            original, copy = name, 2
            while f"{original} ({copy})" in names:
                copy += 1
            name = f"{original} ({copy})"
            notes.append(f"The name '{original}' is used twice; the later column is '{name}'.")
        names.append(name)
    return names


def _column_letter(position: int) -> str:
    """Spreadsheet letter of a 0-based column position: 0 → A, 26 → AA."""
    letters = ""
    position += 1
    while position:
        position, remainder = divmod(position - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


def _column_values(cells: Sequence, decimal: str, markers: frozenset[str]) -> pd.Series:
    """Numbers if every filled cell is a number, otherwise text (spaces trimmed)."""
    values = _all_numbers(cells, decimal, markers)
    if values is None:
        return pd.Series([_text_or_none(cell, decimal, markers) for cell in cells], dtype=object)
    whole = np.isfinite(values).all() and np.all(values == np.round(values))
    if whole and (np.abs(values) < 2**53).all():  # whole numbers a float holds exactly
        return pd.Series(values.astype(np.int64))
    return pd.Series(values)


def _all_numbers(cells: Sequence, decimal: str, markers: frozenset[str]) -> np.ndarray | None:
    """The cells as floats (NaN where missing), or None as soon as one cell is text."""
    values = np.empty(len(cells), dtype=float)
    for position, cell in enumerate(cells):
        kind, number = read_cell(cell, decimal, markers)
        if kind == "text":
            return None
        values[position] = number
    return values


def _text_or_none(cell, decimal: str, markers: frozenset[str]) -> str | None:
    """A cell of a text column; a workbook's numbers written with the table's decimal mark,
    so that ``validate`` reads them back as the numbers they are."""
    kind, number = read_cell(cell, decimal, markers)
    if kind == "missing":
        return None
    if isinstance(cell, str):
        return cell.strip()
    if kind == "number":
        return cell_text(number).replace(".", decimal)
    return cell_text(cell)
