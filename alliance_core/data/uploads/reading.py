"""Reading a coding sheet: from the bytes of a CSV, TSV or Excel file to a table.

``read_table(data, file_name)`` turns the bytes into a table and says how it was read
(``ReadReport``): encoding, separator, decimal mark, sheet, and which missing-value spellings
were found (see ``alliance_core.data.uploads.cells``).

Row numbers
    Every row number shown to the user is the **spreadsheet row**: the number a spreadsheet
    program shows at the left edge, with the header in row 1 and the first data row in row 2
    (for a file whose header is in its first line). Blank rows inside the table are kept, so the
    numbers match the file. ``read_table`` reports the first data row (``first_data_row``).

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
    Missing values: empty cells and the spellings in ``MISSING_SPELLINGS`` (any case, spaces
    ignored), less those the caller declares real values (``real_values``).
    Sheet: the first sheet of a workbook unless ``sheet`` names another.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Literal

import numpy as np
import pandas as pd

from alliance_core.data.mapping import ColumnMapping
from alliance_core.data.uploads.cells import (
    COMMA_DECIMAL,
    DECIMAL_NAMES,
    cell_text,
    count_of,
    missing_markers,
    missing_spelling,
    read_cell,
    row_list,
    spelling_key,
)
from alliance_core.data.uploads.control import clean_control_characters
from alliance_core.data.uploads.report import ValidationReport
from alliance_core.data.uploads.validation import validate
from alliance_core.data.xlsx_guard import check_xlsx_expansion
from alliance_core.errors import AnalysisError

MAX_FILE_BYTES = 20 * 1024 * 1024  # the dashboard's upload limit (Streamlit counts MB as MiB)
MAX_ROWS = 200_000
MAX_COLUMNS = 1_000  # far beyond any coding sheet; stops a garbled file from building a huge frame

ENCODING_LABELS = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 with BOM",
    "utf-16": "UTF-16",
    "cp1252": "Latin-1 (Windows-1252)",
}
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}

_DELIMITER_CANDIDATES = ("\t", ";", ",")  # also the tie-break order: tab first, comma last
_SNIFF_RECORDS = 50
_SNIFF_CHARS = 200_000
_EXCEL_SUFFIXES = (".xlsx", ".xlsm")
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # old .xls, and password-protected .xlsx


@dataclass(frozen=True)
class MissingSpelling:
    """A missing-value spelling found in the table ("n.a."), in how many cells and columns."""

    spelling: str
    cells: int
    columns: tuple[str, ...]

    def describe(self) -> str:
        listed = ", ".join(f"'{column}'" for column in self.columns[:5])
        more = ", …" if len(self.columns) > 5 else ""
        where = "column" if len(self.columns) == 1 else "columns"
        return f"'{self.spelling}' in {count_of(self.cells, 'cell')} ({where} {listed}{more})"


@dataclass(frozen=True)
class ReadReport:
    """How a file was read, for the dashboard to show and to let the user correct.

    ``encoding``, ``delimiter`` and ``decimal`` can be passed back to ``read_table`` unchanged.
    ``first_data_row`` is the spreadsheet row of the table's first data row (see module doc).
    ``notes`` lists every decision worth a second look (ambiguities, renamed columns).
    ``missing_spellings`` lists the non-empty missing-value spellings read as missing (most
    cells first); ``real_values`` the spellings the caller declared real values.
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
    missing_spellings: tuple[MissingSpelling, ...] = ()
    real_values: tuple[str, ...] = ()

    @property
    def missing_markers(self) -> frozenset[str]:
        """The spellings that count as missing in this table."""
        return missing_markers(self.real_values)

    def describe(self) -> str:
        """One sentence such as "Read as semicolon-separated text, decimal comma, Latin-1 …"."""
        size = f"{count_of(self.n_rows, 'row')}, {count_of(self.n_columns, 'column')}"
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
            markers=self.report.missing_markers,
        )


def read_table(
    data: bytes,
    file_name: str,
    *,
    sheet: str | int | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    decimal: str | None = None,
    real_values: Iterable[str] = (),
) -> UploadedTable:
    """Read a coding sheet from the bytes of a CSV, TSV or Excel (.xlsx) file.

    The file's content decides how it is read (an Excel workbook is recognised even if it is
    named .csv); the name is used in messages. For Excel, ``sheet`` picks a sheet by name or
    0-based position (default: the first). For text, ``encoding``, ``delimiter`` and ``decimal``
    override detection. Cells spelling a missing value (``MISSING_SPELLINGS``) are read as
    missing unless their spelling is among ``real_values``. Fully numeric columns become
    numbers; other columns stay text with surrounding spaces removed. Raises ``AnalysisError`` (and nothing else) when the file cannot
    be read as a table.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise AnalysisError(f"'{file_name}' could not be read: expected the file's bytes.")
    data = bytes(data)
    _check_size(data, file_name)
    real = tuple(sorted({spelling_key(str(value)) for value in real_values} - {""}))
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
        return _read_excel(data, file_name, sheet=sheet, decimal=decimal, real_values=real)
    notes: list[str] = []
    if suffix in _EXCEL_SUFFIXES:
        notes.append(
            f"'{file_name}' is named like an Excel workbook but contains text; it was read as text."
        )
    return _read_text(
        data,
        file_name,
        encoding=encoding,
        delimiter=delimiter,
        decimal=decimal,
        notes=notes,
        real_values=real,
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
    real_values: tuple[str, ...] = (),
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
    markers = missing_markers(real_values)
    frame, found = _build_frame(
        header, rows, header_row + 1, decimal, file_name, notes, markers, is_text=True
    )
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
        missing_spellings=found,
        real_values=real_values,
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


# --- Excel workbooks -------------------------------------------------------------------------


def _read_excel(
    data: bytes,
    file_name: str,
    *,
    sheet: str | int | None,
    decimal: str | None,
    real_values: tuple[str, ...] = (),
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
    markers = missing_markers(real_values)
    frame, found = _build_frame(
        header, rows, header_row + 1, decimal, file_name, notes, markers, is_text=False
    )
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
        missing_spellings=found,
        real_values=real_values,
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
    markers: frozenset[str],
    *,
    is_text: bool,
) -> tuple[pd.DataFrame, tuple[MissingSpelling, ...]]:
    """Name the columns, square the rows and give each column numbers or text; also the
    missing-value spellings found."""
    while rows and _is_blank(rows[-1]):
        rows.pop()
    if not rows:
        shown = ", ".join(cell_text(cell) for cell in header[:6] if not _is_blank([cell]))
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
    return pd.DataFrame(columns), _missing_spellings(names, cells_by_column, markers)


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
