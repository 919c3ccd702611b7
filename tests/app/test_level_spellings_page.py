"""The Data page's level spellings (AppTest): merged spellings are named, the analysis reads one
level, and a merge kept apart gives the spellings back."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from alliance_core.data.mapping import ColumnMapping
from pages._ui import session
from pages._ui.state import UploadRecord
from tests.app.conftest import exception_messages, new_app, unescaped

RATERS = ["patient", "Patient", "patient", "PATIENT", "observer", "observer", "observ.", "patient"]
SHEET = "\n".join(
    ["study,r,n,rater"]
    + [f"S{i // 2},0.{i + 1},{40 + 5 * i},{rater}" for i, rater in enumerate(RATERS)]
).encode()
MAPPING = ColumnMapping(study="study", r="r", n="n", moderators=("rater",))


def uploaded() -> AppTest:
    at = new_app()
    at.run()
    at.session_state[session.UPLOAD] = UploadRecord.from_bytes(SHEET, "levels.csv")
    at.session_state[session.UPLOAD_MAPPING] = MAPPING
    at.session_state[session.SOURCE] = "upload"
    at.switch_page("pages/data.py").run()
    assert not at.exception, exception_messages(at)
    return at


def captions(at: AppTest) -> list[str]:
    return [unescaped(c.value) for c in at.caption]


def analysed_raters(at: AppTest) -> set[str]:
    frame = next(df.value for df in at.dataframe if "rater" in df.value.columns)
    return set(frame["rater"])


def test_spellings_are_one_level_named_on_the_page_and_can_be_kept_apart():
    at = uploaded()
    shown = captions(at)
    assert any(
        "In 'rater': 'Patient' and 'PATIENT' read as 'patient' (2 rows)." in c for c in shown
    )
    assert any("'observer' and 'observ.' may be the same level" in c for c in shown)
    assert analysed_raters(at) == {"patient", "observer", "observ."}

    choice = at.multiselect(key=session.UPLOAD_KEPT_APART_CHOICE)
    choice.select(choice.options[0]).run()
    assert not at.exception, exception_messages(at)
    assert at.session_state[session.UPLOAD_KEPT_APART] == (("rater", "patient"),)
    assert analysed_raters(at) == {"patient", "Patient", "PATIENT", "observer", "observ."}
    assert any(c.startswith(":material/call_split: Kept apart") for c in captions(at))


PD = ["no", "no", "yes", "yes", "no", "unclear", "no", "yes"]  # 'unclear': study S2 only
PD_SHEET = "\n".join(
    ["study,r,n,pd"] + [f"S{i // 2},0.{i + 1},{40 + 5 * i},{pd}" for i, pd in enumerate(PD)]
).encode()


def test_a_level_of_one_study_is_flagged_and_refused_as_reference():
    at = new_app()
    at.run()
    at.session_state[session.UPLOAD] = UploadRecord.from_bytes(PD_SHEET, "pd.csv")
    at.session_state[session.UPLOAD_MAPPING] = ColumnMapping(
        study="study", r="r", n="n", moderators=("pd",)
    )
    at.session_state[session.SOURCE] = "upload"
    at.run()
    at.multiselect(key=session.MODERATORS).set_value(["pd"]).run()
    box = at.selectbox(key=session.reference_key("pd"))
    # 'no' has the most studies (S0, S2, S3); 'unclear' comes from S2 alone.
    assert box.value == "no"
    assert "unclear (1 study only)" in box.options
    box.set_value("unclear").run()
    assert not at.exception, exception_messages(at)
    notes = [unescaped(w.value) for w in at.warning] + [unescaped(c.value) for c in at.caption]
    assert any("'unclear' cannot be the reference level of 'pd'" in n for n in notes), notes
    assert at.selectbox(key=session.reference_key("pd")).value == "no"
