"""The red-team suite uses the session fixtures of tests/browser_session.py (the app served by
`streamlit run`, Debian's Chromium), shared with tests/e2e: a missing browser skips these tests
on a developer's machine and fails them in CI. Browser tests carry the `e2e` marker, R runs
`needs_r`, so .ci/run refuses a run in which they were skipped."""
