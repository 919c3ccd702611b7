"""Figure downloads in a real browser: on every page with a figure, the interactive HTML, the
SVG and the PNG download, and each opens (the HTML in Chromium with its plot drawn, the SVG
and PNG as images with a size). The forest plot's image is ready within 5 s."""

from __future__ import annotations

import time

import pytest

from tests.coding_sheets import coding_sheet
from tests.e2e.conftest import rerun_and_wait, wait_for_app_ready

pytestmark = pytest.mark.e2e

# (sidebar link, file stem): the pages that offer figure downloads.
FIGURE_PAGES = [
    ("Forest plot", "forest-plot"),
    ("Publication bias", "funnel-plot"),
    ("Moderators & PTR", "ptr-curve"),
]
FOREST_IMAGE_SECONDS = 5.0  # the limit for the forest plot's image


def go_to(page, title: str) -> None:
    page.locator('[data-testid="stSidebar"]').get_by_role("link", name=title).click()
    wait_for_app_ready(page)
    page.locator(".js-plotly-plot .main-svg").first.wait_for()


def open_html(browser, path) -> None:
    """The HTML file shows its plot in Chromium without a script error."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    try:
        tab = context.new_page()
        errors = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.goto(path.as_uri())
        tab.locator(".plotly .main-svg").first.wait_for()
        assert tab.locator(".plotly .main-svg").count() >= 1
        assert errors == []
    finally:
        context.close()


def open_image(browser, path, mime: str) -> None:
    """The image decodes in Chromium and has a size."""
    context = browser.new_context()
    try:
        tab = context.new_page()
        tab.set_content("<img id='figure'>")
        data = path.read_bytes()
        tab.evaluate(
            """([bytes, mime]) => new Promise((resolve, reject) => {
                const img = document.getElementById('figure');
                img.onload = resolve; img.onerror = () => reject(new Error('not an image'));
                img.src = URL.createObjectURL(new Blob([new Uint8Array(bytes)], {type: mime}));
            })""",
            [list(data), mime],
        )
        assert tab.evaluate("() => document.getElementById('figure').naturalWidth") > 0
    finally:
        context.close()


def download_all(page, browser, stem: str, tmp_path) -> dict[str, float]:
    """Download the HTML, SVG and PNG of the page's figure; open each; seconds per image."""
    main = page.locator('[data-testid="stMain"]')
    with page.expect_download() as html:
        main.get_by_role("button", name="Interactive HTML").click()
    assert html.value.failure() is None
    assert html.value.suggested_filename == f"{stem}.html"
    html_path = tmp_path / f"{stem}.html"
    html.value.save_as(html_path)
    assert b"provenance" in html_path.read_bytes()  # stamped with the analysis
    open_html(browser, html_path)

    seconds = {}
    for fmt, mime in (("svg", "image/svg+xml"), ("png", "image/png")):
        rerun_and_wait(page, lambda f=fmt: main.get_by_text(f.upper(), exact=True).click())
        started = time.monotonic()
        rerun_and_wait(page, lambda: main.get_by_role("button", name="Make image file").click())
        button = main.get_by_role("button", name=f"Download {fmt.upper()}")
        button.wait_for()
        seconds[fmt] = time.monotonic() - started
        with page.expect_download() as image:
            button.click()
        assert image.value.suggested_filename == f"{stem}.{fmt}"
        path = tmp_path / f"{stem}.{fmt}"
        image.value.save_as(path)
        open_image(browser, path, mime)
    return seconds


@pytest.mark.parametrize(("title", "stem"), FIGURE_PAGES)
def test_figure_downloads_work_on_bundled_data(page, browser, tmp_path, title, stem):
    go_to(page, title)
    seconds = download_all(page, browser, stem, tmp_path)
    print(f"{title}: image ready in " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))
    if stem == "forest-plot":
        assert max(seconds.values()) < FOREST_IMAGE_SECONDS, seconds
    assert page.locator('[data-testid="stException"]').count() == 0


def test_figure_downloads_work_on_an_upload(page, browser, tmp_path):
    page.get_by_role("link", name="Data").first.click()
    wait_for_app_ready(page)
    uploader = page.locator('[data-testid="stMain"] [data-testid="stFileUploaderDropzoneInput"]')
    sheet = coding_sheet("design", ("RCT", "other"), ["Study A", "Study B"])
    rerun_and_wait(
        page,
        lambda: uploader.set_input_files(
            files=[{"name": "sheet.csv", "mimeType": "text/csv", "buffer": sheet}]
        ),
    )
    page.get_by_text("Analysing sheet.csv").first.wait_for()
    for title, stem in FIGURE_PAGES[:2]:  # an upload's moderators page needs PTR chosen
        go_to(page, title)
        download_all(page, browser, f"{stem}", tmp_path)
    assert page.locator('[data-testid="stException"]').count() == 0
