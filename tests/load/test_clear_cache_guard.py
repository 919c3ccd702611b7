"""A browser's `clear_cache` message must not empty the server's caches (issue: any visitor
could make the whole class recompute). Sent over the websocket to a running server."""

from __future__ import annotations

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.sync.client import connect

from tests.load.conftest import REPO_ROOT

TIMEOUT = 60.0


def shown_token(ws) -> str:
    """Ask for a run and return the token the probe app shows."""
    msg = BackMsg()
    msg.rerun_script.query_string = ""
    ws.send(msg.SerializeToString())
    token = None
    while True:
        fwd = ForwardMsg()
        fwd.ParseFromString(ws.recv(timeout=TIMEOUT))
        kind = fwd.WhichOneof("type")
        if kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
            element = fwd.delta.new_element
            if element.WhichOneof("type") == "text" and element.text.body.startswith("token="):
                token = element.text.body.removeprefix("token=")
        elif kind == "script_finished" and fwd.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
            assert token, "the probe app showed no token"
            return token


def token_before_and_after_clear_cache(url: str) -> tuple[str, str, str]:
    stream = url.replace("http://", "ws://") + "/_stcore/stream"
    with connect(stream, subprotocols=["streamlit"], open_timeout=TIMEOUT) as ws:
        before = shown_token(ws)
        clear = BackMsg()
        clear.clear_cache = True
        ws.send(clear.SerializeToString())
        after = shown_token(ws)
    with connect(stream, subprotocols=["streamlit"], open_timeout=TIMEOUT) as ws:
        other_session = shown_token(ws)
    return before, after, other_session


def test_clear_cache_from_a_browser_is_ignored(probe_server):
    before, after, other_session = token_before_and_after_clear_cache(probe_server())
    assert after == before
    assert other_session == before


def test_without_the_guard_clear_cache_empties_the_cache(probe_server):
    # The control: the same message does clear an unguarded server, so the test above can fail.
    before, after, other_session = token_before_and_after_clear_cache(
        probe_server(PROBE_UNGUARDED="1")
    )
    assert after != before
    assert other_session == after


def test_the_dashboard_installs_the_guard():
    from streamlit.testing.v1 import AppTest

    from pages._ui import serving

    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception
    assert serving.clear_cache_guarded()
