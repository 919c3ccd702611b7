"""AppTest fixtures: run app.py and its pages headlessly, without a browser.

`AppTest` renders one page per run. A page is reached as a user reaches it: run the
entrypoint (app.py, which builds the sidebar and `st.navigation`), switch to the page,
and run again, so the page sees the same session state it would see in the browser.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_PATH = REPO_ROOT / "app.py"
PAGES_DIR = REPO_ROOT / "pages"

# First runs import pandas/scipy/plotly and fit models: far beyond AppTest's 3 s default.
RUN_TIMEOUT = 60.0


def page_paths() -> list[str]:
    """Page scripts under pages/, relative to app.py (helpers starting with `_` excluded)."""
    return sorted(
        p.relative_to(REPO_ROOT).as_posix()
        for p in PAGES_DIR.glob("*.py")
        if not p.name.startswith("_")
    )


def new_app() -> AppTest:
    """An AppTest for app.py, built from its absolute path and not yet run."""
    return AppTest.from_file(APP_PATH, default_timeout=RUN_TIMEOUT)


def exception_messages(at: AppTest) -> list[str]:
    """Messages (with tracebacks) of every exception element the last run displayed."""
    return [f"{e.message}\n{''.join(e.stack)}" for e in at.exception]


def run_page(page: str, at: AppTest | None = None) -> AppTest:
    """Run app.py, then the page `page` (e.g. "pages/data.py"); return the AppTest.

    Pass an AppTest whose session state or widgets were already set to carry them over.
    Fails the test if app.py itself raised before the page could be reached.
    """
    at = new_app() if at is None else at
    at.run()
    if at.exception:
        pytest.fail("app.py raised before switching page:\n" + "\n".join(exception_messages(at)))
    return at.switch_page(page).run()


@pytest.fixture
def app_test() -> AppTest:
    """A fresh, not yet run AppTest of app.py."""
    return new_app()


@pytest.fixture
def open_page() -> Callable[..., AppTest]:
    """The `run_page` helper: `open_page("pages/data.py")` returns the page's AppTest."""
    return run_page


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that takes `page_path` runs once for every page under pages/."""
    if "page_path" in metafunc.fixturenames:
        metafunc.parametrize("page_path", page_paths())
