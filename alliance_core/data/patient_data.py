"""Checking a patient-level table (patients nested in therapists) before the mixed model.

:func:`validate_patient_data` reads the therapist, alliance, outcome and covariate columns,
lists every problem with its spreadsheet row and column, and keeps the usable rows; the model
in :mod:`alliance_core.teaching.patient_level` runs on those.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from alliance_core.data.uploads.cells import DECIMAL_NAMES, MISSING_MARKERS, parse_numbers
from alliance_core.data.uploads.report import Problem, ProblemReport
from alliance_core.errors import AnalysisError

# Below this many therapists the therapist variance and the between slope are poorly determined.
FEW_THERAPISTS = 10


@dataclass(frozen=True, eq=False)
class PatientDataReport(ProblemReport):
    """Every problem found in a patient-level table, and the rows that can be analysed.

    ``problems`` use the upload checks' :class:`~alliance_core.data.uploads.Problem` (spreadsheet row,
    column, value, message, severity "error" / "excluded" / "warning"). ``usable`` is a new frame
    with the analysable rows (original index labels kept): the therapist column as it was, the
    alliance, outcome and covariate columns as floats. When ``ok`` is False, ``usable`` is empty
    and the errors say why.
    """

    problems: tuple[Problem, ...]
    usable: pd.DataFrame
    n_rows: int
    therapist: str
    alliance: str
    outcome: str
    covariates: tuple[str, ...]

    @property
    def n_therapists(self) -> int:
        return int(self.usable[self.therapist].nunique()) if len(self.usable) else 0

    @property
    def excluded_rows(self) -> tuple[int, ...]:
        """Spreadsheet rows left out of the analysis, each once, in order."""
        return tuple(dict.fromkeys(p.row for p in self.exclusions))

    def summary(self) -> str:
        """A few sentences: what is usable, what was left out and why, what to watch."""
        parts = []
        if not self.ok:
            reasons = list(dict.fromkeys(p.message for p in self.errors))
            parts.append("Cannot analyse this table: " + " ".join(reasons))
        parts.append(self._usable_sentence())
        cautions = list(dict.fromkeys(p.kind for p in self.warnings))
        if cautions:
            parts.append("Warnings: " + "; ".join(self._warning_text(kind) for kind in cautions))
        return " ".join(parts)

    def _usable_sentence(self) -> str:
        head = (
            f"{self.n_usable:,} of {self.n_rows:,} patients usable "
            f"({counted(self.n_therapists, 'therapist')})"
        )
        left_out = len(self.excluded_rows)
        if left_out == 0:
            return head + "."
        rows_by_kind: dict[str, dict[int, None]] = {}
        for problem in self.exclusions:
            rows_by_kind.setdefault(problem.kind, {})[problem.row] = None
        reasons = ", ".join(
            f"{len(rows):,} with {kind} ({_row_list(list(rows))})"
            for kind, rows in rows_by_kind.items()
        )
        return f"{head}; {left_out:,} left out: {reasons}."

    def _warning_text(self, kind: str) -> str:
        messages = [p.message for p in self.warnings if p.kind == kind]
        if len(messages) == 1:
            return messages[0]
        return f"{len(messages)} × {kind} (first: {messages[0]})"


def counted(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _row_list(rows: list[int], shown: int = 5) -> str:
    word = "row" if len(rows) == 1 else "rows"
    listed = ", ".join(str(row) for row in rows[:shown])
    return f"{word} {listed}" + (", …" if len(rows) > shown else "")


def _plain(value):
    """A cell as a plain Python value (numpy scalars unwrapped, NaN as None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _is_missing(value) -> bool:
    if isinstance(value, str):
        return value.strip().casefold() in MISSING_MARKERS
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def validate_patient_data(
    df: pd.DataFrame,
    therapist: str = "therapist",
    alliance: str = "alliance",
    outcome: str = "outcome",
    covariates: Sequence[str] = (),
    *,
    decimal: str = ".",
    first_data_row: int = 2,
) -> PatientDataReport:
    """Check a patient-level table (one row per patient) for the therapist/alliance analysis.

    Row checks (severity "excluded", the row is left out and listed): a missing therapist,
    alliance, outcome or covariate; a cell that is not a number (quoted as written) or not
    finite in a numeric column. Table checks after those rows are left out: a column missing or
    present twice, one column in two roles (error); no usable patient (error); a single therapist
    (error: the decomposition needs more than one therapist mean) or two (error: two therapist
    means fit any line exactly, leaving nothing to test the between slope with); fewer than
    ``FEW_THERAPISTS`` therapists (warning); a therapist with one patient (warning, one per
    therapist at that patient's row: no within-therapist information); alliance the same for
    every patient, or within every therapist, or the same mean for every therapist, a constant
    outcome or covariate (error).

    Row numbers are spreadsheet rows: ``first_data_row`` (default 2, the header being row 1)
    plus the row's position, as in :mod:`alliance_core.data.uploads`. ``decimal`` is the decimal mark
    of numbers stored as text. ``df`` is never changed.
    """
    if not isinstance(df, pd.DataFrame):
        raise AnalysisError("The patient-level analysis needs a table (a pandas DataFrame).")
    if decimal not in DECIMAL_NAMES:
        raise AnalysisError(f"Decimal mark '{decimal}' is not supported; use '.' or ','.")
    roles = (therapist, alliance, outcome, tuple(covariates))
    return _PatientCheck(df, *roles, decimal=decimal, first_row=first_data_row).run()


class _PatientCheck:
    """The state of one validation: the problems found and the rows left out."""

    def __init__(self, df, therapist, alliance, outcome, covariates, *, decimal, first_row):
        self.df = df
        self.therapist = therapist
        self.alliance = alliance
        self.outcome = outcome
        self.covariates = covariates
        self.decimal = decimal
        self.row_numbers = first_row + np.arange(len(df))
        self.problems: list[Problem] = []
        self.excluded = np.zeros(len(df), dtype=bool)
        self.numbers: dict[str, np.ndarray] = {}

    @property
    def numeric_roles(self) -> dict[str, str]:
        roles = {self.alliance: "alliance", self.outcome: "outcome"}
        for covariate in self.covariates:
            roles.setdefault(covariate, "covariate")
        return roles

    def run(self) -> PatientDataReport:
        self._check_columns()
        if not self._has_errors():
            self._check_therapist_cells()
            for column, role in self.numeric_roles.items():
                self._check_number_cells(column, role)
        usable = self._usable_frame() if not self._has_errors() else None
        if usable is not None:
            self._check_table(usable)
        if self._has_errors() or usable is None:
            usable = self.df.iloc[0:0].copy()
        self.problems.sort(key=lambda p: (p.row is not None, p.row or 0))
        return PatientDataReport(
            problems=tuple(self.problems),
            usable=usable,
            n_rows=len(self.df),
            therapist=self.therapist,
            alliance=self.alliance,
            outcome=self.outcome,
            covariates=self.covariates,
        )

    # --- recording -----------------------------------------------------------------------
    def _has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.problems)

    def _error(self, column, message: str, kind: str, row=None, value=None) -> None:
        self.problems.append(Problem(row, column, value, message, "error", kind))

    def _warn(self, column, message: str, kind: str, row=None, value=None) -> None:
        self.problems.append(Problem(row, column, value, message, "warning", kind))

    def _leave_out(self, position: int, column: str, value, reason: str, kind: str) -> None:
        row = int(self.row_numbers[position])
        text = f"Row {row}, column '{column}': {reason} — row left out."
        self.problems.append(Problem(row, column, _plain(value), text, "excluded", kind))
        self.excluded[position] = True

    # --- columns -------------------------------------------------------------------------
    def _check_columns(self) -> None:
        roles = [
            (self.therapist, "therapist"),
            (self.alliance, "alliance"),
            (self.outcome, "outcome"),
        ] + [(c, "covariate") for c in self.covariates]
        available = ", ".join(map(str, self.df.columns)) or "none"
        counts = pd.Series(list(self.df.columns), dtype=object).value_counts()
        for column, role in dict.fromkeys(roles):
            if column not in self.df.columns:
                self._error(
                    column,
                    f"Column '{column}' ({role}) is not in the table (columns: {available}).",
                    "a missing column",
                )
            elif counts.get(column, 0) > 1:
                self._error(
                    column,
                    f"Column '{column}' appears {counts[column]} times in the table; rename the "
                    "copies so that each column name is unique.",
                    "a duplicated column",
                )
        seen: dict[str, str] = {}
        for column, role in roles:
            if column in seen and seen[column] != role:
                self._error(
                    column,
                    f"Column '{column}' is chosen both as {seen[column]} and as {role}; each role "
                    "needs its own column.",
                    "one column in two roles",
                )
            seen.setdefault(column, role)

    # --- cells ---------------------------------------------------------------------------
    def _check_therapist_cells(self) -> None:
        series = self.df[self.therapist]
        if series.dtype.kind in "iufcmMb":
            missing = series.isna().to_numpy(dtype=bool)
        else:
            missing = np.array([_is_missing(value) for value in series.tolist()], dtype=bool)
        for position in np.flatnonzero(missing):
            value = series.iloc[position]
            self._leave_out(position, self.therapist, value, "no therapist", "no therapist")

    def _check_number_cells(self, column: str, role: str) -> None:
        series = self.df[column]
        values, missing, text = parse_numbers(series, self.decimal)
        self.numbers[column] = values
        if len(series) and text.any() and not (~missing & ~text).any():
            example = series.iloc[int(np.argmax(text))]
            self._error(
                column,
                f"Column '{column}' ({role}) holds no numbers (e.g. '{example}'); choose the "
                f"column with the {role} scores.",
                "a column without numbers",
            )
            return
        infinite = ~missing & ~text & ~np.isfinite(values)
        for position in np.flatnonzero(missing | text | infinite):
            value = series.iloc[position]
            if missing[position]:
                self._leave_out(position, column, value, f"missing {role}", f"a missing {role}")
            elif text[position]:
                self._leave_out(
                    position,
                    column,
                    value,
                    f"'{value}' is not a number",
                    "a value that is not a number",
                )
            else:
                self._leave_out(
                    position, column, value, f"{value} is not a finite number", "an infinite value"
                )

    def _usable_frame(self) -> pd.DataFrame:
        keep = ~self.excluded
        usable = self.df.loc[keep, [self.therapist]].copy()
        for column in self.numeric_roles:
            usable[column] = self.numbers[column][keep]
        return usable

    # --- the table of usable patients -----------------------------------------------------
    def _check_table(self, usable: pd.DataFrame) -> None:
        if usable.empty:
            message = "No patient can be analysed." if len(self.df) else "The table has no rows."
            self._error(None, message, "no usable rows")
            return
        caseload = usable.groupby(self.therapist, sort=False).size()
        if not self._enough_therapists(caseload, usable):
            return
        self._warn_single_patients(caseload, usable)
        self._check_alliance_spread(usable)
        for column in (self.outcome, *self.covariates):
            values = usable[column].to_numpy()
            if np.ptp(values) == 0:
                role = self.numeric_roles[column]
                self._error(
                    column,
                    f"Column '{column}' ({role}) has the same value ({_plain(values[0])}) for "
                    "every usable patient"
                    + (
                        ", so there is nothing to predict."
                        if column == self.outcome
                        else "; leave it out of the covariates."
                    ),
                    f"a constant {role}",
                )

    def _enough_therapists(self, caseload: pd.Series, usable: pd.DataFrame) -> bool:
        n_therapists = len(caseload)
        if n_therapists == 1:
            self._error(
                self.therapist,
                f"All {len(usable):,} usable patients have the same therapist "
                f"('{caseload.index[0]}'). With a single therapist the alliance cannot be split "
                "into a therapist part and a patient part, so the patient-level analysis is "
                "impossible; it needs patients of several therapists.",
                "a single therapist",
            )
            return False
        if n_therapists == 2:
            self._error(
                self.therapist,
                "The usable patients have only two therapists. Two therapist means fit any line "
                "exactly, so the between-therapist slope cannot be tested; the analysis needs "
                f"at least three therapists (better {FEW_THERAPISTS} or more).",
                "two therapists",
            )
            return False
        if n_therapists < FEW_THERAPISTS:
            self._warn(
                self.therapist,
                f"Only {n_therapists} therapists: the between-therapist slope rests on "
                f"{n_therapists} therapist means, so its interval is wide and the therapist "
                "variance is poorly estimated.",
                "few therapists",
            )
        return True

    def _warn_single_patients(self, caseload: pd.Series, usable: pd.DataFrame) -> None:
        alone = set(caseload.index[caseload.to_numpy() == 1])
        if not alone:
            return
        # Positions, not index labels: a user's frame may repeat labels.
        for position, therapist in zip(
            np.flatnonzero(~self.excluded), usable[self.therapist].tolist(), strict=True
        ):
            if therapist not in alone:
                continue
            row = int(self.row_numbers[position])
            self._warn(
                self.therapist,
                f"Row {row}, column '{self.therapist}': therapist '{therapist}' has one patient; "
                "they count towards the between-therapist slope but carry no within-therapist "
                "information.",
                "a therapist with one patient",
                row=row,
                value=_plain(therapist),
            )

    def _check_alliance_spread(self, usable: pd.DataFrame) -> None:
        alliance = usable[self.alliance]
        if np.ptp(alliance.to_numpy()) == 0:
            self._error(
                self.alliance,
                f"Alliance (column '{self.alliance}') has the same value ({_plain(alliance.iloc[0])}) "
                "for every usable patient: there is no alliance variation to relate to outcome.",
                "a constant alliance",
            )
            return
        by_therapist = alliance.groupby(usable[self.therapist], sort=False)
        if (by_therapist.max() == by_therapist.min()).all():
            self._error(
                self.alliance,
                f"Alliance (column '{self.alliance}') does not vary within any therapist's "
                "patients, so the within-therapist slope cannot be estimated (are the values "
                "therapist averages rather than patient ratings?).",
                "no alliance variation within therapists",
            )
        elif np.ptp(by_therapist.mean().to_numpy()) == 0:
            self._error(
                self.alliance,
                f"Every therapist has the same mean alliance (column '{self.alliance}'), so the "
                "between-therapist slope cannot be estimated.",
                "equal therapist means",
            )
