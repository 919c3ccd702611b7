"""In the browser: ticking PTR × Alliance rater in the sidebar draws one PTR curve per rater; a
link's wild bootstrap request runs on a button press and its result stays with its state."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from alliance_core.data.datasets import DEFAULT_DATASET, load_dataset
from pages._ui.session import interaction_label
from tests.e2e.conftest import PAGE_TIMEOUT_MS, rerun_and_wait, wait_for_app_ready
from tests.e2e.test_dashboard import (
    add_moderator,
    assert_healthy,
    go_to,
    sidebar,
    table_rows,
    wait_for_curve,
)

pytestmark = pytest.mark.e2e

CURVE_NAMES_JS = """(wanted) => {
    for (const graph of document.querySelectorAll('.js-plotly-plot')) {
        const data = graph._fullData || [];
        if (!data.some((t) => t.meta && t.meta.role === "bubbles")) continue;
        const names = data.filter((t) => t.meta && t.meta.role === "curve").map((t) => t.name);
        if (wanted === null || names.length === wanted) return names;
    }
    return null;
}"""


def test_ticking_the_interaction_draws_one_curve_per_level(page):
    go_to(page, "Moderators & PTR")
    wait_for_curve(page)
    add_moderator(page, "alliance_rater")
    box = sidebar(page).get_by_role("combobox", name="Interactions with PTR", exact=True)

    def tick():
        box.click()
        page.get_by_role("option", name=interaction_label("alliance_rater"), exact=True).click()
        page.keyboard.press("Escape")

    rerun_and_wait(page, tick)
    levels = sorted(load_dataset(DEFAULT_DATASET)["alliance_rater"].dropna().unique())
    page.wait_for_function(CURVE_NAMES_JS, arg=len(levels), timeout=PAGE_TIMEOUT_MS)
    names = page.evaluate(CURVE_NAMES_JS, None)
    assert sorted(names) == [f"alliance_rater = {level}" for level in levels]
    terms = [row[0] for row in table_rows(page, "Term")]
    assert sum("×" in term for term in terms) == len(levels) - 1
    assert "mod=PTR%3Aalliance_rater" in page.url or "mod=PTR:alliance_rater" in page.url
    assert_healthy(page)


RESULT = re.compile(r"Wild bootstrap of alliance_rater: F = ")  # the result sentence
BOOTSTRAP_MS = 180_000  # 1,999 refits on a machine shared with other test runs


def test_a_wild_bootstrap_link_runs_on_a_press_and_its_result_stays_with_its_state(page, app_url):
    page.goto(f"{app_url}?page=moderators&mod=PTR&mod=alliance_rater&inf=CR2&cwb=alliance_rater")
    wait_for_app_ready(page)
    main = page.locator('[data-testid="stMain"]')
    expect(main.get_by_text("This link asked for the wild bootstrap of alliance")).to_be_visible()
    assert main.get_by_text(RESULT).count() == 0  # not run on opening
    button = main.get_by_role("button", name="Run the wild bootstrap", exact=False)
    rerun_and_wait(page, button.click, timeout_ms=BOOTSTRAP_MS)
    result = main.get_by_text(RESULT)
    expect(result).to_be_visible(timeout=BOOTSTRAP_MS)
    sentence = result.inner_text()
    assert "cwb=alliance_rater" in page.url
    # Another state and back: the kept result is shown again without a new run.
    rerun_and_wait(page, sidebar(page).get_by_text("Model-based", exact=True).click)
    assert main.get_by_text(RESULT).count() == 0
    rerun_and_wait(page, sidebar(page).get_by_text("Cluster-robust (CR2)", exact=True).click)
    expect(main.get_by_text(RESULT)).to_have_text(sentence)
    assert_healthy(page)
