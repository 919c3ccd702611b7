"""Checking a coding sheet against its column mapping: every problem with its row and column.

``validate(df, mapping)`` checks the table against a ``ColumnMapping`` and lists every problem
with its spreadsheet row and column (``ValidationReport``). Rows that cannot be analysed are
left out of ``report.usable``; the caller's frame is never changed. A row that lacks only a
moderator or a count used for PTR stays usable: only the models that use that column leave it
out (``alliance_core.analyses.run``).
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd

from alliance_core.data.mapping import ColumnMapping
from alliance_core.data.uploads.cells import (
    COMMA_DECIMAL,
    DECIMAL_NAMES,
    MISSING_MARKERS,
    missing_mask,
    parse_numbers,
    row_list,
)
from alliance_core.data.uploads.report import Problem, ValidationReport
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


class _TableCheck:
    """The state of one validation: the frame, the problems found, the rows left out.

    Each cell gets at most one problem (the first rule it fails), but every column of a row is
    checked, so a row missing both r and n is listed under both.
    """

    def __init__(
        self,
        df: pd.DataFrame,
        mapping: ColumnMapping,
        decimal: str,
        first_row: int,
        markers: frozenset[str] = MISSING_MARKERS,
    ):
        self.df = df
        self.markers = markers
        self.optional_missing: dict[str, np.ndarray] = {}
        self.mapping = mapping
        self.decimal = decimal
        self.row_numbers = first_row + np.arange(len(df))
        self.name_counts = Counter(df.columns)
        self.problems: list[Problem] = []
        self.excluded = np.zeros(len(df), dtype=bool)
        self.empty = np.zeros(len(df), dtype=bool)
        self.flagged: dict[str, np.ndarray] = {}  # per column: cells that already have a problem
        self.numbers: dict[str, np.ndarray] = {}
        # Without a complete form the correlation rules apply (and the mapping is an error).
        self.form = mapping.effect_form or "r"
        self.uses_correlations = self.form == "r"

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

    # --- recording -----------------------------------------------------------------------

    def _has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.problems)

    def _error(self, row, column, value, message: str, kind: str) -> None:
        self.problems.append(Problem(row, column, value, message, "error", kind))

    def _warn(self, column, message: str, kind: str) -> None:
        self.problems.append(Problem(None, column, None, message, "warning", kind))

    def _exclude(self, bad: np.ndarray, column: str, message, kind: str, values=None) -> None:
        """Leave out the rows where ``bad`` holds, unless the cell already has a problem.

        ``message(value)`` gives the sentence after the "Row 7, column 'n':" prefix; ``values``
        are the cells shown (default: the cells as they are in the table).
        """
        new = bad & ~self._flagged(column) & ~self.empty
        if not new.any():
            return
        cells = self.df[column].to_numpy() if values is None else values
        for position in np.flatnonzero(new):
            value = _plain(cells[position])
            self._leave_out(int(position), column, value, message(value), kind)

    def _leave_out(self, position: int, column: str, value, reason: str, kind: str) -> None:
        row = int(self.row_numbers[position])
        text = f"Row {row}, column '{column}': {reason} — row left out."
        self.problems.append(Problem(row, column, value, text, "excluded", kind))
        self._flagged(column)[position] = True
        self.excluded[position] = True

    def _flagged(self, column: str) -> np.ndarray:
        return self.flagged.setdefault(column, np.zeros(len(self.df), dtype=bool))

    def _usable_column(self, column: str | None) -> bool:
        return column is not None and self.name_counts.get(column, 0) == 1

    # --- the mapping ---------------------------------------------------------------------

    def _check_mapping(self) -> None:
        mapping = self.mapping
        if mapping.effect_form is None:
            self._error(None, None, None, _missing_roles_message(mapping), "an incomplete mapping")
        for role in ("study", "es_id", *_NUMERIC_ROLES, "label", "year"):
            self._check_column_exists(getattr(mapping, role), role)
        for moderator in dict.fromkeys(mapping.moderators):
            self._check_column_exists(moderator, "a moderator")
        roles_by_column: dict[str, list[str]] = {}
        for role in _NUMERIC_ROLES:
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
        unused = _unused_effect_roles(mapping)
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

    # --- row checks ----------------------------------------------------------------------

    def _check_empty_rows(self) -> None:
        """A row with nothing in it is listed once, not once per column."""
        if self.df.shape[1] == 0:
            return
        empty = np.ones(len(self.df), dtype=bool)
        for position in range(self.df.shape[1]):
            if not empty.any():
                break
            column = self.df.iloc[:, position]
            empty &= missing_mask(column, self.markers)
        for position in np.flatnonzero(empty):
            row = int(self.row_numbers[position])
            message = f"Row {row} is empty — row left out."
            self.problems.append(Problem(row, None, None, message, "excluded", "no values at all"))
        self.empty = empty
        self.excluded |= empty

    def _numbers(self, column: str | None, *, required: bool = True) -> np.ndarray | None:
        """A numeric column as floats (NaN where missing or not a number). A value that is not
        a number is a problem; a missing one too when every model needs the column
        (``required``), otherwise it is only counted (``_note_missing``)."""
        if not self._usable_column(column):
            return None
        if column not in self.numbers:
            values, missing, text = parse_numbers(self.df[column], self.decimal, self.markers)
            if required:
                self._exclude(missing, column, lambda v: "no value", f"a missing {column}")
            else:
                self.optional_missing[column] = missing & ~self.empty
            self._exclude(
                text,
                column,
                lambda v: f"{_quote(v)} is not a number{self._decimal_hint(v)}",
                f"a non-numeric {column}",
            )
            self.numbers[column] = np.where(missing | text, np.nan, values)
        return self.numbers[column]

    def _decimal_hint(self, value) -> str:
        looks_like_comma_decimal = isinstance(value, str) and COMMA_DECIMAL.fullmatch(value.strip())
        if self.decimal == "." and looks_like_comma_decimal:
            return " (to read it as a number, choose ',' as the decimal mark)"
        return ""

    def _flag(self, column: str, values: np.ndarray, bad: np.ndarray, message, kind: str) -> None:
        """Leave out rows failing a rule on parsed numbers, showing the number."""
        self._exclude(bad, column, message, kind, values=values)

    def _check_effect_sizes(self) -> None:
        mapping = self.mapping
        if self.form == "r":
            r = self._numbers(mapping.r)
            if r is not None:
                self._check_finite(mapping.r, r)
                self._flag(
                    mapping.r,
                    r,
                    np.abs(r) >= 1,
                    lambda v: (
                        f"r = {_show(v)}; a correlation must lie strictly between −1 and "
                        "1 (Fisher's z is infinite at ±1)"
                    ),
                    "|r| ≥ 1",
                )
        elif self.form == "z":
            z = self._numbers(mapping.z)
            if z is not None:
                self._check_finite(mapping.z, z)
        else:
            yi = self._numbers(mapping.yi)
            if yi is not None:
                self._check_finite(mapping.yi, yi)
            spread = mapping.vi if self.form == "vi" else mapping.sei
            what = "sampling variance" if self.form == "vi" else "standard error"
            values = self._numbers(spread)
            if values is not None:
                self._flag(
                    spread,
                    values,
                    ~(np.isfinite(values) & (values > 0)),
                    lambda v: f"{what} {_show(v)}; it must be a positive finite number",
                    f"{spread} ≤ 0 or not finite",
                )
        self._check_patients()
        self._check_spread_plausible()

    def _check_finite(self, column: str, values: np.ndarray) -> None:
        self._flag(
            column,
            values,
            np.isinf(values),
            lambda v: f"{_show(v)} is not a finite number",
            f"a non-finite {column}",
        )

    def _check_patients(self) -> None:
        column = self.mapping.n
        # n is needed by every model for r and z; otherwise it only feeds PTR.
        n = self._numbers(column, required=self.form in ("r", "z"))
        if n is not None:
            self._check_whole(column, n, "patients")
            if self.form in ("r", "z"):
                self._flag(
                    column,
                    n,
                    n <= 3,
                    lambda v: (
                        f"{_show(v)} patients; a correlation needs more than 3 (its "
                        "variance is 1/(n − 3))"
                    ),
                    f"{column} ≤ 3",
                )
            else:
                self._positive_count(column, n)
        study_patients = self.mapping.study_patients
        if study_patients is not None and study_patients != column:
            values = self._numbers(study_patients, required=False)
            if values is not None:
                self._check_whole(study_patients, values, "patients")
                self._positive_count(study_patients, values)

    def _positive_count(self, column: str, values: np.ndarray) -> None:
        self._flag(
            column,
            values,
            values <= 0,
            lambda v: f"{_show(v)} patients; the number of patients must be positive",
            f"{column} ≤ 0",
        )

    def _check_spread_plausible(self) -> None:
        """A "variance" column holding standard errors (or the reverse) is a common mix-up.

        With n known, the standard error of Fisher's z is 1/sqrt(n − 3) and that of a
        standardized mean difference about sqrt(4/n) (two equal groups); their squares are
        the variances. When most rows match the other quantity within 10 %, warn.
        """
        if self.form not in ("vi", "sei"):
            return
        column = self.mapping.vi if self.form == "vi" else self.mapping.sei
        values = self.numbers.get(column)
        n = self.numbers.get(self.mapping.n) if self.mapping.n else None
        if values is None:
            return
        usable = np.isfinite(values) & (values > 0)
        looks_wrong = False
        if n is not None:
            usable &= np.isfinite(n) & (n > 3)
            with np.errstate(divide="ignore", invalid="ignore"):
                standard_errors = (1 / np.sqrt(n - 3), np.sqrt(4 / n))
            candidates = (
                standard_errors if self.form == "vi" else tuple(se**2 for se in standard_errors)
            )
            for candidate in candidates:
                close = usable & (np.abs(values - candidate) <= 0.1 * candidate)
                if usable.sum() >= 2 and close.sum() >= 0.5 * usable.sum():
                    looks_wrong = True
        elif self.form == "vi" and usable.sum() >= 2:
            # Without n: sampling variances of typical studies are well below 0.1, while
            # standard errors rarely are; a column of mostly larger values is suspicious.
            looks_wrong = bool(np.median(values[usable]) > 0.1)
        if not looks_wrong:
            return
        if self.form == "vi":
            message = (
                f"The values in '{column}' (chosen as sampling variance vi) look like standard "
                "errors. If they are, choose the column as the standard error (sei) instead; "
                "vi = sei²."
            )
        else:
            message = (
                f"The values in '{column}' (chosen as standard error sei) look like sampling "
                "variances. If they are, choose the column as the sampling variance (vi) instead."
            )
        self._warn(column, message, "a variance that looks like a standard error")

    def _check_whole(self, column: str, values: np.ndarray, unit: str) -> None:
        self._flag(
            column,
            values,
            np.isinf(values),
            lambda v: f"{_show(v)} {unit} is not a finite number",
            f"a non-finite {column}",
        )
        fractional = np.isfinite(values) & (values != np.floor(values))
        self._flag(
            column,
            values,
            fractional,
            lambda v: f"{_show(v)} {unit} is not a whole number",
            f"a non-integer {column}",
        )

    def _check_therapists(self) -> None:
        ptr_column = self.mapping.ptr
        if ptr_column is not None:
            ptr = self._numbers(ptr_column, required=False)
            if ptr is not None:
                self._check_finite(ptr_column, ptr)
                self._flag(
                    ptr_column,
                    ptr,
                    ptr <= 0,
                    lambda v: f"PTR {_show(v)}; patients per therapist must be positive",
                    f"{ptr_column} ≤ 0",
                )
        column = self.mapping.n_therapists
        therapists = self._numbers(column, required=False)
        if therapists is None:
            return
        self._check_whole(column, therapists, "therapists")
        self._flag(
            column,
            therapists,
            therapists <= 0,
            lambda v: f"{_show(v)} therapists; a study has at least one",
            f"{column} ≤ 0",
        )
        patients_column = self.mapping.ptr_patients or self.mapping.n
        patients = self.numbers.get(patients_column) if patients_column else None
        if patients is None or patients_column == column:
            return
        # Compare only counts that passed their own checks.
        comparable = ~self._flagged(patients_column) & ~self._flagged(column) & ~self.empty
        for position in np.flatnonzero((therapists > patients) & comparable):
            value = _plain(therapists[position])
            reason = (
                f"{_show(value)} therapists for {_show(_plain(patients[position]))} patients; "
                "there cannot be more therapists than patients"
            )
            self._leave_out(int(position), column, value, reason, "more therapists than patients")

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
                        _plain(self.df[column].to_numpy()[position]),
                        f"Row {row}, column '{column}': PTR = {value:.3g} differs from "
                        f"{values.iloc[0]:.3g} in row {first_row} of the same study "
                        f"{_quote(_plain(study_value))}; PTR is a property of the study.{hint}",
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

    def _check_present(self, column: str | None) -> None:
        """Study, effect-size id and moderators need a value, whatever its type."""
        if self._usable_column(column):
            missing = missing_mask(self.df[column], self.markers)
            self._exclude(missing, column, lambda v: "no value", f"a missing {column}")

    def _note_missing(self, column: str | None) -> None:
        """A moderator may be missing: the row is left out only of models that use it."""
        if self._usable_column(column) and column not in self.optional_missing:
            self.optional_missing[column] = (
                missing_mask(self.df[column], self.markers) & ~self.empty
            )

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
            es_value = _plain(key[-1])
            where = f" in study {_quote(_plain(key[0]))}" if in_study else ""
            for row in group_rows:
                self._error(
                    row,
                    es_column,
                    es_value,
                    f"Row {row}, column '{es_column}': effect-size id {_quote(es_value)} is "
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
                    f"({_quote(_plain(values.iloc[0]))}) in every usable row, so it cannot "
                    "explain differences between effect sizes.",
                    "a moderator with one value",
                )

    # --- the usable rows -------------------------------------------------------------------

    def _usable_frame(self) -> pd.DataFrame:
        """The rows left in, with the checked numeric columns as numbers."""
        keep = ~self.excluded
        usable = self.df.iloc[np.flatnonzero(keep)].copy()
        for role in _NUMERIC_ROLES:
            column = getattr(self.mapping, role)
            if column is None or column not in self.numbers:
                continue
            values = self.numbers[column][keep]
            counts = role in ("n", "n_therapists", "study_patients")
            if counts and np.all(np.abs(values) < 2**53):  # whole numbers a float holds exactly
                values = values.astype(np.int64)
            usable[column] = values
        return usable


_NUMERIC_ROLES = ("r", "z", "n", "yi", "vi", "sei", "n_therapists", "study_patients", "ptr")
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
        return "A Fisher's z column is chosen but not its number of patients (n); choose n."
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


def _plain(value):
    """A cell as a plain Python value (numpy scalars unwrapped, NaN as None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _show(value) -> str:
    """A number as a researcher would write it: 2, 0.25, 1e+20, inf."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, float) and math.isinf(value):
        return "infinity" if value > 0 else "minus infinity"
    return str(value)


def _quote(value, limit: int = 40) -> str:
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return f"'{text}'"
