"""Helpers every test layer imports (kept apart from conftest.py, which imports the browser
fixtures: a helper there would make tests.conftest and tests.browser_session import each other)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import NoReturn

import pytest

from alliance_core.data.datasets import dataset_info
from alliance_core.handover.provenance import Provenance, bundled_sha256

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


def bundled_provenance(run, name: str) -> Provenance:
    """The provenance of ``run``, an analysis of the bundled dataset ``name``, as the dashboard
    stamps it on its files (its title, its file's hash, the run's robust inference)."""
    info = dataset_info(name)
    return Provenance.of(
        run,
        info.mapping,
        dataset=name,
        sha256=bundled_sha256(name),
        title=info.title,
        robust=run.robust,
    )
