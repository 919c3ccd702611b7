"""Heterogeneity against a moderator: tau2 of a location-scale model along PTR.

"Do studies with more patients per therapist differ more?" The location-scale model
(Viechtbauer & López-López 2022; metafor ``rma(..., scale = ~ log_ptr)``) gives
log tau2 = a0 + a1 x; this draws tau2 with its confidence band (``predict_tau2``, metafor
``predict(fit, newscale, transf = exp)``) over a grid of the scale moderator, with the fitted
studies' own tau2_i as a rug of points.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from alliance_core.errors import AnalysisError
from alliance_core.figures.styling import OKABE_ITO, escape_html, rgba, style_figure
from alliance_core.model.location_scale import LocationScaleResult


def tau2_curve_figure(ls: LocationScaleResult, column: str, points: int = 60) -> go.Figure:
    """tau2 (and its CI) against the numeric scale moderator ``column``, other scale
    moderators held at their means (numeric) or reference level (categorical)."""
    if column not in ls.scale_design.moderators:
        raise AnalysisError(
            f"'{column}' is not a moderator of the heterogeneity (scale: "
            f"{', '.join(ls.scale_design.moderators)})."
        )
    term = ls.scale_design.term(column)
    if term.kind != "numeric":
        raise AnalysisError(f"'{column}' is categorical; draw tau2 per level from predict_tau2.")
    values = ls.data[column].to_numpy(dtype=float)
    grid = {column: np.linspace(values.min(), values.max(), points)}
    for other, typical in ls.scale_design.typical_values().items():
        if other != column:
            grid[other] = [typical] * points
    curve = ls.predict_tau2(grid)
    colour = OKABE_ITO[0]
    fig = go.Figure()
    x = curve[column].to_numpy()
    fig.add_trace(
        go.Scatter(
            x=np.concatenate([x, x[::-1]]),
            y=np.concatenate([curve["ci_ub"], curve["ci_lb"][::-1]]),
            fill="toself",
            fillcolor=rgba(colour, 0.18),
            line={"width": 0},
            hoverinfo="skip",
            meta={"role": "ci band"},
            showlegend=False,
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=curve["tau2"],
            mode="lines",
            line={"color": colour, "width": 3},
            meta={"role": "curve"},
            hovertemplate="%{x:.2f}: τ² = %{y:.4f}<extra></extra>",
            showlegend=False,
        )
    )
    fig.add_trace(
        go.Scatter(
            x=values,
            y=ls.tau2.to_numpy(),
            mode="markers",
            marker={"size": 6, "color": rgba(OKABE_ITO[1], 0.6)},
            meta={"role": "studies"},
            hoverinfo="skip",
            showlegend=False,
        )
    )
    style_figure(fig, height=380)
    fig.update_xaxes(title=escape_html(column))
    fig.update_yaxes(
        title=f"Between-study variance τ² (with {ls.level:.0%} CI)", rangemode="tozero"
    )
    return fig
