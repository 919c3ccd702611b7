"""From a coding sheet, its column mapping and the user's settings to a fitted model.

This is the one place where the dashboard's choices meet the engine: effect sizes from the
mapped columns, the Patient-Therapist Ratio from patient and therapist counts, the what-if
filters, and the fit. Pages call ``run_analysis`` and render what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from alliance_core.effect_sizes import escalc, patient_therapist_ratio
from alliance_core.errors import AnalysisError
from alliance_core.fitting import fit
from alliance_core.mapping import ColumnMapping
from alliance_core.results import MetaResult
from alliance_core.settings import PTR, AnalysisSettings

PTR_COLUMN = "PTR"
LOG_PTR_COLUMN = "log_PTR"


@dataclass(frozen=True, eq=False)
class AnalysisRun:
    """A fitted model and the rows it was fitted to, with what was left out and why."""

    result: MetaResult
    data: pd.DataFrame  # rows after filters, with yi, vi (and PTR, log_PTR when available)
    settings: AnalysisSettings
    moderator_columns: tuple[str, ...]  # the columns actually entered (PTR resolved)
    excluded_by_filter: int
    notes: tuple[str, ...]

    @property
    def ptr_column(self) -> str | None:
        """The PTR column in the model (PTR or log_PTR), if PTR is a moderator."""
        for column in (LOG_PTR_COLUMN, PTR_COLUMN):
            if column in self.moderator_columns:
                return column
        return None


def effect_size_table(data: pd.DataFrame, mapping: ColumnMapping) -> pd.DataFrame:
    """A copy with yi and vi (Fisher z for correlations) and PTR/log_PTR where possible."""
    if mapping.uses_correlations:
        table = escalc(data, r=mapping.r, n=mapping.n, measure="ZCOR")
    elif mapping.yi and mapping.vi:
        table = escalc(data, measure="precomputed", yi=mapping.yi, vi=mapping.vi)
    else:
        raise AnalysisError(
            "Say which columns hold the correlation r and sample size n, or the effect size yi "
            "and its sampling variance vi."
        )
    if mapping.has_therapists:
        patients = pd.to_numeric(table[mapping.n], errors="coerce")
        therapists = pd.to_numeric(table[mapping.n_therapists], errors="coerce")
        ratio = patient_therapist_ratio(patients, therapists)
        table[PTR_COLUMN] = ratio
        with np.errstate(divide="ignore", invalid="ignore"):
            table[LOG_PTR_COLUMN] = np.log(ratio)
    return table


def available_moderators(data: pd.DataFrame, mapping: ColumnMapping) -> list[str]:
    """Moderators a user can choose: PTR (when therapist counts exist) and the mapped ones."""
    choices = [PTR] if mapping.has_therapists else []
    choices += [m for m in mapping.moderators if m in data.columns and m not in choices]
    return choices


def apply_filters(data: pd.DataFrame, filters) -> pd.DataFrame:
    """Rows whose value in each filtered column is among the kept levels (a view, not an edit)."""
    keep = np.ones(len(data), dtype=bool)
    for column, levels in filters.items():
        if column not in data.columns:
            raise AnalysisError(
                f"The filter refers to column '{column}', which this dataset does not have."
            )
        keep &= (
            data[column]
            .astype("string")
            .isin([str(level) for level in levels])
            .to_numpy(dtype=bool)
        )
    return data.loc[keep]


def resolve_moderators(settings: AnalysisSettings, mapping: ColumnMapping) -> tuple[str, ...]:
    columns = []
    for moderator in settings.moderators:
        if moderator == PTR:
            if not mapping.has_therapists:
                raise AnalysisError(
                    "PTR needs the number of therapists per study; map a therapist column to use it."
                )
            columns.append(LOG_PTR_COLUMN if settings.ptr_scale == "log" else PTR_COLUMN)
        else:
            columns.append(moderator)
    return tuple(columns)


def run_analysis(
    data: pd.DataFrame,
    mapping: ColumnMapping,
    settings: AnalysisSettings,
    table: pd.DataFrame | None = None,
) -> AnalysisRun:
    """Effect sizes, filters and the fit for one set of choices.

    ``table`` may pass a precomputed ``effect_size_table(data, mapping)`` (the dashboard
    caches it, since toggling a moderator does not change it).
    """
    if table is None:
        table = effect_size_table(data, mapping)
    filtered = apply_filters(table, settings.filters)
    excluded = len(table) - len(filtered)
    notes = []
    if excluded:
        kept = "; ".join(f"{c} in {{{', '.join(v)}}}" for c, v in settings.filters.items())
        notes.append(f"{excluded} of {len(table)} effect sizes left out by the filter ({kept}).")
    if filtered.empty:
        raise AnalysisError("The filter leaves no effect sizes. Widen it to include some rows.")
    moderators = resolve_moderators(settings, mapping)
    if LOG_PTR_COLUMN in moderators:
        _check_ptr_can_be_logged(filtered, mapping)
    three_level = settings.model == "three-level"
    if three_level and not mapping.study:
        raise AnalysisError(
            "The three-level model needs a study column; map one or use the two-level model."
        )
    result = fit(
        filtered,
        yi="yi",
        vi="vi",
        moderators=list(moderators),
        reference={c: v for c, v in settings.reference.items() if c in moderators} or None,
        method=settings.method,
        cluster=mapping.study if three_level else None,
        test=settings.engine_test,
    )
    return AnalysisRun(
        result=result,
        data=filtered,
        settings=settings,
        moderator_columns=moderators,
        excluded_by_filter=excluded,
        notes=tuple(notes),
    )


def _check_ptr_can_be_logged(rows: pd.DataFrame, mapping: ColumnMapping) -> None:
    """log PTR needs PTR > 0; a PTR of 0 (no patients) has no logarithm, so name the rows."""
    ptr = pd.to_numeric(rows[PTR_COLUMN], errors="coerce")
    zero = ptr.notna() & (ptr <= 0)
    if not zero.any():
        return
    labels = [str(label) for label in ptr.index[zero]]
    shown = ", ".join(labels[:10]) + (f" and {len(labels) - 10} more" if len(labels) > 10 else "")
    raise AnalysisError(
        f"log PTR cannot be taken where PTR is 0 or less: row(s) {shown} have "
        f"'{mapping.n}' = 0 patients per '{mapping.n_therapists}'. Correct those rows, leave "
        "them out with a filter, or enter PTR on its raw scale."
    )
