"""Contour-enhanced funnel plot (Peters et al., 2008; metafor ``funnel``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy import special

from alliance_core.errors import AnalysisError
from alliance_core.figures.styling import (
    OKABE_ITO,
    POINT_CYCLE,
    STUDY_COLOUR,
    SUMMARY_COLOUR,
    DisplayScale,
    add_caption,
    display_scale,
    escape_html,
    percent_level,
    style_figure,
)
from alliance_core.formatting import format_number
from alliance_core.model.results import MetaResult


def funnel_figure(
    res: MetaResult,
    *,
    scale: str = "r",
    contours: Sequence[float] = (0.10, 0.05, 0.01),
    color_by_study: bool = False,
    egger_line: Mapping[str, float] | None = None,
    imputed: pd.DataFrame | None = None,
    adjusted_estimate: float | None = None,
    selection_estimate: float | None = None,
) -> go.Figure:
    """Contour-enhanced funnel plot (Peters et al., 2008; metafor ``funnel(..., level=, shade=)``).

    Effect sizes are plotted against their standard error sqrt(vi) on an inverted axis (0 on top).
    Shaded regions mark where an effect differs from zero at two-sided p below each of
    ``contours``: their boundaries are at +/- z_{alpha/2} * SE on Fisher's z (tanh of that on the
    r scale). The vertical line is the pooled estimate of an intercept-only model, with its
    pseudo-confidence funnel estimate +/- z_{level} * SE. A meta-regression's funnel shows
    residuals, yi minus the fitted value, around 0 (as metafor's funnel does for models with
    moderators), on the model scale: residuals have no r-scale counterpart. ``scale`` is "r",
    "z" (Fisher's z) or None (effect sizes of another kind, as analysed).

    Hooks for publication-bias overlays (all on Fisher's z): ``egger_line`` = {"intercept": b0,
    "slope": b1} draws effect = b0 + b1 * SE; ``imputed`` (columns yi, vi) draws trim-and-fill
    studies as open markers; ``adjusted_estimate`` draws a dotted vertical line;
    ``selection_estimate`` (a selection model's adjusted mean) a dash-dotted one.
    """
    show = display_scale(scale)
    residuals = res.p > 1
    if residuals:
        show = DisplayScale("z") if show.name == "r" else show
    alphas = _check_contours(contours)
    data = res.data
    se = np.sqrt(data["vi"].to_numpy())
    x_z, centre_z = _funnel_effects(res)
    se_max = float(np.max(se)) * 1.08
    se_grid = np.linspace(0.0, se_max, 80)
    crit = float(special.ndtri(1.0 - (1.0 - res.level) / 2.0))

    x_edge = _funnel_edge(x_z, centre_z, se_max, alphas, crit, show)
    fig = go.Figure()
    _add_contour_regions(fig, alphas, se_grid, x_edge, show)
    _add_pseudo_funnel(fig, centre_z, se_grid, crit, show, residuals, res)
    _add_funnel_points(fig, res, x_z, se, show, color_by_study)
    _add_bias_overlays(fig, egger_line, imputed, adjusted_estimate, se_grid, show)
    if selection_estimate is not None:
        x = float(show(selection_estimate))
        fig.add_trace(
            go.Scatter(
                x=[x, x],
                y=[0.0, se_grid[-1]],
                mode="lines",
                line={"color": OKABE_ITO[6], "width": 1.8, "dash": "dashdot"},
                name="Selection-model estimate",
                meta={"role": "selection estimate", "x": x},
            )
        )

    notes = _funnel_notes(res, residuals, alphas, scale)
    caption_height = add_caption(fig, notes, width=110)
    x_title = (
        f"Residual: observed minus fitted effect ({show.model_title})"
        if residuals
        else f"Effect size ({show.title})"
    )
    fig.update_xaxes(title_text=x_title, range=[-x_edge, x_edge], zeroline=False)
    fig.update_yaxes(
        title_text=f"Standard error ({show.model_title})", range=[se_max, 0.0], zeroline=False
    )
    fig.update_layout(
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0, "xanchor": "left"},
        margin={"l": 70, "r": 20, "t": 70, "b": 80 + caption_height},
    )
    return style_figure(fig, height=560 + caption_height)


def _check_contours(contours: Sequence[float]) -> list[float]:
    alphas = sorted({float(a) for a in contours}, reverse=True)
    if not alphas or any(not 0.0 < a < 1.0 for a in alphas):
        raise AnalysisError(
            "Funnel plot: contour levels are two-sided p-values between 0 and 1, e.g. (0.10, 0.05, 0.01)."
        )
    return alphas


def _funnel_effects(res: MetaResult) -> tuple[np.ndarray, float]:
    """Observed effects around the pooled estimate, or residuals around 0 (Fisher's z)."""
    y = res.data["yi"].to_numpy()
    if res.p == 1:
        return y, float(res.beta[0])
    fitted = res.design.matrix(res.data) @ res.beta
    return y - fitted, 0.0


def _z_quantile(alpha: float) -> float:
    return float(special.ndtri(1.0 - alpha / 2.0))


def _funnel_edge(x_z, centre_z, se_max, alphas, crit, show: DisplayScale) -> float:
    """Half-width of the x axis: every point and every drawn boundary fits."""
    widest = max(
        np.max(np.abs(show(x_z))),
        abs(float(show(centre_z + crit * se_max))),
        abs(float(show(centre_z - crit * se_max))),
        float(show(_z_quantile(min(alphas)) * se_max)),
    )
    edge = 1.08 * widest
    return min(edge, 1.0) if show.name == "r" else edge


def _add_contour_regions(fig, alphas, se_grid, x_edge, show: DisplayScale) -> None:
    """Shaded significance bands between successive contours, the last out to the plot edge."""
    quantiles = [_z_quantile(a) for a in alphas]
    edges = [*quantiles, None]
    shades = np.linspace(0.14, 0.42, len(alphas))
    for i, alpha in enumerate(alphas):
        inner = show(quantiles[i] * se_grid)
        outer = (
            np.full_like(se_grid, x_edge) if edges[i + 1] is None else show(edges[i + 1] * se_grid)
        )
        outer = np.minimum(outer, x_edge)
        lower_alpha = alphas[i + 1] if i + 1 < len(alphas) else None
        name = (
            f"{_p_text(lower_alpha)} < p < {_p_text(alpha)}"
            if lower_alpha is not None
            else f"p < {_p_text(alpha)}"
        )
        right_x = np.concatenate([inner, outer[::-1]])
        ys = np.concatenate([se_grid, se_grid[::-1]])
        fig.add_trace(
            go.Scatter(
                x=np.concatenate([right_x, [None], -right_x]),
                y=np.concatenate([ys, [None], ys]),
                mode="lines",
                fill="toself",
                fillcolor=f"rgba(128,128,128,{shades[i]:.2f})",
                line={"width": 0},
                hoverinfo="skip",
                name=name,
                meta={"role": "contour region", "alpha": alpha},
            )
        )
        # The boundary itself, drawn thin so that the band edges read crisply on both themes.
        fig.add_trace(
            go.Scatter(
                x=np.concatenate([inner, [None], -inner]),
                y=np.concatenate([se_grid, [None], se_grid]),
                mode="lines",
                line={"width": 0.6, "color": "rgba(128,128,128,0.6)"},
                hoverinfo="skip",
                showlegend=False,
                name=f"p = {_p_text(alpha)} boundary",
                meta={"role": "contour boundary", "alpha": alpha, "z": _z_quantile(alpha)},
            )
        )


def _p_text(alpha: float) -> str:
    """APA style p levels: .10, .05, .01, .001."""
    text = f"{alpha:.3f}".rstrip("0")
    if len(text.split(".")[1]) < 2:
        text = f"{alpha:.2f}"
    return text.lstrip("0")


def _add_pseudo_funnel(fig, centre_z, se_grid, crit, show, residuals, res) -> None:
    centre = float(show(centre_z))
    name = "Zero residual" if residuals else "Pooled estimate"
    fig.add_trace(
        go.Scatter(
            x=[centre, centre],
            y=[0.0, se_grid[-1]],
            mode="lines",
            line={"color": SUMMARY_COLOUR, "width": 1.8},
            name=name,
            hovertemplate=f"{name}: {format_number(centre, 3)}<extra></extra>",
            meta={"role": "pooled line", "x": centre},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=np.concatenate(
                [show(centre_z - crit * se_grid), [None], show(centre_z + crit * se_grid)]
            ),
            y=np.concatenate([se_grid, [None], se_grid]),
            mode="lines",
            line={"color": SUMMARY_COLOUR, "width": 1.2, "dash": "dash"},
            name=f"{percent_level(res)} pseudo-confidence region",
            hoverinfo="skip",
            meta={"role": "pseudo funnel", "crit": crit},
        )
    )


def _add_funnel_points(fig, res, x_z, se, show, color_by_study) -> None:
    data = res.data
    labels = (
        data["label"].astype(str)
        if "label" in data.columns
        else pd.Series([f"Row {i}" for i in data.index], index=data.index)
    )
    if color_by_study and res.is_three_level:
        codes = pd.factorize(data[res.cluster])[0]
        colour = [POINT_CYCLE[c % len(POINT_CYCLE)] for c in codes]
    else:
        colour = STUDY_COLOUR
    x = show(x_z)
    hover = [
        f"<b>{escape_html(label)}</b><br>{show.symbol} = {format_number(value, 3)}<br>SE = {s:.3f}"
        for label, value, s in zip(labels, x, se, strict=True)
    ]
    fig.add_trace(
        go.Scatter(
            x=x,
            y=se,
            mode="markers",
            marker={"size": 7, "color": colour, "opacity": 0.8, "line": {"width": 0}},
            name="Effect sizes" if res.is_three_level else "Studies",
            hovertext=hover,
            hovertemplate="%{hovertext}<extra></extra>",
            meta={"role": "effect sizes"},
        )
    )


def _add_bias_overlays(fig, egger_line, imputed, adjusted_estimate, se_grid, show) -> None:
    if egger_line is not None:
        b0, b1 = float(egger_line["intercept"]), float(egger_line["slope"])
        fig.add_trace(
            go.Scatter(
                x=show(b0 + b1 * se_grid),
                y=se_grid,
                mode="lines",
                line={"color": OKABE_ITO[2], "width": 1.8, "dash": "dot"},
                name="Egger regression line",
                meta={"role": "egger line"},
            )
        )
    if imputed is not None and len(imputed):
        fig.add_trace(
            go.Scatter(
                x=show(imputed["yi"].to_numpy(dtype=float)),
                y=np.sqrt(imputed["vi"].to_numpy(dtype=float)),
                mode="markers",
                marker={
                    "size": 7,
                    "symbol": "circle-open",
                    "color": OKABE_ITO[5],
                    "line": {"width": 1.5},
                },
                name="Imputed (trim and fill)",
                meta={"role": "imputed"},
            )
        )
    if adjusted_estimate is not None:
        x = float(show(adjusted_estimate))
        fig.add_trace(
            go.Scatter(
                x=[x, x],
                y=[0.0, se_grid[-1]],
                mode="lines",
                line={"color": OKABE_ITO[3], "width": 1.8, "dash": "dot"},
                name="Adjusted estimate",
                meta={"role": "adjusted estimate", "x": x},
            )
        )


def _funnel_notes(res: MetaResult, residuals: bool, alphas, scale) -> list[str]:
    notes = [
        f"Shaded: where {'a residual' if residuals else 'an effect size'} would differ from zero "
        "at the given two-sided p "
        f"(boundaries at \u00b1z\u00b7SE for p = {', '.join(_p_text(a) for a in alphas)}). "
        "Dashed: pseudo-confidence region around the "
        + ("zero residual." if residuals else "pooled estimate.")
    ]
    if residuals:
        moved = " (on Fisher's z: residuals have no r-scale counterpart)" if scale == "r" else ""
        notes.append(
            "The model has moderators, so the funnel shows residuals: each effect size minus "
            f"its fitted value{moved}."
        )
    if res.is_three_level:
        notes.append(
            f"Three-level data: {res.k} effect sizes from {res.n_studies} studies. Effect sizes "
            "of one study are not independent, so asymmetry in this plot is only a rough guide."
        )
    return notes
