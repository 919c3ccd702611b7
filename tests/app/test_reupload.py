"""A corrected re-upload with the same columns keeps the analysis (AppTest): column roles,
moderators, reference level and inference; a file with other columns starts afresh."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from alliance_core.data.mapping import ColumnMapping
from pages._ui import session
from tests.app.conftest import exception_messages, new_app

MESSY_CSV = Path(__file__).resolve().parents[1] / "fixtures" / "uploads" / "messy_coding_sheet.csv"


def upload(at: AppTest, content: bytes, name: str) -> AppTest:
    at.switch_page("pages/data.py").run()
    at.file_uploader(key=session.UPLOAD_FILE).upload(name, content, "text/csv")
    at.run()
    assert not at.exception, exception_messages(at)
    return at


def test_a_corrected_file_with_the_same_columns_keeps_the_analysis():
    original = MESSY_CSV.read_bytes()
    at = upload(new_app().run(), original, "sheet.csv")
    mapping = at.session_state[session.UPLOAD_MAPPING]
    chosen = ColumnMapping(**{**mapping.__dict__, "moderators": ("Design", "Rater")})
    at.session_state[session.UPLOAD_MAPPING] = chosen
    at.run()
    at.multiselect(key=session.MODERATORS).set_value(["PTR", "Rater"]).run()
    at.selectbox(key=session.reference_key("Rater")).set_value("therapist").run()
    at.radio(key=session.INFERENCE).set_value("CR2").run()
    query = dict(at.query_params)

    # The corrected file: one correlation changed, the same columns.
    corrected = original.replace(b",0.39378,", b",0.39,", 1)
    assert corrected != original
    at = upload(at, corrected, "sheet (corrected).csv")
    assert at.session_state[session.UPLOAD].name == "sheet (corrected).csv"
    assert at.session_state[session.UPLOAD_MAPPING] == chosen
    assert at.multiselect(key=session.MODERATORS).value == ["PTR", "Rater"]
    assert at.selectbox(key=session.reference_key("Rater")).value == "therapist"
    assert at.radio(key=session.INFERENCE).value == "CR2"
    assert dict(at.query_params) == query
    assert any("same columns as the file before" in i.value for i in at.info)


def test_a_file_with_other_columns_starts_afresh():
    at = upload(new_app().run(), MESSY_CSV.read_bytes(), "sheet.csv")
    at.session_state[session.UPLOAD_MAPPING] = ColumnMapping(
        **{**at.session_state[session.UPLOAD_MAPPING].__dict__, "moderators": ("Design",)}
    )
    at.run()
    other = MESSY_CSV.read_bytes().replace(b"Design,", b"Study design,", 1)
    at = upload(at, other, "other.csv")
    assert at.session_state[session.UPLOAD_MAPPING].moderators == ()
    assert not any("same columns" in i.value for i in at.info)
