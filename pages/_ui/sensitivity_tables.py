"""The Sensitivity page's tables and chart data, laid out like a published table (no Streamlit).

The engine's leave-one-out, influence and cumulative tables keep metafor's column names and
full precision (for downloads and tests); these helpers turn them into what a reader sees:
plain column names, APA p-values, the effect on the page's scale (r for correlations) and the
followed coefficient (PTR) first.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from alliance_core.data.effect_sizes import transf
from alliance_core.formatting import format_coefficient, format_number, format_p_cell
from alliance_core.model.nesting import display_name


def effect_name(on_r: bool, has_moderators: bool, symbol: str | None = None) -> str:
    """What the intercept column is: the pooled effect, or the effect at the reference values."""
    what = "r" if on_r else (symbol or "effect")
    return f"Intercept ({what})" if has_moderators else f"Pooled {what}"


def _interval(low: float, high: float, digits: int) -> str:
    return f"[{format_number(low, digits)}, {format_number(high, digits)}]"


def _on_scale(values: pd.Series, on_r: bool) -> np.ndarray:
    return np.asarray(transf(values.to_numpy(float), "r" if on_r else None), dtype=float)


def leave_one_out_display(
    table: pd.DataFrame,
    *,
    unit: str,
    coefficient: str | None,
    on_r: bool,
    has_moderators: bool,
    level: float = 0.95,
    labels: Mapping[object, str] | None = None,
    symbol: str | None = None,
) -> pd.DataFrame:
    """One row per refit: what was left out, the followed coefficient first, then the effect.

    ``labels`` maps the left-out row label (two-level) to a readable name (a study label).
    """
    ci = f"{level:.0%} CI"
    out = pd.DataFrame(index=range(len(table)))
    left_out = [labels.get(v, v) if labels else v for v in table.index]
    out[f"{unit.capitalize()} left out"] = [str(v) for v in left_out]
    out["k"] = table["k"].to_numpy()
    if coefficient is not None and "coef_estimate" in table.columns:
        name = display_name(coefficient)
        estimates, intervals = [], []
        for _, row in table.iterrows():
            estimate, _ = format_coefficient(row["coef_estimate"], row["coef_se"], minimum=3)
            low, _ = format_coefficient(row["coef_ci_lb"], row["coef_se"], minimum=3)
            high, _ = format_coefficient(row["coef_ci_ub"], row["coef_se"], minimum=3)
            estimates.append(estimate)
            intervals.append(f"[{low}, {high}]")
        out[f"{name} coefficient"] = estimates
        out[f"{name} {ci}"] = intervals
        out[f"p ({name})"] = [format_p_cell(p) for p in table["coef_pval"]]
    effect = effect_name(on_r, has_moderators, symbol)
    values = _on_scale(table["estimate"], on_r)
    lows, highs = _on_scale(table["ci_lb"], on_r), _on_scale(table["ci_ub"], on_r)
    out[effect] = [format_number(v, 3) for v in values]
    out[f"{effect} {ci}"] = [_interval(lo, hi, 3) for lo, hi in zip(lows, highs, strict=True)]
    out["I² (%)"] = [format_number(v, 1) for v in table["I2"]]
    if table["error"].notna().any():
        out["Could not be refitted because"] = [e if e else "" for e in table["error"]]
    return out


_INFLUENCE_NAMES = {
    "k": "Effect sizes",
    "X2": "Distance from the fit without it (χ²)",
    "cook_d": "Cook's distance",
    "rstudent": "Studentized residual",
    "dffits": "DFFITS",
    "cov_r": "Covariance ratio",
    "tau2_del": "τ² without it",
    "QE_del": "Q without it",
    "hat": "Leverage (hat)",
    "weight": "Weight (%)",
    "influential": "Influential",
}


def influence_display(
    table: pd.DataFrame, *, unit: str, labels: Mapping[object, str] | None = None
) -> pd.DataFrame:
    """Influence diagnostics with plain column names; DFBETAS named by their coefficient."""
    out = pd.DataFrame(index=range(len(table)))
    names = [labels.get(v, v) if labels else v for v in table.index]
    out[unit.capitalize()] = [str(v) for v in names]
    for column in table.columns:
        if column == "influential":
            continue
        if column.startswith("dfbs_"):
            term = column.removeprefix("dfbs_")
            heading = "DFBETAS " + ("intercept" if term == "intrcpt" else display_name(term))
        else:
            heading = _INFLUENCE_NAMES.get(column, column)
        values = table[column]
        if column == "k":
            out[heading] = values.astype(int).to_numpy()
        else:
            out[heading] = [format_number(v, 3) for v in values]
    if "influential" in table.columns:
        out[_INFLUENCE_NAMES["influential"]] = np.where(table["influential"], "yes", "no")
    return out


def cumulative_chart(table: pd.DataFrame, *, on_r: bool, symbol: str | None = None) -> pd.DataFrame:
    """Fitted cumulative steps for a line chart: x = step, the effect and its CI on scale."""
    ok = table[table["error"].isna()]
    what = "r" if on_r else (symbol or "effect")
    return pd.DataFrame(
        {
            "Step": np.arange(1, len(ok) + 1),
            f"Pooled {what}": _on_scale(ok["estimate"], on_r),
            "Lower CI limit": _on_scale(ok["ci_lb"], on_r),
            "Upper CI limit": _on_scale(ok["ci_ub"], on_r),
        }
    )


def dependence_display(table: pd.DataFrame, level: float) -> pd.DataFrame:
    """The coefficient across rho and inference, for display (the current choice marked)."""
    words = {"model": "model-based", "CR2": "cluster-robust (CR2)"}
    rows = []
    for _, row in table.iterrows():
        if row["error"]:
            estimate = se = df = p = interval = "–"
        else:
            estimate, se = format_coefficient(row["estimate"], row["se"], minimum=3)
            low, _ = format_coefficient(row["ci_lb"], row["se"], minimum=3)
            high, _ = format_coefficient(row["ci_ub"], row["se"], minimum=3)
            interval = f"[{low}, {high}]"
            df = "–" if not np.isfinite(row["df"]) else f"{row['df']:.1f}"
            p = format_p_cell(row["pval"])
        rows.append(
            {
                "": "●" if row["current"] else "",
                "ρ": f"{row['rho']:g}",
                "Inference": words.get(row["inference"], row["inference"]),
                "Estimate": estimate,
                "SE": se,
                "df": df,
                "p": p,
                f"{level:.0%} CI": interval,
            }
        )
    return pd.DataFrame(rows).set_index("")
