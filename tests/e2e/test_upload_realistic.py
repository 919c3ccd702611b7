"""A messy, realistic coding sheet uploaded in Chromium: the Data page's counts and the number
of rows the models on two pages used (CSV, and an .xlsx whose other sheet the user chooses)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tests.e2e.conftest import PAGE_TIMEOUT_MS, rerun_and_wait

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "uploads"
MESSY_CSV = FIXTURES / "messy_coding_sheet.csv"
MESSY_XLSX = FIXTURES / "messy_coding_sheet.xlsx"


def facts() -> dict[str, int]:
    """Counts from the fixture CSV by the csv module alone (independent of the app)."""
    text = MESSY_CSV.read_text(encoding="utf-8-sig")
    rows = [row for row in csv.reader(io.StringIO(text)) if row][1:]
    usable = [row for row in rows if row[5] != "?"]
    return {
        "rows": len(rows),
        "usable": len(usable),
        "na_cells": sum(cell == "n.a." for row in rows for cell in row),
        "with_therapists": sum(1 for row in usable if row[8] != "n.a."),
        "all_with_therapists": sum(1 for row in rows if row[8] != "n.a."),
    }


def sidebar(page):
    return page.locator('[data-testid="stSidebar"]')


def go_to(page, title: str) -> None:
    rerun_and_wait(page, lambda: sidebar(page).get_by_role("link", name=title).click())


def metric(page, label: str) -> str:
    tile = page.locator('[data-testid="stMetric"]').filter(has_text=label)
    return tile.locator('[data-testid="stMetricValue"]').inner_text().strip()


def upload(page, path: Path) -> None:
    go_to(page, "Data")
    uploader = page.locator('[data-testid="stMain"] [data-testid="stFileUploaderDropzoneInput"]')
    rerun_and_wait(page, lambda: uploader.set_input_files(str(path)))


def shows(page, text: str) -> None:
    page.get_by_text(text).first.wait_for(timeout=PAGE_TIMEOUT_MS)


def assert_healthy(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.js_errors == []


def test_the_messy_csv_shows_its_counts_and_each_models_rows(page):
    expected = facts()
    usable, with_ptr = expected["usable"], expected["with_therapists"]
    upload(page, MESSY_CSV)

    shows(page, f"'n.a.' in {expected['na_cells']} cells (columns 'Design', 'Therapists')")
    shows(page, f"{usable} of {expected['rows']} rows usable; 1 left out: 1 with a missing SE")
    assert sidebar(page).get_by_role("radio", name="Your upload").is_checked()

    go_to(page, "Overview")
    assert metric(page, "Effect sizes (k)") == str(usable)
    shows(page, f"This model used {with_ptr} of {usable} rows")

    go_to(page, "Moderators & PTR")
    shows(page, f"This model used {with_ptr} of {usable} rows")
    shows(page, "without PTR (missing 'Patients' or 'Therapists')")
    assert_healthy(page)


def test_the_workbook_reads_its_first_sheet_and_then_the_chosen_one(page):
    expected = facts()
    upload(page, MESSY_XLSX)
    shows(page, "Read sheet 'coding z SE' of an Excel workbook (3 sheets)")
    shows(page, f"{expected['usable']} of {expected['rows']} rows usable")

    box = page.get_by_role("combobox", name="Sheet to analyse")

    def pick():
        box.click()
        page.keyboard.type("correlations")
        page.keyboard.press("Enter")

    rerun_and_wait(page, pick)
    shows(page, "Read sheet 'correlations' of an Excel workbook (3 sheets)")
    shows(page, f"{expected['rows']} of {expected['rows']} rows usable")

    go_to(page, "Overview")
    assert metric(page, "Effect sizes (k)") == str(expected["rows"])
    go_to(page, "Forest plot")
    shows(page, f"This model used {expected['all_with_therapists']} of {expected['rows']} rows")
    assert_healthy(page)
