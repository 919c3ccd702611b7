"""The served dashboard driven in Chromium: datasets, moderators, uploads, downloads, links."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from alliance_core.analyses.run import run_analysis
from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.data.datasets import DEFAULT_DATASET, dataset_info, load_dataset
from alliance_core.formatting import format_coefficient
from pages._ui import tables
from pages._ui.chart import CHART_ELEMENT
from pages._ui.session import moderator_label
from pages._ui.state import display_title
from tests.e2e.conftest import PAGE_TIMEOUT_MS, rerun_and_wait, wait_for_app_ready

pytestmark = pytest.mark.e2e

BAD_ROW_CSV = (
    b"study,es_id,label,r,n,n_therapists,design\n"
    b"1,1,Ames (2001),0.30,50,5,RCT\n"
    b"1,2,Ames (2001),abc,50,5,RCT\n"
    b"2,1,Baker (2004),0.20,60,6,other\n"
    b"2,2,Baker (2004),0.28,60,6,other\n"
    b"3,1,Chen (2009),0.35,45,9,RCT\n"
    b"4,1,Diaz (2012),0.25,80,4,other\n"
)


# -- reading and driving the page ----------------------------------------------------------------
def sidebar(page):
    return page.locator('[data-testid="stSidebar"]')


def metric(page, label: str) -> str:
    tile = page.locator('[data-testid="stMetric"]').filter(has_text=label)
    return tile.locator('[data-testid="stMetricValue"]').inner_text().strip()


TABLE_ROWS_JS = """(header) => {
    for (const table of document.querySelectorAll('[data-testid="stTable"] table')) {
        const first = table.querySelector('thead th');
        if (!first || first.innerText.trim() !== header) continue;
        return Array.from(table.querySelectorAll('tbody tr')).map(
            (row) => Array.from(row.querySelectorAll('th, td')).map((c) => c.innerText.trim())
        );
    }
    return null;
}"""


def table_rows(page, header: str) -> list[list[str]]:
    """Cells of the static table whose first header cell is `header`, one list per row.

    Streamlit loads some element types after the run has ended, so wait for the table.
    """
    page.wait_for_function(TABLE_ROWS_JS, arg=header, timeout=PAGE_TIMEOUT_MS)
    return page.evaluate(TABLE_ROWS_JS, header)


def curve_y(page) -> list[float] | None:
    """The y values of the PTR chart's model curve, as plotly holds them."""
    return page.evaluate(
        """() => {
            // The page may draw other charts first (marginal means); find the PTR curve's.
            for (const graph of document.querySelectorAll('.js-plotly-plot')) {
                const curve = (graph._fullData || []).find((t) => t.meta && t.meta.role === "curve");
                if (curve) return Array.from(curve.y);
            }
            return null;
        }"""
    )


def wait_for_curve(page, different_from: list[float] | None = None) -> list[float]:
    """Plotly draws after Streamlit's run ends: wait until the curve is there (and new)."""
    page.wait_for_function(
        """(old) => {
            for (const graph of document.querySelectorAll('.js-plotly-plot')) {
                const curve = (graph._fullData || []).find((t) => t.meta && t.meta.role === "curve");
                if (curve) {
                    return old === null || JSON.stringify(Array.from(curve.y)) !== JSON.stringify(old);
                }
            }
            return false;
        }""",
        arg=different_from,
        timeout=PAGE_TIMEOUT_MS,
    )
    return curve_y(page)


def go_to(page, title: str) -> None:
    rerun_and_wait(page, lambda: sidebar(page).get_by_role("link", name=title).click())


def choose_dataset(page, title: str) -> None:
    box = sidebar(page).get_by_role("combobox", name="Dataset", exact=True)

    def pick():
        box.click()
        page.get_by_role("option", name=title, exact=True).click()

    rerun_and_wait(page, pick)


def add_moderator(page, name: str) -> None:
    box = sidebar(page).get_by_role("combobox", name="Moderators", exact=True)

    def pick():
        # Typing opens the list reliably, also when the box already has the focus.
        box.click()
        box.press_sequentially(name)
        # The list shows a moderator by its display name with its column code.
        page.get_by_role("option", name=moderator_label(name), exact=True).click()
        page.keyboard.press("Escape")

    rerun_and_wait(page, pick)


def remove_moderator(page, name: str) -> None:
    button = sidebar(page).get_by_role("button", name=f"Remove {name}", exact=True)
    rerun_and_wait(page, button.click)


def expected(settings: AnalysisSettings):
    info = dataset_info(settings.dataset)
    return run_analysis(load_dataset(settings.dataset), info.mapping, settings).result


def assert_healthy(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.js_errors == []


# -- tests ----------------------------------------------------------------------------------------
def test_switching_dataset_updates_the_overview_and_the_link(page):
    assert metric(page, "Effect sizes (k)") == "811"
    assert page.get_by_text("SIMULATED").first.is_visible()

    choose_dataset(page, display_title("Class attendance and grades in college"))

    res = expected(AnalysisSettings(dataset="crede2010", moderators=()))
    assert metric(page, "Effect sizes (k)") == f"{res.k:,}"
    assert metric(page, "Studies") == f"{res.n_studies:,}"
    assert metric(page, "Pooled r") == tables.fmt_num(res.predict(transform="r")["pred"].iloc[0])
    assert "ds=crede2010" in page.url
    assert page.get_by_text("SIMULATED").count() == 0
    assert_healthy(page)


def test_moderator_toggles_update_the_coefficients_and_the_ptr_chart(page):
    go_to(page, "Moderators & PTR")
    first_curve = wait_for_curve(page)
    assert [row[0] for row in table_rows(page, "Term")] == ["Intercept", "log PTR"]

    remove_moderator(page, "PTR")
    assert page.get_by_text("Add PTR to the moderators").is_visible()
    assert page.locator(CHART_ELEMENT).count() == 0

    add_moderator(page, "PTR")
    add_moderator(page, "design")
    new_curve = wait_for_curve(page, different_from=first_curve)

    rows = table_rows(page, "Term")
    assert [row[0] for row in rows] == ["Intercept", "log PTR", "design = RCT (vs other)"]
    res = expected(AnalysisSettings(moderators=("PTR", "design")))
    assert [row[1] for row in rows] == [
        format_coefficient(row["estimate"], row["se"], minimum=3)[0]
        for _, row in res.coefficients.iterrows()
    ]
    assert len(new_curve) == len(first_curve)
    assert "mod=PTR&mod=design" in page.url
    assert_healthy(page)


def test_an_upload_with_a_bad_row_shows_the_row_and_column(page, tmp_path):
    go_to(page, "Data")
    sheet = tmp_path / "coding-sheet.csv"
    sheet.write_bytes(BAD_ROW_CSV)
    main = page.locator('[data-testid="stMain"]')
    uploader = main.locator('[data-testid="stFileUploaderDropzoneInput"]')

    rerun_and_wait(page, lambda: uploader.set_input_files(str(sheet)))

    warning = page.locator('[data-testid="stAlertContentWarning"]').filter(has_text="row 3")
    warning.wait_for()
    assert "non-numeric r (row 3)" in warning.inner_text()
    assert "5 of 6 rows usable" in warning.inner_text()
    assert sidebar(page).get_by_role("radio", name="Your upload").is_checked()
    assert page.get_by_text("Analysing coding-sheet.csv").is_visible()
    assert_healthy(page)


def test_the_results_csv_download_holds_the_models_numbers(page):
    with page.expect_download() as download:
        page.get_by_role("button", name="Results (CSV)").click()
    content = download.value.path().read_bytes()
    assert content.startswith(b"# dataset: ")  # provenance lines first
    frame = pd.read_csv(io.BytesIO(content), comment="#")

    res = expected(AnalysisSettings())
    # The Overview shows two models, so its file holds both, each row labelled.
    assert frame["model"].unique().tolist() == ["without moderators", "with moderators: log PTR"]
    frame = frame[frame["model"] == "with moderators: log PTR"]
    coefficients = frame[frame["section"] == "coefficient"].set_index("name")
    assert coefficients.index.tolist() == res.coefficients.index.tolist()
    assert coefficients["estimate"].tolist() == pytest.approx(res.coefficients["estimate"].tolist())
    model = frame[frame["section"] == "model"].set_index("name")["estimate"]
    assert model["k"] == res.k and model["studies"] == res.n_studies
    assert download.value.suggested_filename == f"{DEFAULT_DATASET}-results.csv"
    assert_healthy(page)


def test_a_shared_link_opens_the_same_view_in_a_fresh_browser(page, browser):
    go_to(page, "Moderators & PTR")
    rerun_and_wait(page, lambda: sidebar(page).get_by_text("Two-level, one aggregated").click())
    add_moderator(page, "design")
    shared_rows = table_rows(page, "Term")
    shared_curve = wait_for_curve(page)
    link = page.url
    assert "model=2L-agg" in link and "rho=0.6" in link and "page=moderators" in link

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        fresh = context.new_page()
        fresh.goto(link)
        wait_for_app_ready(fresh)
        assert fresh.get_by_role("heading", name="Moderators & PTR").is_visible()
        assert table_rows(fresh, "Term") == shared_rows
        assert wait_for_curve(fresh) == pytest.approx(shared_curve)
        model = sidebar(fresh).get_by_role(
            "radio", name="Two-level, one aggregated effect per study"
        )
        assert model.is_checked()
        assert fresh.locator('[data-testid="stException"]').count() == 0
    finally:
        context.close()
