"""In the browser: setting ρ and cluster-robust (CR2) inference in the sidebar shows the robust
table with its Satterthwaite df on Moderators & PTR, and the link holds both choices.

The expected df are computed here with the engine (``ac.fit(..., rho=0.8).robust()``, proven
against clubSandwich in the unit tests), never typed in.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

import alliance_core as ac
from alliance_core.analyses.run import effect_size_table
from alliance_core.data.datasets import DEFAULT_DATASET, dataset_info, load_dataset
from tests.e2e.conftest import rerun_and_wait, wait_for_app_ready
from tests.e2e.test_dashboard import go_to, sidebar, table_rows

pytestmark = pytest.mark.e2e

HEADER_JS = """() => {
    for (const table of document.querySelectorAll('[data-testid="stTable"] table')) {
        const cells = Array.from(table.querySelectorAll('thead th')).map((c) => c.innerText.trim());
        if (cells[0] === 'Term') return cells;
    }
    return null;
}"""


def test_rho_and_cr2_set_in_the_sidebar_reach_the_moderators_table_and_the_link(page, app_url):
    box = sidebar(page).get_by_role("spinbutton", name="Sampling correlation within a study (ρ)")
    # Polls until the widget shows the default (the first render can still be settling).
    expect(box).to_have_value("0.60")

    def set_rho():
        box.fill("0.8")
        box.press("Enter")

    rerun_and_wait(page, set_rho)
    rerun_and_wait(page, lambda: sidebar(page).get_by_text("Cluster-robust (CR2)").click())
    assert "rho=0.8" in page.url and "inf=CR2" in page.url

    go_to(page, "Moderators & PTR")
    rows = table_rows(page, "Term")
    header = page.evaluate(HEADER_JS)
    assert "df" in header
    info = dataset_info(DEFAULT_DATASET)
    table = effect_size_table(load_dataset(DEFAULT_DATASET), info.mapping)
    robust = ac.fit(table, moderators=["log_PTR"], cluster="study", rho=0.8).robust()
    df_column = header.index("df")
    shown = [float(row[df_column]) for row in rows]
    assert shown == pytest.approx(robust.coefficients["df"].tolist(), abs=0.051)
    main = page.locator('[data-testid="stMain"]').inner_text()
    assert "cluster-robust (CR2" in main
    assert f"Satterthwaite df ({robust.coefficients.loc['log_PTR', 'df']:.1f})" in main
    assert "rho=0.8" in page.url and "inf=CR2" in page.url

    # The link opens the same choices in a fresh tab.
    fresh = page.context.new_page()
    fresh.goto(page.url)
    wait_for_app_ready(fresh)
    assert [r[df_column] for r in table_rows(fresh, "Term")] == [r[df_column] for r in rows]
    assert page.locator('[data-testid="stException"]').count() == 0
