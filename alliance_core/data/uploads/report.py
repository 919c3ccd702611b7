"""What a check of a coding sheet reports: each problem with its row and column, and the rows
that can be analysed (``ValidationReport``, made by ``uploads_validation.validate``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

from alliance_core.data.mapping import ColumnMapping
from alliance_core.data.uploads.cells import count_of, row_list

Severity = Literal["error", "warning", "excluded"]


@dataclass(frozen=True)
class Problem:
    """One problem found in a table.

    ``row`` is the spreadsheet row (None for a problem of a whole column or of the mapping),
    ``value`` the offending cell as it is in the table. ``severity``: "error" makes the
    analysis impossible, "excluded" leaves the row out of it, "warning" changes nothing.
    ``kind`` is a short phrase ("a missing n", "|r| ≥ 1") used to group problems in summaries.
    """

    row: int | None
    column: str | None
    value: object
    message: str
    severity: Severity
    kind: str


class ProblemReport:
    """What every validation report derives from its ``problems`` and ``usable`` rows.

    Shared by the coding-sheet report (``ValidationReport``) and the patient-level report
    (``alliance_core.teaching.patient_level.PatientDataReport``).
    """

    problems: tuple[Problem, ...]
    usable: pd.DataFrame

    @property
    def n_usable(self) -> int:
        return len(self.usable)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "warning")

    @property
    def exclusions(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "excluded")

    def problems_frame(self) -> pd.DataFrame:
        """The problems as a table (row, column, value, severity, message) for display."""
        columns = ["row", "column", "value", "severity", "message"]
        records = [{name: getattr(p, name) for name in columns} for p in self.problems]
        frame = pd.DataFrame(records, columns=columns)
        frame["row"] = frame["row"].astype("Int64")  # whole numbers even where a row is absent
        return frame


@dataclass(frozen=True, eq=False)
class ValidationReport(ProblemReport):
    """Result of ``validate``: every problem, and the rows that can be analysed.

    ``usable`` is a new frame with the rows that can go into the analysis (original index
    labels kept) and the effect-size columns as numbers (n and n_therapists as integers).
    ``excluded_rows`` holds the index labels of the other rows. When ``ok`` is False no row is
    usable and the problems with severity "error" say why.
    """

    problems: tuple[Problem, ...]
    excluded_rows: tuple
    usable: pd.DataFrame
    n_rows: int
    mapping: ColumnMapping
    # Columns that only some models use (moderators, PTR's counts), with how many usable rows
    # lack a value there: those rows are left out only of the models that use the column.
    missing_by_column: tuple[tuple[str, int], ...] = ()
    # With forms chosen row by row: each form used, with the spreadsheet rows that use it.
    effect_forms: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def summary(self) -> str:
        """A few sentences: how many rows are usable, why the others are left out."""
        parts = []
        if not self.ok:
            reasons = list(dict.fromkeys(p.message for p in self.errors))
            more = f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else ""
            parts.append("Cannot analyse this table: " + " ".join(reasons[:3]) + more)
        parts.append(self._usable_sentence())
        if self.ok and self.missing_by_column:
            listed = ", ".join(
                f"'{column}' in {count_of(count, 'row')}"
                for column, count in self.missing_by_column
            )
            parts.append(
                f"Missing values in columns only some models use: {listed}; such a row is left "
                "out only of models that use that column."
            )
        if self.ok and self.effect_forms:
            listed = "; ".join(
                f"{form} in {count_of(len(rows), 'row')} ({row_list(list(rows))})"
                for form, rows in self.effect_forms
            )
            parts.append(f"Effect sizes by row: {listed}.")
        warnings = list(dict.fromkeys(p.message for p in self.warnings))
        if warnings:
            label = "Warning" if len(warnings) == 1 else "Warnings"
            parts.append(f"{label}: " + " ".join(warnings))
        return " ".join(parts)

    def _usable_sentence(self) -> str:
        left_out = self.n_rows - self.n_usable
        head = f"{self.n_usable:,} of {self.n_rows:,} rows usable"
        if left_out == 0:
            return head + "."
        rows_by_kind: dict[str, dict[int, None]] = {}  # dicts keep rows in order, once each
        for problem in self.exclusions:
            rows_by_kind.setdefault(problem.kind, {})[problem.row] = None
        reasons = [
            f"{len(rows):,} with {kind} ({row_list(list(rows))})"
            for kind, rows in rows_by_kind.items()
        ]
        detail = ": " + ", ".join(reasons) if reasons else ""
        return f"{head}; {left_out:,} left out{detail}."
