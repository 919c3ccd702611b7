"""Plotly figures of a fitted model: forest plot, funnel plot and the PTR curve.

Every builder is a pure function from a :class:`~alliance_core.results.MetaResult` (and the rows
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

from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from scipy import special

from alliance_core.errors import AnalysisError
from alliance_core.mapping import ColumnMapping, study_label
from alliance_core.results import MetaResult
from alliance_core.subgroups import MIN_SUBGROUP_STUDIES, subgroup_fits

# -- look and feel ---------------------------------------------------------------------------
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
ROW_HEIGHT = 18  # pixels per forest-plot row: 12-px labels never overlap
MAX_PROFILES = 4

# Default column names of the project's coding sheet, used for labels, sorting and hover text.
DEFAULT_COLUMNS = {
    "study": "study",
    "es_id": "es_id",
    "label": "label",
    "year": "year",
    "n": "n",
    "n_therapists": "n_therapists",
    "ptr": "ptr",
    "alliance_rater": "alliance_rater",
    "outcome_rater": "outcome_rater",
    "alliance_measure": "alliance_measure",
    "design": "design",
}
HOVER_FIELDS = (
    ("n", "Patients"),
    ("n_therapists", "Therapists"),
    ("ptr", "PTR"),
    ("alliance_rater", "Alliance rater"),
    ("outcome_rater", "Outcome rater"),
    ("alliance_measure", "Alliance measure"),
    ("design", "Design"),
)


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    red, green, blue = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({red}, {green}, {blue}, {alpha})"


def _style(fig: go.Figure, *, height: int | None = None) -> go.Figure:
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


def _caption(fig: go.Figure, lines: Sequence[str], *, width: int = 120) -> int:
    """Notes under the plot area; returns the pixels they need (for the bottom margin)."""
    wrapped = [part for line in lines for part in textwrap.wrap(line, width)]
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
    )
    return 16 * len(wrapped)


def _columns(columns: Mapping[str, str] | ColumnMapping | None) -> dict[str, str]:
    """Role -> column name: the defaults, overridden by a mapping or a ColumnMapping."""
    chosen = dict(DEFAULT_COLUMNS)
    if isinstance(columns, ColumnMapping):
        for role in ("study", "es_id", "label", "year", "n", "n_therapists"):
            name = getattr(columns, role)
            if name is not None:
                chosen[role] = name
    elif columns is not None:
        chosen.update(columns)
    return chosen


def _fmt(value: float, digits: int = 2) -> str:
    # A true minus sign keeps columns of numbers aligned and reads as minus, not hyphen.
    text = f"{value:.{digits}f}"
    if float(text) == 0.0:
        text = text.lstrip("-")  # no "-0.00" for a value that rounds to zero
    return text.replace("-", "\u2212")


def _interval(estimate: float, lower: float, upper: float) -> str:
    return f"{_fmt(estimate)} [{_fmt(lower)}, {_fmt(upper)}]"


def _percent_level(res: MetaResult) -> str:
    return f"{res.level * 100:g}%"


def _hover_value(value) -> str:
    if isinstance(value, float | np.floating):
        return f"{value:.1f}" if not float(value).is_integer() else f"{value:.0f}"
    return str(value)


def _moderator_values_text(values: Mapping[str, object], res: MetaResult) -> str:
    """'ptr = 5.2 (mean), alliance_rater = patient (reference level)'."""
    parts = []
    for column, value in values.items():
        term = res.design.term(column)
        typical = res.design.typical_values()[column]
        if term.kind == "numeric":
            kind = " (mean)" if np.isclose(value, typical) else ""
            parts.append(f"{column} = {value:.3g}{kind}")
        else:
            kind = " (reference level)" if str(value) == term.reference else ""
            parts.append(f"{column} = {value}{kind}")
    return ", ".join(parts)


# -- forest plot -----------------------------------------------------------------------------
FOREST_SORTS = ("effect", "precision", "year", "ptr", "label", None)


def study_table(
    res: MetaResult,
    *,
    label_column: str | None = None,
    columns: Mapping[str, str] | ColumnMapping | None = None,
) -> pd.DataFrame:
    """One row per study for display: yi, vi, weight (percent), k and hover fields.

    Two-level models: each effect size is its own study. Three-level models: a study's effect
    sizes are pooled by inverse-variance weighting on Fisher's z, yi = sum(y/v) / sum(1/v),
    vi = 1 / sum(1/v), which treats them as independent (a display summary, not the model's
    estimate); the study's weight is the sum of its effect sizes' model weights.
    """
    cols = _columns(columns)
    key = res.cluster if res.is_three_level else None
    inverse = 1.0 / res.data["vi"]
    data = res.data.assign(
        _weight=res.weights.reindex(res.data.index).to_numpy(),
        _w=inverse,
        _wy=inverse * res.data["yi"],
        _group=res.data[key].to_numpy() if key else np.arange(len(res.data)),
    )
    grouped = data.groupby("_group", sort=False)
    table = pd.DataFrame(
        {
            "yi": grouped["_wy"].sum() / grouped["_w"].sum(),
            "vi": 1.0 / grouped["_w"].sum(),
            "weight": grouped["_weight"].sum(),
            "k": grouped.size(),
        }
    )
    table["label"] = _study_labels(data, grouped, key, label_column, cols)
    for role, _title in HOVER_FIELDS:
        column = cols.get(role)
        if column in data.columns:
            table[role] = _shared_values(data, column, "_group")
    if cols["year"] in data.columns:
        table["year"] = grouped[cols["year"]].first()
    table.index.name = key or "row"
    return table


def _shared_values(data: pd.DataFrame, column: str, group: str) -> pd.Series:
    """Each study's value of a column: the value itself where it is constant, else the mean of
    its distinct values (numbers) or the distinct values listed (text, e.g. "patient, observer")."""
    pairs = data[[group, column]].dropna().drop_duplicates()
    grouped = pairs.groupby(group, sort=False)[column]
    if pd.api.types.is_numeric_dtype(data[column]):
        return grouped.mean()
    return grouped.agg(lambda values: ", ".join(map(str, values)))


def _study_labels(data, grouped, key, label_column, cols) -> pd.Series:
    if label_column is not None:
        if label_column not in data.columns:
            raise AnalysisError(f"Forest plot: label column '{label_column}' is not in the data.")
        return grouped[label_column].first().astype(str)
    if cols["label"] in data.columns:
        return grouped[cols["label"]].first().astype(str)
    if key is not None:
        return grouped[key].first().map(study_label)
    if cols["study"] in data.columns:
        return grouped[cols["study"]].first().map(study_label)
    return pd.Series([f"Row {i}" for i in data.index], index=grouped.size().index)


def _sort_rows(table: pd.DataFrame, sort_by: str | None) -> pd.DataFrame:
    """Top-to-bottom order: ascending effect, year, PTR or label; most precise first."""
    if sort_by not in FOREST_SORTS:
        raise AnalysisError(
            f"Forest plot: unknown sort '{sort_by}'; choose one of "
            + ", ".join(str(s) for s in FOREST_SORTS)
            + "."
        )
    if sort_by is None:
        return table
    column = {"effect": "yi", "precision": "vi"}.get(sort_by, sort_by)
    if column not in table.columns:
        raise AnalysisError(
            f"Forest plot: sorting by {sort_by} needs a '{sort_by}' column in the data."
        )
    keys = table[column]
    if sort_by == "ptr":
        keys = pd.to_numeric(keys, errors="coerce")
    # A stable sort keeps the data order among ties.
    return table.iloc[np.argsort(keys.to_numpy(), kind="stable")]


@dataclass
class _ForestLayout:
    """Rows accumulate top to bottom at y = 0, -1, -2, ...; the text columns follow them."""

    tick_y: list[float] = field(default_factory=list)
    tick_text: list[str] = field(default_factory=list)
    r_text: list[tuple[float, str]] = field(default_factory=list)
    weight_text: list[tuple[float, str]] = field(default_factory=list)
    next_y: float = 0.0

    def add_row(self, label: str, r_text: str = "", weight_text: str = "") -> float:
        y = self.next_y
        self.tick_y.append(y)
        self.tick_text.append(label)
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
    ``subgroup`` adds a diamond per level of that column from a separate intercept-only fit
    (see :func:`alliance_core.subgroups.subgroup_fits`). ``transform="r"`` shows correlations,
    ``"z"`` Fisher's z, ``None`` effect sizes of another kind as analysed.
    """
    scale = _check_transform(transform)
    cols = _columns(columns)
    table = _sort_rows(study_table(res, label_column=label_column, columns=columns), sort_by)
    if sort_by == "ptr":
        # Rows ordered by PTR show it, or the order would look arbitrary.
        table = table.assign(
            label=[
                f"{lab} \u00b7 PTR {p:.1f}"
                for lab, p in zip(table["label"], table["ptr"], strict=True)
            ]
        )
    crit = float(special.ndtri(1.0 - (1.0 - res.level) / 2.0))
    fig = make_subplots(
        rows=1,
        cols=3,
        shared_yaxes=True,
        column_widths=[0.66, 0.21, 0.13],
        horizontal_spacing=0.005,
    )
    rows = _ForestLayout()
    rows.add_row(
        "<b>Study</b>", f"<b>{scale.symbol} [{_percent_level(res)} CI]</b>", "<b>Weight</b>"
    )

    aggregated = res.is_three_level and not show_all_effect_sizes
    if show_all_effect_sizes and res.is_three_level:
        _add_effect_size_rows(fig, res, table, rows, crit, scale, cols)
    else:
        _add_study_rows(fig, table, rows, crit, scale, aggregated)

    rows.skip(0.5)
    summary_notes = _add_summary_rows(fig, res, rows, scale, band)
    subgroup_notes = _add_subgroup_rows(fig, res, subgroup, rows, scale) if subgroup else []

    _add_text_column(fig, rows.r_text, col=2, role="r text")
    _add_text_column(fig, rows.weight_text, col=3, role="weight text")
    bottom = rows.next_y + 0.5
    plotted = res.data if show_all_effect_sizes and res.is_three_level else table
    _forest_axes(fig, res, rows, plotted, crit, scale, bottom)

    notes = _forest_notes(res, aggregated, show_all_effect_sizes) + summary_notes + subgroup_notes
    caption_height = _caption(fig, notes, width=130)
    n_rows = len(rows.tick_y)
    fig.update_layout(
        showlegend=False,
        margin={"l": 10, "r": 10, "t": 20, "b": 80 + caption_height},
    )
    return _style(fig, height=int(ROW_HEIGHT * (n_rows + 1) + 100 + caption_height))


@dataclass(frozen=True)
class _Scale:
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


def _check_transform(transform: str | None) -> _Scale:
    if transform in ("r", "z"):
        return _Scale(transform)
    if transform in (None, "none"):
        return _Scale("none")
    raise AnalysisError(
        f"Unknown scale '{transform}'. Use 'r' (correlations), 'z' (Fisher's z) or None "
        "(effect sizes as analysed)."
    )


def _intervals(yi, vi, scale: _Scale, crit: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimate and confidence limits of each row on the display scale."""
    yi, se = np.asarray(yi, float), np.sqrt(np.asarray(vi, float))
    return scale(yi), scale(yi - crit * se), scale(yi + crit * se)


def _row_hover(
    row: Mapping, interval: tuple[float, float, float], symbol: str, note: str = ""
) -> str:
    lines = [f"<b>{row['label']}</b>", f"{symbol} = {_interval(*interval)}"]
    lines.append(f"Weight: {row['weight']:.2f}%")
    for role, title in HOVER_FIELDS:
        value = row.get(role)
        if value is not None and not pd.isna(value):
            lines.append(f"{title}: {_hover_value(value)}")
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
        y.append(rows.add_row(row["label"], _interval(*interval), f"{row['weight']:.2f}%"))
        note = ""
        if aggregated:
            note = (
                f"Pools {row['k']} effect size{'s' if row['k'] != 1 else ''} "
                "(inverse-variance mean on Fisher's z,<br>treated as independent; display only)"
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
        label = row["label"] if row["first"] else row["es_name"]
        y.append(rows.add_row(label, _interval(*interval), f"{row['weight']:.2f}%"))
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
                f"{level_text} prediction interval: [{_fmt(lo)}, {_fmt(hi)}]<br>"
                "range of true effects expected in a new study<extra></extra>"
            ),
            name="Prediction interval",
            meta={"role": "prediction interval", "pi": [lo, hi]},
        ),
        row=1,
        col=1,
    )


def _add_summary_rows(
    fig, res: MetaResult, rows: _ForestLayout, scale: _Scale, band: BandInference | None = None
) -> list[str]:
    extra = {} if band is None else {"vcov": band.vcov, "df": band.df}
    pred = res.predict(transform=None, **extra).iloc[0]
    est, lo, hi = (float(scale(pred[c])) for c in ("pred", "ci_lb", "ci_ub"))
    kind = "three-level" if res.is_three_level else "random-effects"
    if res.method == "EE":
        kind = "equal-effects"
    notes = []
    if res.p == 1:
        label = f"<b>Pooled estimate</b> ({kind}, {res.method})"
    else:
        label = "<b>Prediction at typical moderator values</b>"
        typical = res.design.typical_values()
        notes.append(
            "Meta-regression: the diamond is the predicted average effect at "
            f"{_moderator_values_text(typical, res)}, not a pooled estimate over all studies."
        )
    if band is not None:
        notes.append(f"Diamond and prediction interval: {band.label}.")
    hover = f"{scale.symbol} = {_interval(est, lo, hi)} ({_percent_level(res)} CI)"
    y = rows.add_row(label, _interval(est, lo, hi), "100%" if res.p == 1 else "")
    _diamond(fig, y, pred, scale, "Pooled estimate", "diamond", hover)
    if res.method != "EE" and np.isfinite(pred["pi_lb"]):
        pi_lo, pi_hi = float(scale(pred["pi_lb"])), float(scale(pred["pi_ub"]))
        y_pi = rows.add_row(
            f"{_percent_level(res)} prediction interval", f"[{_fmt(pi_lo)}, {_fmt(pi_hi)}]"
        )
        _prediction_bar(fig, y_pi, pred, scale, _percent_level(res))
    return notes


def _add_subgroup_rows(fig, res, column, rows: _ForestLayout, scale) -> list[str]:
    fits = subgroup_fits(res, column)
    rows.skip(0.5)
    rows.add_row(f"<b>By {column}</b> (separate fits)")
    notes = [
        f"Subgroup diamonds: the {res.model} model ({res.method}) without moderators, fitted "
        f"separately to the effect sizes of each {column} level; levels with fewer than "
        f"{MIN_SUBGROUP_STUDIES} studies are not estimated."
    ]
    for item in fits:
        studies = f"; {item.n_studies} studies" if res.is_three_level else ""
        label = f"{item.level} (k = {item.k}{studies})"
        if item.result is None:
            rows.add_row(label, "not estimated")
            notes.append(item.note)
            continue
        pred = item.result.predict(transform=None).iloc[0]
        est, lo, hi = (float(scale(pred[c])) for c in ("pred", "ci_lb", "ci_ub"))
        y = rows.add_row(label, _interval(est, lo, hi))
        hover = f"{column} = {item.level}: {scale.symbol} = {_interval(est, lo, hi)}"
        _diamond(fig, y, pred, scale, item.level, "subgroup diamond", hover, OKABE_ITO[0])
    return notes


def _add_text_column(fig, entries, *, col: int, role: str) -> None:
    fig.add_trace(
        go.Scatter(
            x=[0.5] * len(entries),
            y=[y for y, _ in entries],
            text=[text for _, text in entries],
            mode="text",
            textposition="middle center",
            textfont={"size": 12},
            hoverinfo="skip",
            meta={"role": role},
        ),
        row=1,
        col=col,
    )


def _forest_axes(fig, res, rows, plotted, crit, scale, bottom) -> None:
    """x range covering every plotted interval and the prediction interval; text axes hidden."""
    lows = scale(plotted["yi"] - crit * np.sqrt(plotted["vi"]))
    highs = scale(plotted["yi"] + crit * np.sqrt(plotted["vi"]))
    pred = res.predict(transform=None).iloc[0]
    lo = min(np.min(lows), float(scale(pred["pi_lb"])) if np.isfinite(pred["pi_lb"]) else 0.0, 0.0)
    hi = max(np.max(highs), float(scale(pred["pi_ub"])) if np.isfinite(pred["pi_ub"]) else 0.0)
    pad = 0.04 * (hi - lo)
    x_range = [lo - pad, hi + pad]
    if scale.name == "r":
        x_range = [max(x_range[0], -1.0), min(x_range[1], 1.0)]
    fig.update_xaxes(
        range=x_range,
        title_text=f"{scale.title} ({_percent_level(res)} CI)",
        zeroline=False,
        row=1,
        col=1,
    )
    for col in (2, 3):
        fig.update_xaxes(visible=False, range=[0, 1], showline=False, row=1, col=col)
        fig.update_yaxes(showline=False, row=1, col=col)
    fig.update_yaxes(
        tickmode="array",
        tickvals=rows.tick_y,
        ticktext=rows.tick_text,
        range=[bottom, 0.6],
        showgrid=False,
        zeroline=False,
        automargin=True,
        tickfont={"size": 12},
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


def _forest_notes(res: MetaResult, aggregated: bool, show_all: bool) -> list[str]:
    notes = [
        "Squares: each row's estimate with its "
        f"{_percent_level(res)} confidence interval; square area grows with the model weight."
    ]
    if aggregated:
        notes.append(
            "Each study's row pools its effect sizes by inverse-variance weighting on Fisher's z, "
            "treating them as independent: a display summary only; the three-level model itself "
            "accounts for their dependence. A study's weight is the sum of its effect sizes' weights."
        )
    if show_all and not res.is_three_level:
        notes.append("Two-level model: every row is an effect size.")
    if res.method != "EE":
        notes.append(
            "Dashed bar: prediction interval, the range expected for the true effect of a new study."
        )
    return notes


# -- funnel plot -----------------------------------------------------------------------------
def funnel_figure(
    res: MetaResult,
    *,
    scale: str = "r",
    contours: Sequence[float] = (0.10, 0.05, 0.01),
    color_by_study: bool = False,
    egger_line: Mapping[str, float] | None = None,
    imputed: pd.DataFrame | None = None,
    adjusted_estimate: float | None = None,
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
    studies as open markers; ``adjusted_estimate`` draws a dotted vertical line.
    """
    show = _check_transform(scale)
    residuals = res.p > 1
    if residuals:
        show = _Scale("z") if show.name == "r" else show
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

    notes = _funnel_notes(res, residuals, alphas, scale)
    caption_height = _caption(fig, notes, width=110)
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
    return _style(fig, height=560 + caption_height)


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


def _funnel_edge(x_z, centre_z, se_max, alphas, crit, show: _Scale) -> float:
    """Half-width of the x axis: every point and every drawn boundary fits."""
    widest = max(
        np.max(np.abs(show(x_z))),
        abs(float(show(centre_z + crit * se_max))),
        abs(float(show(centre_z - crit * se_max))),
        float(show(_z_quantile(min(alphas)) * se_max)),
    )
    edge = 1.08 * widest
    return min(edge, 1.0) if show.name == "r" else edge


def _add_contour_regions(fig, alphas, se_grid, x_edge, show: _Scale) -> None:
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
            hovertemplate=f"{name}: {_fmt(centre, 3)}<extra></extra>",
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
            name=f"{_percent_level(res)} pseudo-confidence region",
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
        f"<b>{label}</b><br>{show.symbol} = {_fmt(value, 3)}<br>SE = {s:.3f}"
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


# -- PTR curve -------------------------------------------------------------------------------
_PTR_FORWARD = {"raw": lambda p: p, "log": np.log, "log10": np.log10, "log2": np.log2}
_PTR_INVERSE = {"raw": lambda x: x, "log": np.exp, "log10": lambda x: 10.0**x, "log2": np.exp2}
_LOG_PREFIXES = (("log10_", "log10"), ("log2_", "log2"), ("log_", "log"), ("ln_", "log"))


@dataclass(frozen=True)
class PTRCoding:
    """How the Patient-Therapist Ratio enters a model.

    ``model_columns`` pairs each PTR moderator with its coding: "raw", or "log"/"log10"/"log2"
    for a logarithm of PTR. ``ptr`` is the PTR of each analysed row, ``ptr_column`` the name
    the x axis (and the prediction tables) use for it.
    """

    ptr_column: str
    model_columns: tuple[tuple[str, str], ...]
    ptr: np.ndarray

    def columns_at(self, ptr: np.ndarray) -> dict[str, np.ndarray]:
        """Model moderator values at the given PTR values."""
        values = np.asarray(ptr, float)
        return {column: _PTR_FORWARD[kind](values) for column, kind in self.model_columns}


def ptr_coding(res: MetaResult, ptr_column: str = "ptr") -> PTRCoding:
    """Find PTR among the model's numeric moderators: ``ptr_column`` itself and/or its logarithm.

    Names match regardless of case (``ptr``, ``PTR``); a logarithm is recognised by a ``log_``,
    ``ln_``, ``log10_`` or ``log2_`` prefix, and when the raw column is in the data as well its
    base is read off the data. Without a raw PTR moderator, each row's PTR is recovered from the
    log column, so rounding of a separate PTR column cannot shift the bubbles.
    """
    wanted = ptr_column.casefold()
    found: list[tuple[str, str]] = []
    for term in res.design.terms:
        if term.kind != "numeric":
            continue
        name = term.column.casefold()
        if name == wanted:
            found.append((term.column, "raw"))
            continue
        for prefix, kind in _LOG_PREFIXES:
            if name == prefix + wanted:
                raw_name = term.column[len(prefix) :]
                found.append((term.column, _log_base(res.data, raw_name, term.column, kind)))
                break
    if not found:
        raise AnalysisError(_not_a_moderator(res, ptr_column))
    raw = [column for column, kind in found if kind == "raw"]
    if raw:
        return PTRCoding(raw[0], tuple(found), res.data[raw[0]].to_numpy(float))
    column, kind = found[0]
    raw_name = column[column.index("_") + 1 :]
    ptr = _PTR_INVERSE[kind](res.data[column].to_numpy(float))
    return PTRCoding(raw_name, tuple(found), ptr)


def _not_a_moderator(res: MetaResult, ptr_column: str) -> str:
    categorical = [t.column for t in res.design.terms if t.kind == "categorical"]
    hint = (
        f" ('{ptr_column}' is a categorical moderator here; the curve needs it as a number.)"
        if ptr_column.casefold() in {c.casefold() for c in categorical}
        else ""
    )
    return (
        f"PTR is not a moderator of this model (moderators: "
        f"{', '.join(res.moderators) or 'none'}). Add '{ptr_column}' or 'log_{ptr_column}' "
        f"to the moderators to draw the PTR curve.{hint}"
    )


def _log_base(data: pd.DataFrame, raw_name: str, log_column: str, named: str) -> str:
    """The logarithm that maps the raw PTR column onto the log column (the named one if the raw
    column is not in the data)."""
    if raw_name not in data.columns:
        return named
    raw = pd.to_numeric(data[raw_name], errors="coerce").to_numpy(float)
    logged = data[log_column].to_numpy(float)
    ok = np.isfinite(raw) & (raw > 0) & np.isfinite(logged)
    # A tolerance that forgives a PTR column rounded to two decimals, not a different base.
    for kind in (named, "log", "log10", "log2"):
        if ok.any() and np.allclose(_PTR_FORWARD[kind](raw[ok]), logged[ok], atol=5e-3):
            return kind
    raise AnalysisError(
        f"Column '{log_column}' is not a logarithm (natural, base 10 or base 2) of "
        f"'{raw_name}', so the PTR curve cannot map PTR onto it."
    )


@dataclass(frozen=True)
class Profile:
    """A what-if curve: a name and the moderator values it fixes (the rest held at typical)."""

    name: str
    values: Mapping[str, object]
    held: Mapping[str, object]


def _profiles(res: MetaResult, coding: PTRCoding, profiles) -> list[Profile]:
    ptr_columns = {column for column, _ in coding.model_columns}
    if profiles is None:
        profiles = [{"name": "Model prediction", "values": {}}]
    profiles = list(profiles)
    if not profiles:
        raise AnalysisError("PTR curve: give at least one profile, or None for the default curve.")
    if len(profiles) > MAX_PROFILES:
        raise AnalysisError(
            f"PTR curve: at most {MAX_PROFILES} what-if profiles fit on one figure "
            f"({len(profiles)} given)."
        )
    typical = res.design.typical_values()
    out = []
    for i, profile in enumerate(profiles, start=1):
        name = str(profile.get("name") or f"Profile {i}")
        values = dict(profile.get("values") or {})
        for column in values:
            if column in ptr_columns:
                raise AnalysisError(
                    f"Profile '{name}': PTR ('{column}') is the curve's x axis; leave it out of "
                    "the profile values."
                )
            if column not in res.moderators:
                raise AnalysisError(
                    f"Profile '{name}': '{column}' is not a moderator of this model "
                    f"(moderators: {', '.join(res.moderators)})."
                )
        held = {
            column: value
            for column, value in typical.items()
            if column not in values and column not in ptr_columns
        }
        out.append(Profile(name, values, held))
    return out


def ptr_grid(coding: PTRCoding, grid_points: int = 200, scale: str = "raw") -> np.ndarray:
    """PTR values from the smallest to the largest analysed PTR, even on the chosen axis."""
    low, high = float(np.nanmin(coding.ptr)), float(np.nanmax(coding.ptr))
    if grid_points < 2:
        raise AnalysisError("PTR curve: grid_points must be at least 2.")
    if scale == "log":
        return np.geomspace(low, high, grid_points)
    return np.linspace(low, high, grid_points)


@dataclass(frozen=True, eq=False)
class BandInference:
    """Where a curve's bands come from when not from the model: a covariance matrix of the
    coefficients (e.g. CR2) and the df of the t critical value (e.g. the PTR coefficient's
    Satterthwaite df), with words for the caption."""

    vcov: np.ndarray
    df: float | None
    label: str


def profile_predictions(
    res: MetaResult,
    coding: PTRCoding,
    profile: Profile,
    grid: np.ndarray,
    band: BandInference | None = None,
) -> pd.DataFrame:
    """``res.predict`` on the r scale along the PTR grid for one profile."""
    frame = pd.DataFrame(coding.columns_at(grid))
    for column, value in {**profile.values, **profile.held}.items():
        frame[column] = value
    if band is None:
        out = res.predict(frame, transform="r")
    else:
        out = res.predict(frame, transform="r", vcov=band.vcov, df=band.df)
    # The x axis is PTR itself, also when the model only sees its logarithm.
    out[coding.ptr_column] = grid
    return out


def ptr_curve_figure(
    res: MetaResult,
    *,
    ptr_column: str = "ptr",
    scale: str = "raw",
    color_by: str | None = None,
    profiles: Sequence[Mapping] | None = None,
    grid_points: int = 200,
    show_prediction_band: bool = True,
    band: BandInference | None = None,
) -> go.Figure:
    """Bubble plot of effect sizes against PTR with the fitted curve (metafor ``regplot``).

    Bubbles: each effect size's r at its study's PTR, bubble area proportional to its model weight,
    coloured by the categorical column ``color_by`` if given. Curve: ``res.predict(...,
    transform="r")`` over ``grid_points`` PTR values from the smallest to the largest PTR in the
    data, with its confidence band and, lighter with dashed edges, the prediction band (where
    the true effect of a new study is expected). PTR may enter the model raw (``ptr``) or logged
    (``log_ptr``); the grid is built in PTR and transformed, ``scale="log"`` only makes the x axis
    logarithmic. ``profiles`` (at most four) are what-if curves, each
    ``{"name": ..., "values": {moderator: value}}``; moderators a profile does not set are held at
    their mean (numeric) or reference level (categorical), which the caption names.
    ``band`` draws the bands from another inference (e.g. CR2 with the PTR coefficient's
    Satterthwaite df); the caption says which.
    """
    if scale not in ("raw", "log"):
        raise AnalysisError("PTR curve: scale is 'raw' or 'log' (logarithmic x axis).")
    coding = ptr_coding(res, ptr_column)
    chosen = _profiles(res, coding, profiles)
    grid = ptr_grid(coding, grid_points, scale)
    level_colours = _level_colours(res, color_by)
    profile_colours = _profile_colours(chosen, color_by, level_colours)

    fig = go.Figure()
    predictions = [profile_predictions(res, coding, p, grid, band) for p in chosen]
    for profile, pred, colour in zip(chosen, predictions, profile_colours, strict=True):
        if show_prediction_band and res.method != "EE":
            # Stacked prediction bands of several profiles turn muddy: edges only then.
            pi_fill = 0.10 if len(chosen) == 1 else 0.0
            _add_band(fig, pred, "pi", profile.name, colour, coding.ptr_column, pi_fill)
    _add_bubbles(fig, res, coding, color_by, level_colours)
    for profile, pred, colour in zip(chosen, predictions, profile_colours, strict=True):
        _add_band(fig, pred, "ci", profile.name, colour, coding.ptr_column)
        _add_curve(fig, pred, profile.name, colour, coding.ptr_column)

    notes = _ptr_notes(res, coding, chosen, show_prediction_band)
    if band is not None:
        notes.insert(1, f"Bands: {band.label}.")
    caption_height = _caption(fig, notes, width=110)
    fig.update_xaxes(
        title_text="Patients per therapist (PTR)" + (", log scale" if scale == "log" else ""),
        type="log" if scale == "log" else "linear",
        zeroline=False,
        **(_log_ticks(grid) if scale == "log" else {}),
    )
    fig.update_yaxes(title_text="Alliance\u2013outcome correlation r", zeroline=True)
    fig.update_layout(
        legend={
            "orientation": "h",
            "yanchor": "bottom",
            "y": 1.02,
            "x": 0,
            "xanchor": "left",
            "title": {"text": f"{color_by}: " if color_by else ""},
            "itemsizing": "constant",  # bubble legend symbols at a readable size
        },
        margin={"l": 70, "r": 20, "t": 80, "b": 80 + caption_height},
        hovermode="closest",
    )
    return _style(fig, height=560 + caption_height)


def _log_ticks(grid: np.ndarray) -> dict[str, list]:
    """Ticks at 1, 2, 5, 10, 20, 50, ... instead of plotly's unlabelled minor digits."""
    low, high = float(np.min(grid)), float(np.max(grid))
    decades = range(int(np.floor(np.log10(low))), int(np.ceil(np.log10(high))) + 1)
    ticks = [m * 10.0**d for d in decades for m in (1, 2, 5)]
    ticks = [t for t in ticks if low / 1.05 <= t <= high * 1.05]
    return {"tickvals": ticks, "ticktext": [f"{t:g}" for t in ticks]}


def _level_colours(res: MetaResult, color_by: str | None) -> dict[str, str]:
    if color_by is None:
        return {}
    if color_by not in res.data.columns:
        raise AnalysisError(f"PTR curve: colour column '{color_by}' is not in the analysed data.")
    values = res.data[color_by].dropna()
    if color_by in res.moderators and res.design.term(color_by).kind == "categorical":
        levels = list(res.design.term(color_by).levels)
    else:
        levels = sorted({str(v) for v in values})
    if len(levels) > len(OKABE_ITO):
        raise AnalysisError(
            f"PTR curve: '{color_by}' has {len(levels)} levels; colouring needs a categorical "
            f"column with at most {len(OKABE_ITO)}."
        )
    return {level: OKABE_ITO[i] for i, level in enumerate(levels)}


def _profile_colours(profiles, color_by, level_colours) -> list[str]:
    """A profile that fixes the colouring column takes that level's colour (once); others take
    palette colours not used by the bubbles, so a curve never borrows an unrelated level's hue."""
    used: set[str] = set()
    colours: list[str | None] = []
    for profile in profiles:
        # A profile at the colouring column's reference level (held or set) shares its colour.
        level = {**profile.held, **profile.values}.get(color_by) if color_by else None
        colour = level_colours.get(str(level)) if level is not None else None
        if colour in used:
            colour = None
        if colour:
            used.add(colour)
        colours.append(colour)
    spare = [c for c in OKABE_ITO if c not in set(level_colours.values()) | used]
    spare += [c for c in OKABE_ITO if c not in used and c not in spare]
    if len(profiles) == 1 and colours[0] is None and not level_colours:
        return [OKABE_ITO[0]]
    filled = []
    for colour in colours:
        if colour is None:
            colour = spare.pop(0)
        filled.append(colour)
    return filled


def _add_bubbles(fig, res, coding: PTRCoding, color_by, level_colours) -> None:
    data = res.data
    r = np.tanh(data["yi"].to_numpy())
    weight = res.weights.reindex(data.index).to_numpy()
    # Bubble area proportional to weight: the largest bubble is 30 px across.
    sizeref = 2.0 * np.max(weight) / 30.0**2
    labels = (
        data["label"].astype(str)
        if "label" in data.columns
        else pd.Series([f"Row {i}" for i in data.index], index=data.index)
    )
    groups = (
        [(None, np.ones(len(data), bool), OKABE_ITO[7])]
        if not color_by
        else [
            (level, data[color_by].astype(str).to_numpy() == level, colour)
            for level, colour in level_colours.items()
        ]
    )
    for level, mask, colour in groups:
        hover = [
            f"<b>{label}</b><br>r = {_fmt(ri, 3)}<br>PTR = {p:.1f}<br>Weight: {w:.2f}%"
            + (f"<br>{color_by}: {level}" if level is not None else "")
            for label, ri, p, w in zip(
                labels[mask], r[mask], coding.ptr[mask], weight[mask], strict=True
            )
        ]
        fig.add_trace(
            go.Scatter(
                x=coding.ptr[mask],
                y=r[mask],
                mode="markers",
                marker={
                    "size": weight[mask],
                    "sizemode": "area",
                    "sizeref": sizeref,
                    "sizemin": 2,
                    "color": _rgba(colour, 0.45),
                    "line": {"width": 0.8, "color": colour},
                },
                name=str(level) if level is not None else "Effect sizes",
                hovertext=hover,
                hovertemplate="%{hovertext}<extra></extra>",
                meta={"role": "bubbles", "level": level},
            )
        )


def _add_band(
    fig, pred: pd.DataFrame, which: str, name: str, colour: str, ptr_column, pi_fill: float = 0.10
) -> None:
    x = pred[ptr_column].to_numpy()
    lower, upper = pred[f"{which}_lb"].to_numpy(), pred[f"{which}_ub"].to_numpy()
    fill_alpha = 0.28 if which == "ci" else pi_fill
    fig.add_trace(
        go.Scatter(
            x=np.concatenate([x, x[::-1]]),
            y=np.concatenate([upper, lower[::-1]]),
            mode="lines",
            fill="toself",
            fillcolor=_rgba(colour, fill_alpha),
            line={"width": 0},
            hoverinfo="skip",
            showlegend=False,
            legendgroup=name,
            name=f"{name}: {'confidence' if which == 'ci' else 'prediction'} band",
            meta={"role": f"{which} band", "profile": name},
        )
    )
    if which == "pi":
        for edge, values in (("lower", lower), ("upper", upper)):
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=values,
                    mode="lines",
                    line={"color": _rgba(colour, 0.7), "width": 1, "dash": "dash"},
                    hoverinfo="skip",
                    showlegend=False,
                    legendgroup=name,
                    name=f"{name}: prediction band {edge} edge",
                    meta={"role": f"pi {edge}", "profile": name},
                )
            )


def _add_curve(fig, pred: pd.DataFrame, name: str, colour: str, ptr_column) -> None:
    fig.add_trace(
        go.Scatter(
            x=pred[ptr_column].to_numpy(),
            y=pred["pred"].to_numpy(),
            mode="lines",
            line={"color": colour, "width": 3},
            name=name,
            legendgroup=name,
            hovertemplate=f"{name}<br>PTR %{{x:.1f}}: predicted r = %{{y:.3f}}<extra></extra>",
            meta={"role": "curve", "profile": name},
        )
    )


def _ptr_notes(res: MetaResult, coding: PTRCoding, profiles, show_pi: bool) -> list[str]:
    level = _percent_level(res)
    bands = f"Curve: predicted average r; band: {level} confidence interval"
    if show_pi and res.method != "EE":
        drawn = "light band with dashed edges" if len(profiles) == 1 else "dashed lines"
        bands += (
            f"; {drawn}: {level} prediction interval "
            "(where the true effect of a new study is expected)"
        )
    terms = " + ".join(column for column, _ in coding.model_columns)
    notes = [bands + f". PTR enters the model as {terms}. Bubble area \u221d model weight."]
    helds = {tuple(sorted((k, str(v)) for k, v in p.held.items())) for p in profiles}
    if len(helds) == 1:
        held = profiles[0].held
        if held:
            notes.append(f"Held at typical values: {_moderator_values_text(held, res)}.")
    else:
        for p in profiles:
            if p.held:
                notes.append(f"{p.name}: holds {_moderator_values_text(p.held, res)}.")
    return notes


# -- PTR slope readout -------------------------------------------------------------------------
@dataclass(frozen=True)
class PTRSlopeReadout:
    """Change in the predicted alliance-outcome correlation between two PTR values.

    The difference is a linear contrast on Fisher's z, c = x(to) - x(from):
    estimate c'b, standard error sqrt(c' V c), interval estimate +/- crit * se with the model's
    critical value (normal, or t with its df). On the r scale the difference is
    tanh(z_to) - tanh(z_from); its interval is the z interval converted at the predicted
    correlations (multiplied by the ratio of the r to the z difference), so it excludes zero
    exactly when the z-scale test does.
    """

    from_ptr: float
    to_ptr: float
    level: float
    r_from: float
    r_from_ci: tuple[float, float]
    r_to: float
    r_to_ci: tuple[float, float]
    difference_z: float
    difference_z_se: float
    difference_z_ci: tuple[float, float]
    statistic: float
    pval: float
    difference_r: float
    difference_r_ci: tuple[float, float]
    values: Mapping[str, object]  # moderator values set by the caller
    held: Mapping[str, object]  # moderators held at typical values
    sentence: str


def ptr_slope_readout(
    res: MetaResult,
    ptr_column: str = "ptr",
    from_ptr: float = 1,
    to_ptr: float = 10,
    profile_values: Mapping[str, object] | None = None,
    band: BandInference | None = None,
) -> PTRSlopeReadout:
    """How much the predicted r changes from ``from_ptr`` to ``to_ptr`` patients per therapist.

    ``profile_values`` fixes other moderators (e.g. {"alliance_rater": "observer"}); the rest
    are held at their mean or reference level.
    """
    if from_ptr <= 0 or to_ptr <= 0:
        raise AnalysisError("PTR readout: PTR values must be positive.")
    coding = ptr_coding(res, ptr_column)
    profile = _profiles(res, coding, [{"name": "readout", "values": profile_values or {}}])[0]
    pred = profile_predictions(res, coding, profile, np.array([from_ptr, to_ptr], float), band)
    frame = pd.DataFrame(coding.columns_at(np.array([from_ptr, to_ptr], float)))
    for column, value in {**profile.values, **profile.held}.items():
        frame[column] = value
    X = res.design.matrix(frame, what="PTR readout")
    contrast = X[1] - X[0]
    estimate = float(contrast @ res.beta)
    # The chosen inference's covariance and df (``band``), else the model's own.
    vb = res.vb if band is None else band.vcov
    se = float(np.sqrt(contrast @ vb @ contrast))
    if band is None:
        crit = res.critical_value
    elif band.df is None:
        crit = float(special.ndtri(1.0 - (1.0 - res.level) / 2.0))
    else:
        crit = float(special.stdtrit(band.df, 1.0 - (1.0 - res.level) / 2.0))
    z_ci = (estimate - crit * se, estimate + crit * se)
    statistic = estimate / se if se > 0 else np.nan
    pval = _two_sided_p(statistic, res.ddf if band is None else band.df)

    r_from, r_to = float(pred["pred"].iloc[0]), float(pred["pred"].iloc[1])
    diff_r = r_to - r_from
    # tanh is increasing, so the ratio is positive; at a zero difference use tanh's slope.
    ratio = diff_r / estimate if estimate != 0 else 1.0 - r_from**2
    r_ci = (ratio * z_ci[0], ratio * z_ci[1])
    sentence = _readout_sentence(from_ptr, to_ptr, diff_r, r_ci, res.level)
    return PTRSlopeReadout(
        from_ptr=float(from_ptr),
        to_ptr=float(to_ptr),
        level=res.level,
        r_from=r_from,
        r_from_ci=(float(pred["ci_lb"].iloc[0]), float(pred["ci_ub"].iloc[0])),
        r_to=r_to,
        r_to_ci=(float(pred["ci_lb"].iloc[1]), float(pred["ci_ub"].iloc[1])),
        difference_z=estimate,
        difference_z_se=se,
        difference_z_ci=z_ci,
        statistic=float(statistic),
        pval=pval,
        difference_r=diff_r,
        difference_r_ci=r_ci,
        values=dict(profile.values),
        held=dict(profile.held),
        sentence=sentence,
    )


def _two_sided_p(statistic: float, ddf: int | None) -> float:
    if not np.isfinite(statistic):
        return float("nan")
    if ddf is None:
        return float(2.0 * special.ndtr(-abs(statistic)))
    return float(2.0 * special.stdtr(ddf, -abs(statistic)))


def _patients_text(ptr: float) -> str:
    if ptr == 1:
        return "one patient"
    return f"{ptr:g} patients"


def _amount(value: float) -> str:
    """Two decimals, or three when two would round a real difference to zero."""
    text = f"{abs(value):.2f}"
    return f"{abs(value):.3f}" if text == "0.00" and value != 0 else text


def _readout_sentence(from_ptr, to_ptr, diff, ci, level) -> str:
    lead = (
        f"In studies where each therapist sees {_patients_text(to_ptr)}, the predicted "
        "alliance\u2013outcome correlation is"
    )
    tail = f"than where each therapist sees {_patients_text(from_ptr)}"
    pct = f"{level * 100:g}%"
    direction = "lower" if diff < 0 else "higher"
    lo, hi = ci
    if lo > 0 or hi < 0:
        near, far = sorted((abs(lo), abs(hi)))
        return (
            f"{lead} {_amount(diff)} {direction} ({pct} CI {_amount(near)} to {_amount(far)}) "
            f"{tail}."
        )
    return (
        f"{lead} {_amount(diff)} {direction} {tail}, but the {pct} CI runs from "
        f"{_amount(lo)} lower to {_amount(hi)} higher, so the data are also compatible with no "
        "difference."
    )


# -- export ------------------------------------------------------------------------------------
EXPORT_FORMATS = ("svg", "png", "html")
_BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_browser() -> str | None:
    """A Chromium-family browser for kaleido: ``BROWSER_PATH``, else one on PATH (e.g. Debian's
    /usr/bin/chromium), else a copy fetched by ``plotly_get_chrome``/``kaleido_get_chrome``."""
    configured = os.environ.get("BROWSER_PATH")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    for name in _BROWSER_NAMES:
        path = shutil.which(name)
        if path:
            return path
    try:
        from choreographer.browsers.chromium import Chromium

        return Chromium.find_browser(skip_local=False)
    except Exception:  # any failure of the optional lookup just means "not found"
        return None


def _print_ready(fig: go.Figure) -> go.Figure:
    """A copy on white with dark text: exports must not inherit a dark or transparent theme."""
    out = go.Figure(fig)
    out.update_layout(
        template="plotly_white",
        paper_bgcolor="white",
        plot_bgcolor="white",
        font={"color": "#222222"},
    )
    return out


def export_figure(
    fig: go.Figure,
    fmt: str = "svg",
    *,
    width: int | None = None,
    height: int | None = None,
    scale: float = 2.0,
) -> bytes:
    """The figure as SVG, PNG (white background) or a self-contained HTML page.

    HTML embeds plotly.js (works offline). SVG and PNG are drawn by kaleido 1.x in a headless
    Chromium-family browser: ``BROWSER_PATH`` names one, otherwise the first of chromium /
    chromium-browser / google-chrome on PATH is used (Debian: ``apt-get install chromium``).
    Width defaults to the figure's, else 1000 px; ``scale`` multiplies PNG resolution.
    """
    fmt = fmt.lower()
    if fmt not in EXPORT_FORMATS:
        raise AnalysisError(f"Export format '{fmt}' is not supported; choose svg, png or html.")
    if fmt == "html":
        return fig.to_html(include_plotlyjs=True, full_html=True).encode("utf-8")
    try:
        import kaleido
    except ImportError as error:
        raise AnalysisError(
            "PNG/SVG export needs the 'kaleido' package (pip install kaleido)."
        ) from error
    printable = _print_ready(fig)
    opts = {
        "format": fmt,
        "width": width or fig.layout.width or 1000,
        "height": height or fig.layout.height or 600,
        "scale": scale if fmt == "png" else 1,
    }
    if _export_server_running():
        return kaleido.calc_fig_sync(printable.to_dict(), opts=opts)
    browser = find_browser()
    if browser is None:
        raise AnalysisError(_NO_BROWSER)
    # No MathJax: the figures use no LaTeX, and kaleido would otherwise fetch it from a CDN.
    return kaleido.calc_fig_sync(
        printable.to_dict(), opts=opts, kopts={"mathjax": False, "path": browser}
    )


_NO_BROWSER = (
    "PNG/SVG export needs Chromium (or Chrome): install it (Debian: apt-get install chromium) "
    "or set BROWSER_PATH to its executable. HTML export works without it."
)


def _export_server_running() -> bool:
    try:
        from kaleido import _global_server
    except ImportError:
        return False
    return bool(_global_server.is_running())


@contextmanager
def export_session() -> Iterator[None]:
    """Keep one headless browser open for several exports (each export otherwise starts one,
    which takes seconds)::

        with export_session():
            for name, fig in figures.items():
                path.write_bytes(export_figure(fig, "png"))
    """
    import kaleido

    browser = find_browser()
    if browser is None:
        raise AnalysisError(_NO_BROWSER)
    kaleido.start_sync_server(path=browser, mathjax=False, silence_warnings=True)
    try:
        yield
    finally:
        kaleido.stop_sync_server(silence_warnings=True)
