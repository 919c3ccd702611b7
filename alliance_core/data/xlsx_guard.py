"""Refuse an .xlsx "decompression bomb" before any of it is expanded.

An .xlsx file is a zip archive of XML parts. A few kilobytes of zip can expand to gigabytes
(a shared-string table of one repeated character compresses about 1000:1), and spreadsheet
readers hold some parts, such as ``xl/sharedStrings.xml``, wholly in memory, so a 1 MB upload
could take a server's memory. ``check_xlsx_expansion`` reads only the zip's directory and
then decompresses each part in small chunks, counting bytes and discarding them, so its own
memory use stays near the size of the upload whatever the archive claims or hides.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

from alliance_core.errors import AnalysisError

MB = 2**20
# A coding sheet at the 200,000-row limit is a few hundred MB of sheet XML at most; the
# shared-string table (read whole into memory) of a real one is a few MB.
MAX_EXPANDED_BYTES = 256 * MB
MAX_PART_BYTES = {"xl/sharedStrings.xml": 32 * MB}
MAX_ENTRIES = 2_000
# Spreadsheet XML compresses 5-30:1; only a crafted part goes far beyond this.
MAX_RATIO = 200
RATIO_APPLIES_ABOVE = 1 * MB  # tiny parts can have any ratio without harm
CHUNK_BYTES = 1 * MB

_EOCD = b"PK\x05\x06"  # end of central directory record


def check_xlsx_expansion(data: bytes, file_name: str) -> None:
    """AnalysisError if the workbook in ``data`` would expand beyond the limits above.

    Checks, in order and before anything is expanded: the number of parts (from the zip's
    end record), each part's declared size and compression ratio, and the declared total;
    then decompresses every part in chunks and stops as soon as the real bytes exceed a
    limit, because a crafted archive can declare sizes it does not have.
    """
    _check_entry_count(data, file_name)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return  # not a readable zip: the workbook reader says so in its own words
    with archive:
        entries = archive.infolist()
        if len(entries) > MAX_ENTRIES:
            raise _too_many(file_name, len(entries))
        declared = 0
        for entry in entries:
            _check_part(entry.filename, entry.file_size, entry.compress_size, file_name)
            declared += entry.file_size
            if declared > MAX_EXPANDED_BYTES:
                raise _too_big(file_name, declared)
        expanded = 0
        for entry in entries:
            expanded += _stream_size(archive, entry, file_name, expanded)


def _check_entry_count(data: bytes, file_name: str) -> None:
    """The entry count from the end record, before zipfile builds an object per entry."""
    end = data.rfind(_EOCD, max(0, len(data) - 65_557))
    if end < 0 or end + 22 > len(data):
        return
    total_entries = struct.unpack_from("<H", data, end + 10)[0]
    if total_entries != 0xFFFF and total_entries > MAX_ENTRIES:
        raise _too_many(file_name, total_entries)


def _part_limit(name: str) -> int:
    return MAX_PART_BYTES.get(name, MAX_EXPANDED_BYTES)


def _check_part(name: str, size: int, compressed: int, file_name: str) -> None:
    if size > _part_limit(name):
        raise _too_big(file_name, size, name)
    if size > RATIO_APPLIES_ABOVE and size > MAX_RATIO * max(compressed, 1):
        raise AnalysisError(
            f"'{file_name}' is not a workbook that can be read safely: its part '{name}' is "
            f"compressed {size / max(compressed, 1):,.0f}:1 (a spreadsheet's parts compress at "
            f"most about {MAX_RATIO}:1). Open it in a spreadsheet program and save it as CSV."
        )


def _stream_size(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, file_name: str, before: int):
    """The real expanded size of one part, read in chunks and never held; stops at a limit."""
    limit = _part_limit(entry.filename)
    size = 0
    try:
        with archive.open(entry) as part:
            while chunk := part.read(CHUNK_BYTES):
                size += len(chunk)
                if size > limit:
                    raise _too_big(file_name, size, entry.filename)
                if before + size > MAX_EXPANDED_BYTES:
                    raise _too_big(file_name, before + size)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as error:
        # Most often a part holding other bytes than its directory entry says (CPython's
        # zipfile stops at the declared size, then finds the checksum wrong): not opened.
        raise AnalysisError(
            f"'{file_name}' could not be opened as an Excel workbook: its part "
            f"'{entry.filename}' is damaged or does not match the size it declares. Open it "
            "in a spreadsheet program and save it as .xlsx or CSV."
        ) from error
    except (NotImplementedError, RuntimeError):
        return size  # encrypted or an unknown compression: the workbook reader reports it
    return size


def _too_big(file_name: str, size: int, part: str | None = None) -> AnalysisError:
    limit = MAX_EXPANDED_BYTES if part is None else _part_limit(part)
    where = "" if part is None else f" (its part '{part}' alone to at least {size / MB:,.0f} MB)"
    return AnalysisError(
        f"This .xlsx ('{file_name}') would expand to more than {limit // MB} MB when opened"
        f"{where}, more than a coding sheet needs; it was not opened. Save it as CSV, or "
        "remove sheets and cells you do not need."
    )


def _too_many(file_name: str, count: int) -> AnalysisError:
    return AnalysisError(
        f"'{file_name}' holds {count:,} parts; a workbook has a few dozen (at most "
        f"{MAX_ENTRIES:,} are read). Save it as CSV."
    )
