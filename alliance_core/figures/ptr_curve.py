"""The PTR curve (metafor ``regplot``) with what-if profiles, and the PTR slope readout."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy import special

from alliance_core.errors import AnalysisError
from alliance_core.figures.styling import (
    OKABE_ITO,
    add_caption,
    escape_html,
    moderator_values_text,
    percent_level,
    predictions,
    rgba,
    style_figure,
)
from alliance_core.formatting import format_number
from alliance_core.model.inference import BandInference
from alliance_core.model.nesting import display_name
from alliance_core.model.results import MetaResult
from alliance_core.model.robust_contrasts import linear_contrast

MAX_PROFILES = 4
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


def profile_predictions(
    res: MetaResult,
    coding: PTRCoding,
    profile: Profile,
    grid: np.ndarray,
    band: BandInference | None = None,
) -> pd.DataFrame:
    """``res.predict`` on the r scale along the PTR grid for one profile (with ``band``, e.g.
    CR2: ``band.robust.predict``, every grid point on its own Satterthwaite df)."""
    frame = pd.DataFrame(coding.columns_at(grid))
    for column, value in {**profile.values, **profile.held}.items():
        frame[column] = value
    out = predictions(res, band, frame, transform="r")
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
    caption_height = add_caption(fig, notes, width=110)
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
            "title": {"text": f"{escape_html(color_by)}: " if color_by else ""},
            "itemsizing": "constant",  # bubble legend symbols at a readable size
        },
        margin={"l": 70, "r": 20, "t": 80, "b": 80 + caption_height},
        hovermode="closest",
    )
    return style_figure(fig, height=560 + caption_height)


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
            f"<b>{escape_html(label)}</b><br>r = {format_number(ri, 3)}<br>PTR = {p:.1f}"
            f"<br>Weight: {w:.2f}%"
            + (f"<br>{escape_html(color_by)}: {escape_html(level)}" if level is not None else "")
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
                    "color": rgba(colour, 0.45),
                    "line": {"width": 0.8, "color": colour},
                },
                name=escape_html(level) if level is not None else "Effect sizes",
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
            fillcolor=rgba(colour, fill_alpha),
            line={"width": 0},
            hoverinfo="skip",
            showlegend=False,
            legendgroup=name,
            name=f"{escape_html(name)}: {'confidence' if which == 'ci' else 'prediction'} band",
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
                    line={"color": rgba(colour, 0.7), "width": 1, "dash": "dash"},
                    hoverinfo="skip",
                    showlegend=False,
                    legendgroup=name,
                    name=f"{escape_html(name)}: prediction band {edge} edge",
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
            name=escape_html(name),
            legendgroup=name,
            # The name goes in as hovertext: a "%{...}" in a user's profile name stays text.
            hovertext=[escape_html(name)] * len(pred),
            hovertemplate="%{hovertext}<br>PTR %{x:.1f}: predicted r = %{y:.3f}<extra></extra>",
            meta={"role": "curve", "profile": name},
        )
    )


def _ptr_notes(res: MetaResult, coding: PTRCoding, profiles, show_pi: bool) -> list[str]:
    level = percent_level(res)
    bands = f"Curve: predicted average r; band: {level} confidence interval"
    if show_pi and res.method != "EE":
        drawn = "light band with dashed edges" if len(profiles) == 1 else "dashed lines"
        bands += (
            f"; {drawn}: {level} prediction interval "
            "(where the true effect of a new study is expected)"
        )
    terms = " + ".join(display_name(column) for column, _ in coding.model_columns)
    notes = [bands + f". PTR enters the model as {terms}. Bubble area \u221d model weight."]
    helds = {tuple(sorted((k, str(v)) for k, v in p.held.items())) for p in profiles}
    if len(helds) == 1:
        held = profiles[0].held
        if held:
            notes.append(f"Held fixed: {moderator_values_text(held, res)}.")
    else:
        for p in profiles:
            if p.held:
                notes.append(f"{p.name}: holds {moderator_values_text(p.held, res)}.")
    return notes


# -- PTR slope readout -------------------------------------------------------------------------
@dataclass(frozen=True)
class PTRSlopeReadout:
    """Change in the predicted alliance-outcome correlation between two PTR values.

    The difference is a linear contrast on Fisher's z, c = x(to) - x(from):
    estimate c'b, standard error sqrt(c' V c), interval estimate +/- crit * se with the model's
    critical value (normal, or t with its df); under robust inference V is the robust
    covariance and the t has the contrast's own Satterthwaite df (clubSandwich
    ``linear_contrast``), reported as ``df``. On the r scale the difference is
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
    df: float | None  # of the contrast's t test; None: normal (z test)
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
    if band is None:
        se = float(np.sqrt(contrast @ res.vb @ contrast))
        crit = res.critical_value
        z_ci = (estimate - crit * se, estimate + crit * se)
        statistic = estimate / se if se > 0 else np.nan
        df = None if res.ddf is None else float(res.ddf)
        pval = _two_sided_p(statistic, res.ddf)
    else:
        # The change is its own contrast with its own df, not the slope's (they agree only
        # when PTR enters as one term).
        row = linear_contrast(band.robust, contrast[None, :], level=res.level).iloc[0]
        se, df = float(row["se"]), float(row["df"])
        z_ci = (float(row["ci_lb"]), float(row["ci_ub"]))
        statistic, pval = float(row["statistic"]), float(row["pval"])

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
        df=df,
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
