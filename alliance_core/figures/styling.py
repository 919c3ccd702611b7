"""Shared look of the figures: palette, theme-neutral styling, captions and display scales.

Colours come from the Okabe & Ito (2008) colour-blind-safe palette. Backgrounds are
transparent, gridlines a translucent grey, and no text colour is set, so that the active
template supplies it: under Streamlit (``st.plotly_chart(fig, theme="streamlit")``) that is
the app's light or dark theme.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from alliance_core.errors import AnalysisError
from alliance_core.formatting import format_number
from alliance_core.model.inference import BandInference, predict_under
from alliance_core.model.nesting import display_name
from alliance_core.model.results import MetaResult

# Okabe & Ito's palette without its black, which would vanish on a dark theme.
OKABE_ITO = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
    "#999999",  # grey
)
STUDY_COLOUR = OKABE_ITO[0]
POINT_CYCLE = tuple(c for c in OKABE_ITO if c != "#F0E442")  # yellow points vanish on white
SUMMARY_COLOUR = OKABE_ITO[5]
NEUTRAL = "rgba(128, 128, 128, 0.85)"  # reads on white and on near-black alike
GRID = "rgba(128, 128, 128, 0.22)"
FONT_FAMILY = "Source Sans Pro, Arial, Helvetica, sans-serif"


def rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    red, green, blue = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({red}, {green}, {blue}, {alpha})"


def style_figure(fig: go.Figure, *, height: int | None = None) -> go.Figure:
    """Theme-neutral styling: transparent backgrounds, subtle grid, no text colour."""
    fig.update_layout(
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        font={"family": FONT_FAMILY, "size": 13},
        hoverlabel={"font": {"family": FONT_FAMILY}},
        height=height,
    )
    fig.update_xaxes(gridcolor=GRID, zerolinecolor=GRID, linecolor=NEUTRAL, showline=True)
    fig.update_yaxes(gridcolor=GRID, zerolinecolor=GRID, linecolor=NEUTRAL)
    return fig


def escape_html(text: object) -> str:
    """User text (labels, levels, column and profile names) as plotly text: plotly renders a
    subset of HTML, so ``<``, ``>`` and ``&`` are escaped; ``%`` is doubled-safe in hover
    templates via ``hovertext`` rather than ``hovertemplate``."""
    return html.escape(str(text), quote=False)


def add_caption(fig: go.Figure, lines: Sequence[str], *, width: int = 120) -> int:
    """Notes under the plot area; returns the pixels they need (for the bottom margin).

    ``lines`` are plain text (they may name user columns and levels) and are escaped here.
    The annotation is named "caption" so that a page can show the notes as text instead.
    """
    wrapped = [escape_html(part) for line in lines for part in textwrap.wrap(line, width)]
    if not wrapped:
        return 0
    fig.add_annotation(
        text="<br>".join(wrapped),
        xref="paper",
        yref="paper",
        x=0,
        y=0,
        xanchor="left",
        yanchor="top",
        yshift=-62,  # below the x-axis title
        align="left",
        showarrow=False,
        font={"size": 11},
        name="caption",
    )
    height = 16 * len(wrapped)
    meta = dict(fig.layout.meta or {})
    meta.update(notes=list(lines), caption_height=height)
    fig.update_layout(meta=meta)
    return height


def split_caption(fig: go.Figure) -> tuple[go.Figure, list[str]]:
    """A copy of ``fig`` without its caption annotation (and the margin it took), and the
    caption's notes as plain text.

    A plotly annotation does not wrap, so on a screen narrower than the caption was wrapped
    for its lines run past the figure's edge; a page shows the notes as text under the figure
    instead, and exports keep the caption in the figure.
    """
    meta = dict(fig.layout.meta or {})
    notes = list(meta.get("notes") or [])
    if not notes:
        return fig, []
    screen = go.Figure(fig)
    screen.layout.annotations = [a for a in fig.layout.annotations if a.name != "caption"]
    taken = int(meta.get("caption_height") or 0)
    if fig.layout.margin.b is not None:
        screen.layout.margin.b = fig.layout.margin.b - taken
    if fig.layout.height is not None:
        screen.layout.height = fig.layout.height - taken
    return screen, notes


def interval_text(estimate: float, lower: float, upper: float) -> str:
    return f"{format_number(estimate)} [{format_number(lower)}, {format_number(upper)}]"


def percent_level(res: MetaResult) -> str:
    return f"{res.level * 100:g}%"


def moderator_values_text(values: Mapping[str, object], res: MetaResult) -> str:
    """'ptr = 5.2 (mean), alliance_rater = patient (reference level)'."""
    parts = []
    for column, value in values.items():
        term = res.design.term(column)
        typical = res.design.typical_values()[column]
        if term.kind == "numeric":
            kind = " (mean)" if np.isclose(value, typical) else ""
            parts.append(f"{display_name(column)} = {value:.3g}{kind}")
        else:
            kind = " (reference level)" if str(value) == term.reference else ""
            parts.append(f"{display_name(column)} = {value}{kind}")
    return ", ".join(parts)


@dataclass(frozen=True)
class DisplayScale:
    """Display scale of effects: "r" = tanh(z), "z" = Fisher's z as analysed, or "none" for
    effect sizes of another kind (e.g. standardised mean differences) shown as analysed."""

    name: str

    @property
    def symbol(self) -> str:
        return {"r": "r", "z": "z"}.get(self.name, "yi")

    @property
    def title(self) -> str:
        return {"r": "Correlation r", "z": "Fisher's z"}.get(self.name, "Effect size")

    @property
    def model_title(self) -> str:
        """Name of the analysed (untransformed) scale."""
        return "model scale" if self.name == "none" else "Fisher's z"

    def __call__(self, z):
        return np.tanh(z) if self.name == "r" else np.asarray(z, dtype=float)


def display_scale(transform: str | None) -> DisplayScale:
    if transform in ("r", "z"):
        return DisplayScale(transform)
    if transform in (None, "none"):
        return DisplayScale("none")
    raise AnalysisError(
        f"Unknown scale '{transform}'. Use 'r' (correlations), 'z' (Fisher's z) or None "
        "(effect sizes as analysed)."
    )


def predictions(
    res: MetaResult, band: BandInference | None, newmods=None, transform: str | None = None
) -> pd.DataFrame:
    """``res.predict`` (the model's own inference) or, with ``band``, the robust predictions,
    each with its own Satterthwaite df (:func:`alliance_core.model.inference.predict_under`)."""
    return predict_under(res, None if band is None else band.robust, newmods, transform)


# Projector view: dark text on white, whatever the app's theme, so every label keeps a contrast
# far above WCAG's 4.5:1 (#1A1A1A on white is about 17:1) on a washed-out classroom screen.
PROJECTOR_TEXT = "#1A1A1A"
PROJECTOR_BACKGROUND = "#FFFFFF"
PROJECTOR_FONT_SIZE = 20
PROJECTOR_TICK_SIZE = 18


def projector_figure(fig: go.Figure, height: int | None = None) -> go.Figure:
    """A copy of ``fig`` for a projector: 20 px text, 18 px tick labels, dark on white."""
    big = go.Figure(fig)
    big.update_layout(
        paper_bgcolor=PROJECTOR_BACKGROUND,
        plot_bgcolor=PROJECTOR_BACKGROUND,
        font={"size": PROJECTOR_FONT_SIZE, "color": PROJECTOR_TEXT},
        legend={"font": {"size": PROJECTOR_TICK_SIZE, "color": PROJECTOR_TEXT}},
    )
    if height is not None:
        big.update_layout(height=height)
    axes = {
        "tickfont": {"size": PROJECTOR_TICK_SIZE, "color": PROJECTOR_TEXT},
        "title_font": {"size": PROJECTOR_FONT_SIZE, "color": PROJECTOR_TEXT},
        "linecolor": PROJECTOR_TEXT,
    }
    big.update_xaxes(**axes)
    big.update_yaxes(**axes)
    big.update_annotations(font={"color": PROJECTOR_TEXT})
    return big
