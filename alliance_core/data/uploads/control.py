"""Control characters in an uploaded sheet: cleaned on reading, and the cells named.

A line break, NUL, ESC, a lone surrogate or U+2028/2029 inside a level, label or column name
breaks the files made from it (see :mod:`alliance_core.data.control_text`). Every run of them
becomes one space when the sheet is read, and the upload's notes name the cells that changed
(spreadsheet references such as B4), so the user can see and fix them in the sheet.
"""

from __future__ import annotations

from collections.abc import Callable

from alliance_core.data.control_text import clean_upload_text, has_unsafe_characters

SHOWN_CELLS = 8  # references listed in the note before "and N more"


def clean_control_characters(
    header: list,
    rows: list[list],
    first_data_row: int,
    column_letter: Callable[[int], str],
) -> tuple[list, list[list], str | None]:
    """Header and rows with unsafe characters in text cells replaced, and a note naming the
    changed cells (None when none changed). ``first_data_row`` is the sheet row of ``rows[0]``
    (the header is the row above); ``column_letter`` gives a column position's letter."""
    changed: list[str] = []

    def clean(cell, position: int, row: int):
        if isinstance(cell, str) and has_unsafe_characters(cell):
            changed.append(f"{column_letter(position)}{row}")
            return clean_upload_text(cell)
        return cell

    header = [clean(cell, j, first_data_row - 1) for j, cell in enumerate(header)]
    rows = [
        [clean(cell, j, first_data_row + i) for j, cell in enumerate(row)]
        for i, row in enumerate(rows)
    ]
    if not changed:
        return header, rows, None
    listed = ", ".join(changed[:SHOWN_CELLS])
    more = f" and {len(changed) - SHOWN_CELLS:,} more" if len(changed) > SHOWN_CELLS else ""
    count = "1 cell" if len(changed) == 1 else f"{len(changed):,} cells"
    note = (
        f"Line breaks, tabs or other control characters in {count} ({listed}{more}) were "
        "replaced by spaces: they would break the R script, the reports and the CSV files made "
        "from this sheet."
    )
    return header, rows, note
