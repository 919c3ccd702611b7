"""Study.sample codes in an uploaded sheet reach every page as typed (AppTest).

The reviewer's file: ten studies "1.1", "1.10", "1.2", "2.1", "2.10", "3.1" … "7.1", one effect
size each. Read as numbers, "1.10" became 1.1 and "2.10" 2.1: eight studies, and a three-level
model fitted a within-study variance that ten single-effect studies cannot have.
"""

from __future__ import annotations

from pages._ui import session
from pages._ui.state import UploadRecord
from tests.app.conftest import exception_messages, new_app, unescaped
from tests.unit.test_upload_identifiers import REVIEWER_IDS, sheet


def test_ten_study_sample_codes_are_ten_studies_on_the_overview_and_the_data_page():
    at = new_app()
    at.run()
    at.session_state[session.UPLOAD] = UploadRecord.from_bytes(sheet(REVIEWER_IDS), "studies.csv")
    at.session_state[session.SOURCE] = "upload"
    at.run()
    assert not at.exception, exception_messages(at)

    # Ten single-effect studies: the three-level model (which would need repeated studies and
    # is offered only with them) gives way to the two-level model, with no error.
    assert at.radio(key=session.MODEL).value == "two-level"
    assert len(at.radio(key=session.MODEL).options) == 1
    assert not at.error, [unescaped(e.value) for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Effect sizes (k)"] == "10"
    assert metrics["Studies"] == str(len(set(REVIEWER_IDS))) == "10"

    at.switch_page("pages/data.py").run()
    assert not at.exception, exception_messages(at)
    rows = at.dataframe[0].value
    assert rows["study"].tolist() == list(REVIEWER_IDS)
    assert any("10 of 10 rows usable" in unescaped(s.value) for s in at.success)
