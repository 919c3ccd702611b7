"""Step plot of a selection model's estimated weights by p-value interval (metafor's
``plot(selmodel)`` for ``type = "stepfun"``), with each weight's confidence interval."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from alliance_core.analyses.selection import SelectionResult
from alliance_core.figures.styling import NEUTRAL, STUDY_COLOUR, SUMMARY_COLOUR, style_figure


def selection_weights_figure(sel: SelectionResult, *, bootstrap: bool = False) -> go.Figure:
    """Relative likelihood of publication (delta_j, first interval = 1) against the one-sided
    p-value, drawn as a step function over the intervals (0, a_1], (a_1, a_2], ..., with the
    interval of each estimated weight as an error bar at the interval's middle: the sandwich
    or model-based Wald interval, or the cluster-bootstrap percentile interval when
    ``bootstrap`` and the model has one. A dotted line marks 1 (no selection)."""
    table = sel.delta
    edges = np.concatenate([[0.0], np.asarray(sel.steps, float)])
    estimate = table["estimate"].to_numpy(float)
    use_boot = bootstrap and "boot_lb" in table.columns
    lower = table["boot_lb" if use_boot else "ci_lb"].to_numpy(float)
    upper = table["boot_ub" if use_boot else "ci_ub"].to_numpy(float)
    x_step = np.repeat(edges, 2)[1:-1]
    y_step = np.repeat(estimate, 2)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=x_step,
            y=y_step,
            mode="lines",
            line={"color": SUMMARY_COLOUR, "width": 3, "shape": "linear"},
            name="Estimated weight",
            hoverinfo="skip",
            meta={"role": "steps"},
        )
    )
    middle = (edges[:-1] + edges[1:]) / 2
    kind = "bootstrap percentile" if use_boot else "95% Wald"
    hover = [
        f"{label}<br>k = {k}<br>weight = {e:.3f}"
        + ("" if i == 0 else f" [{lo:.3f}, {hi:.3f}]")
        + ("<br>(reference, fixed at 1)" if i == 0 else "")
        for i, (label, k, e, lo, hi) in enumerate(
            zip(table.index, table["k"], estimate, lower, upper, strict=True)
        )
    ]
    fig.add_trace(
        go.Scatter(
            x=middle[1:],
            y=estimate[1:],
            mode="markers",
            marker={"color": STUDY_COLOUR, "size": 9},
            error_y={
                "type": "data",
                "symmetric": False,
                "array": upper[1:] - estimate[1:],
                "arrayminus": estimate[1:] - lower[1:],
                "color": STUDY_COLOUR,
            },
            name=f"Weight with {kind} interval",
            text=hover[1:],
            hovertemplate="%{text}<extra></extra>",
            meta={"role": "weights"},
        )
    )
    fig.add_hline(y=1.0, line={"color": NEUTRAL, "dash": "dot"})
    top = np.nanmax(np.concatenate([upper[1:], estimate, [1.0]]))
    fig.update_layout(
        xaxis={"title": "One-sided p-value", "range": [0, 1]},
        yaxis={"title": "Relative likelihood of publication", "range": [0, 1.08 * top]},
        showlegend=True,
        legend={"orientation": "h", "y": -0.25},
    )
    return style_figure(fig, height=360)
