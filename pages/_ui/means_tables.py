"""Display tables of the marginal means and the model comparison (plain Python, no Streamlit).

The numbers come from ``MetaResult.marginal_means`` and ``model_comparison``; this only
formats them for ``render.table`` (level names are user text: that path escapes them).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from alliance_core.analyses.model_comparison import ModelComparison
from alliance_core.formatting import format_p_cell
from alliance_core.model.marginal import MarginalMeans
from pages._ui.tables import FLAG_MARK  # the coefficient table's mark for a flagged row


def _num(value: float, digits: int = 2) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    text = f"{value:.{digits}f}"
    return "\u2212" + text[1:] if text.startswith("-") and float(text) != 0 else text.lstrip("-")


def _interval(low: float, high: float, digits: int = 2) -> str:
    return f"[{_num(low, digits)}, {_num(high, digits)}]"


def marginal_means_table(
    means: MarginalMeans, on_r_scale: bool, cautions: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """One row per level: the expected effect (r, or the model scale), its CI and PI, k, df;
    with ``cautions`` (level → reason, ``marginal_flags.mean_cautions``) a "Caution" column
    marks each level whose mean cannot be trusted."""
    t = means.table
    prefix = "r_" if on_r_scale else ""
    estimate = t["r"] if on_r_scale else t["estimate"]
    level = f"{means.level:.0%}"
    out = pd.DataFrame(
        {
            "Expected effect (r)" if on_r_scale else "Expected effect": [_num(v) for v in estimate],
            f"{level} CI": [
                _interval(lo, hi)
                for lo, hi in zip(t[f"{prefix}ci_lb"], t[f"{prefix}ci_ub"], strict=True)
            ],
            f"{level} prediction interval": [
                _interval(lo, hi)
                for lo, hi in zip(t[f"{prefix}pi_lb"], t[f"{prefix}pi_ub"], strict=True)
            ],
            "Effect sizes": [str(int(k)) for k in t["k"]],
            "df": ["∞" if np.isinf(d) else _num(d, 1) for d in t["df"]],
        },
        index=pd.Index([str(level_name) for level_name in t.index], name=means.focal),
    )
    if cautions:
        out["Caution"] = [FLAG_MARK if str(name) in cautions else "" for name in t.index]
    return out


def comparison_table(comparison: ModelComparison) -> pd.DataFrame:
    """The comparison table with formatted numbers, one row per model."""
    t = comparison.table
    return pd.DataFrame(
        {
            "Compared by": t["comparison"],
            "Parameters": [str(v) for v in t["parameters"]],
            "logLik": [_num(v, 2) for v in t["loglik"]],
            "AIC": [_num(v, 2) for v in t["aic"]],
            "BIC": [_num(v, 2) for v in t["bic"]],
            "AICc": [_num(v, 2) for v in t["aicc"]],
            "LRT": [_num(v, 2) for v in t["LRT"]],
            "df": ["–" if pd.isna(v) else str(int(v)) for v in t["df"]],
            "p": ["–" if not np.isfinite(p) else format_p_cell(p) for p in t["pval"]],
        },
        index=pd.Index(list(t["model"]), name="Model"),
    )
