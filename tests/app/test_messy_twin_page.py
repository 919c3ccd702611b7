"""The messy sheet and its clean twin through the dashboard (AppTest): the same coefficient
table; the merges, codes and forms named on the Data page; a corrected re-upload (the clean
twin, same columns) keeps the analysis and gives the same numbers."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from alliance_core.data.mapping import ColumnMapping
from pages._ui import session
from tests.app.conftest import exception_messages, new_app, unescaped
from tests.coding_sheets import sheet_bytes, twin_sheets, two_sheet_workbook

MODERATORS = ["PTR", "Rater", "Design"]


def upload(at: AppTest, content: bytes, name: str, mime: str = "text/csv") -> AppTest:
    at.switch_page("pages/data.py").run()
    at.file_uploader(key=session.UPLOAD_FILE).upload(name, content, mime)
    at.run()
    assert not at.exception, exception_messages(at)
    return at


def analysed(at: AppTest) -> AppTest:
    """Choose the moderators (Data page, then sidebar) and open the Moderators page."""
    mapping = at.session_state[session.UPLOAD_MAPPING]
    if mapping.moderators != ("Rater", "Design"):
        at.session_state[session.UPLOAD_MAPPING] = ColumnMapping(
            **{**mapping.__dict__, "moderators": ("Rater", "Design")}
        )
        at.run()
    at.multiselect(key=session.MODERATORS).set_value(MODERATORS).run()
    at.switch_page("pages/moderators.py").run()
    assert not at.exception, exception_messages(at)
    return at


def coefficients(at: AppTest):
    return next(t.value for t in at.table if t.value.index.name == "Term")


def test_the_messy_sheet_shows_the_model_of_its_clean_twin_and_names_every_change():
    clean, messy = twin_sheets()
    twin = coefficients(analysed(upload(new_app().run(), sheet_bytes(clean), "clean.csv")))
    for content, name, mime in (
        (sheet_bytes(messy), "messy.csv", "text/csv"),
        (two_sheet_workbook(messy), "messy.xlsx", "application/octet-stream"),
    ):
        at = upload(new_app().run(), content, name, mime)
        assert at.session_state[session.UPLOAD_MAPPING].sei == "SE"
        shown = coefficients(analysed(at))
        assert shown.equals(twin), (name, shown, twin)

        at.switch_page("pages/data.py").run()
        captions = [unescaped(c.value) for c in at.caption]
        assert any("In 'Rater':" in c and "read as 'patient'" in c for c in captions)
        assert any("In 'Design': 'rct' read as 'RCT'" in c for c in captions)
        listed = next(c for c in captions if "Read as missing" in c)
        assert "'n.r.'" in listed and "'not reported'" in listed and "'nr'" in listed
        summary = next(
            unescaped(w.value)
            for w in [*at.warning, *at.success, *at.info]
            if "rows usable" in w.value
        )
        assert "Fisher's z and its standard error in" in summary


def test_a_corrected_re_upload_keeps_the_analysis_and_gives_the_clean_numbers():
    clean, messy = twin_sheets()
    twin = coefficients(analysed(upload(new_app().run(), sheet_bytes(clean), "clean.csv")))
    at = analysed(upload(new_app().run(), sheet_bytes(messy), "sheet.csv"))
    query = {k: v for k, v in at.query_params.items() if k != "upload"}
    # The corrected file: the clean twin, with the same columns.
    at = upload(at, sheet_bytes(clean), "sheet (corrected).csv")
    at.switch_page("pages/moderators.py").run()
    assert at.multiselect(key=session.MODERATORS).value == MODERATORS
    assert {k: v for k, v in at.query_params.items() if k != "upload"} == query
    assert coefficients(at).equals(twin)
