"""Downloads that hand an analysis over: the HTML report shows in Chromium, the R zip holds
the script, its data and the dashboard's results."""

from __future__ import annotations

import io
import zipfile

import html5lib
import pandas as pd
import pytest

from alliance_core.handover.report import SIMULATED_NOTICE

pytestmark = pytest.mark.e2e

# The report draws three PNG figures in a headless browser on the server: allow for it.
REPORT_TIMEOUT_MS = 180_000


def test_html_report_downloads_and_shows_in_chromium(page, browser, tmp_path):
    with page.expect_download(timeout=REPORT_TIMEOUT_MS) as download:
        page.get_by_role("button", name="Report (HTML)").click()
    assert download.value.suggested_filename == "alliance_simulated-report.html"
    path = tmp_path / "report.html"
    download.value.save_as(path)
    html5lib.HTMLParser(strict=True).parse(path.read_bytes())  # raises on invalid HTML

    context = browser.new_context(viewport={"width": 1200, "height": 900})
    try:
        report = context.new_page()
        errors = []
        report.on("pageerror", lambda error: errors.append(str(error)))
        report.goto(path.as_uri())
        first = report.locator("body > *").first
        assert first.inner_text().strip() == SIMULATED_NOTICE
        assert first.is_visible()
        assert report.locator("h1").inner_text().startswith("Meta-analysis report")
        assert report.locator("table").count() == 2
        assert report.locator("figure").count() == 3
        drawn = report.locator("figure img")
        for i in range(drawn.count()):  # every picture that is there decodes and has a size
            assert report.evaluate("(img) => img.naturalWidth > 0", drawn.nth(i).element_handle())
        if drawn.count() < 3:  # a figure the server could not draw says so
            assert report.get_by_text("could not be drawn").count() == 3 - drawn.count()
        assert errors == []
    finally:
        context.close()


def test_reproduce_in_r_zip_holds_script_data_and_results(page):
    # The Overview shows the pooled model and the moderator model: the zip holds both, each in
    # its own folder, and a runner script at the top that runs both.
    with page.expect_download() as download:
        page.get_by_role("button", name="Reproduce in R (zip)").click()
    archive = zipfile.ZipFile(io.BytesIO(download.value.path().read_bytes()))
    parts = ("moderators", "pooled")
    files = ("analysis.R", "dashboard_results.csv", "data.csv")
    assert sorted(archive.namelist()) == ["analysis.R"] + [f"{p}/{f}" for p in parts for f in files]
    runner = archive.read("analysis.R").decode("utf-8")
    assert all(part in runner for part in parts)
    for part in parts:
        script = archive.read(f"{part}/analysis.R").decode("utf-8")
        assert "rma.mv(" in script and "agreement with the dashboard" in script
        results = pd.read_csv(
            io.BytesIO(archive.read(f"{part}/dashboard_results.csv")), comment="#"
        )
        data = pd.read_csv(io.BytesIO(archive.read(f"{part}/data.csv")))
        model = results[results["section"] == "model"].set_index("name")["estimate"]
        assert model["k"] == len(data)
