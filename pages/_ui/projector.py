"""Projector view (link: ``view=projector``; a sidebar toggle): a classroom screen read from
the back row.

Body text 20 px, key numbers (metric values) 40 px and wrapped rather than cut, figures with
18–20 px labels dark on white (``alliance_core.figures.projector_figure``, applied by
``render.plot``). Long formulas scroll inside their own box in every view.
"""

from __future__ import annotations

import streamlit as st

from pages._ui import session, sidebar

LINK_VALUE = "projector"

# Static CSS only: no user text reaches this markup.
ALWAYS_CSS = """<style>
[data-testid="stMarkdownContainer"] .katex-display, [data-testid="stLatex"] .katex-display {
  overflow-x: auto; overflow-y: hidden; max-width: 100%; padding-bottom: 0.25rem;
}
</style>"""
PROJECTOR_CSS = """<style>
.stMain p, .stMain li, .stMain label, .stMain [data-testid="stCaptionContainer"],
.stMain [data-testid="stCaptionContainer"] p, .stMain summary p, .stMain button p {
  font-size: 20px !important; line-height: 1.45;
}
.stMain [data-testid="stMetricValue"], .stMain [data-testid="stMetricValue"] * {
  font-size: 40px !important; line-height: 1.15; white-space: normal !important;
  overflow: visible !important; text-overflow: clip !important; overflow-wrap: anywhere;
}
.stMain [data-testid="stMetricLabel"] p { font-size: 20px !important; }
.stMain .stMainBlockContainer, .stMainBlockContainer { padding-top: 3rem; }
</style>"""


def projector_toggle() -> bool:
    """The sidebar toggle (started from the link), the link parameter and the page's CSS."""
    ss = st.session_state
    if session.PROJECTOR not in ss:
        ss[session.PROJECTOR] = LINK_VALUE in ss.get(session.VIEW_QUERY, {}).get("view", [])
    with st.sidebar:
        st.toggle(
            "Projector view",
            key=session.PROJECTOR,
            help="Large text and numbers for a classroom screen; figures dark on white.",
        )
    on = bool(ss[session.PROJECTOR])
    sidebar.write_view({"view": [LINK_VALUE] if on else None})
    st.html(ALWAYS_CSS + (PROJECTOR_CSS if on else ""))
    return on
