"""The Moderators page's marginal means as rows of the results file.

One row per level of each categorical moderator of a model with moderators (section
"marginal mean", model-based; with cluster-robust inference also "robust marginal mean", the
CR2 means with each mean's own Satterthwaite df, which the page then shows): estimate, se, df
(left empty for z tests, whose df is infinite), CI and prediction interval on the model scale
(Fisher's z for correlations), exactly ``res.marginal_means(column, robust=...)``.
"""

from __future__ import annotations

import numpy as np

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
