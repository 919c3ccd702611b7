"""Reading and checking a user's coding sheet.

The upload path is two steps, both plain functions that the dashboard (or a notebook) calls:

1. ``read_table(data, file_name)`` turns the bytes of a CSV, TSV or Excel file into a table and
   says how it was read (``ReadReport``): encoding, separator, decimal mark, sheet.
2. ``validate(df, mapping)`` checks the table against a ``ColumnMapping`` and lists every problem
   with its row and column (``ValidationReport``). Rows that cannot be analysed are left out of
   ``report.usable``; the caller's frame is never changed.

Row numbers
    Every row number shown to the user is the **spreadsheet row**: the number a spreadsheet
    program shows at the left edge, with the header in row 1 and the first data row in row 2
    (for a file whose header is in its first line). Blank rows inside the table are kept, so the
    numbers match the file. ``validate`` takes ``first_data_row`` (default 2) for tables whose
    header is lower down; ``read_table`` reports it.

Detection rules (each decision is reported, never made in silence)
    Encoding: a byte-order mark decides (UTF-8 with BOM, UTF-16); otherwise UTF-8 if the bytes
    are valid UTF-8, else Windows-1252 (Latin-1). Text written in Latin-1 with accented letters
    is almost never valid UTF-8, so the order does not misread real files.
    Separator: comma, semicolon and tab are tried on the first 50 records. A separator is
    consistent when it splits the header into at least two columns and every sampled row into as
    many cells as the header. Among consistent separators the one giving most columns wins, ties
    going to tab, then semicolon, then comma (commas also occur inside numbers).
    Decimal mark: cells such as "0,25" vote for a decimal comma, cells such as "0.25" for a
    decimal point; the majority wins and a tie goes to the point. Cells such as "1,234" or
    "1.234" (could be a thousands separator) do not vote. With mixed votes the cells in the
    losing style stay text and ``validate`` quotes them as not numbers.
    Missing values: empty cells and the markers NA, N/A, #N/A, NaN, null and "." (any case).
"""

from __future__ import annotations

import csv
import decimal as _decimal
import io
import math
import numbers
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Literal

import numpy as np
import pandas as pd

from alliance_core.errors import AnalysisError
from alliance_core.mapping import ColumnMapping
from alliance_core.xlsx_guard import check_xlsx_expansion

MAX_FILE_BYTES = 20 * 1024 * 1024  # the dashboard's upload limit (Streamlit counts MB as MiB)
MAX_ROWS = 200_000
MAX_COLUMNS = 1_000  # far beyond any coding sheet; stops a garbled file from building a huge frame

MISSING_MARKERS = frozenset({"", "na", "n/a", "#n/a", "nan", "null", "."})

ENCODING_LABELS = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 with BOM",
    "utf-16": "UTF-16",
    "cp1252": "Latin-1 (Windows-1252)",
}
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}
DECIMAL_NAMES = {".": "decimal point", ",": "decimal comma"}

_DELIMITER_CANDIDATES = ("\t", ";", ",")  # also the tie-break order: tab first, comma last
_SNIFF_RECORDS = 50
_SNIFF_CHARS = 200_000
_EXCEL_SUFFIXES = (".xlsx", ".xlsm")
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # old .xls, and password-protected .xlsx

Severity = Literal["error", "warning", "excluded"]


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadReport:
    """How a file was read, for the dashboard to show and to let the user correct.

    ``encoding``, ``delimiter`` and ``decimal`` can be passed back to ``read_table`` unchanged.
    ``first_data_row`` is the spreadsheet row of the table's first data row (see module doc).
    ``notes`` lists every decision worth a second look (ambiguities, renamed columns).
    """

    file_name: str
    file_format: Literal["text", "excel"]
    encoding: str | None
    delimiter: str | None
    decimal: str
    sheet_name: str | None
    sheet_names: tuple[str, ...]
    n_rows: int
    n_columns: int
    first_data_row: int
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        """One sentence such as "Read as semicolon-separated text, decimal comma, Latin-1 …"."""
        size = f"{_count(self.n_rows, 'row')}, {_count(self.n_columns, 'column')}"
        if self.file_format == "excel":
            sheets = f" ({len(self.sheet_names)} sheets)" if len(self.sheet_names) > 1 else ""
            return f"Read sheet '{self.sheet_name}' of an Excel workbook{sheets}: {size}."
        if self.n_columns == 1:
            layout = "one column (no comma, semicolon or tab separates the cells)"
        else:
            layout = f"{DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))}-separated text"
        encoding = ENCODING_LABELS.get(self.encoding, self.encoding)
        return f"Read as {layout}, {DECIMAL_NAMES[self.decimal]}, {encoding}: {size}."


@dataclass(frozen=True, eq=False)
class UploadedTable:
    """A table read from a file, with the report of how it was read."""

    frame: pd.DataFrame
    report: ReadReport

    def validate(self, mapping: ColumnMapping) -> ValidationReport:
        """``validate`` with this file's decimal mark and row numbering."""
        return validate(
            self.frame,
            mapping,
            decimal=self.report.decimal,
            first_data_row=self.report.first_data_row,
        )


def read_table(
    data: bytes,
    file_name: str,
    *,
    sheet: str | int | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    decimal: str | None = None,
) -> UploadedTable:
    """Read a coding sheet from the bytes of a CSV, TSV or Excel (.xlsx) file.

    The file's content decides how it is read (an Excel workbook is recognised even if it is
    named .csv); the name is used in messages. For Excel, ``sheet`` picks a sheet by name or
    0-based position (default: the first). For text, ``encoding``, ``delimiter`` and ``decimal``
    override detection. Fully numeric columns become numbers; other columns stay text with
    surrounding spaces removed. Raises ``AnalysisError`` (and nothing else) when the file cannot
    be read as a table.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise AnalysisError(f"'{file_name}' could not be read: expected the file's bytes.")
    data = bytes(data)
    _check_size(data, file_name)
    if decimal is not None and decimal not in DECIMAL_NAMES:
        raise AnalysisError(f"Decimal mark '{decimal}' is not supported; use '.' or ','.")
    suffix = _suffix(file_name)
    if data.startswith(_OLE_MAGIC):
        raise AnalysisError(
            f"'{file_name}' is an old-style Excel file (.xls) or a password-protected workbook. "
            "Save it as .xlsx (without a password) or as CSV and upload that."
        )
    if data.startswith(_ZIP_MAGIC):
        if suffix == ".ods":
            raise AnalysisError(
                f"'{file_name}' is an OpenDocument spreadsheet. Save it as .xlsx or CSV."
            )
        return _read_excel(data, file_name, sheet=sheet, decimal=decimal)
    notes: list[str] = []
    if suffix in _EXCEL_SUFFIXES:
        notes.append(
            f"'{file_name}' is named like an Excel workbook but contains text; it was read as text."
        )
    return _read_text(
        data, file_name, encoding=encoding, delimiter=delimiter, decimal=decimal, notes=notes
    )


def _suffix(file_name: str) -> str:
    dot = file_name.rfind(".")
    return file_name[dot:].lower() if dot >= 0 else ""


def _check_size(data: bytes, file_name: str) -> None:
    if len(data) > MAX_FILE_BYTES:
        raise AnalysisError(
            f"'{file_name}' is {len(data) / 2**20:.1f} MB; files up to "
            f"{MAX_FILE_BYTES // 2**20} MB can be read. Remove columns or rows you do not need."
        )
    if not data.strip():
        raise AnalysisError(f"'{file_name}' is empty.")


# --- text files ------------------------------------------------------------------------------


def _read_text(
    data: bytes,
    file_name: str,
    *,
    encoding: str | None,
    delimiter: str | None,
    decimal: str | None,
    notes: list[str],
) -> UploadedTable:
    text, encoding = _decode(data, file_name, encoding)
    _reject_binary(text, data, file_name)
    notes.extend(_double_encoding_note(text))
    if delimiter is None:
        delimiter, delimiter_notes = _detect_delimiter(text)
        notes.extend(delimiter_notes)
    elif len(delimiter) != 1 or delimiter in '"\r\n':
        raise AnalysisError(f"'{delimiter}' cannot be used as a separator; use one character.")
    header, rows, header_row = _parse_records(text, delimiter, file_name)
    if decimal is None:
        decimal, decimal_notes = _detect_decimal(rows)
        notes.extend(decimal_notes)
    frame = _build_frame(header, rows, header_row + 1, decimal, file_name, notes, is_text=True)
    report = ReadReport(
        file_name=file_name,
        file_format="text",
        encoding=encoding,
        delimiter=delimiter,
        decimal=decimal,
        sheet_name=None,
        sheet_names=(),
        n_rows=len(frame),
        n_columns=frame.shape[1],
        first_data_row=header_row + 1,
        notes=tuple(notes),
    )
    return UploadedTable(frame, report)


def _decode(data: bytes, file_name: str, encoding: str | None) -> tuple[str, str]:
    """Decode by the rule in the module docstring, or by the user's choice."""
    if encoding is not None:
        return _decode_as(data, file_name, encoding), encoding
    if data.startswith(b"\xef\xbb\xbf"):
        return _decode_as(data, file_name, "utf-8-sig"), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _decode_as(data, file_name, "utf-16"), "utf-16"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        # Five byte values are undefined in Windows-1252; such a file is not Latin-1 text
        # either, and ISO-8859-1 would turn them into control characters that we reject below.
        return data.decode("latin-1"), "cp1252"


def _decode_as(data: bytes, file_name: str, encoding: str) -> str:
    label = ENCODING_LABELS.get(encoding, encoding)
    try:
        text = data.decode(encoding)
    except LookupError:
        raise AnalysisError(f"'{encoding}' is not a known text encoding.") from None
    except UnicodeDecodeError as exc:
        raise AnalysisError(
            f"'{file_name}' cannot be read as {label}: byte 0x{data[exc.start :][:1].hex()} at "
            f"position {exc.start:,} is not valid there. Try another encoding, or save the "
            "file as 'CSV UTF-8'."
        ) from None
    return text.removeprefix("\ufeff")


_CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f]")


def _reject_binary(text: str, data: bytes, file_name: str) -> None:
    """A text table has no NUL bytes and hardly any control characters."""
    sample = text[:_SNIFF_CHARS]
    if "\x00" in sample and data[:2000].count(0) >= len(data[:2000]) // 3:
        raise AnalysisError(
            f"'{file_name}' looks like UTF-16 ('Unicode text') without a byte-order mark. "
            "Save it as 'CSV UTF-8' and upload that."
        )
    # A stray control character (a vertical tab from a cell's line break) is tolerated;
    # random binary data has about one in ten.
    controls = len(_CONTROL_CHARACTERS.findall(sample))
    if "\x00" in sample or controls > 0.05 * len(sample):
        raise AnalysisError(
            f"'{file_name}' is not a text table (it contains binary data). Upload a CSV, TSV or "
            ".xlsx file."
        )


# Bytes 0x80-0xBF are UTF-8 continuation bytes; decoded once more as Windows-1252 they follow
# "Ã" in text that was converted to UTF-8 twice ("MÃ¼ller" for "Müller").
_DOUBLE_ENCODED = re.compile(
    "Ã[" + re.escape(bytes(range(0x80, 0xC0)).decode("cp1252", errors="ignore")) + "]"
)


def _double_encoding_note(text: str) -> list[str]:
    match = _DOUBLE_ENCODED.search(text[:_SNIFF_CHARS])
    if match is None:
        return []
    return [
        f"Some letters look garbled ('{match.group()}'): the file may have been converted to "
        "UTF-8 twice. Check names with accents."
    ]


def _csv_records(text: str, delimiter: str) -> Iterator[list[str]]:
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"')


def _is_blank(cells: Sequence) -> bool:
    """No cell holds anything but spaces (cells are text, or None for empty Excel cells)."""
    return all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in cells)


def _is_blank_record(record: list[str]) -> bool:
    """``_is_blank`` for a record of a text file, in one pass in C (files have many rows)."""
    return not "".join(record).strip()


def _detect_delimiter(text: str) -> tuple[str, list[str]]:
    """Pick the separator by the rule in the module docstring; return it and notes."""
    sample = text[:_SNIFF_CHARS]
    truncated = len(text) > _SNIFF_CHARS
    shapes: dict[str, tuple[int, float]] = {}
    for candidate in _DELIMITER_CANDIDATES:
        shapes[candidate] = _record_shape(sample, candidate, truncated)
    consistent = [d for d in _DELIMITER_CANDIDATES if shapes[d][0] >= 2 and shapes[d][1] == 1.0]
    rank = {d: -i for i, d in enumerate(_DELIMITER_CANDIDATES)}
    if consistent:
        chosen = max(consistent, key=lambda d: (shapes[d][0], rank[d]))
        others = [d for d in consistent if d != chosen]
        notes = []
        if others:
            names = " or ".join(DELIMITER_NAMES[d] + "s" for d in others)
            notes.append(
                f"The first rows could also be split on {names}; "
                f"{DELIMITER_NAMES[chosen]}s were used because they give the most columns "
                f"({shapes[chosen][0]})."
            )
        return chosen, notes
    splitting = [d for d in _DELIMITER_CANDIDATES if shapes[d][0] >= 2]
    if splitting:
        chosen = max(splitting, key=lambda d: (shapes[d][1], shapes[d][0], rank[d]))
        return chosen, [
            f"No separator gives every row the same number of cells as the header; "
            f"{DELIMITER_NAMES[chosen]}s fit best."
        ]
    return ",", [
        "Only one column was found. If your file uses another separator, choose it explicitly."
    ]


def _record_shape(sample: str, delimiter: str, truncated: bool) -> tuple[int, float]:
    """Header width and the share of sampled rows that have exactly that many cells."""
    try:
        records = [r for r in islice(_csv_records(sample, delimiter), 5 * _SNIFF_RECORDS)]
    except csv.Error:
        return 0, 0.0
    if truncated and records:
        records = records[:-1]  # the sample may cut the last record in two
    records = [r for r in records if not _is_blank_record(r)][: _SNIFF_RECORDS + 1]
    if not records:
        return 0, 0.0
    width = len(records[0])
    rows = records[1:]
    if not rows:
        return width, 1.0
    return width, sum(len(r) == width for r in rows) / len(rows)


def _parse_records(text: str, delimiter: str, file_name: str) -> tuple[list, list, int]:
    """Split text into the header, the data rows and the header's spreadsheet row."""
    header: list[str] | None = None
    header_row = 0
    rows: list[list[str]] = []
    pending_blanks = 0  # blank rows count only once a non-blank row follows them
    records = _csv_records(text, delimiter)
    try:
        for number, record in enumerate(records, start=1):
            if _is_blank_record(record):
                if header is not None:
                    pending_blanks += 1
                continue
            if header is None:
                header, header_row = record, number
                continue
            if len(rows) + pending_blanks + 1 > MAX_ROWS:
                raise _too_many_rows(file_name)
            rows.extend([] for _ in range(pending_blanks))
            pending_blanks = 0
            rows.append(record)
    except csv.Error as exc:
        reason = str(exc)
        if "field limit" in reason:
            reason = f"a cell is longer than {csv.field_size_limit():,} characters"
        raise AnalysisError(
            f"'{file_name}' could not be read as {DELIMITER_NAMES.get(delimiter, delimiter)}-"
            f"separated text near line {records.line_num:,}: {reason}."
        ) from None
    if header is None:
        raise AnalysisError(f"'{file_name}' is empty.")
    return header, rows, header_row


def _too_many_rows(file_name: str) -> AnalysisError:
    return AnalysisError(
        f"'{file_name}' has more than {MAX_ROWS:,} data rows; at most {MAX_ROWS:,} can be read. "
        "Keep the rows you need in a smaller file."
    )


_COMMA_DECIMAL = re.compile(r"[+\-\u2212]?[0-9]*,[0-9]+")
_POINT_DECIMAL = re.compile(r"[+\-\u2212]?[0-9]*\.[0-9]+")
# "1,234" and "1.234" may be a thousand and thirty-four: such cells do not vote.
_THOUSANDS_LIKE = re.compile(r"[+\-\u2212]?[1-9][0-9]{0,2}[.,][0-9]{3}")


def _detect_decimal(rows: Iterable[Sequence]) -> tuple[str, list[str]]:
    """Pick the decimal mark by the rule in the module docstring; return it and notes."""
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
            elif _COMMA_DECIMAL.fullmatch(cell):
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


# --- Excel workbooks -------------------------------------------------------------------------


def _read_excel(
    data: bytes, file_name: str, *, sheet: str | int | None, decimal: str | None
) -> UploadedTable:
    import openpyxl  # only needed for workbooks; keeps importing this module light

    check_xlsx_expansion(data, file_name)  # before openpyxl expands any part
    try:
        with warnings.catch_warnings():
            # openpyxl warns about features it skips (styles, data validation); the values
            # are still read, and the warnings mean nothing to the user.
            warnings.simplefilter("ignore", UserWarning)
            workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # openpyxl raises many types (zip, XML, key errors) on damaged files
        raise AnalysisError(
            f"'{file_name}' could not be opened as an Excel workbook: it is damaged or not an "
            ".xlsx file. Open it in a spreadsheet program and save it as .xlsx or CSV."
        ) from None
    try:
        sheet_names = tuple(workbook.sheetnames)
        sheet_name = _choose_sheet(sheet_names, sheet, file_name)
        worksheet = workbook[sheet_name]
        if not hasattr(worksheet, "iter_rows"):
            raise AnalysisError(f"Sheet '{sheet_name}' of '{file_name}' holds no cells.")
        # Some programs write a wrong sheet size; reading without it reads every row.
        worksheet.reset_dimensions()
        header, rows, header_row = _sheet_records(worksheet, file_name, sheet_name)
    except AnalysisError:
        raise
    except Exception:  # damaged sheet XML surfaces only while reading rows
        raise AnalysisError(
            f"'{file_name}' could not be read: the workbook is damaged. Open it in a "
            "spreadsheet program and save it again as .xlsx or CSV."
        ) from None
    finally:
        workbook.close()
    notes: list[str] = []
    if decimal is None:
        decimal, decimal_notes = _detect_decimal(rows)
        notes.extend(f"Cells stored as text: {note}" for note in decimal_notes)
        if decimal == "," and not decimal_notes:
            notes.append(
                "Numbers stored as text use a decimal comma ('0,3') and were read as such."
            )
    frame = _build_frame(header, rows, header_row + 1, decimal, file_name, notes, is_text=False)
    report = ReadReport(
        file_name=file_name,
        file_format="excel",
        encoding=None,
        delimiter=None,
        decimal=decimal,
        sheet_name=sheet_name,
        sheet_names=sheet_names,
        n_rows=len(frame),
        n_columns=frame.shape[1],
        first_data_row=header_row + 1,
        notes=tuple(notes),
    )
    return UploadedTable(frame, report)


def _choose_sheet(sheet_names: tuple[str, ...], sheet: str | int | None, file_name: str) -> str:
    if not sheet_names:
        raise AnalysisError(f"'{file_name}' has no sheets.")
    if sheet is None:
        return sheet_names[0]
    if isinstance(sheet, int) and not isinstance(sheet, bool) and 0 <= sheet < len(sheet_names):
        return sheet_names[sheet]
    if sheet in sheet_names:
        return sheet
    listed = ", ".join(f"'{name}'" for name in sheet_names)
    raise AnalysisError(f"'{file_name}' has no sheet {sheet!r}; its sheets are {listed}.")


def _sheet_records(worksheet, file_name: str, sheet_name: str) -> tuple[list, list, int]:
    header: list | None = None
    header_row = 0
    rows: list[list] = []
    pending_blanks = 0
    for number, values in enumerate(worksheet.iter_rows(values_only=True), start=1):
        if _is_blank(values):
            if header is not None:
                pending_blanks += 1
            continue
        if header is None:
            header, header_row = list(values), number
            continue
        if len(rows) + pending_blanks + 1 > MAX_ROWS:
            raise _too_many_rows(file_name)
        rows.extend([] for _ in range(pending_blanks))
        pending_blanks = 0
        rows.append(list(values))
    if header is None:
        raise AnalysisError(f"Sheet '{sheet_name}' of '{file_name}' is empty.")
    return header, rows, header_row


# --- from cells to a frame -------------------------------------------------------------------


def _build_frame(
    header: list,
    rows: list[list],
    first_data_row: int,
    decimal: str,
    file_name: str,
    notes: list[str],
    *,
    is_text: bool,
) -> pd.DataFrame:
    """Name the columns, square the rows and give each column numbers or text."""
    while rows and _is_blank(rows[-1]):
        rows.pop()
    if not rows:
        shown = ", ".join(_cell_text(cell) for cell in header[:6] if not _is_blank([cell]))
        raise AnalysisError(f"'{file_name}' has a header row ({shown}) but no data rows below it.")
    header = _without_trailing_blanks(header)
    if len(header) > MAX_COLUMNS:
        raise AnalysisError(
            f"'{file_name}' has {len(header):,} columns; at most {MAX_COLUMNS:,} can be read."
            + (" If that is not right, choose the separator." if is_text else "")
        )
    rows = _square_rows(rows, len(header), first_data_row, file_name, is_text=is_text)
    names = _column_names(header, notes)
    cells_by_column = zip(*rows, strict=True)
    columns = {
        name: _column_values(cells, decimal)
        for name, cells in zip(names, cells_by_column, strict=True)
    }
    return pd.DataFrame(columns)


def _without_trailing_blanks(header: list) -> list:
    """The header up to its last named column (trailing separators leave empty cells)."""
    width = len(header)
    while width > 1 and _is_blank(header[width - 1 : width]):
        width -= 1
    return list(header[:width])


def _square_rows(
    rows: list[list], width: int, first_data_row: int, file_name: str, *, is_text: bool
) -> list:
    """Pad short rows with empty cells; a row with extra filled cells is an error."""
    squared = []
    too_long: list[int] = []
    for offset, row in enumerate(rows):
        if len(row) > width and not _is_blank(row[width:]):
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
            f"'{file_name}': {_count(len(too_long), 'row')} ({_row_list(too_long)}) "
            f"{'has' if len(too_long) == 1 else 'have'} filled cells beyond the "
            f"{_count(width, 'column')} named in the header (row {first_data_row - 1}). Give "
            "every column a name in the header, and delete any title rows above the header."
            + separator_hint
        )
    return squared


def _count(number: int, noun: str) -> str:
    """ "1 row", "2 rows"."""
    return f"{number:,} {noun}" + ("" if number == 1 else "s")


def _column_names(header: list, notes: list[str]) -> list[str]:
    """Header cells as names: unnamed columns get their letter, repeated names a number."""
    names: list[str] = []
    for position, cell in enumerate(header):
        name = _cell_text(cell).replace("\ufeff", "").strip() if cell is not None else ""
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


def _cell_text(cell) -> str:
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell)


def _column_values(cells: Sequence, decimal: str) -> pd.Series:
    """Numbers if every filled cell is a number, otherwise text (spaces trimmed)."""
    values = _all_numbers(cells, decimal)
    if values is None:
        return pd.Series([_text_or_none(cell, decimal) for cell in cells], dtype=object)
    whole = np.isfinite(values).all() and np.all(values == np.round(values))
    if whole and (np.abs(values) < 2**53).all():  # whole numbers a float holds exactly
        return pd.Series(values.astype(np.int64))
    return pd.Series(values)


def _all_numbers(cells: Sequence, decimal: str) -> np.ndarray | None:
    """The cells as floats (NaN where missing), or None as soon as one cell is text."""
    values = np.empty(len(cells), dtype=float)
    for position, cell in enumerate(cells):
        kind, number = _read_cell(cell, decimal)
        if kind == "text":
            return None
        values[position] = number
    return values


def _text_or_none(cell, decimal: str) -> str | None:
    """A cell of a text column; a workbook's numbers written with the table's decimal mark,
    so that ``validate`` reads them back as the numbers they are."""
    kind, number = _read_cell(cell, decimal)
    if kind == "missing":
        return None
    if isinstance(cell, str):
        return cell.strip()
    if kind == "number":
        return _cell_text(number).replace(".", decimal)
    return _cell_text(cell)


# ---------------------------------------------------------------------------------------------
# Numbers in cells
# ---------------------------------------------------------------------------------------------


def _read_cell(value, decimal: str = ".") -> tuple[Literal["missing", "number", "text"], float]:
    """Classify one cell as missing, a number (returned as float) or text.

    Text is a number only in plain notation with the given decimal mark: ASCII digits, an
    optional sign, decimal mark and exponent, or "inf"/"infinity" ("0.25", " 0.25 ", "-1e3";
    "0,25" only with ``decimal=","``, and then "0.25" is text). A Unicode minus sign counts as
    a minus. Thousands separators are not read.
    """
    if isinstance(value, str):
        return _read_text_cell(value, decimal)
    if value is None:
        return "missing", math.nan
    if isinstance(value, bool | np.bool_):
        return "text", math.nan
    if isinstance(value, numbers.Real | _decimal.Decimal):
        number = _as_float(value)
        return ("missing", math.nan) if math.isnan(number) else ("number", number)
    if pd.api.types.is_scalar(value) and pd.isna(value):  # pd.NA, NaT, numpy NaT
        return "missing", math.nan
    return "text", math.nan


def _read_text_cell(value: str, decimal: str) -> tuple[Literal["missing", "number", "text"], float]:
    stripped = value.strip().replace("\u2212", "-")
    if stripped.casefold() in MISSING_MARKERS:
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


def _as_float(value) -> float:
    if isinstance(value, _decimal.Decimal) and value.is_nan():
        return math.nan  # float() refuses a signalling Decimal NaN
    try:
        return float(value)
    except OverflowError:  # an integer beyond the range of a float
        return math.inf if value > 0 else -math.inf


def _parse_numbers(series: pd.Series, decimal: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Numbers of a column as floats, with masks of missing and of non-numeric cells."""
    dtype = series.dtype
    if dtype.kind in "iuf":
        values = series.to_numpy(dtype=float, na_value=np.nan)
        missing = np.isnan(values)
        return values, missing, np.zeros(len(series), dtype=bool)
    readings = [_read_cell(value, decimal) for value in series.tolist()]
    values = np.array([number for _, number in readings], dtype=float)
    missing = np.array([kind == "missing" for kind, _ in readings], dtype=bool)
    text = np.array([kind == "text" for kind, _ in readings], dtype=bool)
    return values, missing, text


# ---------------------------------------------------------------------------------------------
# Suggesting a mapping
# ---------------------------------------------------------------------------------------------

# Normalised names (lower case, without spaces, underscores, dots and hyphens) per role,
# most specific first. A column gets at most one role.
_ROLE_NAMES: dict[str, tuple[str, ...]] = {
    "study": ("study", "studyid", "studyno", "id"),
    "es_id": ("esid", "es", "effectsizeid", "esno"),
    "r": ("r", "ri", "rao", "cor", "corr", "correlation"),
    "n": ("n", "ni", "npatients", "samplesize", "npat", "patients"),
    "n_therapists": (
        "ntherapists",
        "therapists",
        "nther",
        "ktherapists",
        "ntherapist",
        "kther",
    ),
    "yi": ("yi", "zi", "z", "fisherz"),
    "vi": ("vi", "vz", "variance", "samplingvariance"),
    "label": ("label", "studylabel", "author", "authors", "citation", "reference"),
    "year": ("year", "pubyear", "publicationyear"),
}
_SEPARATORS = re.compile(r"[\s_.\-]+")


def _normalise(name) -> str:
    return _SEPARATORS.sub("", str(name).replace("\ufeff", "").casefold())


def suggest_mapping(columns: Iterable) -> ColumnMapping:
    """Suggest a role for columns whose names say what they hold.

    Matching ignores case, spaces, underscores, dots and hyphens ("N", "n_patients",
    "Sample size" → n). No moderators are suggested: the choice of moderators is a research
    decision, so the user picks them from ``moderator_candidates``.
    """
    by_normal_name: dict[str, str] = {}
    for column in columns:
        by_normal_name.setdefault(_normalise(column), column)
    taken: set = set()
    roles: dict[str, str] = {}
    for role, names in _ROLE_NAMES.items():
        for name in names:
            column = by_normal_name.get(name)
            if column is not None and column not in taken:
                roles[role] = column
                taken.add(column)
                break
    return ColumnMapping(**roles)


def moderator_candidates(df: pd.DataFrame, mapping: ColumnMapping) -> list:
    """Columns that could serve as moderators, in table order.

    Left out: columns with another role, columns with fewer than two distinct values, and text
    columns in which every value differs (names, notes: they identify rows, they do not group
    them). Moderators already chosen in ``mapping`` are kept.
    """
    role_columns = set(mapping.columns()) - set(mapping.moderators)
    name_counts = Counter(df.columns)
    candidates = []
    for column in df.columns:
        if column in role_columns or name_counts[column] > 1:
            continue
        if column in mapping.moderators or _could_group(df[column].dropna()):
            candidates.append(column)
    return candidates


def _could_group(values: pd.Series) -> bool:
    """At least two values, and (for text) some value shared by several rows."""
    try:
        distinct = values.nunique()
    except TypeError:  # unhashable cells
        return False
    return distinct >= 2 and (_is_numeric_column(values) or distinct < len(values))


def _is_numeric_column(values: pd.Series) -> bool:
    return values.dtype.kind in "iuf"


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One problem found in a table.

    ``row`` is the spreadsheet row (None for a problem of a whole column or of the mapping),
    ``value`` the offending cell as it is in the table. ``severity``: "error" makes the
    analysis impossible, "excluded" leaves the row out of it, "warning" changes nothing.
    ``kind`` is a short phrase ("a missing n", "|r| ≥ 1") used to group problems in summaries.
    """

    row: int | None
    column: str | None
    value: object
    message: str
    severity: Severity
    kind: str


class ProblemReport:
    """What every validation report derives from its ``problems`` and ``usable`` rows.

    Shared by the coding-sheet report (``ValidationReport``) and the patient-level report
    (``alliance_core.patient_level.PatientDataReport``).
    """

    problems: tuple[Problem, ...]
    usable: pd.DataFrame

    @property
    def n_usable(self) -> int:
        return len(self.usable)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "warning")

    @property
    def exclusions(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "excluded")

    def problems_frame(self) -> pd.DataFrame:
        """The problems as a table (row, column, value, severity, message) for display."""
        columns = ["row", "column", "value", "severity", "message"]
        records = [{name: getattr(p, name) for name in columns} for p in self.problems]
        frame = pd.DataFrame(records, columns=columns)
        frame["row"] = frame["row"].astype("Int64")  # whole numbers even where a row is absent
        return frame


@dataclass(frozen=True, eq=False)
class ValidationReport(ProblemReport):
    """Result of ``validate``: every problem, and the rows that can be analysed.

    ``usable`` is a new frame with the rows that can go into the analysis (original index
    labels kept) and the effect-size columns as numbers (n and n_therapists as integers).
    ``excluded_rows`` holds the index labels of the other rows. When ``ok`` is False no row is
    usable and the problems with severity "error" say why.
    """

    problems: tuple[Problem, ...]
    excluded_rows: tuple
    usable: pd.DataFrame
    n_rows: int
    mapping: ColumnMapping

    def summary(self) -> str:
        """A few sentences: how many rows are usable, why the others are left out."""
        parts = []
        if not self.ok:
            reasons = list(dict.fromkeys(p.message for p in self.errors))
            more = f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else ""
            parts.append("Cannot analyse this table: " + " ".join(reasons[:3]) + more)
        parts.append(self._usable_sentence())
        warnings = list(dict.fromkeys(p.message for p in self.warnings))
        if warnings:
            label = "Warning" if len(warnings) == 1 else "Warnings"
            parts.append(f"{label}: " + " ".join(warnings))
        return " ".join(parts)

    def _usable_sentence(self) -> str:
        left_out = self.n_rows - self.n_usable
        head = f"{self.n_usable:,} of {self.n_rows:,} rows usable"
        if left_out == 0:
            return head + "."
        rows_by_kind: dict[str, dict[int, None]] = {}  # dicts keep rows in order, once each
        for problem in self.exclusions:
            rows_by_kind.setdefault(problem.kind, {})[problem.row] = None
        reasons = [
            f"{len(rows):,} with {kind} ({_row_list(list(rows))})"
            for kind, rows in rows_by_kind.items()
        ]
        detail = ": " + ", ".join(reasons) if reasons else ""
        return f"{head}; {left_out:,} left out{detail}."


def _row_list(rows: list[int], shown: int = 5) -> str:
    word = "row" if len(rows) == 1 else "rows"
    listed = ", ".join(str(row) for row in rows[:shown])
    return f"{word} {listed}" + (", …" if len(rows) > shown else "")


def validate(
    df: pd.DataFrame,
    mapping: ColumnMapping,
    *,
    decimal: str = ".",
    first_data_row: int = 2,
) -> ValidationReport:
    """Check a table against a mapping; list every problem and keep the usable rows.

    Row checks (a failing row is left out, severity "excluded"): a missing value in a used
    column (study, es_id, the effect-size columns, n_therapists, moderators); a value that is
    not a number in a numeric column (quoted as written); |r| ≥ 1; n ≤ 3 for correlations
    (vi = 1/(n − 3)); n or n_therapists not a whole number or ≤ 0; more therapists than
    patients; yi not finite; vi ≤ 0 or not finite; a row with no values at all.
    Table checks (severity "error", the analysis is impossible): a mapping without r and n or
    yi and vi, a mapped column missing from the table or present twice, one column in two
    numeric roles, the same effect-size id twice in a study (or twice overall without a study
    column), no usable row. A moderator with one value is a warning.

    ``decimal`` is the decimal mark of numbers stored as text; row numbers are
    ``first_data_row`` + position (see the module docstring). ``df`` is not changed.
    """
    if decimal not in DECIMAL_NAMES:
        raise AnalysisError(f"Decimal mark '{decimal}' is not supported; use '.' or ','.")
    if not isinstance(df, pd.DataFrame):
        raise AnalysisError("validate needs a table (a pandas DataFrame).")
    checker = _TableCheck(df, mapping, decimal, first_data_row)
    return checker.run()


class _TableCheck:
    """The state of one validation: the frame, the problems found, the rows left out.

    Each cell gets at most one problem (the first rule it fails), but every column of a row is
    checked, so a row missing both r and n is listed under both.
    """

    def __init__(self, df: pd.DataFrame, mapping: ColumnMapping, decimal: str, first_row: int):
        self.df = df
        self.mapping = mapping
        self.decimal = decimal
        self.row_numbers = first_row + np.arange(len(df))
        self.name_counts = Counter(df.columns)
        self.problems: list[Problem] = []
        self.excluded = np.zeros(len(df), dtype=bool)
        self.empty = np.zeros(len(df), dtype=bool)
        self.flagged: dict[str, np.ndarray] = {}  # per column: cells that already have a problem
        self.numbers: dict[str, np.ndarray] = {}
        # Without a complete yi/vi pair the correlation rules apply (and the mapping is an error).
        self.uses_correlations = mapping.uses_correlations or not (mapping.yi and mapping.vi)

    def run(self) -> ValidationReport:
        self._check_mapping()
        self._check_empty_rows()
        self._check_effect_sizes()
        self._check_therapists()
        for column in dict.fromkeys(
            [self.mapping.study, self.mapping.es_id, *self.mapping.moderators]
        ):
            self._check_present(column)
        self._check_duplicate_ids()
        usable = self._usable_frame()
        self._check_moderator_spread(usable)
        if not self._has_errors() and len(usable) == 0:
            message = "No row can be analysed." if len(self.df) else "The table has no rows."
            self._error(None, None, None, message, "no usable rows")
        if self._has_errors():
            usable = self.df.iloc[0:0].copy()
            self.excluded[:] = True
        self.problems.sort(key=_problem_order)
        return ValidationReport(
            problems=tuple(self.problems),
            excluded_rows=tuple(self.df.index[self.excluded]),
            usable=usable,
            n_rows=len(self.df),
            mapping=self.mapping,
        )

    # --- recording -----------------------------------------------------------------------

    def _has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.problems)

    def _error(self, row, column, value, message: str, kind: str) -> None:
        self.problems.append(Problem(row, column, value, message, "error", kind))

    def _warn(self, column, message: str, kind: str) -> None:
        self.problems.append(Problem(None, column, None, message, "warning", kind))

    def _exclude(self, bad: np.ndarray, column: str, message, kind: str, values=None) -> None:
        """Leave out the rows where ``bad`` holds, unless the cell already has a problem.

        ``message(value)`` gives the sentence after the "Row 7, column 'n':" prefix; ``values``
        are the cells shown (default: the cells as they are in the table).
        """
        new = bad & ~self._flagged(column) & ~self.empty
        if not new.any():
            return
        cells = self.df[column].to_numpy() if values is None else values
        for position in np.flatnonzero(new):
            value = _plain(cells[position])
            self._leave_out(int(position), column, value, message(value), kind)

    def _leave_out(self, position: int, column: str, value, reason: str, kind: str) -> None:
        row = int(self.row_numbers[position])
        text = f"Row {row}, column '{column}': {reason} — row left out."
        self.problems.append(Problem(row, column, value, text, "excluded", kind))
        self._flagged(column)[position] = True
        self.excluded[position] = True

    def _flagged(self, column: str) -> np.ndarray:
        return self.flagged.setdefault(column, np.zeros(len(self.df), dtype=bool))

    def _usable_column(self, column: str | None) -> bool:
        return column is not None and self.name_counts.get(column, 0) == 1

    # --- the mapping ---------------------------------------------------------------------

    def _check_mapping(self) -> None:
        mapping = self.mapping
        if not (mapping.uses_correlations or (mapping.yi and mapping.vi)):
            self._error(None, None, None, _missing_roles_message(mapping), "an incomplete mapping")
        for role in ("study", "es_id", "r", "n", "yi", "vi", "n_therapists", "label", "year"):
            self._check_column_exists(getattr(mapping, role), role)
        for moderator in dict.fromkeys(mapping.moderators):
            self._check_column_exists(moderator, "a moderator")
        roles_by_column: dict[str, list[str]] = {}
        for role in ("r", "n", "yi", "vi", "n_therapists"):
            if getattr(mapping, role) is not None:
                roles_by_column.setdefault(getattr(mapping, role), []).append(role)
        for column, roles in roles_by_column.items():
            if len(roles) > 1:
                self._error(
                    None,
                    column,
                    None,
                    f"Column '{column}' is chosen for {' and '.join(roles)}; each needs its "
                    "own column.",
                    "one column in two roles",
                )
        if mapping.uses_correlations and (mapping.yi or mapping.vi):
            self._warn(
                None,
                "Both r and n and a precomputed effect size (yi/vi) are chosen; the analysis "
                "uses r and n, so the yi/vi columns are not checked.",
                "two kinds of effect size",
            )

    def _check_column_exists(self, column: str | None, role: str) -> None:
        if column is None:
            return
        count = self.name_counts.get(column, 0)
        if count == 0:
            listed = ", ".join(f"'{c}'" for c in list(self.df.columns)[:20])
            more = ", …" if self.df.shape[1] > 20 else ""
            self._error(
                None,
                column,
                None,
                f"The column '{column}' chosen for {role} is not in the table "
                f"(its columns: {listed or 'none'}{more}).",
                "a missing column",
            )
        elif count > 1:
            self._error(
                None,
                column,
                None,
                f"The table has {count} columns named '{column}' (chosen for {role}); "
                "rename them so each name is used once.",
                "a repeated column name",
            )

    # --- row checks ----------------------------------------------------------------------

    def _check_empty_rows(self) -> None:
        """A row with nothing in it is listed once, not once per column."""
        if self.df.shape[1] == 0:
            return
        empty = np.ones(len(self.df), dtype=bool)
        for position in range(self.df.shape[1]):
            if not empty.any():
                break
            column = self.df.iloc[:, position]
            empty &= _missing_mask(column)
        for position in np.flatnonzero(empty):
            row = int(self.row_numbers[position])
            message = f"Row {row} is empty — row left out."
            self.problems.append(Problem(row, None, None, message, "excluded", "no values at all"))
        self.empty = empty
        self.excluded |= empty

    def _numbers(self, column: str | None) -> np.ndarray | None:
        """A numeric column as floats (NaN where missing or not a number); both are problems."""
        if not self._usable_column(column):
            return None
        if column not in self.numbers:
            values, missing, text = _parse_numbers(self.df[column], self.decimal)
            self._exclude(missing, column, lambda v: "no value", f"a missing {column}")
            self._exclude(
                text,
                column,
                lambda v: f"{_quote(v)} is not a number{self._decimal_hint(v)}",
                f"a non-numeric {column}",
            )
            self.numbers[column] = np.where(missing | text, np.nan, values)
        return self.numbers[column]

    def _decimal_hint(self, value) -> str:
        looks_like_comma_decimal = isinstance(value, str) and _COMMA_DECIMAL.fullmatch(
            value.strip()
        )
        if self.decimal == "." and looks_like_comma_decimal:
            return " (to read it as a number, choose ',' as the decimal mark)"
        return ""

    def _flag(self, column: str, values: np.ndarray, bad: np.ndarray, message, kind: str) -> None:
        """Leave out rows failing a rule on parsed numbers, showing the number."""
        self._exclude(bad, column, message, kind, values=values)

    def _check_effect_sizes(self) -> None:
        mapping = self.mapping
        if self.uses_correlations:
            r = self._numbers(mapping.r)
            if r is not None:
                self._check_finite(mapping.r, r)
                self._flag(
                    mapping.r,
                    r,
                    np.abs(r) >= 1,
                    lambda v: (
                        f"r = {_show(v)}; a correlation must lie strictly between −1 and "
                        "1 (Fisher's z is infinite at ±1)"
                    ),
                    "|r| ≥ 1",
                )
        else:
            yi = self._numbers(mapping.yi)
            if yi is not None:
                self._check_finite(mapping.yi, yi)
            vi = self._numbers(mapping.vi)
            if vi is not None:
                self._flag(
                    mapping.vi,
                    vi,
                    ~(np.isfinite(vi) & (vi > 0)),
                    lambda v: f"sampling variance {_show(v)}; it must be a positive finite number",
                    f"{mapping.vi} ≤ 0 or not finite",
                )
        self._check_patients()

    def _check_finite(self, column: str, values: np.ndarray) -> None:
        self._flag(
            column,
            values,
            np.isinf(values),
            lambda v: f"{_show(v)} is not a finite number",
            f"a non-finite {column}",
        )

    def _check_patients(self) -> None:
        column = self.mapping.n
        n = self._numbers(column)
        if n is None:
            return
        self._check_whole(column, n, "patients")
        if self.uses_correlations:
            self._flag(
                column,
                n,
                n <= 3,
                lambda v: (
                    f"{_show(v)} patients; a correlation needs more than 3 (its "
                    "variance is 1/(n − 3))"
                ),
                f"{column} ≤ 3",
            )
        else:
            self._flag(
                column,
                n,
                n <= 0,
                lambda v: f"{_show(v)} patients; the number of patients must be positive",
                f"{column} ≤ 0",
            )

    def _check_whole(self, column: str, values: np.ndarray, unit: str) -> None:
        self._flag(
            column,
            values,
            np.isinf(values),
            lambda v: f"{_show(v)} {unit} is not a finite number",
            f"a non-finite {column}",
        )
        fractional = np.isfinite(values) & (values != np.floor(values))
        self._flag(
            column,
            values,
            fractional,
            lambda v: f"{_show(v)} {unit} is not a whole number",
            f"a non-integer {column}",
        )

    def _check_therapists(self) -> None:
        column = self.mapping.n_therapists
        therapists = self._numbers(column)
        if therapists is None:
            return
        self._check_whole(column, therapists, "therapists")
        self._flag(
            column,
            therapists,
            therapists <= 0,
            lambda v: f"{_show(v)} therapists; a study has at least one",
            f"{column} ≤ 0",
        )
        patients = self.numbers.get(self.mapping.n) if self.mapping.n else None
        if patients is None or self.mapping.n == column:
            return
        # Compare only counts that passed their own checks.
        comparable = ~self._flagged(self.mapping.n) & ~self._flagged(column) & ~self.empty
        for position in np.flatnonzero((therapists > patients) & comparable):
            value = _plain(therapists[position])
            reason = (
                f"{_show(value)} therapists for {_show(_plain(patients[position]))} patients; "
                "there cannot be more therapists than patients"
            )
            self._leave_out(int(position), column, value, reason, "more therapists than patients")

    def _check_present(self, column: str | None) -> None:
        """Study, effect-size id and moderators need a value, whatever its type."""
        if self._usable_column(column):
            missing = _missing_mask(self.df[column])
            self._exclude(missing, column, lambda v: "no value", f"a missing {column}")

    def _check_duplicate_ids(self) -> None:
        """Each effect size needs its own id within its study (the three-level model's levels)."""
        es_column, study_column = self.mapping.es_id, self.mapping.study
        if not self._usable_column(es_column):
            return
        in_study = self._usable_column(study_column) and study_column != es_column
        keys = [study_column, es_column] if in_study else [es_column]
        kept = ~self.excluded
        ids = pd.DataFrame({f"key{i}": self.df[key].to_numpy()[kept] for i, key in enumerate(keys)})
        try:
            repeated = ids.duplicated(keep=False).to_numpy()
        except TypeError:  # unhashable cells (lists, dicts) cannot be compared as ids
            return
        rows = self.row_numbers[kept][repeated]
        groups: dict[tuple, list[int]] = {}
        for key, row in zip(ids[repeated].itertuples(index=False, name=None), rows, strict=True):
            groups.setdefault(key, []).append(int(row))
        for key, group_rows in groups.items():
            es_value = _plain(key[-1])
            where = f" in study {_quote(_plain(key[0]))}" if in_study else ""
            for row in group_rows:
                self._error(
                    row,
                    es_column,
                    es_value,
                    f"Row {row}, column '{es_column}': effect-size id {_quote(es_value)} is "
                    f"used more than once{where} ({_row_list(group_rows)}). Give each effect "
                    "size its own id, or leave the es_id role empty to number them by row.",
                    f"a repeated {es_column}",
                )

    def _check_moderator_spread(self, usable: pd.DataFrame) -> None:
        if not len(usable):
            return
        for moderator in dict.fromkeys(self.mapping.moderators):
            if not self._usable_column(moderator):
                continue
            values = usable[moderator].dropna()
            try:
                distinct = values.nunique()
            except TypeError:  # unhashable cells
                continue
            if distinct == 1:
                self._warn(
                    moderator,
                    f"Moderator '{moderator}' has the same value "
                    f"({_quote(_plain(values.iloc[0]))}) in every usable row, so it cannot "
                    "explain differences between effect sizes.",
                    "a moderator with one value",
                )

    # --- the usable rows -------------------------------------------------------------------

    def _usable_frame(self) -> pd.DataFrame:
        """The rows left in, with the checked numeric columns as numbers."""
        keep = ~self.excluded
        usable = self.df.iloc[np.flatnonzero(keep)].copy()
        for role in ("r", "n", "yi", "vi", "n_therapists"):
            column = getattr(self.mapping, role)
            if column is None or column not in self.numbers:
                continue
            values = self.numbers[column][keep]
            counts = role in ("n", "n_therapists")
            if counts and np.all(np.abs(values) < 2**53):  # whole numbers a float holds exactly
                values = values.astype(np.int64)
            usable[column] = values
        return usable


def _missing_mask(series: pd.Series) -> np.ndarray:
    """Cells that count as missing: NaN/None/NaT, blank text and the missing-value markers."""
    if series.dtype.kind in "iufcmMb":
        return series.isna().to_numpy(dtype=bool)
    return np.array([_read_cell(value)[0] == "missing" for value in series.tolist()], dtype=bool)


def _missing_roles_message(mapping: ColumnMapping) -> str:
    if mapping.r and not mapping.n:
        return "A correlation (r) is chosen but not its number of patients (n); choose n."
    if mapping.n and not mapping.r and not (mapping.yi or mapping.vi):
        return "A number of patients (n) is chosen but not the correlation (r); choose r."
    if bool(mapping.yi) != bool(mapping.vi):
        have, lack = ("yi", "vi") if mapping.yi else ("vi", "yi")
        return f"An effect size column {have} is chosen but not {lack}; choose both or use r and n."
    return (
        "Choose the columns that hold the effect sizes: a correlation (r) and its number of "
        "patients (n), or a precomputed effect size (yi) and its sampling variance (vi)."
    )


def _problem_order(problem: Problem) -> tuple:
    # Table-level problems first, then by row; within a row, in the order they were found.
    return (problem.row is not None, problem.row or 0)


def _plain(value):
    """A cell as a plain Python value (numpy scalars unwrapped, NaN as None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _show(value) -> str:
    """A number as a researcher would write it: 2, 0.25, 1e+20, inf."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, float) and math.isinf(value):
        return "infinity" if value > 0 else "minus infinity"
    return str(value)


def _quote(value, limit: int = 40) -> str:
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return f"'{text}'"


# ---------------------------------------------------------------------------------------------
# The template
# ---------------------------------------------------------------------------------------------

TEMPLATE_COLUMNS = (
    "study",
    "es_id",
    "label",
    "year",
    "r",
    "n",
    "n_therapists",
    "alliance_rater",
    "outcome_rater",
    "alliance_measure",
    "design",
    "pd",
)

_TEMPLATE_ROWS = (
    ("1", "1", "Example & Colleague (2001)", "2001", "0.31", "48", "6", "patient", "patient",
     "WAI", "RCT", "20"),
    ("1", "2", "Example & Colleague (2001)", "2001", "0.22", "48", "6", "therapist", "observer",
     "WAI", "RCT", "20"),
)  # fmt: skip


def template_csv() -> bytes:
    """A CSV coding sheet with the expected columns and two made-up example rows (UTF-8)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TEMPLATE_COLUMNS)
    writer.writerows(_TEMPLATE_ROWS)
    return buffer.getvalue().encode("utf-8")


FORMAT_DESCRIPTION = """\
**One row per effect size.** A study that reports several alliance–outcome correlations (for
example patient- and therapist-rated alliance) has several rows with the same `study` and
different `es_id`.

| column | meaning |
| --- | --- |
| `study` | identifies the study (number or short text); rows of one study share it |
| `es_id` | identifies the effect size within its study (1, 2, …) |
| `label` | how the study is shown in plots, e.g. "Smith & Lee (2004)" |
| `year` | publication year |
| `r` | the alliance–outcome correlation, strictly between −1 and 1; positive when a better alliance goes with a better outcome |
| `n` | number of patients the correlation is based on (more than 3) |
| `n_therapists` | number of therapists who treated those patients (at least 1, at most `n`) |
| `alliance_rater` | who rated the alliance: patient, therapist, observer or other |
| `outcome_rater` | who rated the outcome: patient, therapist, observer or other |
| `alliance_measure` | alliance instrument, e.g. WAI, CALPAS, HAq, other |
| `design` | research design: RCT or other |
| `pd` | percentage of patients with a personality disorder (0–100) |

The Patient–Therapist Ratio is computed as PTR = `n` / `n_therapists`. Correlations are analysed
as Fisher's z = atanh(r) with sampling variance 1/(n − 3). Instead of `r` and `n`, a precomputed
effect size `yi` with its sampling variance `vi` may be given.

Files: CSV (comma or semicolon), TSV, or Excel .xlsx (first sheet unless another is chosen), up
to 20 MB and 200,000 rows. Decimal commas ("0,25") are recognised in semicolon- or
tab-separated files. Empty cells and NA count as missing; rows missing a value in a column used
by the analysis are left out and listed. Row numbers in messages are spreadsheet rows: the
header is row 1, the first data row is row 2.
"""
