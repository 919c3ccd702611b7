"""A hostile link and upload in a real browser: no live link, no image, no request out."""

from __future__ import annotations

import urllib.parse

import pytest

from tests.coding_sheets import coding_sheet
from tests.e2e.conftest import (
    PAGE_TIMEOUT_MS,
    rerun_and_wait,
    wait_for_app_ready,
    wait_for_charts_drawn,
)

pytestmark = pytest.mark.e2e

LINK = "[Log in again here](https://evil.example/login)"
IMAGE = "![](http://evil.example/x.png)"
HTML = '<img src="http://evil.example/html.png" onerror="alert(1)">'
DIRECTIVE = ":red[x]"
AUTOLINK = "http://evil.example"
ANCHOR = '<a href="https://evil.example/a">click</a>'
PAYLOADS = [LINK, IMAGE, HTML, DIRECTIVE, AUTOLINK, ANCHOR]

# Anything the page could turn into a live link or a fetched image.
EVIL_DOM_JS = """() => {
    const hits = [];
    // HTML anchors use href; the SVG anchors Plotly draws may use xlink:href.
    for (const a of document.querySelectorAll('a')) {
        const href = a.getAttribute('href') || a.getAttribute('xlink:href')
            || a.getAttributeNS('http://www.w3.org/1999/xlink', 'href') || '';
        if (href.includes('evil.example')) hits.push(a.outerHTML);
    }
    for (const img of document.querySelectorAll('img')) {
        const src = img.getAttribute('src') || '';
        if (src.includes('evil.example') || src === 'x') hits.push(img.outerHTML);
    }
    return hits;
}"""


def sheet_bytes() -> bytes:
    """An analysable sheet whose moderator column, levels and labels carry the payloads."""
    return coding_sheet(LINK, (HTML, IMAGE), PAYLOADS)


@pytest.fixture
def guarded_page(browser, app_url):
    """A page that records every request to evil.example, set up before the first load."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    tab = context.new_page()
    tab.evil_requests = []
    tab.js_errors = []
    tab.dialogs = []
    tab.on(
        "request",
        lambda r: (
            (urllib.parse.urlsplit(r.url).hostname or "").endswith("evil.example")
            and tab.evil_requests.append(r.url)
        ),
    )
    tab.on("pageerror", lambda error: tab.js_errors.append(str(error)))
    tab.on("dialog", lambda d: (tab.dialogs.append(d.message), d.dismiss()))
    try:
        yield tab
    finally:
        context.close()


def assert_nothing_live(page) -> None:
    # Charts draw after the run has ended: wait until every one has its SVG.
    wait_for_charts_drawn(page)
    page.wait_for_timeout(500)  # images the page might fetch
    assert page.evaluate(EVIL_DOM_JS) == []
    assert page.evil_requests == []
    assert page.dialogs == []
    assert page.locator('[data-testid="stException"]').count() == 0


def test_a_hostile_link_and_upload_render_as_text(guarded_page, app_url, tmp_path):
    page = guarded_page
    query = urllib.parse.urlencode(
        [
            ("mod", "PTR"),
            *[("mod", p) for p in PAYLOADS],
            ("keep", f"{LINK}:{IMAGE}"),
            ("ds", HTML),
        ],
    )
    page.goto(f"{app_url}/?{query}")
    wait_for_app_ready(page)

    warnings = page.locator('[data-testid="stAlertContentWarning"]')
    warnings.first.wait_for()
    # Shown text may hold invisible word joiners (U+2060) that stop bare URLs becoming links.
    text = " ".join(warnings.all_inner_texts()).replace("\u2060", "")
    for payload in PAYLOADS:
        assert f"'{payload}' is not a moderator column" in text  # shown, literally
    assert_nothing_live(page)

    page.get_by_role("link", name="Data").first.click()
    wait_for_app_ready(page)
    uploader = page.locator('[data-testid="stMain"] [data-testid="stFileUploaderDropzoneInput"]')
    name = f"{LINK} {DIRECTIVE}.csv"
    rerun_and_wait(
        page,
        lambda: uploader.set_input_files(
            files=[{"name": name, "mimeType": "text/csv", "buffer": sheet_bytes()}]
        ),
    )
    page.wait_for_function(
        "(t) => document.body.innerText.replaceAll('\\u2060', '').includes(t)",
        arg=f"Analysing {name}",
    )
    assert_nothing_live(page)

    # The payload column as a moderator: its name and levels reach labels, tables and figures.
    def pick(box) -> None:
        # Typing opens the list reliably, also when the box already has the focus.
        box.click()
        box.press_sequentially("Log in")
        page.get_by_role("option", name=LINK, exact=True).click()
        page.keyboard.press("Escape")

    mapping_box = page.locator('[data-testid="stMain"]').get_by_role(
        "combobox", name="Moderator columns (offered in the sidebar)", exact=True
    )
    rerun_and_wait(page, lambda: pick(mapping_box))
    sidebar_box = page.locator('[data-testid="stSidebar"]').get_by_role(
        "combobox", name="Moderators", exact=True
    )
    rerun_and_wait(page, lambda: pick(sidebar_box))
    for title in ("Overview", "Forest plot", "Moderators & PTR"):
        page.locator('[data-testid="stSidebar"]').get_by_role("link", name=title).click()
        wait_for_app_ready(page)
        if title != "Overview":  # these pages draw the labels and levels in a figure
            page.locator(".js-plotly-plot .main-svg").first.wait_for()
        assert_nothing_live(page)
    terms = page.locator('[data-testid="stTable"]').first.inner_text().replace("\u2060", "")
    assert f"= {HTML} (vs {IMAGE})" in terms or f"= {IMAGE} (vs {HTML})" in terms
    assert page.js_errors == []
