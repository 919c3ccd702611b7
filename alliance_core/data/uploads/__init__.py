"""Reading and checking a user's coding sheet: the public names in one place.

The upload path is two steps, both plain functions that the dashboard (or a notebook) calls:

1. ``read_table(data, file_name)`` turns the bytes of a CSV, TSV or Excel file into a table and
   says how it was read (``ReadReport``): encoding, separator, decimal mark, sheet, and the
   missing-value spellings found (``alliance_core.data.uploads.reading``).
2. ``validate(df, mapping)`` checks the table against a ``ColumnMapping`` and lists every problem
   with its row and column (``ValidationReport`` in ``alliance_core.data.uploads.report``, made by
   ``alliance_core.data.uploads.validation``).

What a cell holds (missing, number, text) is decided in ``alliance_core.data.uploads.cells``; the
suggested column roles come from ``alliance_core.data.uploads.mapping``, the template and format
description from ``alliance_core.data.uploads.template``.
"""

from alliance_core.data.uploads.cells import (
    DECIMAL_NAMES,
    MISSING_MARKERS,
    MISSING_SPELLINGS,
    missing_markers,
    shown_spelling,
    spelling_key,
)
from alliance_core.data.uploads.levels import (
    LevelMerge,
    LevelReview,
    NearDuplicate,
    level_key,
    review_levels,
)
from alliance_core.data.uploads.mapping import moderator_candidates, suggest_mapping
from alliance_core.data.uploads.reading import (
    DELIMITER_NAMES,
    ENCODING_LABELS,
    MAX_COLUMNS,
    MAX_FILE_BYTES,
    MAX_ROWS,
    MissingSpelling,
    ReadReport,
    UploadedTable,
    read_table,
)
from alliance_core.data.uploads.report import Problem, ProblemReport, Severity, ValidationReport
from alliance_core.data.uploads.roles import RoleSuggestion, suggest_roles
from alliance_core.data.uploads.template import FORMAT_DESCRIPTION, TEMPLATE_COLUMNS, template_csv
from alliance_core.data.uploads.validation import validate

__all__ = [
    "DECIMAL_NAMES",
    "DELIMITER_NAMES",
    "ENCODING_LABELS",
    "FORMAT_DESCRIPTION",
    "MAX_COLUMNS",
    "MAX_FILE_BYTES",
    "MAX_ROWS",
    "MISSING_MARKERS",
    "MISSING_SPELLINGS",
    "TEMPLATE_COLUMNS",
    "LevelMerge",
    "LevelReview",
    "MissingSpelling",
    "NearDuplicate",
    "Problem",
    "ProblemReport",
    "ReadReport",
    "RoleSuggestion",
    "Severity",
    "UploadedTable",
    "ValidationReport",
    "level_key",
    "missing_markers",
    "moderator_candidates",
    "read_table",
    "review_levels",
    "shown_spelling",
    "spelling_key",
    "suggest_mapping",
    "suggest_roles",
    "template_csv",
    "validate",
]
