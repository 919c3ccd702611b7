"""Projector view: the link's view=projector turns the sidebar toggle on and stays in the link;
figures are drawn dark on white with large labels, shared figures untouched."""

from __future__ import annotations

import plotly.graph_objects as go

from alliance_core.figures import projector_figure
from alliance_core.figures.styling import PROJECTOR_TEXT, PROJECTOR_TICK_SIZE
from alliance_core.teaching.promises import stored_shares
from alliance_core.teaching.simulator import PRESETS
from pages._ui import session
from tests.app.conftest import assert_ran_cleanly, new_app


def link(at, key):
    value = at.query_params.get(key)
    return value[-1] if isinstance(value, list) else value


def test_the_link_opens_the_projector_view_and_the_toggle_leaves_it():
    at = new_app()
    at.query_params["view"] = "projector"
    at.run()
    assert_ran_cleanly(at)
    assert at.toggle(key=session.PROJECTOR).value is True
    assert link(at, "view") == "projector"
    at.toggle(key=session.PROJECTOR).set_value(False).run()
    assert link(at, "view") is None
    at.toggle(key=session.PROJECTOR).set_value(True).run()
    assert link(at, "view") == "projector"


def test_the_projector_figure_is_a_large_dark_on_white_copy():
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]))
    big = projector_figure(fig)
    assert big.layout.xaxis.tickfont.size == PROJECTOR_TICK_SIZE >= 16
    assert big.layout.yaxis.tickfont.color == PROJECTOR_TEXT
    assert big.layout.paper_bgcolor == "#FFFFFF"
    assert fig.layout.xaxis.tickfont.size is None  # the original is untouched


def test_on_a_projector_the_ptr_curve_comes_before_the_meta_regression():
    def headings(query):
        at = new_app()
        for key, value in query.items():
            at.query_params[key] = value
        at.run()
        at.switch_page("pages/moderators.py").run()
        assert_ran_cleanly(at)
        return [h.value for h in at.subheader]

    usual = headings({"mod": "PTR"})
    projected = headings({"mod": "PTR", "view": "projector"})
    ptr, regression = "PTR: patients per therapist", "Meta-regression"
    assert usual.index(regression) < usual.index(ptr)
    assert projected.index(ptr) < projected.index(regression)


def test_the_simulator_in_the_projector_view_keeps_every_part():
    at = new_app()
    at.query_params["view"] = "projector"
    at.query_params["sim"] = "equal"
    at.run()
    at.switch_page("pages/simulator.py").run()
    assert_ran_cleanly(at)
    preset = PRESETS["Both equal"]
    assert any(preset.look_for in h.value for h in at.subheader)
    assert any(m.value == preset.shows for m in at.markdown)
    assert any(stored_shares()[preset.name].sentence() in m.value for m in at.markdown)
    assert [h.value for h in at.header][:1] == ["A simulated literature"]
