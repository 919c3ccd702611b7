"""Reading a coding sheet stored as text (CSV, TSV): encoding, separator, records.

The detection rules are described in ``alliance_core.data.uploads.reading``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from itertools import islice

from alliance_core.data.uploads.read_report import (
    DELIMITER_NAMES,
    ENCODING_LABELS,
    UploadedTable,
)
from alliance_core.data.uploads.sheet_frame import (
    detect_decimal,
    is_blank_record,
    too_many_rows,
    uploaded_table,
)
from alliance_core.errors import AnalysisError

_DELIMITER_CANDIDATES = ("\t", ";", ",")  # also the tie-break order: tab first, comma last
_SNIFF_RECORDS = 50
_SNIFF_CHARS = 200_000


def read_text(
    data: bytes,
    file_name: str,
    *,
    encoding: str | None,
    delimiter: str | None,
    decimal: str | None,
    notes: list[str],
    real_values: tuple[str, ...] = (),
    extra_codes: tuple[str, ...] = (),
    max_rows: int,
) -> UploadedTable:
    text, encoding = _decode(data, file_name, encoding)
    _reject_binary(text, data, file_name)
    notes.extend(_double_encoding_note(text))
    if delimiter is None:
        delimiter, delimiter_notes = _detect_delimiter(text)
        notes.extend(delimiter_notes)
    elif len(delimiter) != 1 or delimiter in '"\r\n':
        raise AnalysisError(f"'{delimiter}' cannot be used as a separator; use one character.")
    header, rows, header_row = _parse_records(text, delimiter, file_name, max_rows)
    if decimal is None:
        decimal, decimal_notes = detect_decimal(rows)
        notes.extend(decimal_notes)
    return uploaded_table(
        header,
        rows,
        header_row,
        decimal,
        file_name,
        notes,
        real_values=real_values,
        extra_codes=extra_codes,
        file_format="text",
        encoding=encoding,
        delimiter=delimiter,
    )


def _decode(data: bytes, file_name: str, encoding: str | None) -> tuple[str, str]:
    """Decode by the rule in ``alliance_core.data.uploads.reading``, or by the user's choice."""
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


def _detect_delimiter(text: str) -> tuple[str, list[str]]:
    """Pick the separator by the rule in ``alliance_core.data.uploads.reading``; return it and notes."""
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
    records = [r for r in records if not is_blank_record(r)][: _SNIFF_RECORDS + 1]
    if not records:
        return 0, 0.0
    width = len(records[0])
    rows = records[1:]
    if not rows:
        return width, 1.0
    return width, sum(len(r) == width for r in rows) / len(rows)


def _parse_records(
    text: str, delimiter: str, file_name: str, max_rows: int
) -> tuple[list, list, int]:
    """Split text into the header, the data rows and the header's spreadsheet row."""
    header: list[str] | None = None
    header_row = 0
    rows: list[list[str]] = []
    pending_blanks = 0  # blank rows count only once a non-blank row follows them
    records = _csv_records(text, delimiter)
    try:
        for number, record in enumerate(records, start=1):
            if is_blank_record(record):
                if header is not None:
                    pending_blanks += 1
                continue
            if header is None:
                header, header_row = record, number
                continue
            if len(rows) + pending_blanks + 1 > max_rows:
                raise too_many_rows(file_name, max_rows)
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
