"""A share link with a what-if profile, a bubble colour and a forest sort opens that view in a
fresh browser, and the readout gives the profile its own correlations."""

from __future__ import annotations

import urllib.parse

import pytest
from playwright.sync_api import expect

from pages._ui import view_link
from tests.e2e.conftest import wait_for_app_ready

pytestmark = pytest.mark.e2e

PROFILE = {"name": "Observer <rated> & RCT", "values": {"alliance_rater": "observer"}}


def test_a_link_with_a_profile_and_colour_opens_that_view(page, app_url):
    query = {
        "mod": ["PTR", "alliance_rater"],
        "colour": ["alliance_rater"],
        **view_link.view_query(profiles=[PROFILE]),
    }
    link = f"{app_url}/moderators?{urllib.parse.urlencode(query, doseq=True)}"
    page.goto(link)
    wait_for_app_ready(page, 90_000)
    main = page.locator('[data-testid="stMain"]')
    # The profile's name is shown as text (escaped) in the chart's legend and in the profile
    # table. Each is located on its own: the table is a grid whose text lives in a hidden
    # accessible mirror, so "the first element with this text" is visible or not depending
    # on which of the two the browser drew first.
    legend = page.locator(".js-plotly-plot .legendtext", has_text="Observer <rated>")
    expect(legend).to_have_count(1, timeout=60_000)
    expect(legend).to_be_visible()
    expect(main.locator('[role="gridcell"]', has_text=PROFILE["name"]).first).to_be_attached()
    assert page.locator(".js-plotly-plot .legendtext", has_text="observer").count() >= 1
    # The address bar keeps the view parameters next to the analysis ones.
    kept = urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)
    assert kept["colour"] == ["alliance_rater"]
    assert view_link.view_from_link(kept)[0].profiles == (PROFILE,)


def test_a_link_with_a_forest_sort_opens_the_forest_plot_so_sorted(page, app_url):
    page.goto(f"{app_url}/forest?sort=precision")
    wait_for_app_ready(page, 90_000)
    choice = page.locator('[data-testid="stMain"]').get_by_role(
        "combobox", name="Sort rows by", exact=True
    )
    expect(choice).to_have_value("Precision (most precise first)", timeout=60_000)
    assert "sort=precision" in page.url


def test_a_link_with_a_tab_opens_the_sensitivity_page_on_it(page, app_url):
    page.goto(f"{app_url}/sensitivity?tab=cumulative")
    wait_for_app_ready(page, 90_000)
    tab = page.get_by_role("tab", name="Cumulative meta-analysis")
    expect(tab).to_have_attribute("aria-selected", "true", timeout=60_000)
    # Its analysis ran: the cumulative chart's reading is on the page.
    expect(page.get_by_text("studies were added one at a time").first).to_be_visible()
    assert "tab=cumulative" in page.url
