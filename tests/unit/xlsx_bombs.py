"""Small .xlsx files that expand hugely, built in memory for the decompression-bomb tests.

A deflate stream of one repeated MiB, flushed with Z_FULL_FLUSH, is a block that does not
depend on what came before, so repeating it n times is a valid stream of n MiB: a 1 GiB
shared-string table costs about 1 MB and a fraction of a second to build.
"""

from __future__ import annotations

import io
import struct
import zlib

import openpyxl

MIB = 2**20
SHARED_STRINGS = "xl/sharedStrings.xml"


def small_workbook() -> bytes:
    """A real two-row coding sheet written by openpyxl."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["study", "r", "n", "label"])
    for i in range(1, 8):
        sheet.append([i, 0.1 + 0.03 * i, 40 + 5 * i, f"Study {i}"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def repeated_part(mib: int, byte: bytes = b"a") -> tuple[bytes, int, int]:
    """(raw deflate stream, crc32, size) of ``mib`` MiB of one repeated byte."""
    chunk = byte * MIB
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(chunk, crc)
    return block * mib + c.flush(), crc, mib * MIB


def write_zip(parts: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip of (name, deflate stream, crc32, real size, declared size) entries."""
    out = io.BytesIO()
    central = io.BytesIO()
    for name, stream, crc, _real, declared in parts:
        offset = out.tell()
        encoded = name.encode()
        out.write(
            struct.pack(
                "<4sHHHHHIIIHH",
                b"PK\x03\x04",
                20,
                0,
                8,
                0,
                0x21,
                crc,
                len(stream),
                declared,
                len(encoded),
                0,
            )
        )
        out.write(encoded)
        out.write(stream)
        central.write(
            struct.pack(
                "<4sHHHHHHIIIHHHHHII",
                b"PK\x01\x02",
                20,
                20,
                0,
                8,
                0,
                0x21,
                crc,
                len(stream),
                declared,
                len(encoded),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
        )
        central.write(encoded)
    start = out.tell()
    directory = central.getvalue()
    out.write(directory)
    out.write(
        struct.pack(
            "<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(parts), len(parts), len(directory), start, 0
        )
    )
    return out.getvalue()


def workbook_with(
    replace: str, mib: int, *, declared_mib: float | None = None, byte: bytes = b"a"
) -> bytes:
    """``small_workbook()`` with part ``replace`` swapped for ``mib`` MiB of one byte.

    ``declared_mib`` makes the zip directory claim another size (a lying header).
    """
    import zipfile

    source = zipfile.ZipFile(io.BytesIO(small_workbook()))
    parts = []
    names = source.namelist() + ([replace] if replace not in source.namelist() else [])
    for name in names:
        if name == replace:
            stream, crc, size = repeated_part(mib, byte)
            declared = size if declared_mib is None else int(declared_mib * MIB)
            parts.append((name, stream, crc, size, declared))
        else:
            data = source.read(name)
            parts.append((name, _deflate(data), zlib.crc32(data), len(data), len(data)))
    return write_zip(parts)


def many_parts(count: int) -> bytes:
    data = b"<x/>"
    part = (_deflate(data), zlib.crc32(data), len(data), len(data))
    return write_zip([(f"xl/part{i}.xml", *part) for i in range(count)])
