"""In the browser: the two-level choices on nested data, the paper's model in one click, the
model each page states, words by the dataset's measure, and the Sensitivity page's tables."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from playwright.sync_api import expect

from alliance_core.analyses.presets import DEL_RE_2021
from tests.e2e.conftest import rerun_and_wait, wait_for_app_ready
from tests.e2e.test_dashboard import go_to, sidebar, table_rows

pytestmark = pytest.mark.e2e


def open_link(page, app_url: str, query: str) -> None:
    page.goto(f"{app_url}?{query}")
    wait_for_app_ready(page)


def main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


def test_choosing_the_independent_two_level_model_warns_on_every_page(page):
    choice = sidebar(page).get_by_text("Two-level, effect sizes treated as independent")
    rerun_and_wait(page, choice.click)
    assert "model=2L-ind" in page.url
    # (The forest plot of 811 rows is slow to draw in a browser; AppTest covers that page.)
    for title in ("Overview", "Publication bias", "Moderators & PTR"):
        if title != "Overview":
            go_to(page, title)
        warning = page.locator('[data-testid="stMain"] [data-testid="stAlertContentWarning"]')
        text = warning.filter(has_text="Not recommended").first.inner_text()
        assert "811 effect sizes" in text and "152 studies" in text, title
    assert page.locator('[data-testid="stException"]').count() == 0


def test_the_aggregated_model_states_its_studies_and_rho(page, app_url):
    open_link(page, app_url, "model=2L-agg&rho=0.8&mod=PTR&mod=alliance_rater")
    text = main_text(page)
    assert "one aggregated effect per study, ρ = 0.8" in text
    assert "Left out of this model: alliance_rater" in text
    assert "k = 152 studies (one aggregated effect each, from 811 effect sizes)" in text
    box = sidebar(page).get_by_role("spinbutton", name="Sampling correlation within a study (ρ)")
    expect(box).to_have_value("0.80")  # polls: the sidebar can still be settling


def test_the_paper_preset_is_one_click_and_in_the_link(page, app_url):
    button = sidebar(page).get_by_role("button", name=DEL_RE_2021.label)
    rerun_and_wait(page, button.click)
    assert f"preset={DEL_RE_2021.key}" in page.url
    go_to(page, "Moderators & PTR")
    terms = [row[0] for row in table_rows(page, "Term")]
    assert terms[:2] == ["Intercept", "log PTR"]
    assert "pd = yes (vs no)" in terms
    assert any(t.startswith("outcome_rater = ") for t in terms)

    fresh = page.context.new_page()
    fresh.goto(f"{app_url}?preset={DEL_RE_2021.key}&page=moderators")
    wait_for_app_ready(fresh)
    assert [row[0] for row in table_rows(fresh, "Term")] == terms


def test_the_overview_download_holds_both_models_it_shows(page):
    assert "the pooled model without moderators" in main_text(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Results (CSV)").click()
    frame = pd.read_csv(io.BytesIO(download.value.path().read_bytes()), comment="#")
    assert frame["model"].unique().tolist() == ["without moderators", "with moderators: log PTR"]
    qe_df = frame[frame["name"] == "QE"].set_index("model")["df"]
    assert qe_df.tolist() == [810, 809]


def test_a_standardized_mean_difference_dataset_is_worded_as_such(page, app_url):
    open_link(page, app_url, "ds=assink2016")
    text = main_text(page)
    assert "The average standardized mean difference is" in text
    assert "estimate =" not in text
    go_to(page, "Moderators & PTR")
    text = main_text(page)
    assert "PTR cannot be computed" in text and "for example PTR" not in text


def test_sensitivity_tables_read_like_a_published_table(page):
    go_to(page, "Sensitivity")
    table = page.locator('[data-testid="stTable"]', has_text="Study left out").first
    table.wait_for()
    headers = [h.strip() for h in table.locator("th").all_inner_texts()]
    assert "log PTR coefficient" in headers and "p (log PTR)" in headers
    assert not {"left_out", "statistic", "ci_lb", "coef_estimate", "error"} & set(headers)
    text = main_text(page)
    assert "log_PTR" not in text
    # Only the open tab runs: the specification curve's words appear once its tab is clicked.
    assert "Left out: the two-level model" not in text
    rerun_and_wait(page, lambda: page.get_by_role("tab", name="Specification curve").click())
    assert "Left out: the two-level model" in main_text(page)
