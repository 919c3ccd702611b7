"""Forest plot (metafor ``forest``): one row per study or effect size, pooled diamond and
prediction interval, with "r [CI]" and "Weight" text columns."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from scipy import special

from alliance_core.analyses.subgroups import MIN_SUBGROUP_STUDIES, subgroup_fits
from alliance_core.data.mapping import ColumnMapping
from alliance_core.errors import AnalysisError
from alliance_core.figures.forest_table import (
    HOVER_FIELDS,
    forest_columns,
    hover_value,
    sort_rows,
    study_table,
)
from alliance_core.figures.styling import (
    NEUTRAL,
    OKABE_ITO,
    STUDY_COLOUR,
    SUMMARY_COLOUR,
    DisplayScale,
    add_caption,
    display_scale,
    escape_html,
    interval_text,
    moderator_values_text,
    percent_level,
    predictions,
    style_figure,
)
from alliance_core.formatting import format_number
from alliance_core.model.inference import BandInference
from alliance_core.model.results import MetaResult

ROW_HEIGHT = 18  # pixels per forest-plot row: 12-px labels never overlap
COMPACT_ROW_HEIGHT = 34  # a text line above each interval
COMPACT_LABEL_CHARS = 28  # labels longer than this are cut on narrow screens
WIDE_LABEL_CHARS = 44  # the most that fits the widest (35%) label column
WIDE_NUMBER_SHARES = (0.19, 0.09)  # figure-width shares of the "r [CI]" and "Weight" columns
FOREST_LAYOUTS = ("wide", "compact")


@dataclass
class _ForestLayout:
    """Rows accumulate top to bottom at y = 0, -1, -2, ...; the text columns follow them."""

    label_y: list[float] = field(default_factory=list)
    label_text: list[str] = field(default_factory=list)
    r_text: list[tuple[float, str]] = field(default_factory=list)
    weight_text: list[tuple[float, str]] = field(default_factory=list)
    next_y: float = 0.0

    def add_row(self, label: str, r_text: str = "", weight_text: str = "") -> float:
        y = self.next_y
        self.label_y.append(y)
        self.label_text.append(label)
        if r_text:
            self.r_text.append((y, r_text))
        if weight_text:
            self.weight_text.append((y, weight_text))
        self.next_y -= 1.0
        return y

    def skip(self, rows: float = 1.0) -> None:
        self.next_y -= rows


def forest_figure(
    res: MetaResult,
    *,
    sort_by: str | None = "effect",
    label_column: str | None = None,
    show_all_effect_sizes: bool = False,
    subgroup: str | None = None,
    transform: str = "r",
    columns: Mapping[str, str] | ColumnMapping | None = None,
    layout: str = "wide",
    band: BandInference | None = None,
) -> go.Figure:
    """Forest plot (metafor ``forest``): one row per study, pooled diamond and prediction interval.

    Rows show each study's estimate with its confidence interval (normal quantile at the model's
    level, as metafor's forest does), a square whose area grows with the study's model weight,
    and right-hand columns "r [CI]" and "Weight". In a three-level model a study's row pools its
    effect sizes (see :func:`study_table`); ``show_all_effect_sizes=True`` lists every effect size
    instead, grouped under its study. ``sort_by`` orders rows top to bottom by ascending effect,
    year, PTR or label, or by ``"precision"`` (most precise first); ``None`` keeps data order.

    The diamond is the pooled estimate of an intercept-only model, or, in a meta-regression,
    the prediction at typical moderator values (means, reference levels), which the caption
    names. The dashed bar under it is the prediction interval for the true effect of a new study.
    With ``band`` (e.g. CR2) both come from ``band.robust.predict``: robust standard error and
    t on the prediction's own Satterthwaite df (metafor ``predict(robust(...))``).
    ``subgroup`` adds a diamond per level of that column from a separate intercept-only fit
    (see :func:`alliance_core.analyses.subgroups.subgroup_fits`). ``transform="r"`` shows correlations,
    ``"z"`` Fisher's z, ``None`` effect sizes of another kind as analysed.

    ``layout="wide"`` puts labels left and the number columns right of the plot;
    ``layout="compact"`` (phones, narrow windows) writes each row's label and numbers on a line
    above its interval, so the plot keeps the whole width and no columns can collide.
    Labels and levels from the data are HTML-escaped (plotly renders a subset of HTML).
    """
    scale = display_scale(transform)
    cols = forest_columns(columns)
    table = sort_rows(study_table(res, label_column=label_column, columns=columns), sort_by)
    if sort_by == "ptr":
        # Rows ordered by PTR show it, or the order would look arbitrary.
        table = table.assign(
            label=[
                f"{lab} \u00b7 PTR {p:.1f}"
                for lab, p in zip(table["label"], table["ptr"], strict=True)
            ]
        )
    if layout not in FOREST_LAYOUTS:
        raise AnalysisError(
            f"Forest plot: layout is one of {', '.join(FOREST_LAYOUTS)}, not '{layout}'."
        )
    compact = layout == "compact"
    crit = float(special.ndtri(1.0 - (1.0 - res.level) / 2.0))
    # Plotly draws y tick labels one by one with a layout pass each, which took over a minute
    # for 811 rows; text traces draw in one pass, so labels and numbers are text traces.
    fig = make_subplots(rows=1, cols=1 if compact else 4, shared_yaxes=True)
    rows = _ForestLayout()
    rows.add_row(
        "<b>Study</b>", f"<b>{scale.symbol} [{percent_level(res)} CI]</b>", "<b>Weight</b>"
    )

    aggregated = res.is_three_level and not show_all_effect_sizes
    if show_all_effect_sizes and res.is_three_level:
        _add_effect_size_rows(fig, res, table, rows, crit, scale, cols)
    else:
        _add_study_rows(fig, table, rows, crit, scale, aggregated)

    rows.skip(0.5)
    summary_notes = _add_summary_rows(fig, res, rows, scale, band)
    subgroup_notes = _add_subgroup_rows(fig, res, subgroup, rows, scale) if subgroup else []

    bottom = rows.next_y + 0.5
    plotted = res.data if show_all_effect_sizes and res.is_three_level else table
    x_range = _forest_axes(fig, res, plotted, crit, scale, bottom, band)
    if compact:
        _add_compact_text(fig, rows, x_range)
    else:
        _add_wide_columns(fig, rows)

    notes = (
        _forest_notes(res, aggregated, show_all_effect_sizes, scale)
        + summary_notes
        + subgroup_notes
    )
    caption_height = add_caption(fig, notes, width=70 if compact else 130)
    n_rows = len(rows.label_y)
    row_height = COMPACT_ROW_HEIGHT if compact else ROW_HEIGHT
    fig.update_layout(
        showlegend=False,
        margin={"l": 10, "r": 10, "t": 20, "b": 80 + caption_height},
        meta={**(fig.layout.meta or {}), "layout": layout},
    )
    return style_figure(fig, height=int(row_height * (n_rows + 1) + 100 + caption_height))


def _intervals(
    yi, vi, scale: DisplayScale, crit: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimate and confidence limits of each row on the display scale."""
    yi, se = np.asarray(yi, float), np.sqrt(np.asarray(vi, float))
    return scale(yi), scale(yi - crit * se), scale(yi + crit * se)


def _row_hover(
    row: Mapping, interval: tuple[float, float, float], symbol: str, note: str = ""
) -> str:
    lines = [f"<b>{escape_html(row['label'])}</b>", f"{symbol} = {interval_text(*interval)}"]
    lines.append(f"Weight: {row['weight']:.2f}%")
    for role, title in HOVER_FIELDS:
        value = row.get(role)
        if value is not None and not pd.isna(value):
            lines.append(f"{title}: {hover_value(value)}")
    if note:
        lines.append(note)
    return "<br>".join(lines)


def _marker_sizes(weights: np.ndarray) -> np.ndarray:
    # Square area proportional to weight, 4 to 14 pixels wide so that rows 18 px apart never touch.
    return 4.0 + 10.0 * np.sqrt(weights / np.max(weights))


def _add_points(fig, y, intervals, weights, hover, name, role) -> None:
    est, lo, hi = intervals
    fig.add_trace(
        go.Scatter(
            x=est,
            y=y,
            mode="markers",
            marker={
                "symbol": "square",
                "size": _marker_sizes(np.asarray(weights, float)),
                "color": STUDY_COLOUR,
                "line": {"width": 0},
            },
            error_x={
                "type": "data",
                "symmetric": False,
                "array": hi - est,
                "arrayminus": est - lo,
                "color": STUDY_COLOUR,
                "thickness": 1.2,
                "width": 0,
            },
            hovertext=hover,
            hovertemplate="%{hovertext}<extra></extra>",
            name=name,
            meta={"role": role},
        ),
        row=1,
        col=1,
    )


def _add_study_rows(fig, table, rows: _ForestLayout, crit, scale, aggregated: bool) -> None:
    intervals = _intervals(table["yi"], table["vi"], scale, crit)
    y, hover = [], []
    for i, row in enumerate(table.to_dict("records")):
        interval = (intervals[0][i], intervals[1][i], intervals[2][i])
        label = escape_html(row["label"])
        y.append(rows.add_row(label, interval_text(*interval), f"{row['weight']:.2f}%"))
        note = ""
        if aggregated:
            note = (
                f"Pools {row['k']} effect size{'s' if row['k'] != 1 else ''} "
                f"(inverse-variance mean on {_pooling_scale(scale)},<br>treated as independent; "
                "display only)"
            )
        hover.append(_row_hover(row, interval, scale.symbol, note))
    _add_points(fig, y, intervals, table["weight"], hover, "Studies", "studies")


def _effect_size_rows(res: MetaResult, table: pd.DataFrame, cols) -> pd.DataFrame:
    """Effect sizes in the study order of ``table`` (data order within a study), with the
    display fields of ``study_table`` under their role names."""
    data = res.data
    position = pd.Series(np.arange(len(table)), index=table.index)
    frame = pd.DataFrame(
        {
            "yi": data["yi"].to_numpy(),
            "vi": data["vi"].to_numpy(),
            "weight": res.weights.reindex(data.index).to_numpy(),
            "study_position": data[res.cluster].map(position).to_numpy(),
            "study_label": data[res.cluster].map(table["label"]).to_numpy(),
        }
    )
    for role, _title in HOVER_FIELDS:
        if cols.get(role) in data.columns:
            frame[role] = data[cols[role]].to_numpy()
    if cols["es_id"] in data.columns:
        frame["es_name"] = [f"es {e}" for e in data[cols["es_id"]]]
    frame = frame.sort_values("study_position", kind="stable").reset_index(drop=True)
    within = frame.groupby("study_position").cumcount() + 1
    if "es_name" not in frame.columns:
        frame["es_name"] = [f"es {j}" for j in within]
    frame["label"] = frame["study_label"] + " \u00b7 " + frame["es_name"]
    frame["first"] = within.to_numpy() == 1
    return frame


def _add_effect_size_rows(fig, res, table, rows: _ForestLayout, crit, scale, cols) -> None:
    """Every effect size, grouped under its study in the study order of ``table``."""
    frame = _effect_size_rows(res, table, cols)
    intervals = _intervals(frame["yi"], frame["vi"], scale, crit)
    y, hover, bands = [], [], []
    top = rows.next_y
    for i, row in enumerate(frame.to_dict("records")):
        if row["first"] and i > 0:
            bands.append((top, rows.next_y, int(frame["study_position"][i - 1])))
            top = rows.next_y
        interval = (intervals[0][i], intervals[1][i], intervals[2][i])
        label = escape_html(row["label"] if row["first"] else row["es_name"])
        y.append(rows.add_row(label, interval_text(*interval), f"{row['weight']:.2f}%"))
        hover.append(_row_hover(row, interval, scale.symbol))
    bands.append((top, rows.next_y, int(frame["study_position"].iloc[-1])))
    # Every other study gets a faint band so that its effect sizes read as one group.
    shapes = [
        {
            "type": "rect",
            "xref": "x domain",
            "yref": "y",
            "x0": 0,
            "x1": 1,
            "y0": lower + 0.5,
            "y1": upper + 0.5,
            "fillcolor": "rgba(128,128,128,0.08)",
            "line": {"width": 0},
            "layer": "below",
        }
        for upper, lower, position in bands
        if position % 2 == 0
    ]
    fig.update_layout(shapes=list(fig.layout.shapes) + shapes)
    _add_points(fig, y, intervals, frame["weight"], hover, "Effect sizes", "effect sizes")


def _diamond(fig, y, pred_row, scale, name, role, hover, colour=SUMMARY_COLOUR) -> None:
    est, lo, hi = (float(scale(pred_row[c])) for c in ("pred", "ci_lb", "ci_ub"))
    half = 0.4
    fig.add_trace(
        go.Scatter(
            x=[lo, est, hi, est, lo],
            y=[y, y + half, y, y - half, y],
            mode="lines",
            fill="toself",
            fillcolor=colour,
            line={"color": colour, "width": 1},
            hoveron="fills",
            text=hover,
            hoverinfo="text",
            name=name,
            meta={"role": role, "estimate": est, "ci": [lo, hi]},
        ),
        row=1,
        col=1,
    )


def _prediction_bar(fig, y, pred_row, scale, level_text) -> None:
    lo, hi = float(scale(pred_row["pi_lb"])), float(scale(pred_row["pi_ub"]))
    fig.add_trace(
        go.Scatter(
            x=[lo, hi],
            y=[y, y],
            mode="lines+markers",
            line={"color": SUMMARY_COLOUR, "width": 1.5, "dash": "dash"},
            marker={
                "symbol": "line-ns",
                "size": 10,
                "line": {"width": 1.5, "color": SUMMARY_COLOUR},
            },
            hovertemplate=(
                f"{level_text} prediction interval: [{format_number(lo)}, {format_number(hi)}]<br>"
                "range of true effects expected in a new study<extra></extra>"
            ),
            name="Prediction interval",
            meta={"role": "prediction interval", "pi": [lo, hi]},
        ),
        row=1,
        col=1,
    )


def _add_summary_rows(
    fig, res: MetaResult, rows: _ForestLayout, scale: DisplayScale, band: BandInference | None
) -> list[str]:
    # The chosen inference (``band``, e.g. CR2: the prediction's own df), else the model's own.
    pred = predictions(res, band).iloc[0]
    est, lo, hi = (float(scale(pred[c])) for c in ("pred", "ci_lb", "ci_ub"))
    kind = "three-level" if res.is_three_level else "random-effects"
    if res.method == "EE":
        kind = "equal-effects"
    notes = []
    if res.p == 1:
        label = f"<b>Pooled estimate</b> ({kind}, {res.method})"
        diamond = f"the pooled estimate ({kind} model, {res.method})"
    else:
        typical = res.design.typical_values()
        label = f"<b>{_prediction_label(res, typical)}</b>"
        diamond = (
            f"the predicted average effect at {moderator_values_text(typical, res)}, "
            "not a pooled estimate over all studies"
        )
        notes.append(f"Meta-regression: the diamond is {diamond}.")
    drawn_interval = res.method != "EE" and bool(np.isfinite(pred["pi_lb"]))
    # What the diamond is, in the words of the note above, for captions written elsewhere
    # (the report's figure caption) to describe this diamond rather than a generic one.
    fig.update_layout(
        meta={
            **(fig.layout.meta or {}),
            "diamond": diamond,
            "prediction_interval": drawn_interval,
        }
    )
    if band is not None:
        notes.append(f"Diamond and prediction interval: {band.label}; here df = {pred['df']:.1f}.")
    hover = f"{scale.symbol} = {interval_text(est, lo, hi)} ({percent_level(res)} CI)"
    y = rows.add_row(label, interval_text(est, lo, hi), "100%" if res.p == 1 else "")
    _diamond(fig, y, pred, scale, "Pooled estimate", "diamond", hover)
    if drawn_interval:
        pi_lo, pi_hi = float(scale(pred["pi_lb"])), float(scale(pred["pi_ub"]))
        y_pi = rows.add_row(
            f"{percent_level(res)} prediction interval",
            f"[{format_number(pi_lo)}, {format_number(pi_hi)}]",
        )
        _prediction_bar(fig, y_pi, pred, scale, percent_level(res))
    return notes


def _prediction_label(res: MetaResult, typical: Mapping[str, object]) -> str:
    """The diamond's row label in a meta-regression, by what its moderator values are: means
    of numeric moderators and reference levels of categorical ones (the caption names them)."""
    kinds = {res.design.term(column).kind for column in typical}
    plural = "s" if len(typical) > 1 else ""
    if kinds == {"categorical"}:
        return f"Prediction at the reference level{plural}"
    if kinds == {"numeric"}:
        return f"Prediction at the moderator mean{plural}"
    return "Prediction at means and reference levels"  # short enough not to be cut


def _add_subgroup_rows(fig, res, column, rows: _ForestLayout, scale) -> list[str]:
    fits = subgroup_fits(res, column)
    rows.skip(0.5)
    rows.add_row(f"<b>By {escape_html(column)}</b> (separate fits)")
    notes = [
        f"Subgroup diamonds: the {res.model} model ({res.method}) without moderators, fitted "
        f"separately to the effect sizes of each {column} level; levels with fewer than "
        f"{MIN_SUBGROUP_STUDIES} studies are not estimated."
    ]
    for item in fits:
        studies = f"; {item.n_studies} studies" if res.is_three_level else ""
        label = f"{escape_html(item.level)} (k = {item.k}{studies})"
        if item.result is None:
            rows.add_row(label, "not estimated")
            notes.append(item.note)
            continue
        pred = item.result.predict(transform=None).iloc[0]
        est, lo, hi = (float(scale(pred[c])) for c in ("pred", "ci_lb", "ci_ub"))
        y = rows.add_row(label, interval_text(est, lo, hi))
        hover = f"{escape_html(column)} = {escape_html(item.level)}: {scale.symbol} = {interval_text(est, lo, hi)}"
        _diamond(fig, y, pred, scale, item.level, "subgroup diamond", hover, OKABE_ITO[0])
    return notes


def _text_trace(x, entries, *, position: str, role: str, size: int = 12) -> go.Scatter:
    return go.Scatter(
        x=x,
        y=[y for y, _ in entries],
        text=[text for _, text in entries],
        mode="text",
        textposition=position,
        textfont={"size": size},
        cliponaxis=False,
        hoverinfo="skip",
        meta={"role": role},
    )


def label_column_share(labels: Sequence[str]) -> float:
    """Share of the figure width for the label column: the longest label at about 7.5 px a
    character (12-px text, bold headers included) on a 1,000-px-wide figure, between 15% and
    35%; longer labels are shortened to fit (see ``WIDE_LABEL_CHARS``)."""
    longest = max((len(re.sub(r"<[^>]+>", "", html.unescape(t))) for t in labels), default=10)
    return float(np.clip(longest * 7.5 / 1000.0 + 0.02, 0.15, 0.35))


def _add_wide_columns(fig, rows: _ForestLayout) -> None:
    """Labels on the left, then the plot, then "r [CI]" and "Weight" columns."""
    labels = [
        (y, _shorten(t, WIDE_LABEL_CHARS))
        for y, t in zip(rows.label_y, rows.label_text, strict=True)
    ]
    share = label_column_share([t for _, t in labels])
    gap = 0.01
    plot_right = 1.0 - WIDE_NUMBER_SHARES[0] - WIDE_NUMBER_SHARES[1]
    domains = {
        4: [0.0, share],
        1: [share + gap, plot_right - gap],
        2: [plot_right, plot_right + WIDE_NUMBER_SHARES[0]],
        3: [plot_right + WIDE_NUMBER_SHARES[0], 1.0],
    }
    for col, domain in domains.items():
        fig.update_xaxes(domain=domain, row=1, col=col)
    fig.add_trace(
        _text_trace([0.0] * len(labels), labels, position="middle right", role="label text"),
        row=1,
        col=4,
    )
    fig.add_trace(
        _text_trace([0.5] * len(rows.r_text), rows.r_text, position="middle center", role="r text"),
        row=1,
        col=2,
    )
    fig.add_trace(
        _text_trace(
            [0.5] * len(rows.weight_text),
            rows.weight_text,
            position="middle center",
            role="weight text",
        ),
        row=1,
        col=3,
    )
    for col in (2, 3, 4):
        fig.update_xaxes(visible=False, range=[0, 1], showline=False, row=1, col=col)
        fig.update_yaxes(showline=False, row=1, col=col)


def _add_compact_text(fig, rows: _ForestLayout, x_range) -> None:
    """Narrow screens: each row's label (left) and "r [CI] · weight" (right) on a line of their
    own just above the row's interval, so the plot keeps the full width."""
    lift = 0.42
    labels = [(y + lift, _shorten(t)) for y, t in zip(rows.label_y, rows.label_text, strict=True)]
    weights = dict(rows.weight_text)
    numbers = [
        (y + lift, f"{t} \u00b7 {weights[y]}" if y in weights else t) for y, t in rows.r_text
    ]
    fig.add_trace(
        _text_trace(
            [x_range[0]] * len(labels), labels, position="middle right", role="label text", size=11
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        _text_trace(
            [x_range[1]] * len(numbers), numbers, position="middle left", role="r text", size=11
        ),
        row=1,
        col=1,
    )


def _shorten(label: str, limit: int = COMPACT_LABEL_CHARS) -> str:
    """A label cut to ``limit`` visible characters with an ellipsis (hover keeps it whole)."""
    plain = html.unescape(re.sub(r"<[^>]+>", "", label))
    if len(plain) <= limit:
        return label
    return html.escape(plain[: limit - 1]) + "\u2026"


def _forest_axes(fig, res, plotted, crit, scale, bottom, band=None) -> list[float]:
    """x range covering every plotted interval and the prediction interval; returns it."""
    lows = scale(plotted["yi"] - crit * np.sqrt(plotted["vi"]))
    highs = scale(plotted["yi"] + crit * np.sqrt(plotted["vi"]))
    pred = predictions(res, band).iloc[0]
    lo = min(np.min(lows), float(scale(pred["pi_lb"])) if np.isfinite(pred["pi_lb"]) else 0.0, 0.0)
    hi = max(np.max(highs), float(scale(pred["pi_ub"])) if np.isfinite(pred["pi_ub"]) else 0.0)
    pad = 0.04 * (hi - lo)
    x_range = [lo - pad, hi + pad]
    if scale.name == "r":
        x_range = [max(x_range[0], -1.0), min(x_range[1], 1.0)]
    fig.update_xaxes(
        range=x_range,
        title_text=f"{scale.title} ({percent_level(res)} CI)",
        zeroline=False,
        row=1,
        col=1,
    )
    fig.update_yaxes(
        showticklabels=False,
        range=[bottom, 0.6],
        showgrid=False,
        zeroline=False,
        fixedrange=True,
    )
    # The line of no effect runs through the study rows only.
    fig.add_shape(
        type="line",
        x0=0,
        x1=0,
        y0=bottom,
        y1=0.5,
        xref="x",
        yref="y",
        line={"color": NEUTRAL, "width": 1},
        layer="below",
    )
    return x_range


def _pooling_scale(scale: DisplayScale) -> str:
    """The scale a study's effect sizes are averaged on: the analysed one, which is Fisher's z
    only when the effect sizes are correlations (shown as r or z); other measures (e.g.
    standardised mean differences) are averaged as they were analysed."""
    return "Fisher's z" if scale.name in ("r", "z") else "the effect-size scale as analysed (yi)"


def _forest_notes(
    res: MetaResult, aggregated: bool, show_all: bool, scale: DisplayScale
) -> list[str]:
    notes = [
        "Squares: each row's estimate with its "
        f"{percent_level(res)} confidence interval; square area grows with the model weight."
    ]
    if aggregated:
        notes.append(
            "Each study's row pools its effect sizes by inverse-variance weighting on "
            f"{_pooling_scale(scale)}, treating them as independent: a display summary only; the three-level model itself "
            "accounts for their dependence. A study's weight is the sum of its effect sizes' weights."
        )
    if show_all and not res.is_three_level:
        notes.append("Two-level model: every row is an effect size.")
    if res.method != "EE":
        notes.append(
            "Dashed bar: prediction interval, the range expected for the true effect of a new study."
        )
    return notes
