"""Real-browser fixtures: the dashboard served by `streamlit run`, driven by Chromium.

Playwright cannot download its own browsers here, so it drives Debian's Chromium
(`apt-get install -y chromium`). Without it these tests are skipped on a developer's
machine and fail in CI (`CI` set), where a skipped browser test would hide a broken app.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from pages._ui.upload_store import DIRECTORY_VARIABLE
from tests.conftest import missing_tool

REPO_ROOT = Path(__file__).resolve().parents[2]
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
PAGE_TIMEOUT_MS = 30_000  # default for every Playwright wait in these tests

# Streamlit mirrors its state on the app root: data-test-script-state is "initial" before
# the first run, then "running" / "rerunRequested" / ... and "notRunning" once a run is done.
APP_ROOT = '[data-testid="stApp"]'
APP_IDLE = (
    f'{APP_ROOT}[data-test-connection-state="CONNECTED"][data-test-script-state="notRunning"]'
)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/e2e carries the `e2e` marker (`-m "not e2e"` leaves them out)."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.e2e)


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


def wait_for_app_ready(page, timeout_ms: float = PAGE_TIMEOUT_MS) -> None:
    """Wait until Streamlit is connected and has finished running the script.

    Reads the state Streamlit exposes on its root element rather than sleeping, and also
    waits for the status widget ("Running...") to be gone.
    """
    page.wait_for_selector(APP_IDLE, state="attached", timeout=timeout_ms)
    page.wait_for_selector(
        '[data-testid="stStatusWidget"] [data-testid="stStatusWidgetRunningIcon"]',
        state="detached",
        timeout=timeout_ms,
    )


# How long a rerun may take to *start* after the action that triggers it.
RERUN_START_MS = 5_000


def rerun_and_wait(page, action: Callable[[], object], timeout_ms: float = PAGE_TIMEOUT_MS):
    """Do `action` (a click, a selection, ...) and wait for the rerun it triggers to finish.

    A MutationObserver set up before the action records that the script state changed (the
    app is idle before the action, so any change is the rerun starting); waiting for
    "notRunning" alone could return before the rerun began.
    """
    wait_for_app_ready(page, timeout_ms)
    page.evaluate(
        """(selector) => {
            const root = document.querySelector(selector);
            window.__stRerunSeen = false;
            if (window.__stRerunObserver) window.__stRerunObserver.disconnect();
            // Any change of the script state after the action is the rerun. Reading the
            // attribute inside the callback instead would miss a fast (cached) rerun that
            // went to "running" and back before the callback ran.
            window.__stRerunObserver = new MutationObserver((records) => {
                if (records.length) window.__stRerunSeen = true;
            });
            window.__stRerunObserver.observe(root, {
                attributes: true, attributeFilter: ["data-test-script-state"],
            });
        }""",
        APP_ROOT,
    )
    result = action()
    # A rerun served from the cache can go from "running" back to "notRunning" within one
    # React commit, so the attribute never changes in the DOM. A rerun starts at once after
    # the action; if none was seen by now it has already finished (or was that fast).
    with contextlib.suppress(PlaywrightTimeoutError):
        page.wait_for_function("() => window.__stRerunSeen === true", timeout=RERUN_START_MS)
    wait_for_app_ready(page, timeout_ms)
    return result


@pytest.fixture
def page(browser, app_url: str) -> Iterator[object]:
    """A fresh browser page showing the dashboard, after its first run finished.

    Uncaught JavaScript errors are collected in `page.js_errors` for tests to assert on.
    """
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    tab = context.new_page()
    tab.js_errors = []
    tab.on("pageerror", lambda error: tab.js_errors.append(str(error)))
    try:
        tab.goto(app_url)
        wait_for_app_ready(tab)
        yield tab
    finally:
        context.close()


@pytest.fixture
def app_ready() -> Callable[..., None]:
    """`wait_for_app_ready` as a fixture, for tests that prefer not to import conftest."""
    return wait_for_app_ready


@pytest.fixture
def rerun() -> Callable[..., object]:
    """`rerun_and_wait` as a fixture: `rerun(page, lambda: page.click(...))`."""
    return rerun_and_wait
