"""Projector view (link: ``view=projector``; a sidebar toggle): a classroom screen read from
the back row.

Body text 20 px, key numbers (metric values) 40 px and wrapped rather than cut, figures with
18–20 px labels dark on white (``alliance_core.figures.projector_figure``, applied by
``render.plot``). Long formulas scroll inside their own box in every view.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import streamlit as st

from alliance_core.formatting import escape_markdown
from pages._ui import session, sidebar
from pages._ui.chart import CHART_ELEMENT, STRETCHED_PARTS

LINK_VALUE = "projector"
# Keys of the stage's parts (CSS classes st-key-…): the page's main figure and what to look for.
STAGE_KEY = "projector-stage"
FIGURE_KEY = "projector-figure"
LOOK_FOR_KEY = "projector-look-for"
# The figure's box: as high as the screen leaves under the page heading, and never more than a
# 1280×720 screen needs; the same rule at 150 % browser zoom (an 853×480 window) keeps the figure
# and what to look for on one screen there too.
FIGURE_HEIGHT_CSS = "min(420px, calc(100vh - 257px))"
# The lesson's step heading shares a row with its buttons, which wrap to two lines on 853 px.
LESSON_FIGURE_HEIGHT_CSS = "min(420px, calc(100vh - 297px))"
Fit = Literal["fill", "scroll", "content"]

# Static CSS only: no user text reaches this markup.
ALWAYS_CSS = """<style>
[data-testid="stMarkdownContainer"] .katex-display, [data-testid="stLatex"] .katex-display {
  overflow-x: auto; overflow-y: hidden; max-width: 100%; padding-bottom: 0.25rem;
}
</style>"""
STRETCHED = ", ".join(f".st-key-{FIGURE_KEY}-fill {part}" for part in STRETCHED_PARTS)
PROJECTOR_CSS = f"""<style>
.stMain p, .stMain li, .stMain label, .stMain [data-testid="stCaptionContainer"],
.stMain [data-testid="stCaptionContainer"] p, .stMain summary p, .stMain button p {{
  font-size: 20px !important; line-height: 1.45;
}}
.stMain [data-testid="stMetricValue"], .stMain [data-testid="stMetricValue"] * {{
  font-size: 40px !important; line-height: 1.15; white-space: normal !important;
  overflow: visible !important; text-overflow: clip !important; overflow-wrap: anywhere;
}}
.stMain [data-testid="stMetricLabel"] p {{ font-size: 20px !important; }}
.stMain .stMainBlockContainer, .stMainBlockContainer {{ padding-top: 3.75rem; }}
.stMain h1 {{ font-size: 2.25rem !important; padding-top: 0; }}
/* A filled box: its chart is one screen high and the chart's notes follow under it (they may
   run below the screen; they never run over what follows the box). A scrolled box (the forest
   plot) is one screen high itself and scrolls its tall figure. */
.st-key-{FIGURE_KEY}-fill > [data-testid="stElementContainer"]:has({CHART_ELEMENT}),
.st-key-{FIGURE_KEY}-scroll {{
  height: {FIGURE_HEIGHT_CSS} !important; max-height: {FIGURE_HEIGHT_CSS}; min-height: 0 !important;
  flex: 0 0 auto !important;
}}
.st-key-{FIGURE_KEY}-scroll {{ overflow-y: auto; overflow-x: hidden; }}
{STRETCHED} {{ height: 100%; }}
.stMain:has(.st-key-lesson-look-for)
  .st-key-{FIGURE_KEY}-fill > [data-testid="stElementContainer"]:has({CHART_ELEMENT}) {{
  height: {LESSON_FIGURE_HEIGHT_CSS} !important; max-height: {LESSON_FIGURE_HEIGHT_CSS};
}}
.st-key-{FIGURE_KEY}-content [data-testid="stHorizontalBlock"] {{ flex-wrap: wrap; }}
.st-key-{FIGURE_KEY}-content [data-testid="stColumn"] {{ min-width: 11rem; }}
.st-key-{LOOK_FOR_KEY} p {{ font-size: 22px !important; }}
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
    shown = bool(ss[session.PROJECTOR])
    sidebar.write_view({"view": [LINK_VALUE] if shown else None})
    st.html(ALWAYS_CSS + (PROJECTOR_CSS if shown else ""))
    return shown


OPENED_BY_LINK = "_projector:link"  # whether a projector link opened this session


def sidebar_state() -> str:
    """The sidebar folded when a projector link opened the session, so the page's figure gets
    the screen's width (a 150 % zoom leaves 853 px); else Streamlit's default. Decided once a
    session: the toggle does not fold the sidebar it sits in."""
    ss = st.session_state
    if OPENED_BY_LINK not in ss:
        ss[OPENED_BY_LINK] = LINK_VALUE in st.query_params.get_all("view")
    return "collapsed" if ss[OPENED_BY_LINK] else "auto"


def on() -> bool:
    """Whether this run shows the projector view."""
    return bool(st.session_state.get(session.PROJECTOR))


def stage_slot():
    """The place of the page's main figure in the projector view: a container right under the
    page heading (filled later by :func:`stage`), or None in the usual view."""
    return st.container(key=STAGE_KEY) if on() else None


@contextmanager
def stage(slot, look_for: str, fit: Fit = "fill") -> Iterator[None]:
    """Draw the block's figure in ``slot`` beside what to look for, on one screen.

    ``fit``: "fill" draws the figure as high as the box (``render.plot(...,
    projector_height=render.FILL)``); "scroll" keeps a tall figure's height and scrolls it inside
    the box (the forest plot); "content" lets the box grow (key numbers, which wrap instead).
    In the usual view (``slot`` None) the block runs where it stands, unchanged.
    """
    if slot is None:
        yield
        return
    with slot:
        figure, look = st.columns([3, 2] if fit == "content" else [5, 2])
        with look.container(border=True, key=LOOK_FOR_KEY):
            st.markdown(f"**:material/visibility: What to look for:** {escape_markdown(look_for)}")
        with figure, figure_box(fit):
            yield


def figure_box(fit: Fit = "fill"):
    """The box of a main figure: one screen high in the projector view (see :func:`stage`);
    in the usual view it has no height of its own."""
    return st.container(key=f"{FIGURE_KEY}-{fit}")
