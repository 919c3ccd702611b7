"""Write the messy, realistic coding sheets the upload tests read (CSV and a multi-sheet .xlsx).

    python scripts/make_upload_fixtures.py

tests/fixtures/uploads/messy_coding_sheet.csv and messy_coding_sheet.xlsx hold a researcher's
sheet as researchers keep it: studies named by author and year, several effect sizes per study
with their own n, the study's total patients in a `Patients` column, Fisher's z with its
standard error (`SE`), and missing values written `n.a.`, `N/A` and `?`. The workbook's first
sheet is that table; its second sheet (`correlations`) holds the same studies as r and n, and a
third sheet holds notes. The values are simulated (seeded); ``SHEET_FACTS`` below are the
counts the tests check, derived here from the rows written.
"""

from __future__ import annotations

import csv
import datetime
import io
import math
from pathlib import Path

import numpy as np
import openpyxl

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "uploads"
STEM = "messy_coding_sheet"

STUDIES = (
    # name, patients, therapists ("n.a." when the paper does not say), design, effect sizes
    ("Eriksson et al. (1997)", 64, 8, "RCT", 3),
    ("Barber & Crits (2001)", 120, 15, "naturalistic", 2),
    ("Okafor (2015)", 45, "n.a.", "RCT", 3),
    ("Lindqvist (2009)", 88, 11, "naturalistic", 2),
    ("Meyer et al. (2012)", 210, 30, "RCT", 3),
    ("Santos (2018)", 52, "n.a.", "n.a.", 2),
    ("Horvath-Kim (2005)", 150, 25, "RCT", 2),
    ("Dubois (2020)", 36, 4, "naturalistic", 2),
    ("Nakamura et al. (2011)", 96, 12, "RCT", 3),
    ("Ahmed (2016)", 75, 5, "naturalistic", 2),
    ("Fischer (2003)", 58, 29, "RCT", 2),
    ("Kowalski (2019)", 140, 14, "naturalistic", 2),
)
RATERS = ("patient", "therapist", "observer")
HEADER = ("Study", "ES", "Design", "Rater", "yi", "SE", "n", "Patients", "Therapists")
# The spreadsheet row (header = row 1) whose SE is written "?" (a missing SE), and the row
# whose rater is written "N/A".
UNKNOWN_SE_ROW = 9
UNKNOWN_RATER_ROW = 14
_FIXED_TIME = datetime.datetime(2026, 1, 1)  # reproducible workbook metadata


def coding_rows(seed: int = 12) -> tuple[list[list], list[list]]:
    """The z/SE sheet and the same effect sizes as r and n."""
    rng = np.random.default_rng(seed)
    rows, correlations = [], []
    for name, patients, therapists, design, count in STUDIES:
        for es in range(1, count + 1):
            n = int(patients - rng.integers(0, 6))  # each correlation has its own n
            r = float(np.clip(rng.normal(0.27, 0.1), -0.9, 0.9))
            z = math.atanh(r)
            se = 1 / math.sqrt(n - 3)
            spreadsheet_row = len(rows) + 2
            rater = "N/A" if spreadsheet_row == UNKNOWN_RATER_ROW else RATERS[(es - 1) % 3]
            se_cell = "?" if spreadsheet_row == UNKNOWN_SE_ROW else round(se, 5)
            rows.append([name, es, design, rater, round(z, 5), se_cell, n, patients, therapists])
            correlations.append([name, es, round(r, 4), n, therapists])
    return rows, correlations


def sheet_facts(rows: list[list]) -> dict[str, int]:
    """The counts the tests check, from the rows themselves."""
    missing_se = sum(1 for row in rows if row[5] == "?")
    no_therapists = [row for row in rows if row[8] == "n.a." and row[5] != "?"]
    return {
        "rows": len(rows),
        "usable": len(rows) - missing_se,
        "na_cells": sum(cell == "n.a." for row in rows for cell in row),
        "usable_without_therapists": len(no_therapists),
        "studies": len(STUDIES),
    }


def csv_bytes(rows: list[list]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    writer.writerow([])  # the trailing blank line spreadsheet programs leave
    return buffer.getvalue().encode("utf-8-sig")


def xlsx_bytes(rows: list[list], correlations: list[list]) -> bytes:
    workbook = openpyxl.Workbook()
    first = workbook.active
    first.title = "coding z SE"
    first.append(HEADER)
    for row in rows:
        first.append(row)
    second = workbook.create_sheet("correlations")
    second.append(("Study", "ES", "r", "n", "Therapists"))
    for row in correlations:
        second.append(row)
    notes = workbook.create_sheet("notes")
    notes.append(("Coding notes",))
    notes.append(("Therapist counts marked n.a. were not reported.",))
    buffer = io.BytesIO()
    workbook.properties.created = workbook.properties.modified = _FIXED_TIME
    workbook.save(buffer)
    return buffer.getvalue()


def main() -> None:
    rows, correlations = coding_rows()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{STEM}.csv").write_bytes(csv_bytes(rows))
    (OUT / f"{STEM}.xlsx").write_bytes(xlsx_bytes(rows, correlations))
    print(sheet_facts(rows))


if __name__ == "__main__":
    main()
