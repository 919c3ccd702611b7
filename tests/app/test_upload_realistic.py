"""A messy, realistic coding sheet uploaded to the dashboard (AppTest): what the Data page
counts, and how many rows the models on two pages used."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from streamlit.testing.v1 import AppTest

from pages._ui import session
from pages._ui.state import UploadRecord
from tests.app.conftest import exception_messages, new_app, unescaped

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
        "studies": len({row[0] for row in usable}),
    }


def captions(at: AppTest) -> list[str]:
    return [unescaped(c.value) for c in at.caption]


def uploaded(path: Path) -> AppTest:
    """The app on the Overview with ``path`` stored as the Data page's uploader stores it."""
    at = new_app()
    at.run()
    at.session_state[session.UPLOAD] = UploadRecord.from_bytes(path.read_bytes(), path.name)
    at.session_state[session.SOURCE] = "upload"
    at.run()
    assert not at.exception, exception_messages(at)
    return at


def row_use(at: AppTest) -> str:
    note = next(c for c in captions(at) if "This model used" in c)
    return note.removeprefix(":material/info: ")


def test_the_messy_csv_counts_on_the_data_page_and_k_on_two_pages():
    expected = facts()
    at = uploaded(MESSY_CSV)
    usable, with_ptr = expected["usable"], expected["with_therapists"]

    # Overview: the pooled model keeps rows without therapist counts; the PTR model does not.
    assert {m.label: m.value for m in at.metric}["Effect sizes (k)"] == str(usable)
    assert row_use(at) == (
        f"This model used {with_ptr} of {usable} rows; {usable - with_ptr} left out: "
        f"{usable - with_ptr} without PTR (missing 'Patients' or 'Therapists')."
    )

    at.switch_page("pages/moderators.py").run()
    assert not at.exception, exception_messages(at)
    assert row_use(at).startswith(f"This model used {with_ptr} of {usable} rows")

    at.switch_page("pages/data.py").run()
    assert not at.exception, exception_messages(at)
    listed = next(c for c in captions(at) if c.startswith(":material/info: Read as missing"))
    assert f"'n.a.' in {expected['na_cells']} cells (columns 'Design', 'Therapists')" in listed
    assert "'n/a' in 1 cell (column 'Rater')" in listed
    assert "'?' in 1 cell (column 'SE')" in listed
    summary = next(unescaped(w.value) for w in at.warning)
    assert f"{usable} of {expected['rows']} rows usable; 1 left out: 1 with a missing SE" in (
        summary
    )
    assert f"'Therapists' in {usable - with_ptr} rows" in summary
    assert at.selectbox(key="map:sei").value == "SE"
    assert at.selectbox(key="map:study_patients").value == "Patients"


def test_declaring_na_a_real_value_refreshes_the_counts_and_the_fit():
    expected = facts()
    at = uploaded(MESSY_CSV)
    at.switch_page("pages/data.py").run()
    at.multiselect(key=session.UPLOAD_REAL_VALUES_CHOICE).select("n.a.").run()
    assert not at.exception, exception_messages(at)
    assert at.session_state[session.UPLOAD_REAL_VALUES] == ("n.a.",)
    # 'n.a.' is now text in the therapist column: those rows are not numbers, and are listed.
    problems = next(df.value for df in at.dataframe if "severity" in df.value.columns)
    excluded = problems[problems["column"] == "Therapists"]
    assert len(excluded) == expected["usable"] - expected["with_therapists"] + 1
    at.switch_page("pages/overview.py").run()
    assert {m.label: m.value for m in at.metric}["Effect sizes (k)"] == str(
        expected["with_therapists"]
    )


def test_the_workbook_opens_on_its_first_sheet_and_the_user_chooses_another():
    expected = facts()
    at = uploaded(MESSY_XLSX)
    assert {m.label: m.value for m in at.metric}["Effect sizes (k)"] == str(expected["usable"])

    at.switch_page("pages/data.py").run()
    sheet = at.selectbox(key=session.UPLOAD_SHEET_CHOICE)
    assert sheet.options == ["coding z SE", "correlations", "notes"]
    assert sheet.value == "coding z SE"
    sheet.select("correlations").run()
    assert not at.exception, exception_messages(at)
    assert at.selectbox(key="map:r").value == "r"
    # r and n; PTR = n / therapists varies within studies whose correlations have their own n.
    problems = next(df.value for df in at.dataframe if "severity" in df.value.columns)
    assert (problems["severity"] == "warning").sum() > 0
    assert problems["message"].str.contains("PTR is a property of the study").all()

    at.switch_page("pages/overview.py").run()
    assert not at.exception, exception_messages(at)
    assert {m.label: m.value for m in at.metric}["Effect sizes (k)"] == str(expected["rows"])
