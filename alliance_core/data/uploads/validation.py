"""Checking a coding sheet against its column mapping: every problem with its row and column.

``validate(df, mapping)`` checks the table against a ``ColumnMapping`` and lists every problem
with its spreadsheet row and column (``ValidationReport``). Rows that cannot be analysed are
left out of ``report.usable``; the caller's frame is never changed. A row that lacks only a
moderator or a count used for PTR stays usable: only the models that use that column leave it
out (``alliance_core.analyses.run``). The row checks are in
``alliance_core.data.uploads.row_checks``; this module adds the checks of the mapping, of
studies and of the table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alliance_core.data.effect_forms import FORM_NAMES
from alliance_core.data.mapping import ColumnMapping
from alliance_core.data.uploads.cells import DECIMAL_NAMES, MISSING_MARKERS, row_list
from alliance_core.data.uploads.report import Problem, ValidationReport
from alliance_core.data.uploads.row_checks import (
    NUMERIC_ROLES,
    RowChecks,
    plain_value,
    quote_value,
)
from alliance_core.errors import AnalysisError


def validate(
    df: pd.DataFrame,
    mapping: ColumnMapping,
    *,
    decimal: str = ".",
    first_data_row: int = 2,
    markers: frozenset[str] = MISSING_MARKERS,
) -> ValidationReport:
    """Check a table against a mapping; list every problem and keep the usable rows.

    Row checks (a failing row is left out, severity "excluded"): a missing value in a column
    every model uses (study, es_id, the effect-size columns); a value that is not a number in a
    numeric column (quoted as written); |r| ≥ 1; n ≤ 3 for correlations and Fisher's z
    (vi = 1/(n − 3)); n, study patients or n_therapists not a whole number or ≤ 0; more
    therapists than patients; PTR ≤ 0; yi or z not finite; vi or sei ≤ 0 or not finite; a row
    with no values at all. A missing moderator, therapist count, study patient count or PTR
    does not leave a row out: the row is left out only of models using that column
    (``missing_by_column`` counts them).
    Table checks (severity "error", the analysis is impossible): a mapping without a complete
    effect-size form, a mapped column missing from the table or present twice, one column in
    two numeric roles, the same effect-size id twice in a study (or twice overall without a
    study column), fewer than two usable rows. Warnings: a moderator with one value, PTR
    varying within a study (one warning per row, with its row and column), a variance column
    whose values look like standard errors (or the reverse).

    ``decimal`` is the decimal mark of numbers stored as text; row numbers are
    ``first_data_row`` + position; ``markers`` are the missing-value spellings
    (``uploads_cells.missing_markers``). ``df`` is not changed.
    """
    if decimal not in DECIMAL_NAMES:
        raise AnalysisError(f"Decimal mark '{decimal}' is not supported; use '.' or ','.")
    if not isinstance(df, pd.DataFrame):
        raise AnalysisError("validate needs a table (a pandas DataFrame).")
    checker = _TableCheck(df, mapping, decimal, first_data_row, markers)
    return checker.run()


class _TableCheck(RowChecks):
    """One validation: the row checks, then the mapping, study and table checks."""

    def run(self) -> ValidationReport:
        self._check_mapping()
        self._check_empty_rows()
        self._check_effect_sizes()
        self._check_therapists()
        for column in dict.fromkeys([self.mapping.study, self.mapping.es_id]):
            self._check_present(column)
        for column in dict.fromkeys(self.mapping.moderators):
            self._note_missing(column)
        self._check_duplicate_ids()
        self._check_ptr_within_studies()
        usable = self._usable_frame()
        self._check_moderator_spread(usable)
        if not self._has_errors() and (len(usable) == 0 or len(self.df) == 1):
            self._error(None, None, None, self._too_few_message(len(usable)), "no usable rows")
        if self._has_errors():
            usable = self.df.iloc[0:0].copy()
            self.excluded[:] = True
        self.problems.sort(key=_problem_order)
        return ValidationReport(
            problems=tuple(self.problems),
            excluded_rows=tuple(self.df.index[self.excluded]),
            usable=usable,
            n_rows=len(self.df),
            mapping=self.mapping,
            missing_by_column=self._missing_counts(),
            effect_forms=self._form_rows(),
        )

    def _form_rows(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """Mixed forms: each form used and the spreadsheet rows of the usable rows using it."""
        if self.form != "mixed":
            return ()
        kept = ~self.excluded
        return tuple(
            (
                FORM_NAMES[form],
                tuple(int(r) for r in self.row_numbers[kept & (self.row_form == form)]),
            )
            for form in self.mapping.row_forms
            if (kept & (self.row_form == form)).any()
        )

    def _too_few_message(self, usable: int) -> str:
        if len(self.df) == 0:
            return "The table has no rows."
        if len(self.df) == 1:
            return "The table has one data row; at least two effect sizes are needed."
        return "No row can be analysed."

    def _missing_counts(self) -> tuple[tuple[str, int], ...]:
        kept = ~self.excluded
        counts = []
        for column, missing in self.optional_missing.items():
            count = int((missing & kept).sum())
            if count:
                counts.append((column, count))
        return tuple(counts)

    # --- the mapping ---------------------------------------------------------------------

    def _check_mapping(self) -> None:
        mapping = self.mapping
        if mapping.effect_form is None and not mapping.row_forms:
            self._error(None, None, None, _missing_roles_message(mapping), "an incomplete mapping")
        correlations = any(form in ("r", "z", "z_sei", "z_vi") for form in mapping.row_forms)
        if (
            mapping.mixed_forms
            and correlations
            and mapping.yi is not None
            and mapping.measure != "correlation"
        ):
            self._error(
                None,
                mapping.yi,
                None,
                f"Rows are read as r or Fisher's z and as yi ('{mapping.yi}'), but yi is not "
                "declared a correlation: effect sizes of different measures cannot be pooled. "
                "Say that yi holds correlations on Fisher's z scale, or leave yi unmapped.",
                "two measures",
            )
        for role in ("study", "es_id", *NUMERIC_ROLES, "label", "year"):
            self._check_column_exists(getattr(mapping, role), role)
        for moderator in dict.fromkeys(mapping.moderators):
            self._check_column_exists(moderator, "a moderator")
        roles_by_column: dict[str, list[str]] = {}
        for role in NUMERIC_ROLES:
            if getattr(mapping, role) is not None:
                roles_by_column.setdefault(getattr(mapping, role), []).append(role)
        for column, roles in roles_by_column.items():
            if len(roles) > 1:
                self._error(
                    None,
                    column,
                    None,
                    f"Column '{column}' is chosen for {' and '.join(roles)}; each needs its "
                    "own column.",
                    "one column in two roles",
                )
        unused = [] if mapping.mixed_forms else _unused_effect_roles(mapping)
        if unused:
            self._warn(
                None,
                f"Columns for more than one form of effect size are chosen; the analysis uses "
                f"{_FORM_NAMES[mapping.effect_form]}, so {', '.join(unused)} "
                f"{'is' if len(unused) == 1 else 'are'} not checked.",
                "two kinds of effect size",
            )

    def _check_column_exists(self, column: str | None, role: str) -> None:
        if column is None:
            return
        count = self.name_counts.get(column, 0)
        if count == 0:
            listed = ", ".join(f"'{c}'" for c in list(self.df.columns)[:20])
            more = ", …" if self.df.shape[1] > 20 else ""
            self._error(
                None,
                column,
                None,
                f"The column '{column}' chosen for {role} is not in the table "
                f"(its columns: {listed or 'none'}{more}).",
                "a missing column",
            )
        elif count > 1:
            self._error(
                None,
                column,
                None,
                f"The table has {count} columns named '{column}' (chosen for {role}); "
                "rename them so each name is used once.",
                "a repeated column name",
            )

    def _check_ptr_within_studies(self) -> None:
        """PTR describes a study: different values within one study are a data problem
        (listed per row and column, the rows stay in)."""
        mapping = self.mapping
        study = mapping.study
        if not self._usable_column(study) or not mapping.has_therapists:
            return
        inputs = [c for c in mapping.ptr_inputs if c in self.numbers]
        if len(inputs) != len(mapping.ptr_inputs):
            return
        if mapping.ptr is not None:
            ptr = self.numbers[mapping.ptr]
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                ptr = self.numbers[mapping.ptr_patients] / self.numbers[mapping.n_therapists]
        keep = ~self.excluded & np.isfinite(ptr)
        frame = pd.DataFrame(
            {"study": self.df[study].to_numpy()[keep], "ptr": ptr[keep]},
            index=np.flatnonzero(keep),
        )
        try:
            groups = frame.groupby("study", sort=False)["ptr"]
        except TypeError:  # unhashable study cells
            return
        for study_value, values in groups:
            if np.allclose(values.to_numpy(), values.iloc[0], rtol=1e-9, atol=0):
                continue
            column = self._varying_ptr_column(values.index.to_numpy())
            first = int(values.index[0])
            first_row = int(self.row_numbers[first])
            for position, value in values.items():
                if np.isclose(value, values.iloc[0], rtol=1e-9, atol=0):
                    continue
                row = int(self.row_numbers[position])
                hint = (
                    " Map the study's total patients to the 'study patients' role (PTR = study "
                    "patients / therapists), or correct the counts."
                    if mapping.ptr is None and mapping.study_patients is None
                    else " Correct the counts so that the study has one PTR."
                )
                self.problems.append(
                    Problem(
                        row,
                        column,
                        plain_value(self.df[column].to_numpy()[position]),
                        f"Row {row}, column '{column}': PTR = {value:.3g} differs from "
                        f"{values.iloc[0]:.3g} in row {first_row} of the same study "
                        f"{quote_value(plain_value(study_value))}; PTR is a property of the study.{hint}",
                        "warning",
                        "PTR varying within a study",
                    )
                )

    def _varying_ptr_column(self, positions: np.ndarray) -> str:
        """The column that makes PTR differ within a study: PTR itself, else the therapists
        when they vary, else the patient counts."""
        mapping = self.mapping
        if mapping.ptr is not None:
            return mapping.ptr
        therapists = self.numbers[mapping.n_therapists][positions]
        if not np.allclose(therapists, therapists[0]):
            return mapping.n_therapists
        return mapping.ptr_patients

    def _check_duplicate_ids(self) -> None:
        """Each effect size needs its own id within its study (the three-level model's levels)."""
        es_column, study_column = self.mapping.es_id, self.mapping.study
        if not self._usable_column(es_column):
            return
        in_study = self._usable_column(study_column) and study_column != es_column
        keys = [study_column, es_column] if in_study else [es_column]
        kept = ~self.excluded
        ids = pd.DataFrame({f"key{i}": self.df[key].to_numpy()[kept] for i, key in enumerate(keys)})
        try:
            repeated = ids.duplicated(keep=False).to_numpy()
        except TypeError:  # unhashable cells (lists, dicts) cannot be compared as ids
            return
        rows = self.row_numbers[kept][repeated]
        groups: dict[tuple, list[int]] = {}
        for key, row in zip(ids[repeated].itertuples(index=False, name=None), rows, strict=True):
            groups.setdefault(key, []).append(int(row))
        for key, group_rows in groups.items():
            es_value = plain_value(key[-1])
            where = f" in study {quote_value(plain_value(key[0]))}" if in_study else ""
            for row in group_rows:
                self._error(
                    row,
                    es_column,
                    es_value,
                    f"Row {row}, column '{es_column}': effect-size id {quote_value(es_value)} is "
                    f"used more than once{where} ({row_list(group_rows)}). Give each effect "
                    "size its own id, or leave the es_id role empty to number them by row.",
                    f"a repeated {es_column}",
                )

    def _check_moderator_spread(self, usable: pd.DataFrame) -> None:
        if not len(usable):
            return
        for moderator in dict.fromkeys(self.mapping.moderators):
            if not self._usable_column(moderator):
                continue
            values = usable[moderator].dropna()
            try:
                distinct = values.nunique()
            except TypeError:  # unhashable cells
                continue
            if distinct == 1:
                self._warn(
                    moderator,
                    f"Moderator '{moderator}' has the same value "
                    f"({quote_value(plain_value(values.iloc[0]))}) in every usable row, so it cannot "
                    "explain differences between effect sizes.",
                    "a moderator with one value",
                )


_FORM_NAMES = {
    "r": "r and n",
    "z": "Fisher's z and n",
    "vi": "yi and vi",
    "sei": "yi and sei",
}
_FORM_ROLES = {"r": ("r", "n"), "z": ("z", "n"), "vi": ("yi", "vi"), "sei": ("yi", "sei")}


def _unused_effect_roles(mapping: ColumnMapping) -> list[str]:
    """Effect-size roles chosen but not used by the form the analysis takes."""
    form = mapping.effect_form
    if form is None:
        return []
    used = set(_FORM_ROLES[form]) | {"n"}  # n may also feed PTR
    return [
        role
        for role in ("r", "z", "yi", "vi", "sei")
        if getattr(mapping, role) and role not in used
    ]


def _missing_roles_message(mapping: ColumnMapping) -> str:
    if mapping.r and not mapping.n:
        return "A correlation (r) is chosen but not its number of patients (n); choose n."
    if mapping.z and not mapping.n:
        return (
            "A Fisher's z column is chosen but not its number of patients (n), standard error "
            "(sei) or sampling variance (vi); choose one of them."
        )
    if mapping.n and not (mapping.r or mapping.z or mapping.yi or mapping.vi or mapping.sei):
        return "A number of patients (n) is chosen but not the correlation (r); choose r."
    if mapping.yi and not (mapping.vi or mapping.sei):
        return (
            "An effect size column yi is chosen but not its sampling variance (vi) or standard "
            "error (sei); choose one of them, or use r and n."
        )
    if (mapping.vi or mapping.sei) and not mapping.yi:
        have = "vi" if mapping.vi else "sei"
        return f"An effect size column {have} is chosen but not yi; choose both or use r and n."
    return (
        "Choose the columns that hold the effect sizes: a correlation (r) and its number of "
        "patients (n), Fisher's z and n, or a precomputed effect size (yi) with its sampling "
        "variance (vi) or standard error (sei)."
    )


def _problem_order(problem: Problem) -> tuple:
    # Table-level problems first, then by row; within a row, in the order they were found.
    return (problem.row is not None, problem.row or 0)
