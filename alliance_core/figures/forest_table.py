"""The rows of a forest plot: one per study (or effect size), their labels, order and hover fields.

``study_table`` collapses the analysed rows to one row per study (metafor's forest of an
``rma.mv`` fit shows effect sizes; a study row shows the values its effect sizes share), and
the sort orders a reader may choose live here; :mod:`alliance_core.figures.forest` draws them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from alliance_core.data.mapping import ColumnMapping, study_label
from alliance_core.errors import AnalysisError
from alliance_core.figures.styling import escape_html
from alliance_core.model.results import MetaResult

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


def forest_columns(columns: Mapping[str, str] | ColumnMapping | None) -> dict[str, str]:
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


def hover_value(value) -> str:
    if isinstance(value, float | np.floating):
        return f"{value:.1f}" if not float(value).is_integer() else f"{value:.0f}"
    return escape_html(value)


FOREST_SORTS = ("effect", "precision", "year", "ptr", "label", None)


def study_table(
    res: MetaResult,
    *,
    label_column: str | None = None,
    columns: Mapping[str, str] | ColumnMapping | None = None,
) -> pd.DataFrame:
    """One row per study for display: yi, vi, weight (percent), k and hover fields.

    Two-level models: each effect size is its own study. Three-level models: a study's effect
    sizes are pooled by inverse-variance weighting on the analysed scale (Fisher's z for
    correlations), yi = sum(y/v) / sum(1/v),
    vi = 1 / sum(1/v), which treats them as independent (a display summary, not the model's
    estimate); the study's weight is the sum of its effect sizes' model weights.
    """
    cols = forest_columns(columns)
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
    if pd.api.types.is_numeric_dtype(data[column]):
        return pairs.groupby(group, sort=False)[column].mean()
    # One join per study in plain Python: pandas' agg with a Python function costs a
    # hundred times more on a few hundred studies (it builds a Series per group).
    joined: dict = {}
    for key, value in zip(pairs[group].to_numpy(), pairs[column].to_numpy(), strict=True):
        joined.setdefault(key, []).append(str(value))
    index = pd.Index(list(joined), name=group)
    return pd.Series([", ".join(v) for v in joined.values()], index=index, name=column)


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


def sort_rows(table: pd.DataFrame, sort_by: str | None) -> pd.DataFrame:
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
