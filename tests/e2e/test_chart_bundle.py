"""Charts are drawn by Plotly's basic bundle that the dashboard serves, and Streamlit's full
Plotly bundle is never fetched: the first chart of a new session waits for 1.2 MB of script
instead of 4.7 MB (docs/benchmarks.md, "Time to the first chart")."""

from __future__ import annotations

import pytest

from pages._ui.chart import BUNDLE, BUNDLE_ADDRESS
from tests.e2e.conftest import wait_for_app_ready, wait_for_charts_drawn
from tests.tools import load_script, missing_tool

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _bundle_fetched() -> None:
    if not BUNDLE.is_file():
        missing_tool(f"{BUNDLE} is missing (python scripts/fetch_plotly_bundle.py)", "chart")


@pytest.mark.parametrize("page_path", ["moderators", "simulator", "lesson"])
def test_every_chart_is_drawn_by_the_served_basic_bundle(page, app_url, page_path):
    fetched = []
    page.on("request", lambda request: fetched.append(request.url))
    page.goto(f"{app_url}/{page_path}")
    wait_for_app_ready(page, 90_000)
    page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=60_000)
    wait_for_charts_drawn(page)
    charts = page.evaluate(
        """() => [...document.querySelectorAll('.js-plotly-plot')].map(
            (chart) => chart.closest('.stBidiComponent') !== null)"""
    )
    assert charts and all(charts), charts
    assert (
        page.evaluate("() => window.Plotly.version") == load_script("fetch_plotly_bundle").VERSION
    )
    assert [url for url in fetched if url.endswith(BUNDLE_ADDRESS)], fetched
    # Streamlit's own chart code (its file names start with PlotlyChart) is never asked for.
    assert not [url for url in fetched if "/PlotlyChart" in url]
    assert page.locator(".alliance-chart[data-error]").count() == 0


TICK_AND_TEXT = """() => {
    const tick = document.querySelector('.alliance-chart .xtick text');
    const app = document.querySelector('[data-testid="stApp"]');
    return tick && [tick.style.fill, getComputedStyle(app).color];
}"""


def test_the_charts_follow_the_theme_when_it_changes_without_a_rerun(page, app_url):
    # st.plotly_chart redrew its charts in the new theme; the component takes the page's
    # colours when it draws, and Streamlit draws it again when the theme changes (Streamlit
    # follows the system's light or dark setting, here switched by the browser).
    page.emulate_media(color_scheme="light")
    page.goto(f"{app_url}/moderators")
    wait_for_app_ready(page, 90_000)
    page.locator(".alliance-chart .xtick text").first.wait_for(timeout=60_000)
    tick, text = page.evaluate(TICK_AND_TEXT)
    assert tick == text  # dark text on the light theme
    page.emulate_media(color_scheme="dark")
    page.wait_for_function(
        f"""(light) => {{
            const [tick, text] = ({TICK_AND_TEXT})();
            return text !== light && tick === text;
        }}""",
        arg=text,
        timeout=10_000,
    )


FULL_SCREEN = """() => {
    const frame = document.fullscreenElement;
    const chart = frame && frame.querySelector('.alliance-chart .main-svg');
    return chart ? chart.getBoundingClientRect().height : null;
}"""


def test_a_chart_goes_full_screen_and_back(page, app_url):
    # st.plotly_chart's toolbar had a full-screen button; the component keeps one, shown on
    # hover above the chart, and the chart fills the screen while it is full screen.
    page.goto(f"{app_url}/moderators")
    wait_for_app_ready(page, 90_000)
    chart = page.locator(".alliance-chart-frame").first
    chart.locator(".main-svg").first.wait_for(timeout=60_000)
    height = chart.locator(".alliance-chart").bounding_box()["height"]
    chart.hover()
    button = chart.get_by_role("button", name="Show the chart full screen")
    button.click()
    page.wait_for_function(f"() => ({FULL_SCREEN})() > {height + 100}", timeout=10_000)
    chart.get_by_role("button", name="Leave full screen").click()
    page.wait_for_function("() => document.fullscreenElement === null", timeout=10_000)
    page.wait_for_function(
        f"""() => Math.abs(document.querySelector('.alliance-chart').getBoundingClientRect()
            .height - {height}) < 2""",
        timeout=10_000,
    )
