"""The Data page's missing codes (AppTest): the codes found, a code the user adds, one taken
back, and the row counts of the models that follow."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from pages._ui import session
from pages._ui.state import UploadRecord
from tests.app.conftest import exception_messages, new_app, unescaped

# Four studies of two effect sizes; study S2's therapist count is coded 'k.A.' (a code the
# defaults do not know), study S3's 'n.r.' (a default code).
SHEET = "\n".join(
    ["study,r,n,therapists,design"]
    + [
        f"S{i},0.{i + j + 1},{40 + 10 * i + j},{count},{'RCT' if i % 2 else 'other'}"
        for i, count in enumerate(["4", "5", "k.A.", "n.r.", "6"])
        for j in range(2)
    ]
).encode()


def uploaded() -> AppTest:
    at = new_app()
    at.run()
    at.session_state[session.UPLOAD] = UploadRecord.from_bytes(SHEET, "codes.csv")
    at.session_state[session.SOURCE] = "upload"
    at.switch_page("pages/data.py").run()
    assert not at.exception, exception_messages(at)
    return at


def summary(at: AppTest) -> str:
    return next(unescaped(w.value) for w in [*at.warning, *at.success])


def test_a_code_the_user_adds_keeps_the_rows_in_the_models_without_ptr():
    at = uploaded()
    listed = next(unescaped(c.value) for c in at.caption if "Read as missing" in c.value)
    assert "'n.r.' in 2 cells (column 'therapists')" in listed
    # 'k.A.' is not a default code: its two rows are not numbers and leave every model.
    assert summary(at).startswith("8 of 10 rows usable; 2 left out")

    at.text_input(key=session.UPLOAD_EXTRA_CODES_CHOICE).input("k.A.").run()
    assert not at.exception, exception_messages(at)
    assert at.session_state[session.UPLOAD_EXTRA_CODES] == ("k.A.",)
    assert summary(at).startswith("10 of 10 rows usable.")
    assert "'therapists' in 4 rows" in summary(at)
    listed = next(unescaped(c.value) for c in at.caption if "Read as missing" in c.value)
    assert "'k.a.' in 2 cells (column 'therapists')" in listed

    # Taken back: 'n.r.' is a value again, so its rows are not numbers and leave every model.
    at.multiselect(key=session.UPLOAD_REAL_VALUES_CHOICE).select("n.r.").run()
    assert not at.exception, exception_messages(at)
    assert summary(at).startswith("8 of 10 rows usable; 2 left out")
