"""Missing codes of coding sheets: the default codes in every column, codes a user adds or takes
back, and a missing value leaving a row out only of the models that use its column."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alliance_core.analyses.run import run_analysis
from alliance_core.analyses.settings import PTR, AnalysisSettings
from alliance_core.data.mapping import ColumnMapping
from alliance_core.data.uploads import read_table
from alliance_core.data.uploads.cells import missing_markers, spelling_key

FAST = settings(derandomize=True, deadline=None, max_examples=40, database=None)

# The codes the issue names, written as the issue writes them (not taken from the code).
ISSUE_CODES = (
    "NA",
    "N/A",
    "n.a.",
    "n.r.",
    "nr",
    "n/r",
    "not reported",
    "NR",
    "-",
    "–",
    "—",
    "?",
    ".",
    "missing",
    "unknown",
)


def csv_bytes(header, rows) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def sheet(therapists: list[str]) -> bytes:
    """Studies of two effect sizes each; the therapist count of each study as given."""
    rows = [
        [f"S{i}", f"0.{i + j + 1}", str(40 + 10 * i + j), count, "RCT" if i % 2 else "other"]
        for i, count in enumerate(therapists)
        for j in range(2)
    ]
    return csv_bytes(["study", "r", "n", "therapists", "design"], rows)


MAPPING = ColumnMapping(study="study", r="r", n="n", n_therapists="therapists")


@pytest.mark.parametrize("code", ISSUE_CODES)
def test_every_code_of_the_issue_is_missing_in_a_number_column_and_a_text_column(code):
    data = csv_bytes(
        ["r", "n", "design"], [["0.1", code, code], ["0.2", "50", "RCT"], ["0.3", "60", "x"]]
    )
    frame = read_table(data, "s.csv").frame
    assert frame["n"].isna().tolist() == [True, False, False]
    assert frame["n"].dtype.kind in "if"
    assert frame["design"].isna().tolist() == [True, False, False]


@pytest.mark.parametrize("code", ["n.r.", "NR", "not reported", "unknown", "—"])
def test_a_code_in_the_therapists_column_leaves_the_row_out_only_of_the_ptr_model(code):
    # The issue's trap: 'n.r.' in the therapists column used to drop the row from every model.
    table = read_table(sheet(["4", code, "5", "2", "8"]), "s.csv")
    report = table.validate(MAPPING)
    assert report.ok and report.n_usable == 10
    assert not report.exclusions
    assert dict(report.missing_by_column) == {"therapists": 2}
    from_data = {"data": report.usable, "mapping": MAPPING}
    pooled = run_analysis(**from_data, settings=AnalysisSettings(dataset="upload", moderators=()))
    with_ptr = run_analysis(
        **from_data, settings=AnalysisSettings(dataset="upload", moderators=(PTR,))
    )
    assert pooled.result.k == 10
    assert with_ptr.result.k == 8


@FAST
@given(
    code=st.text(alphabet="abkAKxyz.-/#*", min_size=1, max_size=6).filter(
        lambda c: spelling_key(c) not in missing_markers()
    ),
    spaces=st.sampled_from(["", " ", "  "]),
    upper=st.booleans(),
)
def test_a_code_the_user_adds_is_missing_in_any_case_and_with_spaces(code, spaces, upper):
    written = spaces + (code.upper() if upper else code.lower()) + spaces
    data = csv_bytes(["r", "n", "design"], [["0.1", written, written], ["0.2", "50", "RCT"]])
    plain = read_table(data, "s.csv").frame
    assert plain["design"].tolist()[0] == written.strip()  # without the code: a level
    assert plain["n"].dtype == object  # and a text cell among numbers
    added = read_table(data, "s.csv", extra_codes=[code])
    assert added.frame["design"].isna().tolist() == [True, False]
    assert added.frame["n"].isna().tolist() == [True, False]
    assert added.frame["n"].dtype.kind in "if"
    assert added.report.extra_codes == (spelling_key(code),)
    assert [m.spelling for m in added.report.missing_spellings] == [spelling_key(code)]
    # Taken back: a code declared a real value is a value again, added or not.
    back = read_table(data, "s.csv", extra_codes=[code], real_values=[code]).frame
    assert back["design"].tolist()[0] == written.strip()


def test_a_default_code_taken_back_is_a_level_again():
    data = csv_bytes(["r", "n", "pd"], [["0.1", "40", "n.r."], ["0.2", "50", "yes"]])
    assert read_table(data, "s.csv").frame["pd"].isna().tolist() == [True, False]
    kept = read_table(data, "s.csv", real_values=["N.R."]).frame
    assert kept["pd"].tolist() == ["n.r.", "yes"]


def test_the_report_names_not_reported_as_written():
    data = csv_bytes(["r", "n", "pd"], [["0.1", "40", "Not Reported"], ["0.2", "50", "yes"]])
    found = read_table(data, "s.csv").report.missing_spellings
    assert [m.describe() for m in found] == ["'not reported' in 1 cell (column 'pd')"]
