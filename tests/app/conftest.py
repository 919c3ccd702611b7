"""AppTest fixtures: run app.py and its pages headlessly, without a browser.

`AppTest` renders one page per run. A page is reached as a user reaches it: run the
entrypoint (app.py, which builds the sidebar and `st.navigation`), switch to the page,
and run again, so the page sees the same session state it would see in the browser.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.util import patch_config_options

from pages._ui.chart import CHART_COMPONENT
from pages._ui.upload_store import DIRECTORY_VARIABLE

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


def chart_spec_texts(at: AppTest) -> list[str]:
    """The JSON text of every Plotly figure the last run drew, drawn by the dashboard's chart
    component (Plotly's basic bundle) or, without that bundle, by st.plotly_chart."""
    texts = [
        json.loads(element.proto.json)["figure"]
        for element in at.get("bidi_component")
        if element.proto.component_name == CHART_COMPONENT
    ]
    return texts + [element.proto.spec for element in at.get("plotly_chart")]


def chart_specs(at: AppTest) -> list[dict]:
    """Every Plotly figure the last run drew, as ``{"data": ..., "layout": ...}``."""
    return [json.loads(text) for text in chart_spec_texts(at)]


def exception_messages(at: AppTest) -> list[str]:
    """Messages (with tracebacks) of every exception element the last run displayed."""
    return [f"{e.message}\n" + "\n".join(e.stack_trace) for e in at.exception]


def assert_ran_cleanly(at: AppTest) -> None:
    """Fail with the app's own messages and tracebacks if the last run showed an exception."""
    if at.exception:
        pytest.fail("the app raised:\n" + "\n\n".join(exception_messages(at)), pytrace=False)


def run_page(page: str, at: AppTest | None = None) -> AppTest:
    """Run app.py, then the page `page` (e.g. "pages/data.py"); return the AppTest.

    Pass an AppTest whose session state or widgets were already set to carry them over.
    Fails the test if app.py itself raised before the page could be reached.
    """
    at = new_app() if at is None else at
    at.run()
    assert_ran_cleanly(at)
    return at.switch_page(page).run()


@pytest.fixture(autouse=True)
def full_error_details() -> Iterator[None]:
    """Show the real message and traceback of an app exception in test failures.

    .streamlit/config.toml redacts them for users (client.showErrorDetails = "none").
    """
    with patch_config_options({"client.showErrorDetails": "full"}):
        yield


@pytest.fixture(autouse=True)
def private_upload_store(monkeypatch, tmp_path) -> None:
    """Uploads kept by the server go to the test's own directory, not the shared temp dir."""
    monkeypatch.setenv(DIRECTORY_VARIABLE, str(tmp_path / "uploads"))


@pytest.fixture
def app_test() -> AppTest:
    """A fresh, not yet run AppTest of app.py."""
    return new_app()


@pytest.fixture
def open_page() -> Callable[..., AppTest]:
    """The `run_page` helper: `open_page("pages/data.py")` returns the page's AppTest."""
    return run_page


@pytest.fixture
def ran_cleanly() -> Callable[[AppTest], None]:
    """The `assert_ran_cleanly` helper: `ran_cleanly(at)` after `at.run()`."""
    return assert_ran_cleanly


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that takes `page_path` runs once for every page under pages/."""
    if "page_path" in metafunc.fixturenames:
        metafunc.parametrize("page_path", page_paths())


def unescaped(text: str) -> str:
    """Markdown text as the reader sees it: backslash escapes and the invisible word joiners
    that keep URLs from becoming links removed (see ``alliance_core.formatting``)."""
    return re.sub(r"\\(.)", r"\1", str(text)).replace("\u2060", "")


# Session-state key of the Sensitivity page's tabs (only the open tab runs its analysis).
SENSITIVITY_TAB = "sensitivity:section"


def open_sensitivity_tab(at: AppTest, label: str) -> AppTest:
    """Open one tab of the Sensitivity page (already shown in `at`), as a click on it would."""
    labels = [tab.label for tab in at.tabs]
    assert label in labels, f"no tab {label!r} among {labels}"
    at.session_state[SENSITIVITY_TAB] = label
    return at.run()


class Downloads:
    """The files a run's download buttons serve. They are made when clicked, which AppTest
    cannot do: the recorder keeps each button's deferred maker as Streamlit registers it."""

    def __init__(self) -> None:
        self.makers: dict[str, Callable[[], bytes | str]] = {}

    def bytes(self, at: AppTest, key: str) -> bytes:
        """The file of the button ``download:<key>`` of the last run."""
        button = at.download_button(key=f"download:{key}")
        data = self.makers[button.proto.deferred_file_id]()
        return data.encode("utf-8") if isinstance(data, str) else data


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> Downloads:
    recorder = Downloads()
    original = MediaFileManager.add_deferred

    def recording(self, data_callable, *args, **kwargs):
        file_id = original(self, data_callable, *args, **kwargs)
        recorder.makers[file_id] = data_callable
        return file_id

    monkeypatch.setattr(MediaFileManager, "add_deferred", recording)
    return recorder
