"""Red team: a hostile coding sheet through upload, every page and every export.

One browser session uploads ``hostile_sheet()`` (payloads in study IDs, labels, a moderator's
name and levels, and the file name), chooses the hostile moderator, opens every page and takes
every download (results, rows, settings, both zips, both reports, each figure as HTML and SVG).
The tests then check what a victim would meet: no live link or image from the payloads' host
on any page or in any file opened in Chromium, no request to it, no dialog, no styled payload,
no formula cell in any CSV read as a spreadsheet reads it, no field code or hyperlink in the
Word report, and both reproduction scripts run without running injected code (no canary
file) and still print full agreement with the dashboard.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import urllib.parse
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

import pytest

from alliance_core.handover.csv_export import starts_formula
from tests.browser_session import REPO_ROOT
from tests.e2e.conftest import (
    PAGE_TIMEOUT_MS,
    rerun_and_wait,
    wait_for_app_ready,
    wait_for_charts_drawn,
)
from tests.r_reference import apply, needs_r
from tests.security.hostile_sheets import CANARY, FILE_NAME, HOST, hostile_sheet

pytestmark = pytest.mark.e2e

PAGES = [
    "Overview",
    "Data",
    "Forest plot",
    "Publication bias",
    "Moderators & PTR",
    "Sensitivity",
    "Simulator",
    "Methods",
]
# (page, file stem) of the figure downloads.
FIGURES = [("Forest plot", "forest-plot"), ("Publication bias", "funnel-plot")]
FIGURES.append(("Moderators & PTR", "ptr-curve"))
# Button -> saved file name.
RESULT_DOWNLOADS = {
    "Results (CSV)": "results.csv",
    "Analysed rows (CSV)": "analysed-rows.csv",
    "Settings (JSON)": "settings.json",
    "Reproduce in R (zip)": "reproduce-in-r.zip",
    "Reproduce in Python (zip)": "reproduce-in-python.zip",
    "Report (HTML)": "report.html",
    "Report (Word)": "report.docx",
}
REPORT_TIMEOUT_MS = 120_000  # the report draws three PNG figures on the server

# Every element that links to, or loads from, the payloads' host; and payload words shown
# styled (Markdown bold, a colour directive, an HTML link's text) instead of as text.
LIVE_JS = """(host) => {
    const hits = [];
    const xlink = 'http://www.w3.org/1999/xlink';
    for (const el of document.querySelectorAll('*')) {
        for (const name of ['href', 'src', 'xlink:href', 'data', 'action', 'poster']) {
            const value = el.getAttribute(name) || '';
            if (value.toLowerCase().includes(host)) hits.push(el.outerHTML.slice(0, 300));
        }
        const ns = el.getAttributeNS && el.getAttributeNS(xlink, 'href');
        if (ns && ns.toLowerCase().includes(host)) hits.push(el.outerHTML.slice(0, 300));
        const text = el.children.length === 0 ? el.textContent.trim() : '';
        if (['RED', 'bold', 'CLICKME', 'tex', 'click', 'lv'].includes(text)) {
            hits.push('styled: ' + el.outerHTML.slice(0, 300));
        }
    }
    return hits;
}"""


@dataclass
class Observed:
    """What the browser session met, and where it saved the downloads."""

    folder: Path
    live: dict[str, list[str]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    exceptions: dict[str, int] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)


def _guard(tab, observed: Observed) -> None:
    def record(request) -> None:
        host = urllib.parse.urlsplit(request.url).hostname or ""
        if host.endswith(HOST):
            observed.requests.append(request.url)

    tab.on("request", record)
    tab.on("dialog", lambda d: (observed.dialogs.append(d.message), d.dismiss()))


def _settle(tab) -> None:
    wait_for_charts_drawn(tab)
    tab.wait_for_timeout(300)  # images the page might fetch


def _pick_moderator(tab, box) -> None:
    box.click()
    box.press_sequentially("CLICK")
    tab.get_by_role("option").filter(has_text="CLICKME").first.click()
    tab.keyboard.press("Escape")


def _download(tab, observed: Observed, button, name: str, timeout: float = PAGE_TIMEOUT_MS):
    with tab.expect_download(timeout=timeout) as download:
        button.click()
    path = observed.folder / name
    download.value.save_as(path)
    observed.files[name] = path


@pytest.fixture(scope="module")
def observed(browser, app_url, tmp_path_factory) -> Observed:
    seen = Observed(folder=tmp_path_factory.mktemp("red-team"))
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    tab = context.new_page()
    _guard(tab, seen)
    try:
        tab.goto(app_url)
        wait_for_app_ready(tab)
        sidebar = tab.locator('[data-testid="stSidebar"]')
        sidebar.get_by_role("link", name="Data").click()
        wait_for_app_ready(tab)
        uploader = tab.locator('[data-testid="stMain"] [data-testid="stFileUploaderDropzoneInput"]')
        rerun_and_wait(
            tab,
            lambda: uploader.set_input_files(
                files=[{"name": FILE_NAME, "mimeType": "text/csv", "buffer": hostile_sheet()}]
            ),
        )
        tab.get_by_text("control characters").first.wait_for()
        main = tab.locator('[data-testid="stMain"]')
        mapping = main.get_by_role(
            "combobox", name="Moderator columns (offered in the sidebar)", exact=True
        )
        rerun_and_wait(tab, lambda: _pick_moderator(tab, mapping))
        chosen = sidebar.get_by_role("combobox", name="Moderators", exact=True)
        rerun_and_wait(tab, lambda: _pick_moderator(tab, chosen))

        for title in PAGES:
            sidebar.get_by_role("link", name=title).click()
            wait_for_app_ready(tab)
            _settle(tab)
            seen.live[title] = tab.evaluate(LIVE_JS, HOST)
            seen.exceptions[title] = tab.locator('[data-testid="stException"]').count()
            if title == "Data":
                for label, name in RESULT_DOWNLOADS.items():
                    button = main.get_by_role("button", name=label)
                    _download(tab, seen, button, name, REPORT_TIMEOUT_MS)
            stem = dict(FIGURES).get(title)
            if stem is not None:
                _download(
                    tab, seen, main.get_by_role("button", name="Interactive HTML"), f"{stem}.html"
                )
                rerun_and_wait(tab, lambda: main.get_by_text("SVG", exact=True).click())
                rerun_and_wait(
                    tab, lambda: main.get_by_role("button", name="Make image file").click()
                )
                _download(tab, seen, main.get_by_role("button", name="Download SVG"), f"{stem}.svg")
    finally:
        context.close()
    return seen


# -- pages ---------------------------------------------------------------------------------
def test_every_page_shows_the_payloads_as_text(observed):
    assert set(observed.live) == set(PAGES)
    assert {page: hits for page, hits in observed.live.items() if hits} == {}
    assert observed.exceptions == dict.fromkeys(PAGES, 0)


def test_nothing_was_fetched_and_no_script_ran(observed):
    assert observed.requests == []
    assert observed.dialogs == []
    assert not list(REPO_ROOT.glob(f"{CANARY}*")), "code ran in the server"


# -- CSV files, read as a spreadsheet reads them ---------------------------------------------
def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def formula_cells(text: str) -> list[str]:
    """Cells a spreadsheet would run: data lines split at commas, ``#`` comment lines also at
    semicolons and tabs (a spreadsheet does not know they are comments)."""
    found = []
    for line in text.splitlines():
        delimiters = [",", ";", "\t"] if line.startswith("#") else [","]
        for delimiter in delimiters:
            for row in csv.reader([line], delimiter=delimiter):
                found += [c for c in row if starts_formula(c) and not _is_number(c)]
    return found


def _zip_texts(path: Path) -> dict[str, str]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name).decode("utf-8") for name in archive.namelist()}


def test_no_csv_holds_a_formula_cell(observed):
    texts = {
        "results": observed.files["results.csv"].read_text(encoding="utf-8"),
        "rows": observed.files["analysed-rows.csv"].read_text(encoding="utf-8"),
    }
    for bundle in ("reproduce-in-r.zip", "reproduce-in-python.zip"):
        for name, text in _zip_texts(observed.files[bundle]).items():
            if name.endswith(".csv"):
                texts[f"{bundle}/{name}"] = text
    assert len(texts) == 6
    assert {name: cells for name, text in texts.items() if (cells := formula_cells(text))} == {}
    # The payloads are there, as text: the check above is not vacuous.
    assert "'=HYPERLINK" in texts["rows"]


# -- reproduction scripts ------------------------------------------------------------------
AGREEMENT = re.compile(r"agreement with the dashboard: (\d+) of (\d+) numbers")


def _run_bundle(path: Path, folder: Path, command: list[str], env=None) -> str:
    folder.mkdir()
    with zipfile.ZipFile(path) as archive:
        archive.extractall(folder)
    proc = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=300, env=env)
    assert not list(folder.glob(f"{CANARY}*")), "injected code ran"
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    match = AGREEMENT.search(proc.stdout)
    assert match is not None, proc.stdout[-2000:]
    agreed, total = map(int, match.groups())
    assert agreed == total > 0
    return proc.stdout


@apply(needs_r("metafor"))
def test_r_script_runs_no_injected_code_and_agrees(observed, tmp_path):
    _run_bundle(observed.files["reproduce-in-r.zip"], tmp_path / "r", ["Rscript", "analysis.R"])


def test_python_script_runs_no_injected_code_and_agrees(observed, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    _run_bundle(
        observed.files["reproduce-in-python.zip"],
        tmp_path / "py",
        [sys.executable, "analysis.py"],
        env,
    )


# -- reports and figures, opened ---------------------------------------------------------
def _open_in_chromium(browser, path: Path, ready: str | None = None) -> tuple[list, list, list]:
    """(live elements, requests to the host, dialogs) of a downloaded file shown in Chromium."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    seen = Observed(folder=path.parent)
    try:
        tab = context.new_page()
        _guard(tab, seen)
        tab.goto(path.as_uri())
        if ready:
            tab.locator(ready).first.wait_for()
        tab.wait_for_timeout(300)
        scripts = tab.evaluate("() => document.querySelectorAll('script').length")
        return tab.evaluate(LIVE_JS, HOST), seen.requests, seen.dialogs + [scripts]
    finally:
        context.close()


def test_html_report_has_no_live_element_script_or_request(observed, browser):
    live, requests, (*dialogs, scripts) = _open_in_chromium(browser, observed.files["report.html"])
    assert (live, requests, dialogs, scripts) == ([], [], [], 0)


def test_word_report_has_no_hyperlink_or_field_code(observed):
    with zipfile.ZipFile(observed.files["report.docx"]) as archive:
        parts = {
            n: archive.read(n).decode("utf-8")
            for n in archive.namelist()
            if n.endswith((".xml", ".rels"))
        }
    document = parts["word/document.xml"]
    for marker in ("<w:hyperlink", "<w:fldSimple", "<w:instrText", "<w:fldChar"):
        assert marker not in document
    assert not [n for n, text in parts.items() if n.endswith(".rels") and HOST in text]
    assert "CLICKME" in document  # the payload is there, as text


@pytest.mark.parametrize("stem", [stem for _, stem in FIGURES])
def test_figure_files_have_no_live_anchor(observed, browser, stem):
    svg = observed.files[f"{stem}.svg"].read_bytes()
    anchors = [el for el in ElementTree.fromstring(svg).iter() if el.tag.split("}")[-1] == "a"]
    assert anchors == []
    assert b"CLICKME" in svg or stem == "funnel-plot"  # labels and levels are drawn as text
    live, requests, (*dialogs, _) = _open_in_chromium(
        browser, observed.files[f"{stem}.html"], ready=".main-svg"
    )
    assert (live, requests, dialogs) == ([], [], [])
