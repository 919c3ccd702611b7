"""An upload's parsed table belongs to its session: parsed once, freed when the file goes.

A process-wide cache would keep every student's frame until it expired (and copy it at every
rerun); held in session state it is released with the session or when the file is removed.
"""

from __future__ import annotations

from pages._ui import loading, session
from pages._ui.state import UploadRecord
from tests.app.conftest import new_app

CSV = (
    b"study,es_id,label,r,n,n_therapists,design\n"
    b"1,1,Ames (2001),0.30,50,5,RCT\n"
    b"2,1,Bo (2003),0.25,80,8,RCT\n"
    b"3,1,Cy (2005),0.20,60,4,naturalistic\n"
    b"4,1,Di (2007),0.35,90,9,RCT\n"
)


def test_an_upload_is_parsed_once_held_by_its_session_and_freed_when_removed():
    at = new_app()
    at.run()
    # What the Data page's uploader callback stores (the uploader itself is covered in e2e).
    record = UploadRecord.from_bytes(CSV, "sheet.csv")
    at.session_state[session.UPLOAD] = record
    at.session_state[session.SOURCE] = "upload"
    at.run()
    assert not at.exception
    (sha, _reading), parsed = at.session_state[loading.PARSED_UPLOAD]
    assert sha == record.sha
    assert list(parsed.frame.columns)[:4] == ["study", "es_id", "label", "r"]

    at.run()  # a rerun reuses the session's table: the same object, not a new parse or copy
    assert at.session_state[loading.PARSED_UPLOAD][1] is parsed

    other = new_app()  # another visitor's session never holds this file
    other.run()
    assert loading.PARSED_UPLOAD not in other.session_state

    del at.session_state[session.UPLOAD]  # what removing the file on the Data page does
    at.session_state[session.SOURCE] = "bundled"
    at.run()
    assert not at.exception
    assert loading.PARSED_UPLOAD not in at.session_state
    assert loading.CHECKED_UPLOAD not in at.session_state
