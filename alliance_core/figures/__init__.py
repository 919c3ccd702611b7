"""Plotly figures of a fitted model: forest plot, funnel plot and the PTR curve.

Every builder is a pure function from a :class:`~alliance_core.model.results.MetaResult` (and the rows
it analysed, ``res.data``) to a ``plotly.graph_objects.Figure``, in the spirit of metafor's
``forest``, ``funnel`` and ``regplot``. Nothing here imports streamlit, so the same figures serve
the dashboard, notebooks and scripts.

Look and feel
    Colours come from the Okabe & Ito (2008) colour-blind-safe palette. Backgrounds are
    transparent, gridlines a translucent grey, and no text colour is set, so that the active
    template supplies it: under Streamlit (``st.plotly_chart(fig, theme="streamlit")``) that is
    the app's light or dark theme. :func:`export_figure` renders on white for print.

Traces carry ``meta={"role": ...}`` tags (e.g. ``"curve"``, ``"ci band"``, ``"diamond"``) so that
tests and the dashboard can find a figure's parts without relying on their order.
"""

from alliance_core.figures.dependence import rho_sensitivity_figure
from alliance_core.figures.export import EXPORT_FORMATS, export_figure, export_session, find_browser
from alliance_core.figures.forest import ROW_HEIGHT, forest_figure
from alliance_core.figures.forest_table import (
    DEFAULT_COLUMNS,
    FOREST_SORTS,
    HOVER_FIELDS,
    study_table,
)
from alliance_core.figures.funnel import funnel_figure
from alliance_core.figures.heterogeneity import tau2_curve_figure
from alliance_core.figures.orchard import orchard_figure
from alliance_core.figures.ptr_curve import (
    MAX_PROFILES,
    Profile,
    PTRCoding,
    PTRSlopeReadout,
    profile_predictions,
    ptr_coding,
    ptr_curve_figure,
    ptr_grid,
    ptr_slope_readout,
)
from alliance_core.figures.ptr_levels import LevelCurves, level_curves, ptr_partners
from alliance_core.figures.selection_weights import selection_weights_figure
from alliance_core.figures.specification import specification_figure
from alliance_core.figures.styling import (
    FONT_FAMILY,
    GRID,
    NEUTRAL,
    OKABE_ITO,
    POINT_CYCLE,
    STUDY_COLOUR,
    SUMMARY_COLOUR,
    DisplayScale,
    add_caption,
    display_scale,
    escape_html,
    projector_figure,
    rgba,
    split_caption,
    style_figure,
)
from alliance_core.model.inference import BandInference

__all__ = [
    "selection_weights_figure",
    "BandInference",
    "DEFAULT_COLUMNS",
    "EXPORT_FORMATS",
    "FONT_FAMILY",
    "FOREST_SORTS",
    "GRID",
    "HOVER_FIELDS",
    "MAX_PROFILES",
    "NEUTRAL",
    "OKABE_ITO",
    "POINT_CYCLE",
    "PTRCoding",
    "PTRSlopeReadout",
    "Profile",
    "ROW_HEIGHT",
    "STUDY_COLOUR",
    "SUMMARY_COLOUR",
    "DisplayScale",
    "add_caption",
    "display_scale",
    "export_figure",
    "export_session",
    "find_browser",
    "forest_figure",
    "funnel_figure",
    "orchard_figure",
    "tau2_curve_figure",
    "profile_predictions",
    "ptr_coding",
    "ptr_curve_figure",
    "ptr_grid",
    "ptr_slope_readout",
    "LevelCurves",
    "level_curves",
    "ptr_partners",
    "escape_html",
    "rgba",
    "rho_sensitivity_figure",
    "specification_figure",
    "split_caption",
    "study_table",
    "projector_figure",
    "style_figure",
]
