"""Property tests (Hypothesis) of the formula neutraliser: for any cell text, no cell a CSV
reader or a spreadsheet finds starts a formula, in data lines and in ``#`` comment lines, and
the reproduction scripts' undoing gives back exactly the original text."""

from __future__ import annotations

import csv
import io

import pandas as pd
from hypothesis import example, given, settings
from hypothesis import strategies as st

from alliance_core.handover.csv_export import neutralise_formula, restore_formula, starts_formula
from alliance_core.handover.provenance import neutralise_cells, one_line
from alliance_core.handover.results_table import to_csv_text

# Text rich in what matters here: triggers, quotes, separators, spaces, the quote itself.
SPECIAL = st.sampled_from(list("=+-@'\",;\t |#") + ['""', "=HYPERLINK(1)", "' "])
CELL = st.lists(st.one_of(SPECIAL, st.text(max_size=3)), max_size=8).map("".join)
# A trigger after a separator and a run of quotes and spaces, inside other text.
HIDDEN = st.tuples(
    CELL,
    st.sampled_from([",", ";", "\t"]),
    st.text(alphabet=" \"'", max_size=4),
    st.sampled_from(list("=+-@")),
    CELL,
).map("".join)
# A trigger after a run of spaces and quotes at the start of a cell.
LEADING = st.tuples(st.text(alphabet=" \"'", max_size=4), st.sampled_from(list("=+-@")), CELL).map(
    "".join
)
ANY_CELL = st.one_of(CELL, HIDDEN, LEADING)
# Data values as an upload holds them after cleaning (no NUL, no line breaks).
DATA_CELL = ANY_CELL.map(lambda text: one_line(text).replace("\x00", ""))


def cells(line: str, delimiter: str, skip: bool) -> list[str]:
    return [
        cell
        for row in csv.reader([line], delimiter=delimiter, skipinitialspace=skip)
        for cell in row
    ]


@settings(max_examples=400, deadline=None)
@example(text='a,""=HYPERLINK("http://evil.invalid/q","x")', delimiter=",", skip=False)
@given(text=ANY_CELL, delimiter=st.sampled_from([",", ";", "\t"]), skip=st.booleans())
def test_no_cell_of_a_comment_line_starts_a_formula(text, delimiter, skip):
    line = neutralise_cells("# moderators: " + one_line(text))
    for cell in cells(line, delimiter, skip):
        assert not starts_formula(cell), (line, cell)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(DATA_CELL, min_size=1, max_size=5), name=DATA_CELL, scripts=st.booleans())
def test_no_data_cell_starts_a_formula_and_the_scripts_get_every_value_back(values, name, scripts):
    frame = pd.DataFrame({name or "x": values, "yi": [-0.5] * len(values)})
    text = to_csv_text(frame, for_scripts=scripts)
    rows = list(csv.reader(io.StringIO(text)))
    for row in rows:
        text_cells = row if row is rows[0] else row[:1]  # the header, then the text column
        for cell in text_cells:
            assert not starts_formula(cell), (text, cell)
    assert rows[1][1] == "-0.5"  # numbers stay numbers
    if scripts:
        read = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[])
        assert [restore_formula(c) for c in read.columns][0] == (name or "x")
        assert [restore_formula(v) for v in read.iloc[:, 0]] == values


@given(text=CELL)
def test_reversible_neutralising_is_undone_exactly(text):
    assert restore_formula(neutralise_formula(text, reversible=True)) == text
