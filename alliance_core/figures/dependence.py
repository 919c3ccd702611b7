"""The PTR coefficient across assumed sampling correlations (rho), one series per inference.

The numbers come from :func:`alliance_core.analyses.dependence.rho_sensitivity`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from alliance_core.analyses.dependence import INFERENCE_WORDS, MODEL_BASED, ROBUST
from alliance_core.figures.styling import FONT_FAMILY, GRID, OKABE_ITO
from alliance_core.model.nesting import display_name


def rho_sensitivity_figure(
    table: pd.DataFrame, term: str, level: float = 0.95, label: str | None = None
) -> go.Figure:
    """The coefficient with its interval against rho, one series per inference; ``label``
    names it on the y axis (default: "<term> coefficient")."""
    fig = go.Figure()
    colours = {MODEL_BASED: OKABE_ITO[4], ROBUST: OKABE_ITO[5]}
    offsets = {MODEL_BASED: -0.012, ROBUST: 0.012}  # side by side at each rho
    for inference, rows in table.dropna(subset=["estimate"]).groupby("inference", sort=False):
        fig.add_trace(
            go.Scatter(
                x=rows["rho"] + offsets.get(inference, 0.0),
                y=rows["estimate"],
                mode="markers+lines",
                name=INFERENCE_WORDS.get(inference, inference),
                marker={"color": colours.get(inference), "size": 9},
                line={"color": colours.get(inference), "width": 1},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": rows["ci_ub"] - rows["estimate"],
                    "arrayminus": rows["estimate"] - rows["ci_lb"],
                },
                customdata=np.column_stack([rows["rho"], rows["pval"]]),
                hovertemplate="ρ = %{customdata[0]:.1f}<br>estimate %{y:.4f}"
                "<br>p = %{customdata[1]:.3g}<extra>%{fullData.name}</extra>",
            )
        )
    fig.add_hline(y=0, line={"color": GRID, "width": 1})
    fig.update_layout(
        font={"family": FONT_FAMILY},
        height=360,
        margin={"l": 70, "r": 20, "t": 40, "b": 60},
        legend={"orientation": "h", "y": 1.08, "x": 0},
        xaxis_title="Assumed sampling correlation within a study (ρ)",
        yaxis_title=f"{label or display_name(term) + ' coefficient'} ({level:.0%} CI)",
    )
    return fig
