"""Every figure on a page is drawn by the dashboard's chart component (Plotly's basic bundle)
when the dashboard serves that bundle, and by st.plotly_chart, with the same traces and
layout, when it does not (pages/_ui/chart.py)."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest
from streamlit.testing.v1.util import patch_config_options

from pages._ui import chart
from tests.app.conftest import assert_ran_cleanly, chart_specs, run_page

CHART_PAGES = ["pages/forest.py", "pages/funnel.py", "pages/moderators.py", "pages/simulator.py"]


@pytest.fixture
def bundle_served(tmp_path, monkeypatch):
    bundle = tmp_path / chart.BUNDLE.name
    bundle.write_text("/* Plotly's basic bundle */")
    monkeypatch.setattr(chart, "BUNDLE", bundle)


def without_template(figure: dict) -> dict:
    return {**figure, "layout": {k: v for k, v in figure["layout"].items() if k != "template"}}


@pytest.mark.parametrize("page", [*CHART_PAGES, "pages/lesson.py"])
def test_every_chart_goes_through_the_basic_bundle_when_it_is_served(page, bundle_served):
    at = run_page(page)
    assert_ran_cleanly(at)
    components = [
        e for e in at.get("bidi_component") if e.proto.component_name == chart.CHART_COMPONENT
    ]
    assert components, f"{page} drew no chart"
    assert not at.get("plotly_chart"), f"{page} loaded Streamlit's full Plotly bundle"
    for element in components:
        assert element.proto.json  # the figure travels as data, not as a script's content


def test_without_the_bundle_the_same_figures_are_drawn_by_streamlit(bundle_served, monkeypatch):
    served = chart_specs(run_page("pages/moderators.py"))
    monkeypatch.setattr(chart, "BUNDLE", chart.BUNDLE.with_name("absent.js"))
    at = run_page("pages/moderators.py")
    assert not at.get("bidi_component")
    assert [without_template(f) for f in chart_specs(at)] == [without_template(f) for f in served]


def test_without_static_serving_streamlit_draws(bundle_served):
    with patch_config_options({"server.enableStaticServing": False}):
        at = run_page("pages/forest.py")
    assert_ran_cleanly(at)
    assert at.get("plotly_chart") and not at.get("bidi_component")


def test_figures_the_basic_bundle_cannot_draw_go_to_streamlit():
    assert chart.drawable_by_basic_bundle(go.Figure([go.Scatter(), go.Bar()]))
    assert not chart.drawable_by_basic_bundle(go.Figure([go.Scatter(), go.Histogram()]))
