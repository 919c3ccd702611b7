"""R at test time: whether Rscript has the packages a comparison needs, and the marks that skip
a comparison without them (a skip that .ci/run counts as a failure: CI installs R).
"""

from __future__ import annotations

import functools
import shutil
import subprocess

import pytest


@functools.cache
def r_packages_available(*packages: str) -> bool:
    """Whether ``Rscript`` runs and loads every one of ``packages`` (asked once per set)."""
    if shutil.which("Rscript") is None:
        return False
    libraries = "; ".join(f"library({name})" for name in packages)
    probe = subprocess.run(
        ["Rscript", "-e", f"suppressMessages({{{libraries}}})"], capture_output=True, timeout=120
    )
    return probe.returncode == 0


def needs_r(*packages: str) -> list[pytest.MarkDecorator]:
    """Marks for a test (or ``pytestmark``) that compares with R: ``needs_r``, and a skip
    naming the Debian packages to install when R or one of ``packages`` is missing."""
    debian = " ".join(f"r-cran-{name.lower()}" for name in packages)
    return [
        pytest.mark.needs_r,
        pytest.mark.skipif(
            not r_packages_available(*packages),
            reason=f"Rscript with {', '.join(packages)} is needed: apt-get install -y {debian}",
        ),
    ]


def apply(marks: list[pytest.MarkDecorator]):
    """The marks of :func:`needs_r` as one decorator for a single test."""

    def decorate(test):
        for mark in reversed(marks):
            test = mark(test)
        return test

    return decorate
