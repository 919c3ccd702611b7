"""A Plotly figure on the page, drawn by Plotly's basic bundle when the dashboard serves it.

``st.plotly_chart`` loads Plotly's full bundle (4.7 MB: maps, 3-D, WebGL traces) before a
new session's first chart, and evaluating it holds the browser's only thread for most of a
second. Every figure here is made of scatter and bar traces, which Plotly's basic bundle
(1.2 MB) draws: :func:`draw` mounts a small component (``plotly_chart.js``) that loads that
bundle from ``static/`` once per page and draws with it. The bundle is fetched at install time
(``scripts/fetch_plotly_bundle.py``); without it, or without static serving, :func:`draw` falls
back to ``st.plotly_chart``, so the dashboard never depends on the fetch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import plotly.graph_objects as go
import plotly.io as pio
import streamlit as st
from streamlit import config as streamlit_config

from alliance_core.figures.styling import OKABE_ITO

BUNDLE = Path(__file__).resolve().parents[2] / "static" / "plotly-basic.min.js"
# Relative to the page's address (every page is one level deep), so a server under a path
# prefix (server.baseUrlPath, or nginx in deploy/) serves it too.
BUNDLE_ADDRESS = "app/static/plotly-basic.min.js"
# The trace types the basic bundle draws; a figure with another type goes to st.plotly_chart.
BASIC_TRACES = frozenset({"scatter", "bar", "pie"})
# Any chart on the page, drawn either way (CSS of the projector view, browser tests).
CHART_ELEMENT = ':is([data-testid="stPlotlyChart"], .stBidiComponent)'
# Inside a box of fixed height, the parts of the chart component that must be as high as the
# box for ``height="stretch"`` to fill it: the component's element and its root.
STRETCHED_PARTS = (".stBidiComponent", '[data-testid="stBidiComponentRegular"]')
# Colours of traces that set none: the figures' own palette (Streamlit's theme did this before).
TEMPLATE = {"layout": {"colorway": list(OKABE_ITO)}}

CHART_COMPONENT = "alliance_plotly_chart"
# The full-screen button: above the chart's top edge, shown on hover or keyboard focus.
FRAME_CSS = """
.alliance-chart-frame { position: relative; }
.alliance-chart-fullscreen {
  position: absolute; top: -1.75rem; right: 0; opacity: 0; cursor: pointer;
  display: flex; line-height: 1; padding: 0.2rem; border-radius: 0.25rem;
  border: 1px solid rgba(128, 128, 128, 0.4); background: transparent; color: inherit;
}
.alliance-chart-frame:hover .alliance-chart-fullscreen,
.alliance-chart-fullscreen:focus-visible { opacity: 1; }
.alliance-chart-frame:fullscreen { padding: 2.5rem 1rem 1rem; box-sizing: border-box; }
.alliance-chart-frame:fullscreen .alliance-chart-fullscreen { top: 0.5rem; right: 1rem; opacity: 1; }
"""
_component = st.components.v2.component(
    CHART_COMPONENT,
    js=Path(__file__).with_name("plotly_chart.js").read_text(encoding="utf-8"),
    css=FRAME_CSS,
    isolate_styles=False,  # Plotly adds its style sheet to the document, not to a shadow root
)


def basic_bundle_served() -> bool:
    # streamlit.config's own get_option: the one Streamlit's test utilities can override.
    return BUNDLE.is_file() and bool(streamlit_config.get_option("server.enableStaticServing"))


def drawable_by_basic_bundle(fig: go.Figure) -> bool:
    return all((trace.type or "scatter") in BASIC_TRACES for trace in fig.data)


def figure_json(fig: go.Figure) -> str:
    """The figure as plotly.js reads it, with the dashboard's template instead of the one
    plotly.py added (Streamlit's, whose colours are placeholders its own chart replaces)."""
    spec = fig.to_plotly_json()
    return pio.to_json({"data": spec["data"], "layout": {**spec["layout"], "template": TEMPLATE}})


def draw(
    fig: go.Figure, *, key: str, height: int | Literal["content", "stretch"], config: dict
) -> None:
    """Draw ``fig`` full width; ``height="stretch"`` fills its container's height."""
    if not (basic_bundle_served() and drawable_by_basic_bundle(fig)):
        st.plotly_chart(fig, key=key, height=height, theme="streamlit", config=config)
        return
    data = {
        "figure": figure_json(fig),
        "bundle": BUNDLE_ADDRESS,
        "stretch": height == "stretch",
        "config": config,
    }
    _component(key=key, data=data, height=height, width="stretch")
