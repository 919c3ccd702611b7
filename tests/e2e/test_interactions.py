"""In the browser: ticking PTR × Alliance rater in the sidebar draws one PTR curve per rater."""

from __future__ import annotations

import pytest

from alliance_core.data.datasets import DEFAULT_DATASET, load_dataset
from pages._ui.session import interaction_label
from tests.e2e.conftest import PAGE_TIMEOUT_MS, rerun_and_wait
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
    for (const graph of document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')) {
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
