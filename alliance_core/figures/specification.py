"""The specification curve drawn: sorted PTR estimates above a panel of the choices behind each.

The numbers come from :func:`alliance_core.analyses.specification.specification_curve`; this
module only draws them (Simonsohn, Simmons & Nelson 2020's two-panel layout).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from alliance_core.analyses.specification import SpecificationCurve
from alliance_core.errors import AnalysisError
from alliance_core.figures.styling import FONT_FAMILY, GRID, NEUTRAL, OKABE_ITO
from alliance_core.formatting import format_p

SIGNIFICANT_COLOUR = OKABE_ITO[0]
NOT_SIGNIFICANT_COLOUR = OKABE_ITO[7]
CURRENT_COLOUR = OKABE_ITO[5]


def _current_row(curve: SpecificationCurve, current) -> int | None:
    if current is None:
        return None
    if isinstance(current, Mapping):
        return curve.find(
            current.get("controls", ()),
            current.get("model", "three-level"),
            current.get("method", "REML"),
            current.get("rho"),
            current.get("inference", "model"),
        )
    if current not in curve.table.index:
        raise AnalysisError(f"Specification {current} is not in the table.")
    return int(current)


def _choice_rows(curve: SpecificationCurve) -> list[tuple[str, np.ndarray]]:
    """The lower panel's rows: one per control, then model and estimator when they vary."""
    table = curve.table
    rows = [(control, table[control].to_numpy(bool)) for control in curve.controls]
    if table["model"].nunique() > 1:
        rows.append(("three-level model", (table["model"] == "three-level").to_numpy()))
    methods = list(dict.fromkeys(table["method"]))
    if len(methods) > 1:
        rows += [(f"{m} estimator", (table["method"] == m).to_numpy()) for m in methods]
    rhos = sorted(set(table["rho"].dropna()))
    if rhos:
        rows += [(f"ρ = {r:g}", np.isclose(table["rho"].to_numpy(float), r)) for r in rhos]
    if table["inference"].nunique() > 1:
        rows.append(("CR2 inference", (table["inference"] == "CR2").to_numpy()))
    return rows


def _hover(table: pd.DataFrame, controls: Sequence[str], delta_scale) -> list[str]:
    scale = "r" if delta_scale == "r" else "effect"
    texts = []
    for _, row in table.iterrows():
        used = [c for c in controls if row[c]] or ["none"]
        extra = "" if pd.isna(row["rho"]) else f", ρ = {row['rho']:g}"
        extra += ", CR2" if row["inference"] == "CR2" else ""
        texts.append(
            f"{row['model']}, {row['method']}{extra}<br>controls: {', '.join(used)}<br>"
            f"PTR b = {row['estimate']:.3f} [{row['ci_lb']:.3f}, {row['ci_ub']:.3f}], "
            f"{format_p(row['pval'])}<br>change in {scale}, PTR 1 \u2192 10: {row['delta']:+.3f}"
            + ("" if row["caution"] is None else f"<br>test not trustworthy: {row['caution']}")
        )
    return texts


def specification_figure(curve: SpecificationCurve, current=None) -> go.Figure:
    """The figure of :meth:`SpecificationCurve.figure` (a pure function of the result)."""
    current_label = _current_row(curve, current)
    fitted = curve.fitted.sort_values("estimate", kind="stable")
    rank = pd.Series(np.arange(1, len(fitted) + 1), index=fitted.index)
    choice_rows = _choice_rows(curve)
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.62, 0.38],
        vertical_spacing=0.03,
    )
    hover = pd.Series(_hover(fitted, curve.controls, curve.delta_scale), index=fitted.index)
    independent = fitted["independent"].astype(bool)
    marked = bool(independent.any() and not independent.all())
    cautioned = fitted["caution"].notna() & ~(independent & marked)
    # Each specification in one group: two-level fits treating nested effect sizes as
    # independent, then those whose PTR test cannot be trusted (never called significant or
    # not, as on the pages), then significant and not significant.
    counted = ~(independent & marked) & ~cautioned
    groups = (
        (True, SIGNIFICANT_COLOUR, f"p < {1 - curve.level:g}", "circle", False, None),
        (False, NOT_SIGNIFICANT_COLOUR, "not significant", "circle", False, None),
        (
            None,
            NOT_SIGNIFICANT_COLOUR,
            "test not trustworthy (not counted)",
            "diamond-open",
            False,
            fitted[cautioned],
        ),
        (
            None,
            NOT_SIGNIFICANT_COLOUR,
            "two-level, effect sizes as if independent (not counted)",
            "circle-open",
            True,
            fitted[independent] if marked else fitted.iloc[:0],
        ),
    )
    for significant, colour, name, symbol, naive, part in groups:
        if part is None:
            part = fitted[(fitted["significant"] == significant) & counted]
        elif part.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=rank[part.index],
                y=part["estimate"],
                mode="markers",
                marker={
                    "color": colour,
                    "size": 5,
                    "symbol": symbol,
                },
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": part["ci_ub"] - part["estimate"],
                    "arrayminus": part["estimate"] - part["ci_lb"],
                    "color": colour,
                    "thickness": 1,
                    "width": 0,
                },
                name=name,
                hovertext=hover[part.index],
                hoverinfo="text",
                meta={"role": "estimates", "significant": significant, "independent": naive},
            ),
            row=1,
            col=1,
        )
    fig.add_hline(y=0.0, line={"color": NEUTRAL, "width": 1, "dash": "dash"}, row=1, col=1)

    labels = [label for label, _ in choice_rows]
    for label, used in choice_rows:
        mask = pd.Series(used, index=curve.table.index)[fitted.index].to_numpy()
        fig.add_trace(
            go.Scatter(
                x=rank[fitted.index[mask]],
                y=[label] * int(mask.sum()),
                mode="markers",
                marker={"symbol": "line-ns", "size": 9, "line": {"width": 2, "color": NEUTRAL}},
                showlegend=False,
                hoverinfo="skip",
                meta={"role": "choice", "choice": label},
            ),
            row=2,
            col=1,
        )
    if current_label is not None and current_label in rank.index:
        _add_current(
            fig,
            fitted.loc[current_label],
            int(rank[current_label]),
            choice_rows,
            curve,
            current_label,
        )
    return _layout(fig, curve, labels, len(fitted))


def _add_current(fig, row, x, choice_rows, curve, label) -> None:
    fig.add_trace(
        go.Scatter(
            x=[x],
            y=[row["estimate"]],
            mode="markers",
            marker={
                "color": CURRENT_COLOUR,
                "size": 11,
                "symbol": "diamond",
                "line": {"width": 1, "color": "white"},
            },
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [row["ci_ub"] - row["estimate"]],
                "arrayminus": [row["estimate"] - row["ci_lb"]],
                "color": CURRENT_COLOUR,
                "thickness": 2,
                "width": 4,
            },
            name="current analysis",
            hovertext=_hover(row.to_frame().T, curve.controls, curve.delta_scale),
            hoverinfo="text",
            meta={"role": "current", "specification": int(label)},
        ),
        row=1,
        col=1,
    )
    used = [name for name, mask in choice_rows if mask[curve.table.index.get_loc(label)]]
    fig.add_trace(
        go.Scatter(
            x=[x] * len(used),
            y=used,
            mode="markers",
            marker={"symbol": "line-ns", "size": 11, "line": {"width": 3, "color": CURRENT_COLOUR}},
            showlegend=False,
            hoverinfo="skip",
            meta={"role": "current choices"},
        ),
        row=2,
        col=1,
    )


def _layout(fig: go.Figure, curve: SpecificationCurve, labels, n: int) -> go.Figure:
    scale = "log(PTR)" if curve.ptr_scale == "log" else "PTR"
    fig.update_yaxes(title_text=f"PTR coefficient (per unit of {scale})", row=1, col=1)
    fig.update_yaxes(
        categoryorder="array",
        categoryarray=list(reversed(labels)),
        type="category",
        row=2,
        col=1,
    )
    fig.update_xaxes(title_text="Specifications, sorted by the PTR estimate", row=2, col=1)
    fig.update_xaxes(range=[0, n + 1], showgrid=False)
    fig.update_layout(
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        font={"family": FONT_FAMILY, "size": 13},
        hoverlabel={"font": {"family": FONT_FAMILY}},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0, "xanchor": "left"},
        margin={"l": 150, "r": 20, "t": 50, "b": 60},
        height=380 + 24 * len(labels),
    )
    fig.update_xaxes(gridcolor=GRID, zerolinecolor=GRID, linecolor=NEUTRAL, showline=True)
    fig.update_yaxes(gridcolor=GRID, zerolinecolor=GRID, linecolor=NEUTRAL)
    return fig
