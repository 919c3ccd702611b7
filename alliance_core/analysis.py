"""From a coding sheet, its column mapping and the user's settings to a fitted model.

This is the one place where the dashboard's choices meet the engine: effect sizes from the
mapped columns, the Patient-Therapist Ratio from patient and therapist counts, the what-if
filters, and the fit. Pages call ``run_analysis`` and render what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from alliance_core.effect_sizes import (
    escalc,
    from_fisher_z,
    from_standard_errors,
    patient_therapist_ratio,
)
from alliance_core.errors import AnalysisError
from alliance_core.fitting import fit
from alliance_core.mapping import ColumnMapping
from alliance_core.nesting import AGGREGATED, aggregated_rows, check_enough_rows, is_nested
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
    mapping: ColumnMapping | None = None

    def row_use(self) -> str:
        """How many rows the model used and why the others were left out, in one sentence.

        A row lacking a moderator (or PTR's counts) is left out only of models using that
        moderator; the counts name each column (a row may lack several).
        """
        offered = len(self.data)
        used = self.result.k
        head = f"This model used {used:,} of {offered:,} rows"
        if used == offered:
            return head + "."
        reasons = []
        for column in self.model_columns:
            if column not in self.data.columns:
                continue
            missing = int(self.data[column].isna().sum())
            if missing:
                reasons.append(f"{missing:,} without {self._column_words(column)}")
        detail = ": " + "; ".join(reasons) if reasons else ""
        return f"{head}; {offered - used:,} left out{detail}."

    @property
    def model_columns(self) -> tuple[str, ...]:
        """The columns this model needs in every row (effect sizes, study, moderators)."""
        cluster = (
            (self.mapping.study,)
            if self.mapping is not None and self.settings.model == "three-level"
            else ()
        )
        return tuple(dict.fromkeys(("yi", "vi", *cluster, *self.moderator_columns)))

    def _column_words(self, column: str) -> str:
        if column in (PTR_COLUMN, LOG_PTR_COLUMN):
            inputs = self.mapping.ptr_inputs if self.mapping is not None else ()
            listed = " or ".join(f"'{c}'" for c in inputs)
            return f"PTR (missing {listed})" if listed else "PTR"
        if column in ("yi", "vi"):
            return "an effect size"
        return f"a value for '{column}'"

    @property
    def ptr_column(self) -> str | None:
        """The PTR column in the model (PTR or log_PTR), if PTR is a moderator."""
        for column in (LOG_PTR_COLUMN, PTR_COLUMN):
            if column in self.moderator_columns:
                return column
        return None


def effect_size_table(data: pd.DataFrame, mapping: ColumnMapping) -> pd.DataFrame:
    """A copy with yi and vi and PTR/log_PTR where possible.

    Effect sizes by the mapping's form: r and n → Fisher z, vi = 1/(n − 3); Fisher's z and n →
    vi = 1/(n − 3); yi and vi as given; yi and sei → vi = sei². PTR by ``study_ptr``.
    """
    form = mapping.effect_form
    if form == "r":
        table = escalc(data, r=mapping.r, n=mapping.n, measure="ZCOR")
    elif form == "z":
        table = from_fisher_z(data, z=mapping.z, n=mapping.n)
    elif form == "vi":
        table = escalc(data, measure="precomputed", yi=mapping.yi, vi=mapping.vi)
    elif form == "sei":
        table = from_standard_errors(data, yi=mapping.yi, sei=mapping.sei)
    else:
        raise AnalysisError(
            "Say which columns hold the correlation r and sample size n, Fisher's z and n, or "
            "the effect size yi with its sampling variance vi or standard error sei."
        )
    if mapping.has_therapists:
        ratio = study_ptr(table, mapping)
        table[PTR_COLUMN] = ratio
        with np.errstate(divide="ignore", invalid="ignore"):
            table[LOG_PTR_COLUMN] = np.log(ratio)
    return table


def study_ptr(data: pd.DataFrame, mapping: ColumnMapping) -> np.ndarray:
    """The Patient–Therapist Ratio of each row's study (Del Re et al., 2012).

    A ready-made PTR column is taken as it is; otherwise PTR = study patients / therapists
    when the study's patient count is mapped, else n / therapists. Missing or non-positive
    inputs give NaN (the row is left out of models with PTR only).
    """
    if mapping.ptr is not None:
        ratio = pd.to_numeric(data[mapping.ptr], errors="coerce").to_numpy(dtype=float)
        return np.where(ratio > 0, ratio, np.nan)
    patients = pd.to_numeric(data[mapping.ptr_patients], errors="coerce")
    therapists = pd.to_numeric(data[mapping.n_therapists], errors="coerce")
    return patient_therapist_ratio(patients, therapists)


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
    check_enough_rows(filtered)
    # A plain two-level choice on nested rows (an old link or settings file) means the valid
    # two-level analysis: one aggregated effect per study (the notes say so).
    if settings.model in (AGGREGATED, "two-level") and is_nested(filtered, mapping.study):
        filtered, moderators, aggregation_notes = aggregated_rows(
            filtered, mapping.study, settings.rho, moderators
        )
        notes.extend(aggregation_notes)
        check_enough_rows(filtered, aggregated=True)
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
        mapping=mapping,
    )


def _check_ptr_can_be_logged(rows: pd.DataFrame, mapping: ColumnMapping) -> None:
    """log PTR needs PTR > 0; a PTR of 0 (no patients) has no logarithm, so name the rows."""
    if PTR_COLUMN not in rows.columns:  # a table that brings its own log PTR column
        return
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
