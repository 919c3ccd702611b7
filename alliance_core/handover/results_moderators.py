"""The Moderators page's marginal means and model comparison as rows of the results file.

One row per level of each categorical moderator of a model with moderators (section
"marginal mean", model-based; with cluster-robust inference also "robust marginal mean", the
CR2 means with each mean's own Satterthwaite df, which the page then shows): estimate, se, df
(left empty for z tests, whose df is infinite), CI and prediction interval on the model scale
(Fisher's z for correlations), exactly ``res.marginal_means(column, robust=...)``. The model
comparison table (``model_comparison``; refits, so only when it is handed over) gives four
rows per model: logLik with its likelihood-ratio test, AIC, BIC and AICc.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alliance_core.analyses.model_comparison import ModelComparison
from alliance_core.errors import AnalysisError
from alliance_core.model.marginal import MarginalMeans
from alliance_core.model.results import MetaResult
from alliance_core.model.robust import RobustResult

MARGINAL_SECTION = "marginal mean"
ROBUST_MARGINAL_SECTION = "robust marginal mean"


def categorical_columns(res: MetaResult) -> list[str]:
    return [term.column for term in res.design.terms if term.kind == "categorical"]


def marginal_name(column: str, level: object) -> str:
    return f"{column}: {level}"


def means_rows(means: MarginalMeans, section: str) -> list[dict]:
    rows = []
    for level, row in means.table.iterrows():
        rows.append(
            {
                "section": section,
                "name": marginal_name(means.focal, level),
                "estimate": row["estimate"],
                "se": row["se"],
                "df": row["df"] if np.isfinite(row["df"]) else None,
                "ci_lb": row["ci_lb"],
                "ci_ub": row["ci_ub"],
                "pi_lb": row["pi_lb"] if np.isfinite(row["pi_lb"]) else None,
                "pi_ub": row["pi_ub"] if np.isfinite(row["pi_ub"]) else None,
            }
        )
    return rows


def marginal_rows(res: MetaResult, robust: RobustResult | None = None) -> list[dict]:
    """The marginal means of every categorical moderator, model-based, then under ``robust``.

    A moderator whose means cannot be computed (the engine says why) gives no rows; the
    Moderators page shows the same message."""
    rows: list[dict] = []
    for section, inference in ((MARGINAL_SECTION, None), (ROBUST_MARGINAL_SECTION, robust)):
        if section == ROBUST_MARGINAL_SECTION and robust is None:
            continue
        for column in categorical_columns(res):
            try:
                means = res.marginal_means(column, robust=inference)
            except AnalysisError:
                continue
            rows.extend(means_rows(means, section))
    return rows


COMPARISON_SECTION = "model comparison"
FIT_STATISTICS = (("AIC", "aic"), ("BIC", "bic"), ("AICc", "aicc"))


def comparison_label(row) -> str:
    """A comparison row's name: its model and the likelihood it was fitted by."""
    return f"{row['model']} ({row['method']})"


def comparison_rows(comparison: ModelComparison) -> list[dict]:
    """The model comparison table as rows (section "model comparison"): per model its
    log-likelihood with the likelihood-ratio test against the analysed model fitted by the
    same method (statistic, df, p), then its AIC, BIC and AICc, one row each."""
    rows: list[dict] = []
    for _, row in comparison.table.iterrows():
        label = comparison_label(row)
        rows.append(
            {
                "section": COMPARISON_SECTION,
                "name": f"{label}: logLik",
                "estimate": row["loglik"],
                "statistic": row["LRT"] if np.isfinite(row["LRT"]) else None,
                "df": None if pd.isna(row["df"]) else int(row["df"]),
                "pval": row["pval"] if np.isfinite(row["pval"]) else None,
            }
        )
        for name, column in FIT_STATISTICS:
            rows.append(
                {"section": COMPARISON_SECTION, "name": f"{label}: {name}", "estimate": row[column]}
            )
    return rows
