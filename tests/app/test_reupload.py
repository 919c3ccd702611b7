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
    query = {k: v for k, v in at.query_params.items() if k != "upload"}

    # The corrected file: one correlation changed, the same columns.
    corrected = original.replace(b",0.39378,", b",0.39,", 1)
    assert corrected != original
    at = upload(at, corrected, "sheet (corrected).csv")
    assert at.session_state[session.UPLOAD].name == "sheet (corrected).csv"
    assert at.session_state[session.UPLOAD_MAPPING] == chosen
    assert at.multiselect(key=session.MODERATORS).value == ["PTR", "Rater"]
    assert at.selectbox(key=session.reference_key("Rater")).value == "therapist"
    assert at.radio(key=session.INFERENCE).value == "CR2"
    # The same link, but for the new file's token (the corrected file is kept, not the old).
    assert {k: v for k, v in at.query_params.items() if k != "upload"} == query
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


def test_a_reloaded_tab_finds_its_upload_again_and_only_its_own():
    at = upload(new_app().run(), MESSY_CSV.read_bytes(), "sheet.csv")
    token = at.query_params["upload"]
    assert len(token) == 43
    assert any("kept on this server until" in c.value for c in at.caption)
    query = dict(at.query_params)

    reloaded = new_app()
    for key, value in query.items():
        reloaded.query_params[key] = value
    reloaded.run()
    assert not reloaded.exception, exception_messages(reloaded)
    assert reloaded.session_state[session.UPLOAD].name == "sheet.csv"
    assert reloaded.session_state[session.SOURCE] == "upload"
    assert dict(reloaded.query_params) == query

    # Deleted now: the link opens nothing, and says so.
    at.button(key="delete_kept_upload").click().run()
    assert "upload" not in at.query_params
    again = new_app()
    again.query_params["upload"] = token
    again.run()
    assert session.UPLOAD not in again.session_state
    assert any("no longer kept on the server" in w.value for w in again.warning)
