"""Helpers every test layer imports (kept apart from conftest.py, which imports the browser
fixtures: a helper there would make tests.conftest and tests.browser_session import each other)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


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
