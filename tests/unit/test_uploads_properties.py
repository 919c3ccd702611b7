"""Hostile input for the upload path: whatever comes in, the reader and the validator either
give a consistent result or raise AnalysisError with a message; never any other exception.

Runs are derandomised (the same examples every time) and kept small so the suite stays fast.
"""

from __future__ import annotations

import copy
import csv
import datetime
import io

import numpy as np
import openpyxl
import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from alliance_core.data.mapping import ColumnMapping
from alliance_core.data.uploads import (
    moderator_candidates,
    read_table,
    suggest_mapping,
    validate,
)
from alliance_core.errors import AnalysisError

FAST = settings(
    derandomize=True,
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

FILE_NAMES = st.sampled_from(["sheet.csv", "sheet.tsv", "sheet.txt", "sheet.xlsx", "sheet"])

TRICKY_CELL_VALUES = [
    "",
    " ",
    "NA",
    "nan",
    "NaN",
    "-nan",
    "inf",
    "-Infinity",
    "1e308",
    "1e309",
    "-0",
    "0,25",
    "0.25",
    "1,234",
    "1.234",
    "1_000",
    "٣",
    "−0.3",
    '"',
    '""',
    'a"b',
    "a,b",
    "a;b",
    "\t",
    "\n",
    "\r\n",
    ".",
    "#N/A",
    "Müller",
    "\ufeff",
    "\x00",
    "9" * 400,
    "x" * 5000,
    "x" * 140_000,  # longer than a CSV field may be
]
TRICKY_CELLS = st.sampled_from(TRICKY_CELL_VALUES)
CELLS = st.one_of(
    TRICKY_CELLS,
    st.text(max_size=12),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
)


def mostly(usual, other):
    """``usual`` eight times in ten, else ``other`` (one_of does not weight its branches)."""
    return st.sampled_from(range(10)).flatmap(lambda k: usual if k < 8 else other)


def assert_fails_cleanly(error: AnalysisError) -> None:
    assert str(error).strip()


def assert_table_is_consistent(table) -> None:
    frame, report = table.frame, table.report
    assert isinstance(frame, pd.DataFrame)
    assert report.n_rows == len(frame) >= 1
    assert report.n_columns == frame.shape[1] >= 1
    assert frame.columns.is_unique
    assert all(isinstance(name, str) and name for name in frame.columns)
    assert report.first_data_row >= 2
    assert report.decimal in (".", ",")
    assert report.describe()


def read_or_fail(data: bytes, name: str):
    try:
        table = read_table(data, name)
    except AnalysisError as error:
        assert_fails_cleanly(error)
        event("refused: " + str(error).replace(repr(name), "FILE")[:32])
        return None
    assert_table_is_consistent(table)
    event("read")
    return table


@FAST
@given(data=st.binary(max_size=3000), name=FILE_NAMES)
def test_reader_on_random_bytes(data, name):
    read_or_fail(data, name)


@FAST
@given(
    text=st.lists(st.text(max_size=40), max_size=15).map("\n".join),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le"]),
    name=FILE_NAMES,
)
def test_reader_on_random_text(text, encoding, name):
    read_or_fail(text.encode(encoding, errors="replace"), name)


@FAST
@given(
    zip_like=st.binary(max_size=400).map(lambda tail: b"PK\x03\x04" + tail),
    name=FILE_NAMES,
)
def test_reader_on_random_bytes_that_start_like_a_workbook(zip_like, name):
    read_or_fail(zip_like, name)


PRINTABLE = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=12)
HEADER_NAMES = st.sampled_from(["study", "es_id", "r", "n", "therapists", "yi", "vi", "design"])
HEADER = st.lists(HEADER_NAMES, min_size=2, max_size=5, unique=True).map(
    lambda names: names if {"r", "n"} <= set(names) else ["r", "n", *names]
)


@st.composite
def csv_files(draw):
    """CSV bytes: a random header, cells that mostly fit their column's name mixed with tricky
    and random text, random separator, quoting, decimal mark, encoding and line ends, and now
    and then a row with a cell too many or too few."""
    header = draw(mostly(HEADER, st.lists(st.one_of(HEADER_NAMES, CELLS), min_size=1, max_size=6)))
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    decimal_comma = delimiter != "," and draw(st.booleans())

    def number(value: float) -> str:
        text = repr(value)
        return text.replace(".", ",") if decimal_comma else text

    fitting = {
        "study": st.sampled_from(["A", "B", "Müller"]),
        "es_id": st.integers(1, 3).map(str),
        "r": st.floats(-0.99, 0.99).map(number),
        "n": st.integers(4, 500).map(str),
        "therapists": st.integers(1, 4).map(str),
        "yi": st.floats(-2, 2).map(number),
        "vi": st.floats(0.001, 1).map(number),
        "design": st.sampled_from(["RCT", "other"]),
    }

    def cells_for(name: str):
        good = fitting.get(name, PRINTABLE)
        return mostly(good, st.one_of(TRICKY_CELLS, PRINTABLE, CELLS))

    rows = draw(st.lists(st.tuples(*[cells_for(name) for name in header]).map(list), max_size=8))
    if rows and draw(st.sampled_from(range(5))) == 2:  # now and then one ragged row
        position = draw(st.sampled_from(range(len(rows))))
        ragged = rows[position][:-1] if draw(st.booleans()) else [*rows[position], "extra"]
        rows[position] = ragged
    buffer = io.StringIO(newline="")
    writer = csv.writer(
        buffer,
        delimiter=delimiter,
        lineterminator=draw(st.sampled_from(["\n", "\r\n"])),
        quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])),
    )
    writer.writerow(header)
    writer.writerows(rows)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "utf-16"]))
    return buffer.getvalue().encode(encoding, errors="replace")


@settings(FAST, max_examples=60)
@given(data=csv_files(), name=FILE_NAMES)
def test_reader_then_validator_on_csv_with_hostile_cells(data, name):
    table = read_or_fail(data, name)
    if table is None:
        return
    mapping = suggest_mapping(table.frame.columns)
    assert set(mapping.columns()) <= set(table.frame.columns)
    report = table.validate(mapping)
    assert_report_is_consistent(table.frame, mapping, report, table.report.first_data_row)
    event(f"validated ok={report.ok}")


EXCEL_VALUES = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.booleans(),
    st.datetimes(min_value=datetime.datetime(1900, 3, 1), max_value=datetime.datetime(2100, 1, 1)),
    st.sampled_from([cell for cell in TRICKY_CELL_VALUES if cell.isprintable()]),
    PRINTABLE,
)
EXCEL_FITTING = {
    "study": st.sampled_from(["A", "B", 1, 2]),
    "es_id": st.integers(1, 3),
    "r": st.floats(-1, 1),
    "n": st.integers(3, 500),
    "therapists": st.integers(0, 5),
    "yi": st.floats(-2, 2),
    "vi": st.floats(0, 1),
    "design": st.sampled_from(["RCT", "other"]),
}


@st.composite
def workbooks(draw):
    """.xlsx bytes: a random header and native cells of every kind, mostly fitting the
    column's name; now and then a row with a cell too many."""
    header = draw(mostly(HEADER, st.lists(st.one_of(HEADER_NAMES, EXCEL_VALUES), max_size=5)))
    cells = [mostly(EXCEL_FITTING.get(name, PRINTABLE), EXCEL_VALUES) for name in header]
    rows = draw(st.lists(st.tuples(*cells).map(list), max_size=6))
    if rows and draw(st.sampled_from(range(5))) == 2:
        rows[-1].append("extra")
    workbook = openpyxl.Workbook()
    for row in [header, *rows]:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


@settings(FAST, max_examples=25)
@given(data=workbooks())
def test_reader_then_validator_on_workbooks_with_random_cells(data):
    table = read_or_fail(data, "sheet.xlsx")
    if table is None:
        return
    mapping = suggest_mapping(table.frame.columns)
    report = table.validate(mapping)
    assert_report_is_consistent(table.frame, mapping, report, table.report.first_data_row)
    event(f"validated ok={report.ok}")


# ---------------------------------------------------------------------------------------------
# validate on random tables and mappings
# ---------------------------------------------------------------------------------------------

POOL = ["study", "es_id", "r", "n", "ther", "yi", "vi", "mod", "label"]

ANY_VALUE = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.booleans(),
    TRICKY_CELLS,
    st.text(max_size=6),
)
# Mostly values that pass, so that usable rows and every rule are reached.
PLAUSIBLE = {
    "study": st.sampled_from(["A", "B", "C", 1, 2]),
    "es_id": st.integers(1, 4),
    # The bounds are invalid on purpose (r = ±1, n = 3, no therapist, vi = 0): hypothesis
    # draws bounds often, so each rule's edge is tried.
    "r": st.floats(-1, 1),
    "n": st.integers(3, 400),
    "ther": st.integers(0, 12),
    "yi": st.floats(-2, 2),
    "vi": st.floats(0, 1),
    "mod": st.sampled_from(["RCT", "other"]),
    "label": st.text(max_size=6),
}


def column_values(draw, name: str, length: int) -> pd.Series:
    """One column of a random table, with a random dtype."""
    good = PLAUSIBLE[name]
    kind = draw(
        st.sampled_from(["plain"] * 4 + ["mixed"] * 2 + ["float", "int", "text", "nullable"])
    )
    if kind == "plain":  # valid values in the dtype pandas infers for them
        return pd.Series(draw(st.lists(good, min_size=length, max_size=length)))
    if kind == "float":
        values = draw(
            st.lists(st.one_of(good.map(_as_float), st.floats()), min_size=length, max_size=length)
        )
        return pd.Series(values, dtype=float)
    if kind == "int":
        values = draw(st.lists(st.integers(-5, 500), min_size=length, max_size=length))
        return pd.Series(values, dtype=np.int64)
    if kind == "nullable":
        values = draw(
            st.lists(st.one_of(st.none(), st.integers(-5, 500)), min_size=length, max_size=length)
        )
        return pd.Series(values, dtype="Int64")
    if kind == "text":
        text = st.one_of(good.map(str), TRICKY_CELLS, st.none())
        values = draw(st.lists(text, min_size=length, max_size=length))
        return pd.Series(values, dtype="str")
    values = draw(st.lists(mostly(good, ANY_VALUE), min_size=length, max_size=length))
    return pd.Series(values, dtype=object)


def _as_float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


@st.composite
def tables_and_mappings(draw):
    """A frame with an effect-size pair and other columns from POOL, and a mapping that mostly
    points at the natural columns; now and then a name is repeated, or a role points at a
    wrong or absent column."""
    length = draw(st.sampled_from(range(9)))
    pair = draw(st.sampled_from([("r", "n"), ("yi", "vi")]))
    others = draw(st.lists(st.sampled_from(POOL), max_size=5, unique=True))
    names = list(pair) + [name for name in others if name not in pair]
    if draw(st.sampled_from(range(10))) == 7:
        names.append(draw(st.sampled_from(names)))  # a repeated column name
    columns = [column_values(draw, name, length) for name in names]
    frame = pd.concat(columns, axis=1, ignore_index=True)
    frame.columns = names
    if draw(st.booleans()):
        frame.index = [f"row{i}" for i in range(length)]
    natural = {"study": "study", "es_id": "es_id", "r": "r", "n": "n", "n_therapists": "ther",
               "yi": "yi", "vi": "vi", "label": "label"}  # fmt: skip
    roles = {}
    for role, column in natural.items():
        # sampled_from picks about uniformly (integers() favour their bounds)
        choice = draw(st.sampled_from(["natural"] * 8 + ["other"] + ["natural"] * 8 + ["none"]))
        if choice == "natural" and column in names:
            roles[role] = column
        elif choice == "other":
            roles[role] = draw(st.sampled_from([*POOL, "absent"]))
    present = [name for name in ("mod", "label", "study") if name in names]
    moderators = draw(st.lists(st.sampled_from(present), max_size=2)) if present else []
    if draw(st.sampled_from(range(20))) == 7:
        moderators.append("absent")
    return frame, ColumnMapping(**roles, moderators=tuple(moderators))


def assert_report_is_consistent(df, mapping, report, first_row) -> None:
    assert report.n_usable + len(report.excluded_rows) == report.n_rows == len(df)
    assert list(report.usable.columns) == list(df.columns)
    assert set(report.usable.index) <= set(df.index)
    assert report.ok == (not report.errors)
    assert report.ok == (report.n_usable > 0)
    for problem in report.problems:
        assert problem.severity in ("error", "warning", "excluded")
        assert isinstance(problem.message, str) and problem.message
        if problem.row is not None:
            assert first_row <= problem.row < first_row + len(df)
    assert isinstance(report.summary(), str) and report.summary()
    assert len(report.problems_frame()) == len(report.problems)
    if report.ok:
        assert_usable_rows_are_valid(df, mapping, report)
        # Every row left out is explained by a problem in that row.
        positions = [df.index.get_loc(label) for label in report.excluded_rows]
        explained = {p.row for p in report.exclusions}
        assert {first_row + position for position in positions} == explained


def assert_usable_rows_are_valid(df, mapping, report) -> None:
    usable = report.usable

    def numbers(column):
        return usable[column].to_numpy(dtype=float)

    if mapping.uses_correlations:
        r, n = numbers(mapping.r), numbers(mapping.n)
        assert np.all(np.isfinite(r)) and np.all(np.abs(r) < 1)
        assert np.all(n > 3) and np.all(n == np.floor(n))
    else:
        yi, vi = numbers(mapping.yi), numbers(mapping.vi)
        assert np.all(np.isfinite(yi))
        assert np.all(np.isfinite(vi)) and np.all(vi > 0)
    if mapping.n_therapists:
        # A missing therapist count keeps the row (only PTR models leave it out).
        therapists = numbers(mapping.n_therapists)
        given = ~np.isnan(therapists)
        assert np.all(therapists[given] >= 1)
        assert np.all(therapists[given] == np.floor(therapists[given]))
        if mapping.n:
            assert np.all(therapists[given] <= numbers(mapping.n)[given])


@settings(FAST, max_examples=60)
@given(
    table=tables_and_mappings(),
    decimal=st.sampled_from([".", ","]),
    first_row=st.integers(1, 10),
)
def test_validate_on_random_tables_and_mappings(table, decimal, first_row):
    df, mapping = table
    before = copy.deepcopy(df)
    report = validate(df, mapping, decimal=decimal, first_data_row=first_row)  # never raises
    suggested = suggest_mapping(df.columns)
    candidates = moderator_candidates(df, mapping)
    pd.testing.assert_frame_equal(df, before)
    assert_suggestion_is_sound(df, suggested)
    assert set(candidates) <= set(df.columns)
    assert not set(candidates) & (set(mapping.columns()) - set(mapping.moderators))
    assert_report_is_consistent(df, mapping, report, first_row)
    event(f"ok={report.ok}, usable={min(report.n_usable, 2)}")


def assert_suggestion_is_sound(df, suggested) -> None:
    assert set(suggested.columns()) <= set(df.columns)
    roles = [suggested.study, suggested.es_id, suggested.r, suggested.n, suggested.yi,
             suggested.vi, suggested.n_therapists, suggested.label, suggested.year]  # fmt: skip
    named = [role for role in roles if role is not None]
    assert len(named) == len(set(named))  # no column gets two roles
    assert suggested.moderators == ()
