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
    # Choices on the Data page and in the sidebar, then the Moderators page's numbers.
    mapping = at.session_state[session.UPLOAD_MAPPING]
    chosen = ColumnMapping(**{**mapping.__dict__, "moderators": ("Design", "Rater")})
    at.session_state[session.UPLOAD_MAPPING] = chosen
    at.session_state[session.UPLOAD_EXTRA_CODES] = ("k.a.",)
    at.run()
    at.multiselect(key=session.MODERATORS).set_value(["PTR", "Rater"]).run()
    at.switch_page("pages/moderators.py").run()
    table = next(t.value for t in at.table if t.value.index.name == "Term")
    query = dict(at.query_params)

    reloaded = new_app()
    for key, value in query.items():
        reloaded.query_params[key] = value
    reloaded.run()
    assert not reloaded.exception, exception_messages(reloaded)
    assert reloaded.session_state[session.UPLOAD].name == "sheet.csv"
    assert reloaded.session_state[session.SOURCE] == "upload"
    assert reloaded.session_state[session.UPLOAD_MAPPING] == chosen
    assert reloaded.session_state[session.UPLOAD_EXTRA_CODES] == ("k.a.",)
    assert dict(reloaded.query_params) == query
    assert next(t.value for t in reloaded.table if t.value.index.name == "Term").equals(table)

    # Deleted now: the link opens nothing, and says so.
    at.switch_page("pages/data.py").run()
    at.button(key="delete_kept_upload").click().run()
    assert "upload" not in at.query_params
    again = new_app()
    again.query_params["upload"] = token
    again.run()
    assert session.UPLOAD not in again.session_state
    assert any("no longer kept on the server" in w.value for w in again.warning)


def settings_file(choices_for: bytes, name: str) -> bytes:
    """A version-3 settings file as the dashboard writes it for ``choices_for`` (the bytes of
    the sheet it was saved with)."""
    import hashlib

    from alliance_core.analyses.settings import AnalysisSettings
    from alliance_core.analyses.upload_choices import UploadChoices

    columns = ("Study", "ES", "Design", "Rater", "yi", "SE", "n", "Patients", "Therapists")
    choices = UploadChoices(
        file_name=name,
        sha256=hashlib.sha256(choices_for).hexdigest(),
        columns=columns,
        mapping=ColumnMapping(
            study="Study",
            es_id="ES",
            yi="yi",
            sei="SE",
            n="n",
            study_patients="Patients",
            n_therapists="Therapists",
            measure="correlation",
            moderators=("Design", "Rater"),
        ),
        extra_codes=("k.a.",),
    )
    settings = AnalysisSettings(dataset="upload", moderators=("PTR", "Rater"), inference="CR2")
    return settings.to_json(choices).encode()


def load(at: AppTest, content: bytes) -> AppTest:
    at.file_uploader(key=session.SETTINGS_FILE).upload("s.json", content, "application/json")
    at.run()
    assert not at.exception, exception_messages(at)
    return at


def test_a_settings_file_restores_the_whole_analysis_of_its_file():
    sheet = MESSY_CSV.read_bytes()
    at = upload(new_app().run(), sheet, "sheet.csv")
    at = load(at, settings_file(sheet, "sheet.csv"))
    mapping = at.session_state[session.UPLOAD_MAPPING]
    assert mapping.moderators == ("Design", "Rater") and mapping.measure == "correlation"
    assert at.session_state[session.UPLOAD_EXTRA_CODES] == ("k.a.",)
    assert at.multiselect(key=session.MODERATORS).value == ["PTR", "Rater"]
    assert at.radio(key=session.INFERENCE).value == "CR2"
    # Nothing differs: no notice about the file (the Data page's validation warning stays).
    assert not [w for w in at.warning if w.icon == ":material/link_off:"]


def test_a_settings_file_on_another_file_says_what_differs():
    sheet = MESSY_CSV.read_bytes()
    newer = sheet.replace(b",0.39378,", b",0.39,", 1)
    at = load(upload(new_app().run(), newer, "sheet v2.csv"), settings_file(sheet, "sheet.csv"))
    assert at.session_state[session.UPLOAD_MAPPING].moderators == ("Design", "Rater")
    assert any("same columns" in w.value for w in at.warning)

    other = sheet.replace(b"Design,", b"Study design,", 1)
    at = load(upload(new_app().run(), other, "other.csv"), settings_file(sheet, "sheet.csv"))
    assert at.session_state[session.UPLOAD_MAPPING].moderators == ()
    assert any("other columns" in w.value for w in at.warning)
