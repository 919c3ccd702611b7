"""Orchard plot of a categorical moderator: effect sizes per level and their marginal means.

Nakagawa et al. (2021), Research Synthesis Methods 12, 4–12: each level's effect sizes as
points ("fruit") jittered around the level, sized by precision (1/SE), over the level's
marginal mean with its confidence interval (thick "trunk") and prediction interval (thin
"branch"). The means come from :meth:`MetaResult.marginal_means` (model-based or
cluster-robust), so the figure shows the same numbers as the table beside it.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from alliance_core.data.effect_sizes import transf
from alliance_core.figures.styling import (
    GRID,
    POINT_CYCLE,
    SUMMARY_COLOUR,
    escape_html,
    rgba,
    style_figure,
)
from alliance_core.model.marginal import MarginalMeans
from alliance_core.model.results import MetaResult

JITTER = 0.28  # half-height of a level's band of points (levels are 1 apart)
SIZE_RANGE = (4.0, 16.0)  # marker diameters for the least and the most precise effect size


def orchard_figure(
    res: MetaResult, means: MarginalMeans, transform: str | None = "r", seed: int = 1
) -> go.Figure:
    """Orchard plot of ``means.focal``: one row per level (reference level at the top).

    ``transform="r"`` shows Fisher z as correlations (None: the model scale). The vertical
    jitter of the points is seeded so the figure is the same on every draw.
    """
    focal = means.focal
    levels = list(means.table.index)
    data = res.data
    labels = data[focal].map(lambda v: "TRUE" if v is True else "FALSE" if v is False else str(v))
    y = data["yi"].to_numpy(dtype=float)
    precision = 1.0 / np.sqrt(data["vi"].to_numpy(dtype=float))
    low, high = float(precision.min()), float(precision.max())
    scaled = (precision - low) / (high - low) if high > low else np.full_like(precision, 0.5)
    sizes = SIZE_RANGE[0] + scaled * (SIZE_RANGE[1] - SIZE_RANGE[0])
    rng = np.random.default_rng(seed)
    fig = go.Figure()
    scale_name = "r" if transform == "r" else "Fisher z"
    for position, level in enumerate(levels):
        rows = np.flatnonzero(labels.to_numpy() == level)
        row_y = len(levels) - 1 - position
        colour = POINT_CYCLE[position % len(POINT_CYCLE)]
        values = transf(y[rows], transform)
        fig.add_trace(
            go.Scatter(
                x=values,
                y=row_y + rng.uniform(-JITTER, JITTER, len(rows)),
                mode="markers",
                marker={
                    "size": sizes[rows],
                    "color": rgba(colour, 0.45),
                    "line": {"color": colour, "width": 1},
                },
                name=escape_html(level),
                hovertext=[
                    f"{escape_html(level)}: {scale_name} = {value:.3f}, 1/SE = {p:.1f}"
                    for value, p in zip(values, precision[rows], strict=True)
                ],
                hoverinfo="text",
                meta={"role": "effect sizes", "level": str(level)},
                showlegend=False,
            )
        )
        row = means.table.loc[level]
        estimate, ci, pi = (
            transf(np.array([row["estimate"]]), transform)[0],
            transf(np.array([row["ci_lb"], row["ci_ub"]]), transform),
            transf(np.array([row["pi_lb"], row["pi_ub"]]), transform),
        )
        if np.all(np.isfinite(pi)):
            fig.add_trace(
                go.Scatter(
                    x=pi,
                    y=[row_y, row_y],
                    mode="lines",
                    line={"color": SUMMARY_COLOUR, "width": 2},
                    hoverinfo="skip",
                    meta={"role": "prediction interval", "level": str(level)},
                    showlegend=False,
                )
            )
        fig.add_trace(
            go.Scatter(
                x=ci,
                y=[row_y, row_y],
                mode="lines",
                line={"color": SUMMARY_COLOUR, "width": 8},
                hoverinfo="skip",
                meta={"role": "confidence interval", "level": str(level)},
                showlegend=False,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=[estimate],
                y=[row_y],
                mode="markers",
                marker={
                    "size": 14,
                    "color": SUMMARY_COLOUR,
                    "line": {"color": "white", "width": 2},
                },
                hovertext=[
                    f"{escape_html(level)}: marginal mean {scale_name} = {estimate:.3f} "
                    f"[{ci[0]:.3f}, {ci[1]:.3f}], k = {int(row['k'])}"
                ],
                hoverinfo="text",
                meta={"role": "marginal mean", "level": str(level)},
                showlegend=False,
            )
        )
    style_figure(fig, height=140 + 90 * len(levels))
    fig.add_vline(x=0, line={"color": GRID, "width": 1})
    fig.update_yaxes(
        tickmode="array",
        tickvals=list(range(len(levels) - 1, -1, -1)),
        ticktext=[
            f"{escape_html(level)} (k = {int(means.table.loc[level, 'k'])})" for level in levels
        ],
        range=[-0.6, len(levels) - 0.4],
        showgrid=False,
    )
    fig.update_xaxes(
        title=f"Effect size ({scale_name}); marginal mean with {means.level:.0%} CI (thick) and "
        "prediction interval (thin)"
    )
    fig.update_layout(
        margin={"l": 140, "r": 20, "t": 30, "b": 60},
        title={"text": escape_html(focal), "font": {"size": 14}},
        hoverlabel={"namelength": -1},
    )
    fig.layout.meta = {"inference": means.inference}
    return fig
