"""How much a coefficient depends on the assumed sampling correlation and on the inference.

The sampling correlation rho of one study's effect sizes is rarely reported, so the CHE working
model (and the aggregation of the aggregated two-level model) rests on an assumption; the
usual check is to refit across a range of rho and to compare model-based with cluster-robust
(CR2) inference, which stays valid when rho is wrong (Pustejovsky & Tipton 2022, Prev Sci 23,
425-438). :func:`rho_sensitivity` refits the analysis for each rho through ``run_analysis``,
so every row is the very model the dashboard would fit with that choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from alliance_core.analyses.run import AnalysisRun, effect_size_table, run_analysis
from alliance_core.analyses.settings import MODEL_BASED, ROBUST, AnalysisSettings
from alliance_core.data.mapping import ColumnMapping
from alliance_core.errors import AnalysisError

RHO_GRID = (0.0, 0.2, 0.4, 0.6, 0.8)
SENSITIVITY_COLUMNS = (
    "rho",
    "inference",
    "estimate",
    "se",
    "df",
    "pval",
    "ci_lb",
    "ci_ub",
    "current",
    "error",
)
INFERENCE_WORDS = {MODEL_BASED: "model-based", ROBUST: "CR2"}


def rho_sensitivity(
    data: pd.DataFrame,
    mapping: ColumnMapping,
    settings: AnalysisSettings,
    term: str,
    rhos: Sequence[float] = RHO_GRID,
    table: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``term``'s coefficient for each rho (when the model uses rho) and each inference.

    One row per (rho, inference): estimate, se, df (NaN for z tests), pval, ci_lb, ci_ub,
    ``current`` (the settings' own rho and inference) and ``error`` (why a fit failed, else
    None). CR2 rows are present only when the table has a study column to cluster by.
    """
    if table is None:
        table = effect_size_table(data, mapping)
    grid = sorted({*map(float, rhos), float(settings.rho)}) if settings.uses_rho else [settings.rho]
    rows = []
    for rho in grid:
        choice = settings.with_changes(
            rho=rho, inference=ROBUST if mapping.study else MODEL_BASED, page=None
        )
        try:
            run = run_analysis(data, mapping, choice, table=table)
        except AnalysisError as error:
            rows.append(_failed(rho, MODEL_BASED, settings, str(error)))
            continue
        rows.append(_row(run, term, rho, MODEL_BASED, settings))
        if run.robust is not None:
            rows.append(_row(run, term, rho, ROBUST, settings))
    return pd.DataFrame(rows, columns=list(SENSITIVITY_COLUMNS))


def _row(run: AnalysisRun, term: str, rho: float, inference: str, settings) -> dict:
    if inference == ROBUST:
        coefficients = run.robust.coefficients
        df = None
    else:
        coefficients = run.result.coefficients
        df = run.result.ddf
    if term not in coefficients.index:
        return _failed(rho, inference, settings, f"'{term}' is not a coefficient of this model.")
    row = coefficients.loc[term]
    return {
        "rho": rho,
        "inference": inference,
        "estimate": float(row["estimate"]),
        "se": float(row["se"]),
        "df": float(row["df"]) if inference == ROBUST else (np.nan if df is None else float(df)),
        "pval": float(row["pval"]),
        "ci_lb": float(row["ci_lb"]),
        "ci_ub": float(row["ci_ub"]),
        "current": _is_current(rho, inference, settings),
        "error": None,
    }


def _failed(rho: float, inference: str, settings, message: str) -> dict:
    return {
        "rho": rho,
        "inference": inference,
        **dict.fromkeys(("estimate", "se", "df", "pval", "ci_lb", "ci_ub"), np.nan),
        "current": _is_current(rho, inference, settings),
        "error": message,
    }


def _is_current(rho: float, inference: str, settings: AnalysisSettings) -> bool:
    return bool(np.isclose(rho, settings.rho) and inference == settings.inference)
