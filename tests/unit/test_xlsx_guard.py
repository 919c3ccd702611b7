"""Decompression bombs in .xlsx uploads are refused before anything is expanded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from alliance_core.data.uploads import read_table
from alliance_core.data.xlsx_guard import MAX_ENTRIES, check_xlsx_expansion
from alliance_core.errors import AnalysisError
from tests.unit.xlsx_bombs import (
    SHARED_STRINGS,
    many_parts,
    small_workbook,
    workbook_with,
)

REPO = Path(__file__).resolve().parents[2]


def test_an_ordinary_workbook_passes_and_is_read():
    data = small_workbook()
    check_xlsx_expansion(data, "sheet.xlsx")
    table = read_table(data, "sheet.xlsx")
    assert list(table.frame.columns) == ["study", "r", "n", "label"]
    assert len(table.frame) == 7


def test_a_one_gib_shared_string_table_in_a_one_mb_file_is_refused():
    bomb = workbook_with(SHARED_STRINGS, 1024)
    assert len(bomb) < 2 * 2**20
    with pytest.raises(
        AnalysisError, match=r"This \.xlsx \('bomb\.xlsx'\) would expand to more than 32 MB"
    ):
        read_table(bomb, "bomb.xlsx")


def test_a_huge_sheet_is_refused_by_the_total_limit():
    with pytest.raises(AnalysisError, match="more than 256 MB.*sheet1.xml"):
        read_table(workbook_with("xl/worksheets/sheet1.xml", 300), "big.xlsx")


def test_a_part_compressed_far_beyond_any_spreadsheet_is_refused():
    with pytest.raises(AnalysisError, match=r"compressed 1,0\d\d:1"):
        read_table(workbook_with("docProps/custom.xml", 16), "odd.xlsx")


def test_a_directory_that_understates_a_part_is_caught_while_streaming():
    # The directory says 1 KB; the part holds 64 MiB. Streaming stops at the declared size
    # and finds the checksum wrong: the file is refused, nothing is expanded.
    liar = workbook_with(SHARED_STRINGS, 64, declared_mib=0.001)
    with pytest.raises(AnalysisError, match="does not match the size it declares"):
        read_table(liar, "liar.xlsx")


def test_a_zip_with_thousands_of_parts_is_refused_from_its_end_record():
    with pytest.raises(AnalysisError, match=f"3,000 parts.*at most {MAX_ENTRIES:,}"):
        read_table(many_parts(3_000), "many.xlsx")


def test_a_file_that_is_not_a_zip_is_left_to_the_workbook_reader():
    check_xlsx_expansion(b"PK\x03\x04 not really a zip", "broken.xlsx")
    with pytest.raises(AnalysisError, match="could not be opened as an Excel workbook"):
        read_table(b"PK\x03\x04 not really a zip", "broken.xlsx")


MEASURE = """
import json, resource, sys
sys.path.insert(0, {repo!r})
from alliance_core.errors import AnalysisError
from alliance_core.data.uploads import read_table
from tests.unit.xlsx_bombs import SHARED_STRINGS, workbook_with
read_table(workbook_with(SHARED_STRINGS, 1), "warm.xlsx")  # imports openpyxl, warms caches
figures = {{}}
for name, declared in (("honest", None), ("lying", 0.001)):
    bomb = workbook_with(SHARED_STRINGS, 1024, declared_mib=declared)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        read_table(bomb, "bomb.xlsx")
        refused = False
    except AnalysisError:
        refused = True
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    figures[name] = {{"refused": refused, "peak_kib": after, "growth_kib": after - before}}
print(json.dumps(figures))
"""


def test_refusing_a_one_gib_bomb_costs_almost_no_memory():
    """Peak RSS growth while reading the bomb, in a fresh process (printed with -s)."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE.format(repo=str(REPO))],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"1 GiB shared-string bomb in a 1 MB .xlsx, peak RSS: {figures}")
    for case in figures.values():
        assert case["refused"]
        # Before the guard, openpyxl held the whole table: many GiB. 64 MiB is ample headroom.
        assert case["growth_kib"] < 64 * 1024
