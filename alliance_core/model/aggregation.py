"""``aggregate``: one effect size per study, as metafor's ``aggregate.escalc(struct = "CS")``.

Within study i the sampling errors get compound symmetry, V_i = S R S with S = diag(sqrt(v))
and R = 1 on the diagonal and rho off it; the study's effect is the inverse-variance weighted
mean y_i = 1'V_i^-1 y / 1'V_i^-1 1 with variance 1 / (1'V_i^-1 1). A two-level model fitted to
these rows is a valid analysis of nested effect sizes (given rho).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alliance_core.errors import AnalysisError
from alliance_core.model.robust_variance import marginal_blocks

COUNT_COLUMN = "ki"


def aggregate(
    data: pd.DataFrame,
    cluster: str = "study",
    rho: float = 0.6,
    yi: str = "yi",
    vi: str = "vi",
) -> pd.DataFrame:
    """One row per study (in order of first appearance, as metafor), with yi, vi and ``ki``.

    Columns constant within every study are carried along; columns that vary within a study
    are left out (metafor would average or take the most frequent value; here nothing is
    summarised silently) and named in ``result.attrs["dropped_columns"]``. Rows with a
    missing yi or vi are left out, as metafor does, and listed (original index) in
    ``result.attrs["dropped_rows"]``. ``ki`` counts the effect sizes aggregated per study.
    """
    for column in (cluster, yi, vi):
        if column not in data.columns:
            raise AnalysisError(
                f"Column '{column}' is not in the data (columns: {', '.join(map(str, data.columns))})."
            )
    if COUNT_COLUMN in data.columns:
        raise AnalysisError(
            f"The data already have a column '{COUNT_COLUMN}', the name aggregate() gives the "
            "count of effect sizes per study. Rename it first."
        )
    if not -1.0 <= float(rho) <= 1.0:
        raise AnalysisError(f"rho = {rho} must lie between -1 and 1.")
    missing_cluster = data[cluster].isna().to_numpy()
    if missing_cluster.any():
        row = data.index[np.argmax(missing_cluster)]
        raise AnalysisError(f"Row {row}, column '{cluster}': the study is missing.")
    y_all = pd.to_numeric(data[yi], errors="coerce")
    v_all = pd.to_numeric(data[vi], errors="coerce")
    for column, values in ((yi, y_all), (vi, v_all)):
        bad = values.isna() & data[column].notna()
        if bad.any():
            row = bad.index[np.argmax(bad.to_numpy())]
            raise AnalysisError(
                f"Row {row}, column '{column}': '{data.at[row, column]}' is not a number."
            )
    keep = (y_all.notna() & v_all.notna()).to_numpy()
    rows = data.loc[keep]
    y, v = y_all.to_numpy()[keep], v_all.to_numpy()[keep]
    if len(rows) == 0:
        raise AnalysisError(f"No row has both '{yi}' and '{vi}'.")
    nonpositive = v <= 0
    if nonpositive.any():
        row = rows.index[np.argmax(nonpositive)]
        raise AnalysisError(
            f"Row {row}, column '{vi}': sampling variance {v[np.argmax(nonpositive)]:g} must be "
            "positive."
        )

    labels = rows[cluster].to_numpy()
    blocks = marginal_blocks(labels, v, study=labels, rho=float(rho))
    n = blocks.n_clusters
    y_agg = np.empty(n)
    v_agg = np.empty(n)
    for size, (clusters, V) in blocks.groups.items():
        try:
            L = np.linalg.cholesky(V)
        except np.linalg.LinAlgError:
            bad = _first_not_positive_definite(V)
            raise AnalysisError(
                f"Study '{blocks.labels[clusters[bad]]}': with rho = {rho} its sampling "
                "covariance matrix is not positive definite, so its effect sizes cannot be "
                "aggregated. Choose rho below 1."
            ) from None
        ones = np.ones((len(clusters), size, 1))
        weights = np.linalg.solve(np.swapaxes(L, 1, 2), np.linalg.solve(L, ones))[..., 0]
        total = weights.sum(axis=1)
        y_agg[clusters] = np.einsum("ns,ns->n", weights, y[blocks.rows(clusters, size)]) / total
        v_agg[clusters] = 1.0 / total

    codes = pd.factorize(pd.Series(labels, dtype=object), sort=False)[0]
    others = [c for c in rows.columns if c not in (yi, vi)]
    grouped = rows[others].groupby(codes, sort=True)
    varying = [c for c in others if c != cluster and (grouped[c].nunique(dropna=False) > 1).any()]
    carried = [c for c in others if c not in varying]
    first = rows.iloc[blocks.order[blocks.starts]]
    out = pd.DataFrame(index=pd.RangeIndex(n))
    for column in data.columns:
        if column == yi:
            out[yi] = y_agg
        elif column == vi:
            out[vi] = v_agg
        elif column in carried:
            out[column] = first[column].to_numpy()
    out[COUNT_COLUMN] = blocks.sizes
    out.attrs["rho"] = float(rho)
    out.attrs["cluster"] = cluster
    out.attrs["dropped_columns"] = tuple(varying)
    out.attrs["dropped_rows"] = tuple(data.index[~keep])
    return out


def _first_not_positive_definite(V: np.ndarray) -> int:
    smallest = np.linalg.eigvalsh(V)[:, 0]
    return int(np.argmax(smallest <= np.finfo(float).eps * np.abs(V).max()))
