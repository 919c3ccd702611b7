"""The dashboard served as for a class: `deploy/serve.sh` (nginx in front of two processes).

- Sticky sessions: a browser's websocket, uploads and media reach the process that holds its
  session, routed by nginx's cookie (not the client address: a class shares one NAT address).
- The load test in its short mode: 10 sessions for 60 s, every 3-10 s an interaction, across
  the pages; no error, no leak between sessions.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import urllib.error
import urllib.request

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.sync.client import connect

from tests.load.conftest import REPO_ROOT

COOKIE = "alliance_worker"
ROWS = "A,0.3\r\n" * 40_000  # 280 kB: more than nginx keeps in memory for a request body


def cookies_of(url: str, cookie: str = "") -> dict[str, str]:
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
        return dict(
            c.split(";", 1)[0].split("=", 1) for c in response.headers.get_all("Set-Cookie") or []
        )


def session_id_of(ws) -> str:
    """Ask for the first run; return Streamlit's id of the session."""
    msg = BackMsg()
    msg.rerun_script.query_string = ""
    ws.send(msg.SerializeToString())
    while True:
        fwd = ForwardMsg()
        fwd.ParseFromString(ws.recv(timeout=120))
        if fwd.WhichOneof("type") == "new_session":
            return fwd.new_session.initialize.session_id


def upload_status(url: str, session_id: str, sticky: str, xsrf: str) -> tuple[int, str]:
    boundary = secrets.token_hex(8)
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="uploadedFile"; '
        f'filename="a.csv"\r\nContent-Type: text/csv\r\n\r\nstudy,r\r\n{ROWS}'
        f"--{boundary}--\r\n"
    ).encode()
    request = urllib.request.Request(
        f"{url}/_stcore/upload_file/{session_id}/{secrets.token_hex(8)}",
        data=body,
        method="PUT",
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Cookie": f"{COOKIE}={sticky}; _streamlit_xsrf={xsrf}",
            "X-Xsrftoken": xsrf,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def test_first_visit_sets_the_routing_cookie_once(cluster):
    first = cookies_of(cluster["url"] + "/")
    assert len(first.get(COOKIE, "")) == 32  # nginx's $request_id
    assert COOKIE not in cookies_of(cluster["url"] + "/", f"{COOKIE}={first[COOKIE]}")


def test_an_upload_reaches_the_process_of_its_session(cluster):
    url = cluster["url"]
    sticky = cookies_of(url + "/")[COOKIE]
    xsrf = cookies_of(url + "/_stcore/health", f"{COOKIE}={sticky}")["_streamlit_xsrf"]
    with connect(
        url.replace("http://", "ws://") + "/_stcore/stream",
        subprotocols=["streamlit"],
        additional_headers={"Cookie": f"{COOKIE}={sticky}"},
        open_timeout=60,
    ) as ws:
        session_id = session_id_of(ws)
        status, body = upload_status(url, session_id, sticky, xsrf)
        assert status in (200, 204), body
        # Control: a browser with another cookie lands on the other process for some cookie
        # (two processes: half of all cookies), where this session does not exist.
        refused = []
        for _ in range(40):
            status, body = upload_status(url, session_id, secrets.token_hex(16), xsrf)
            if status == 400:
                refused.append(body)
                break
        assert refused and "Invalid session_id" in refused[0]


def test_a_class_of_ten_for_a_minute_has_no_error_and_no_leak(cluster, tmp_path):
    out = tmp_path / "load.json"
    # Its own process, as an instructor runs it: the browser tests of the same pytest run can
    # leave an event loop running in this one, and asyncio.run refuses to start inside it.
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "load_test.py"),
            "--url", cluster["url"],
            "--sessions", "10",
            "--duration", "60",
            "--ramp", "10",
            "--seed", "15",
            "--worker-ports", ",".join(map(str, cluster["worker_ports"])),
            "--json", str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    code = completed.returncode
    assert out.exists(), completed.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["errors"] == []
    assert result["leaks"] == []
    assert result["first_load"]["n"] == 10  # every session opened
    # 60 s at one interaction per 3-10 s is about 9 per session on a quiet machine; a busy one
    # answers slower, so only require that the sessions did interact
    assert result["interaction"]["n"] >= 2 * 10
    assert result["memory"]["processes"] == 2
    assert code == 0
