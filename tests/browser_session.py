"""The dashboard served by `streamlit run` and a headless Chromium, one of each per test
session, shared by the browser tests (tests/e2e) and the red-team suite (tests/security).

Playwright allows one sync instance per process, so these session fixtures are defined once,
here, and made visible to every test folder by tests/conftest.py.

Playwright cannot download its own browsers here, so it drives Debian's Chromium
(`apt-get install -y chromium`). Without it these tests are skipped on a developer's
machine and fail in CI (`CI` set), where a skipped browser test would hide a broken app.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pages._ui.upload_store import DIRECTORY_VARIABLE
from tests.tools import missing_tool

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")

# As root on a closed network: no sandbox (needs a user namespace), no GPU, and none of
# Chromium's background connections, which the network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

SERVER_START_TIMEOUT = 60.0  # seconds, first start imports the whole scientific stack


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Path of Chromium; skip (fail under CI) when it is not installed."""
    if Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    missing_tool(f"Chromium not found at {CHROMIUM}: run `apt-get install -y chromium`", "browser")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.read().strip() == b"ok"
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@pytest.fixture(scope="session")
def app_url(chromium_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Serve app.py with `streamlit run` on a free port; yield its base URL.

    Runs from the repository root so .streamlit/config.toml applies as in production.
    """
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("streamlit") / "server.log"
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
    ]
    with open(log_path, "wb") as log:
        # Uploads the server keeps for a reload go to this session's own directory.
        uploads = tmp_path_factory.mktemp("uploads")
        server = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, DIRECTORY_VARIABLE: str(uploads)},
        )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not _healthy(url):
            if server.poll() is not None:
                pytest.fail(
                    f"streamlit exited with code {server.returncode} before serving:\n"
                    + log_path.read_text(errors="replace")
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"streamlit did not answer {url}/_stcore/health within "
                    f"{SERVER_START_TIMEOUT:.0f} s:\n" + log_path.read_text(errors="replace")
                )
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[object]:
    """One headless Chromium for the session (a fresh context per test keeps tests apart)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
