"""The Publication bias page in a browser: the verdict first, the selection weights drawn as
steps, and the cut choice redrawing them."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import rerun_and_wait, wait_for_app_ready

pytestmark = pytest.mark.e2e

# x of the drawn step trace of the selection-weights figure (None until it is drawn)
STEPS_X = """() => {
  const gd = [...document.querySelectorAll('.js-plotly-plot')]
    .find(p => p._fullData && p._fullData.some(t => t.meta && t.meta.role === 'steps'));
  if (!gd) return null;
  return [...gd._fullData.find(t => t.meta.role === 'steps').x];
}"""


def test_selection_model_section_draws_the_weights_and_follows_the_cut_choice(page, app_url):
    page.goto(f"{app_url}/funnel?ds=molloy2014")
    wait_for_app_ready(page, 90_000)
    main = page.locator('[data-testid="stMain"]')
    text = main.inner_text()
    assert text.index("Verdict.") < text.index("Each point is an effect size")
    assert "Adjusted for selection (3PSM" in text
    page.wait_for_function(f"({STEPS_X})() !== null", timeout=90_000)
    assert page.evaluate(STEPS_X) == [0, 0.025, 0.025, 1]
    rerun_and_wait(page, lambda: page.get_by_text("Two cuts (.025 and .5)").click())
    page.wait_for_function(f"(({STEPS_X})() || []).length === 6", timeout=90_000)
    assert page.evaluate(STEPS_X) == [0, 0.025, 0.025, 0.5, 0.5, 1]
    assert "step-function selection model; cuts at one-sided p = 0.025, 0.5" in main.inner_text()
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.js_errors == []
