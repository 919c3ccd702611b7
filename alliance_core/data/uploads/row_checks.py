"""The row checks of a coding sheet: each cell against the rules of its column.

``RowChecks`` holds the state of one validation (the frame, the problems found, the rows left
out) and checks every row: missing and non-numeric values, the ranges of r, n, z, yi, vi, sei,
the counts of therapists and patients. ``alliance_core.data.uploads.validation`` adds the checks
of the mapping, of studies and of the table, and runs them all (the rules are listed in
``validate``'s docstring).
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd

from alliance_core.data.effect_forms import FORM_NAMES, disagreements, row_forms
from alliance_core.data.mapping import ColumnMapping
from alliance_core.data.uploads.cells import (
    COMMA_DECIMAL,
    MISSING_MARKERS,
    missing_mask,
    parse_numbers,
)
from alliance_core.data.uploads.report import Problem

NUMERIC_ROLES = ("r", "z", "n", "yi", "vi", "sei", "n_therapists", "study_patients", "ptr")


class RowChecks:
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
        self.form = "mixed" if mapping.mixed_forms else mapping.effect_form or "r"
        self.row_form = np.full(len(df), None, dtype=object)  # the form of each row (mixed)
        self.uses_correlations = self.form == "r"

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
            value = plain_value(cells[position])
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
                lambda v: f"{quote_value(v)} is not a number{self._decimal_hint(v)}",
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
        if self.form == "mixed":
            self._check_mixed_forms()
            return
        if self.form == "r":
            r = self._numbers(mapping.r)
            if r is not None:
                self._check_finite(mapping.r, r)
                self._flag(
                    mapping.r,
                    r,
                    np.abs(r) >= 1,
                    lambda v: (
                        f"r = {show_number(v)}; a correlation must lie strictly between −1 and "
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
                    lambda v: f"{what} {show_number(v)}; it must be a positive finite number",
                    f"{spread} ≤ 0 or not finite",
                )
        self._check_patients()
        self._check_spread_plausible()

    def _forms_use_n(self) -> bool:
        return any(form in ("r", "z") for form in self.mapping.row_forms)

    def _check_mixed_forms(self) -> None:
        """Forms by row (``alliance_core.data.effect_forms``): each filled cell is checked by
        its column's rules; a row is left out only when no form is complete; two forms of a
        row that disagree are a warning naming the row and both columns."""
        mapping = self.mapping
        columns = [c for c in dict.fromkeys((mapping.r, mapping.z, mapping.yi)) if c]
        spreads = [c for c in dict.fromkeys((mapping.vi, mapping.sei)) if c]
        for column in columns:
            values = self._numbers(column, required=False)
            if values is None:
                continue
            self._check_finite(column, values)
            if column == mapping.r:
                self._flag(
                    column,
                    values,
                    np.abs(values) >= 1,
                    lambda v: (
                        f"r = {show_number(v)}; a correlation must lie strictly between "
                        "−1 and 1 (Fisher's z is infinite at ±1)"
                    ),
                    "|r| ≥ 1",
                )
        for column in spreads:
            values = self._numbers(column, required=False)
            if values is not None:
                self._flag(
                    column,
                    values,
                    ~np.isnan(values) & ~(np.isfinite(values) & (values > 0)),
                    lambda v: (
                        f"{show_number(v)}; a variance or standard error must be a "
                        "positive finite number"
                    ),
                    f"{column} ≤ 0 or not finite",
                )
        self._check_patients()
        # A missing r (or z, yi, …) is not a missing moderator: the row may have another form.
        for column in (*columns, *spreads):
            self.optional_missing.pop(column, None)
        if mapping.n not in mapping.ptr_inputs:
            self.optional_missing.pop(mapping.n, None)
        checked = pd.DataFrame(
            {c: self.numbers[c] for c in (*columns, *spreads, mapping.n) if c in self.numbers}
        )
        self.row_form = row_forms(checked, mapping)
        names = " or ".join(FORM_NAMES[form] for form in mapping.row_forms)
        incomplete = (self.row_form == None) & ~self.excluded & ~self.empty  # noqa: E711
        first = (columns or spreads)[0]
        for position in np.flatnonzero(incomplete):
            self._leave_out(
                int(position), first, None, f"no complete effect size ({names})", "no effect size"
            )
        for found in disagreements(checked, mapping):
            if self.excluded[found.position]:
                continue
            row = int(self.row_numbers[found.position])
            used = FORM_NAMES[self.row_form[found.position]]
            first_column, second_column = found.columns
            self.problems.append(
                Problem(
                    row,
                    second_column,
                    None,
                    f"Row {row}, columns '{first_column}' and '{second_column}': {found.message}; "
                    f"the two forms disagree (the row uses {used}). Check the row.",
                    "warning",
                    "forms that disagree",
                )
            )

    def _check_finite(self, column: str, values: np.ndarray) -> None:
        self._flag(
            column,
            values,
            np.isinf(values),
            lambda v: f"{show_number(v)} is not a finite number",
            f"a non-finite {column}",
        )

    def _check_patients(self) -> None:
        column = self.mapping.n
        # n is needed by every model for r and z; otherwise it only feeds PTR.
        n = self._numbers(column, required=self.form in ("r", "z"))
        if n is not None:
            self._check_whole(column, n, "patients")
            if self.form in ("r", "z") or (self.form == "mixed" and self._forms_use_n()):
                self._flag(
                    column,
                    n,
                    n <= 3,
                    lambda v: (
                        f"{show_number(v)} patients; a correlation needs more than 3 (its "
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
            lambda v: f"{show_number(v)} patients; the number of patients must be positive",
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
            lambda v: f"{show_number(v)} {unit} is not a finite number",
            f"a non-finite {column}",
        )
        fractional = np.isfinite(values) & (values != np.floor(values))
        self._flag(
            column,
            values,
            fractional,
            lambda v: f"{show_number(v)} {unit} is not a whole number",
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
                    lambda v: f"PTR {show_number(v)}; patients per therapist must be positive",
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
            lambda v: f"{show_number(v)} therapists; a study has at least one",
            f"{column} ≤ 0",
        )
        patients_column = self.mapping.ptr_patients or self.mapping.n
        patients = self.numbers.get(patients_column) if patients_column else None
        if patients is None or patients_column == column:
            return
        # Compare only counts that passed their own checks.
        comparable = ~self._flagged(patients_column) & ~self._flagged(column) & ~self.empty
        for position in np.flatnonzero((therapists > patients) & comparable):
            value = plain_value(therapists[position])
            reason = (
                f"{show_number(value)} therapists for {show_number(plain_value(patients[position]))} patients; "
                "there cannot be more therapists than patients"
            )
            self._leave_out(int(position), column, value, reason, "more therapists than patients")

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

    # --- the usable rows -------------------------------------------------------------------

    def _usable_frame(self) -> pd.DataFrame:
        """The rows left in, with the checked numeric columns as numbers."""
        keep = ~self.excluded
        usable = self.df.iloc[np.flatnonzero(keep)].copy()
        for role in NUMERIC_ROLES:
            column = getattr(self.mapping, role)
            if column is None or column not in self.numbers:
                continue
            values = self.numbers[column][keep]
            counts = role in ("n", "n_therapists", "study_patients")
            if counts and np.all(np.abs(values) < 2**53):  # whole numbers a float holds exactly
                values = values.astype(np.int64)
            usable[column] = values
        return usable


def plain_value(value):
    """A cell as a plain Python value (numpy scalars unwrapped, NaN as None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def show_number(value) -> str:
    """A number as a researcher would write it: 2, 0.25, 1e+20, inf."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, float) and math.isinf(value):
        return "infinity" if value > 0 else "minus infinity"
    return str(value)


def quote_value(value, limit: int = 40) -> str:
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return f"'{text}'"
