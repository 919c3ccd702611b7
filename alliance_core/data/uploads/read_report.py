"""How a coding sheet was read: the report shown to the user, and the table with it.

``ReadReport`` records the encoding, separator, decimal mark, sheet and the missing-value
spellings found; ``UploadedTable`` pairs the table with it (made by
``alliance_core.data.uploads.reading.read_table``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import pandas as pd

from alliance_core.data.mapping import ColumnMapping
from alliance_core.data.uploads.cells import (
    DECIMAL_NAMES,
    count_of,
    missing_markers,
    number_text,
    shown_spelling,
)
from alliance_core.data.uploads.levels import LevelReview, review_levels
from alliance_core.data.uploads.report import Problem, ValidationReport
from alliance_core.data.uploads.validation import validate

ENCODING_LABELS = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 with BOM",
    "utf-16": "UTF-16",
    "cp1252": "Latin-1 (Windows-1252)",
}
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}


@dataclass(frozen=True)
class MissingSpelling:
    """A missing-value spelling found in the table ("n.a."), in how many cells and columns."""

    spelling: str
    cells: int
    columns: tuple[str, ...]

    def describe(self) -> str:
        listed = ", ".join(f"'{column}'" for column in self.columns[:5])
        more = ", …" if len(self.columns) > 5 else ""
        where = "column" if len(self.columns) == 1 else "columns"
        return f"'{shown_spelling(self.spelling)}' in {count_of(self.cells, 'cell')} ({where} {listed}{more})"


@dataclass(frozen=True)
class ReadReport:
    """How a file was read, for the dashboard to show and to let the user correct.

    ``encoding``, ``delimiter`` and ``decimal`` can be passed back to ``read_table`` unchanged.
    ``first_data_row`` is the spreadsheet row of the table's first data row (see ``alliance_core.data.uploads.reading``).
    ``notes`` lists every decision worth a second look (ambiguities, renamed columns).
    ``missing_spellings`` lists the non-empty missing-value spellings read as missing (most
    cells first); ``real_values`` the spellings the caller declared real values,
    ``extra_codes`` the codes the caller added.
    """

    file_name: str
    file_format: Literal["text", "excel"]
    encoding: str | None
    delimiter: str | None
    decimal: str
    sheet_name: str | None
    sheet_names: tuple[str, ...]
    n_rows: int
    n_columns: int
    first_data_row: int
    notes: tuple[str, ...] = ()
    missing_spellings: tuple[MissingSpelling, ...] = ()
    real_values: tuple[str, ...] = ()
    extra_codes: tuple[str, ...] = ()

    @property
    def missing_markers(self) -> frozenset[str]:
        """The spellings that count as missing in this table."""
        return missing_markers(self.real_values, self.extra_codes)

    def describe(self) -> str:
        """One sentence such as "Read as semicolon-separated text, decimal comma, Latin-1 …"."""
        size = f"{count_of(self.n_rows, 'row')}, {count_of(self.n_columns, 'column')}"
        if self.file_format == "excel":
            sheets = f" ({len(self.sheet_names)} sheets)" if len(self.sheet_names) > 1 else ""
            return f"Read sheet '{self.sheet_name}' of an Excel workbook{sheets}: {size}."
        if self.n_columns == 1:
            layout = "one column (no comma, semicolon or tab separates the cells)"
        else:
            layout = f"{DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))}-separated text"
        encoding = ENCODING_LABELS.get(self.encoding, self.encoding)
        return f"Read as {layout}, {DECIMAL_NAMES[self.decimal]}, {encoding}: {size}."


@dataclass(frozen=True, eq=False)
class UploadedTable:
    """A table read from a file, with the report of how it was read.

    ``typed`` holds, per numeric column, the cells whose typed text their number does not spell
    ("1.10", "01"), by row position; ``table_for`` puts them back in identifier columns.
    ``stored_decimals`` holds, per numeric column of a workbook, the numbers with decimals the
    workbook stores as numbers ("1.1"): there what was typed is lost (``validate`` says so).
    """

    frame: pd.DataFrame
    report: ReadReport
    typed: Mapping[str, Mapping[int, str]] = field(default_factory=dict)
    stored_decimals: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def table_for(self, mapping: ColumnMapping) -> pd.DataFrame:
        """The table as ``mapping`` reads it: each identifier column
        (``ColumnMapping.identifier_columns``: study, es_id, label) holds the text typed in the
        file, so that "1.1" and "1.10", or "01" and "1", stay two studies. Other columns are
        ``frame``'s; ``frame`` itself is not changed."""
        return self.with_typed_text(mapping.identifier_columns)

    def with_typed_text(self, columns: Iterable[str]) -> pd.DataFrame:
        """The table with ``columns`` (ids: studies, therapists) as the text typed in the file,
        numbers written by ``number_text`` where nothing else was typed; other columns as in
        ``frame``, which is not changed."""
        table = self.frame
        for column in dict.fromkeys(columns):
            if column not in table.columns or table[column].dtype.kind not in "iuf":
                continue  # a text column already holds the cells as typed
            if table is self.frame:
                table = self.frame.copy()
            typed = self.typed.get(column, {})
            values = self.frame[column].tolist()
            table[column] = pd.Series(
                [
                    typed.get(
                        position,
                        None if math.isnan(value) else number_text(value, self.report.decimal),
                    )
                    for position, value in enumerate(values)
                ],
                index=table.index,
                dtype=object,
            )
        return table

    def levels(
        self, mapping: ColumnMapping, kept_apart: Iterable[tuple[str, str]] = ()
    ) -> LevelReview:
        """The spellings of each moderator's levels merged (``review_levels``), as a view of
        ``table_for(mapping)``."""
        return review_levels(self.table_for(mapping), mapping.moderators, kept_apart)

    def validate(
        self, mapping: ColumnMapping, levels: LevelReview | None = None
    ) -> ValidationReport:
        """``validate`` of ``table_for(mapping)`` with this file's decimal mark and row
        numbering; of the view with merged levels when ``levels`` (made by ``levels``) is given
        (the file's table itself is never changed). Adds a warning for each identifier column
        whose ids a workbook stores as numbers with decimals (``stored_decimals``)."""
        report = validate(
            self.table_for(mapping) if levels is None else levels.frame,
            mapping,
            decimal=self.report.decimal,
            first_data_row=self.report.first_data_row,
            markers=self.report.missing_markers,
        )
        warnings = tuple(
            _stored_ids_warning(column, self.stored_decimals[column])
            for column in mapping.identifier_columns
            if column in self.stored_decimals
        )
        return replace(report, problems=report.problems + warnings) if warnings else report


def _stored_ids_warning(column: str, shown: tuple[str, ...]) -> Problem:
    """Ids such as study.sample codes stored by a workbook as numbers: "1.10" typed in a
    General cell is the number 1.1, so two ids may already be one; only the user can tell."""
    listed = ", ".join(shown[:5]) + (", …" if len(shown) > 5 else "")
    return Problem(
        None,
        column,
        None,
        f"Column '{column}' holds ids that the workbook stores as numbers with decimals "
        f"({listed}). A spreadsheet keeps only the number, so ids typed as 1.1 and 1.10 are "
        "the same number there and are read as one id. If these are codes such as study.sample "
        "numbers, format the column as Text in the spreadsheet, type the ids again and upload "
        "the file again.",
        "warning",
        "ids stored as numbers",
    )
