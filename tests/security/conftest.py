"""The red-team suite reuses the browser fixtures of tests/e2e (the app served by `streamlit
run`, Debian's Chromium): a missing browser skips these tests on a developer's machine and
fails them in CI. Browser tests carry the `e2e` marker, R runs `needs_r`, so .ci/run refuses a
run in which they were skipped."""

from __future__ import annotations

from tests.e2e.conftest import app_url, browser, chromium_path  # noqa: F401 (fixtures)
