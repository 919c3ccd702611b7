"""Separate fits per level of a categorical column (metafor: one ``rma`` per subset).

A forest plot's subgroup diamonds come from here: each level of, say, ``alliance_rater`` is fitted
on its own rows with the same estimator, test and model (two- or three-level) as the full model,
without moderators. Levels with too few studies are reported with a note instead of a fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from alliance_core.errors import AnalysisError
from alliance_core.model.design import level_order
from alliance_core.model.fitting import fit
from alliance_core.model.results import MetaResult

# Fewer than three studies leave (almost) nothing to estimate the between-study variance from,
# so a subgroup estimate from one or two studies would be shown with false confidence.
MIN_SUBGROUP_STUDIES = 3


@dataclass(frozen=True)
class SubgroupFit:
    """One level of the subgroup column: its size and either a fitted model or why there is none."""

    column: str
    level: str
    k: int
    n_studies: int
    result: MetaResult | None
    note: str | None = None

    @property
    def fitted(self) -> bool:
        return self.result is not None


def subgroup_levels(res: MetaResult, column: str) -> list[str]:
    """Levels of ``column`` in the analysed rows: model order if it is a moderator, else A-Z."""
    if column not in res.data.columns:
        raise AnalysisError(
            f"Subgroups: column '{column}' is not in the analysed data "
            f"(columns: {', '.join(map(str, res.data.columns))})."
        )
    if column in res.moderators:
        term = res.design.term(column)
        if term.kind == "categorical":
            return list(term.levels)
    return level_order(res.data[column].dropna().unique())


def subgroup_fits(
    res: MetaResult, column: str, *, min_studies: int = MIN_SUBGROUP_STUDIES
) -> tuple[SubgroupFit, ...]:
    """Fit the intercept-only model of ``res`` (same method, test, level, clustering) per level.

    Rows where ``column`` is missing belong to no subgroup. A level with fewer than
    ``min_studies`` studies, or whose fit fails, gets ``result=None`` and a plain-language note.
    """
    data = res.data
    labels = data[column].map(lambda value: None if pd.isna(value) else str(value))
    fits = []
    for level in subgroup_levels(res, column):
        rows = data.loc[labels == level]
        n_studies = _count_studies(res, rows)
        if n_studies < min_studies:
            note = (
                f"{column} = {level}: not estimated ({_studies_text(n_studies)}; "
                f"a subgroup needs at least {min_studies})."
            )
            fits.append(SubgroupFit(column, level, len(rows), n_studies, None, note))
            continue
        try:
            result = fit(
                rows,
                yi="yi",
                vi="vi",
                method=res.method,
                cluster=res.cluster,
                test=res.test,
                level=res.level,
                rho=res.rho,
                fix_sigma2=res.fix_sigma2,
            )
        except AnalysisError as error:
            note = f"{column} = {level}: not estimated ({error})"
            fits.append(SubgroupFit(column, level, len(rows), n_studies, None, note))
            continue
        fits.append(SubgroupFit(column, level, len(rows), n_studies, result))
    return tuple(fits)


def _count_studies(res: MetaResult, rows: pd.DataFrame) -> int:
    # In the two-level model every effect size counts as its own study.
    if res.cluster is None:
        return len(rows)
    return int(rows[res.cluster].nunique())


def _studies_text(n: int) -> str:
    return f"{n} {'study' if n == 1 else 'studies'}"
