"""The Moderators page's marginal means, orchard plot and model comparison table."""

from __future__ import annotations

import numpy as np

import alliance_core as ac
from alliance_core.analyses.model_comparison import model_comparison
from alliance_core.wording.table_text import markdown_text
from pages._ui import means_tables, session
from tests.app.conftest import assert_ran_cleanly, run_page


def test_means_table_and_orchard_on_the_moderators_page():
    at = run_page("pages/moderators.py")
    at.multiselect(key=session.MODERATORS).select("alliance_rater").run()
    assert_ran_cleanly(at)
    focal = at.selectbox(key="means:focal")
    assert "alliance_rater" in focal.options
    tables = [t.value for t in at.table]
    assert any(
        # render.table shows names through the one escaping path (wording/table_text)
        t.index.name == markdown_text("alliance_rater") and "Expected effect (r)" in t.columns
        for t in tables
    )
    at.toggle(key="means:compare").set_value(True).run()
    assert_ran_cleanly(at)
    assert any(t.index.name == "Model" for t in (x.value for x in at.table))


def test_heterogeneity_section_on_the_aggregated_model():
    at = run_page("pages/moderators.py")
    at.radio(key=session.MODEL).set_value("two-level-aggregated").run()
    assert_ran_cleanly(at)
    # The location-scale model is a second fit: the section opens on request.
    assert "between-study variance τ² changes" not in " ".join(m.value for m in at.markdown)
    at.toggle(key="tau2:on").set_value(True).run()
    assert_ran_cleanly(at)
    text = " ".join(m.value for m in at.markdown)
    assert "between-study variance τ² changes by a factor of" in text
    assert not any("location-scale model, which needs" in i.value for i in at.info)


def test_heterogeneity_section_explains_itself_on_the_three_level_model():
    at = run_page("pages/moderators.py")
    at.toggle(key="tau2:on").set_value(True).run()
    assert_ran_cleanly(at)
    assert any("location-scale model, which needs" in i.value for i in at.info)


def test_wild_bootstrap_is_offered_under_cr2():
    at = run_page("pages/moderators.py")
    at.multiselect(key=session.MODERATORS).select("alliance_rater").run()
    assert not [b for b in at.button if b.key == "cwb:run"]
    at.radio(key=session.INFERENCE).set_value("CR2").run()
    assert_ran_cleanly(at)
    assert [b for b in at.button if b.key == "cwb:run"]
    assert at.selectbox(key="cwb:test").options == ["all moderators", "alliance_rater"]


def test_display_tables_show_the_engine_numbers():
    data = ac.escalc(ac.load_dataset(ac.DEFAULT_DATASET))
    res = ac.fit(data, moderators=["alliance_rater"], cluster="study")
    means = res.marginal_means("alliance_rater")
    shown = means_tables.marginal_means_table(means, on_r_scale=True)
    assert list(shown.index) == list(means.table.index)
    expected = [f"{v:.2f}" for v in np.tanh(means.table["estimate"])]
    assert list(shown["Expected effect (r)"]) == expected
    comparison = means_tables.comparison_table(model_comparison(res))
    assert comparison.index[0] == "analysed model"
    assert comparison["LRT"].iloc[0] == "–"
