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
    ignored), with the codes the caller adds (``extra_codes``) and less those the caller
    declares real values (``real_values``).
    Sheet: the first sheet of a workbook unless ``sheet`` names another.
"""

from __future__ import annotations

from collections.abc import Iterable

from alliance_core.data.uploads.cells import DECIMAL_NAMES, spelling_key
from alliance_core.data.uploads.excel_files import read_excel
from alliance_core.data.uploads.read_report import (
    DELIMITER_NAMES,
    ENCODING_LABELS,
    MissingSpelling,
    ReadReport,
    UploadedTable,
)
from alliance_core.data.uploads.sheet_frame import MAX_COLUMNS
from alliance_core.data.uploads.text_files import read_text
from alliance_core.errors import AnalysisError

__all__ = [
    "DELIMITER_NAMES",
    "ENCODING_LABELS",
    "MAX_COLUMNS",
    "MAX_FILE_BYTES",
    "MAX_ROWS",
    "MissingSpelling",
    "ReadReport",
    "UploadedTable",
    "read_table",
]

MAX_FILE_BYTES = 20 * 1024 * 1024  # the dashboard's upload limit (Streamlit counts MB as MiB)
MAX_ROWS = 200_000

_EXCEL_SUFFIXES = (".xlsx", ".xlsm")
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # old .xls, and password-protected .xlsx


def read_table(
    data: bytes,
    file_name: str,
    *,
    sheet: str | int | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    decimal: str | None = None,
    real_values: Iterable[str] = (),
    extra_codes: Iterable[str] = (),
) -> UploadedTable:
    """Read a coding sheet from the bytes of a CSV, TSV or Excel (.xlsx) file.

    The file's content decides how it is read (an Excel workbook is recognised even if it is
    named .csv); the name is used in messages. For Excel, ``sheet`` picks a sheet by name or
    0-based position (default: the first). For text, ``encoding``, ``delimiter`` and ``decimal``
    override detection. Cells spelling a missing value (``MISSING_SPELLINGS``) are read as
    missing unless their spelling is among ``real_values``; ``extra_codes`` adds codes of this
    sheet ("k.A.", "-99"), in every column. Fully numeric columns become
    numbers; other columns stay text with surrounding spaces removed. The typed text of a
    number that its number does not spell ("1.10", "01") is kept, so that an identifier column
    reads as typed (``UploadedTable.table_for``). Raises ``AnalysisError`` (and nothing else)
    when the file cannot be read as a table.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise AnalysisError(f"'{file_name}' could not be read: expected the file's bytes.")
    data = bytes(data)
    _check_size(data, file_name)
    real = tuple(sorted({spelling_key(str(value)) for value in real_values} - {""}))
    extra = tuple(sorted({spelling_key(str(value)) for value in extra_codes} - {""}))
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
        return read_excel(
            data,
            file_name,
            sheet=sheet,
            decimal=decimal,
            real_values=real,
            extra_codes=extra,
            max_rows=MAX_ROWS,
        )
    notes: list[str] = []
    if suffix in _EXCEL_SUFFIXES:
        notes.append(
            f"'{file_name}' is named like an Excel workbook but contains text; it was read as text."
        )
    return read_text(
        data,
        file_name,
        encoding=encoding,
        delimiter=delimiter,
        decimal=decimal,
        notes=notes,
        real_values=real,
        extra_codes=extra,
        max_rows=MAX_ROWS,
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
