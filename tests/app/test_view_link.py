"""What-if profiles, forest sort order and bubble colour travel in the share link; the
what-if editor names blank cells "mean / reference level"; the readout gives each profile its own r's.
"""

from __future__ import annotations

import pytest

from alliance_core.analyses.run import run_analysis
from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.data.datasets import DEFAULT_DATASET, dataset_info, load_dataset
from alliance_core.figures import ptr_slope_readout
from alliance_core.formatting import escape_markdown
from pages._ui import state, tables, view_link
from tests.app.conftest import chart_specs, new_app, unescaped

ODD_PROFILES = (
    {"name": "Observer, RCT & <b>", "values": {"alliance_rater": "observer", "design": "RCT"}},
    {"name": "100% \u00e9t\u00e9 | ~:", "values": {"pd_share": 0.5}},
)


@pytest.fixture(scope="module")
def model():
    info = dataset_info(DEFAULT_DATASET)
    settings = AnalysisSettings(
        dataset=DEFAULT_DATASET, moderators=("PTR", "alliance_rater", "design", "pd_share")
    )
    return run_analysis(load_dataset(DEFAULT_DATASET), info.mapping, settings)


# -- plain logic ----------------------------------------------------------------------------
def test_view_link_round_trip():
    query = view_link.view_query(
        sort="precision",
        colour="alliance_rater",
        profiles=ODD_PROFILES,
        tab="cumulative",
        cuts="two",
    )
    view, problems = view_link.view_from_link(query)
    assert problems == []
    assert view.sort == "precision" and view.colour == "alliance_rater"
    assert view.tab == "cumulative" and view.cuts == "two"
    assert list(view.profiles) == [
        {"name": p["name"], "values": {k: v for k, v in p["values"].items()}} for p in ODD_PROFILES
    ]


def test_a_link_without_view_parameters_asks_for_nothing():
    view, problems = view_link.view_from_link({"model": ["3L"]})
    assert view == view_link.ViewRequest() and problems == []


def test_bad_view_parameters_are_named_and_skipped():
    view, problems = view_link.view_from_link(
        {"sort": ["weight"], "profile": ["{not json", '{"name":"ok","values":{"design":"RCT"}}']}
    )
    assert view.sort is None
    assert view.profiles == ({"name": "ok", "values": {"design": "RCT"}},)
    assert any("sort=weight" in p for p in problems)
    assert any("profile number 1" in p for p in problems)


def test_view_parameters_are_known_link_parameters():
    query = {
        "ds": [DEFAULT_DATASET],
        **view_link.view_query(sort="data", colour="none", profiles=[]),
    }
    _, problems = state.settings_from_link(query, lambda name: AnalysisSettings(dataset=name))
    assert problems == []


def test_blank_what_if_cells_read_typical_value(model):
    columns = tables.ProfileColumns.of(model.result, model.ptr_column)
    frame = columns.empty_editor_frame()
    cells = frame[list(columns.names)].to_numpy().ravel()
    assert set(cells) == {tables.TYPICAL_VALUE}
    assert not frame.isna().to_numpy().any()  # no cell the editor would print as "None"
    profiles, notes = tables.profiles_from_rows(frame, columns)
    assert profiles == [] and notes == []


def test_link_profiles_fill_the_editor_and_come_back_unchanged(model):
    columns = tables.ProfileColumns.of(model.result, model.ptr_column)
    frame, problems = tables.editor_frame_for(ODD_PROFILES, columns)
    assert problems == []
    profiles, notes = tables.profiles_from_rows(frame, columns)
    assert notes == []
    assert profiles == [dict(p) for p in ODD_PROFILES]


def test_link_profiles_with_unknown_columns_or_levels_are_named(model):
    columns = tables.ProfileColumns.of(model.result, model.ptr_column)
    asked = [{"name": "x", "values": {"design": "cohort", "nope": "1", "pd_share": 0.2}}]
    frame, problems = tables.editor_frame_for(asked, columns)
    assert any("'cohort' is not a level of design" in p for p in problems)
    assert any("'nope'" in p for p in problems)
    profiles, _ = tables.profiles_from_rows(frame, columns)
    assert profiles == [{"name": "x", "values": {"pd_share": 0.2}}]


def test_readout_gives_each_profile_its_own_r_values(model):
    res = model.result
    readouts = [
        (p["name"], ptr_slope_readout(res, "PTR", 1, 10, profile_values=p["values"]))
        for p in ODD_PROFILES
    ]
    table = tables.readout_table(readouts).set_index("Profile")
    for name, out in readouts:
        row = table.loc[name]
        # The row's r at each PTR is the readout's prediction for that profile at that PTR.
        assert row.iloc[0].startswith(f"{out.r_from:.2f}".replace("-", "\u2212"))
        assert row.iloc[1].startswith(f"{out.r_to:.2f}".replace("-", "\u2212"))
        assert row.iloc[2].startswith(f"{out.r_to - out.r_from:.3f}".replace("-", "\u2212"))
    # Different profiles, different correlations (the z change is shared, the r change is not).
    assert table.iloc[0, 0] != table.iloc[1, 0]
    assert readouts[0][1].difference_r != pytest.approx(readouts[1][1].difference_r, abs=1e-6)


# -- the app --------------------------------------------------------------------------------
def _assert_clean(at) -> None:
    assert not at.exception, [e.message for e in at.exception]


def test_forest_sort_travels_in_the_link():
    at = new_app()
    at.query_params.update({"sort": "precision"})
    at.run()
    at.switch_page("pages/forest.py").run()
    _assert_clean(at)
    assert at.selectbox(key="forest:sort").value == "precision"
    at.selectbox(key="forest:sort").set_value("year").run()
    assert at.query_params["sort"] == "year"
    at.selectbox(key="forest:sort").set_value("effect").run()  # the default: out of the link
    assert "sort" not in at.query_params


def test_colour_and_profiles_travel_in_the_link():
    query = {
        "mod": ["PTR", "alliance_rater", "design"],
        "colour": "design",
        **view_link.view_query(profiles=[ODD_PROFILES[0]]),
    }
    at = new_app()
    at.query_params.update(query)
    at.run()
    at.switch_page("pages/moderators.py").run()
    _assert_clean(at)
    assert at.selectbox(key="ptr:colour").value == "design"
    assert at.query_params["colour"] == "design"
    # The profile from the link is drawn and written back unchanged.
    assert view_link.view_from_link({"profile": [at.query_params["profile"]]})[0].profiles == (
        ODD_PROFILES[0],
    )
    assert any("Observer, RCT" in unescaped(" | ".join(map(str, t.value.index))) for t in at.table)
    # Colour off: out of the link; the analysis parameters stay.
    at.selectbox(key="ptr:colour").set_value(None).run()
    assert "colour" not in at.query_params
    assert at.query_params["mod"] == ["PTR", "alliance_rater", "design"]


# -- forest page: both layouts, captions as text, every effect size ----------------------------
def _forest_charts(at) -> dict[str, dict]:
    """The page's forest figures by layout, as plotly JSON."""
    charts = {}
    for figure in chart_specs(at):
        layout = (figure.get("layout", {}).get("meta") or {}).get("layout")
        if layout:
            charts[layout] = figure
    return charts


@pytest.mark.parametrize("dataset", [DEFAULT_DATASET, "konstantopoulos2011"])
def test_forest_page_sends_both_layouts_with_captions_as_text(dataset):
    at = new_app()
    at.query_params.update({"ds": dataset})
    at.run()
    at.switch_page("pages/forest.py").run()
    _assert_clean(at)
    at.toggle(key="forest:all").set_value(True).run()
    _assert_clean(at)
    charts = _forest_charts(at)
    assert set(charts) == {"wide", "compact"}
    for figure in charts.values():
        # The caption is not inside the on-screen figure (it would not wrap) ...
        names = [a.get("name") for a in figure["layout"].get("annotations", [])]
        assert "caption" not in names
        # ... but under it as text, once per layout.
        roles = {(t.get("meta") or {}).get("role") for t in figure["data"]}
        assert "effect sizes" in roles and "label text" in roles
    notes = [c.value for c in at.caption if c.value.startswith("Squares")]
    assert len(notes) == 2


def test_a_link_colour_this_data_lacks_is_named_as_text():
    hostile = "[x](http://example.invalid) **bold**"
    at = new_app()
    at.query_params.update({"colour": hostile})
    at.run()
    at.switch_page("pages/moderators.py").run()
    _assert_clean(at)
    warnings = [w.value for w in at.warning if "Link parameter colour" in w.value]
    assert len(warnings) == 1
    assert escape_markdown(hostile) in warnings[0]  # shown as the characters typed
    assert at.selectbox(key="ptr:colour").value is None


def test_the_share_link_is_plain_text_that_holds_the_view():
    # Shown with st.text: never read as markdown or HTML, and no code highlighter (a 1.5 MB
    # script) for the browser to load on every page.
    at = new_app()
    at.query_params.update({"mod": "PTR", "est": "ML"})
    at.run()
    links = [t.value for t in at.sidebar.text if "?" in t.value]
    assert len(links) == 1
    query = links[0].split("?", 1)[1]
    assert "est=ML" in query and "mod=PTR" in query
    assert not [c for c in at.sidebar.code]


def _share_link(at) -> str:
    links = [t.value for t in at.sidebar.text if "?" in t.value]
    assert len(links) == 1
    return links[0]


def test_the_share_link_is_current_after_the_rerun_that_changed_the_view():
    # The page writes its view after the sidebar was drawn; the link must carry it in the same
    # run, not only after the next one.
    at = new_app()
    at.run()
    at.switch_page("pages/forest.py").run()
    at.selectbox(key="forest:sort").set_value("year").run()
    _assert_clean(at)
    assert "sort=year" in _share_link(at)
    at.selectbox(key="forest:sort").set_value("effect").run()
    assert "sort=" not in _share_link(at)


def test_the_share_link_holds_the_profiles_the_page_shows():
    at = new_app()
    at.query_params.update(
        {"mod": ["PTR", "design"], **view_link.view_query(profiles=[ODD_PROFILES[0]])}
    )
    at.run()
    at.switch_page("pages/moderators.py").run()
    _assert_clean(at)
    assert "profile=" in _share_link(at)
