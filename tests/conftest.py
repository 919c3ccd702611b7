"""Settings shared by every test layer (unit, app, e2e)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# CI machines are shared and slower than a laptop: a property-based test must not fail
# on Hypothesis' per-example deadline there, only on a wrong result.
try:
    from hypothesis import settings
except ImportError:  # hypothesis is a dev requirement; unit tests that need it import it
    pass
else:
    settings.register_profile("ci", deadline=None, print_blob=True)
    if os.environ.get("CI"):
        settings.load_profile("ci")


def missing_tool(message: str, tests: str) -> NoReturn:
    """A tool a layer of tests needs (Chromium, nginx) is not installed: skip those tests on a
    developer's machine, fail them in CI, which installs every tool (a skip is not a pass)."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (the {tests} tests must run in CI, not be skipped)")
    pytest.skip(message)


def load_script(name: str):
    """Import a file from scripts/ as a module (scripts/ is not a package)."""
    path = REPO_ROOT / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """Absolute path of the repository (where app.py and pages/ live)."""
    return REPO_ROOT


@pytest.hookimpl(trylast=True)  # after tests/e2e/conftest.py has marked its tests
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Record the `e2e`, `needs_r` and `load` markers in the JUnit report.

    .ci/run reads artifacts/junit.xml and fails when a test with any of them was skipped:
    in CI the browser, R and nginx are installed, so a skip there means a broken setup.
    """
    for item in items:
        for name in ("e2e", "needs_r", "load"):
            if item.get_closest_marker(name) is not None:
                item.user_properties.append(("marker", name))


# The served dashboard and Chromium, one of each per session for tests/e2e and tests/security
# (imported last: tests.browser_session uses missing_tool above).
from tests.browser_session import app_url, browser, chromium_path  # noqa: E402, F401
