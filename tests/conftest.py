"""Settings shared by every test layer (unit, app, e2e)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The served dashboard and Chromium, one of each per session for tests/e2e and tests/security.
from tests.browser_session import app_url, browser, chromium_path  # noqa: F401

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
