"""Real-browser helpers: a fresh page of the served dashboard, and waits for its runs.

The served dashboard (`app_url`) and Chromium (`browser`) are session fixtures of
tests/browser_session.py, shared with the red-team suite (tests/security): Playwright allows
one sync instance per process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from pages._ui.chart import CHART_ELEMENT
from tests.browser_session import (  # noqa: F401 (names the e2e tests import)
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO_ROOT,
    SERVER_START_TIMEOUT,
)

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


# Every chart on the page, drawn by the dashboard's chart component or by st.plotly_chart.
ALL_CHARTS_DRAWN = f"""() => [...document.querySelectorAll('{CHART_ELEMENT}')]
  .every((chart) => chart.querySelector(".main-svg"))"""


def wait_for_charts_drawn(page, timeout_ms: float = PAGE_TIMEOUT_MS) -> None:
    """Wait until every Plotly chart on the page has drawn its SVG (charts draw after the run
    has ended). Checked on the page as it is at each poll: a chart of the previous page that
    is still in the document when a new page reports idle, and is then removed, is not waited
    for (counting charts once and waiting for the n-th could wait for a removed one)."""
    page.wait_for_function(ALL_CHARTS_DRAWN, timeout=timeout_ms)


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
