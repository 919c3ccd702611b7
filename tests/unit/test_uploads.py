"""Reading and validating an uploaded coding sheet (alliance_core.data.uploads).

Expected values come from the files built here: each test writes the cells it then looks for.
Row numbers are spreadsheet rows (header = row 1, first data row = row 2).
"""

from __future__ import annotations

import copy
import csv
import io
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from alliance_core.data import uploads
from alliance_core.data.mapping import ColumnMapping
from alliance_core.data.uploads import (
    FORMAT_DESCRIPTION,
    MAX_FILE_BYTES,
    MAX_ROWS,
    Problem,
    moderator_candidates,
    read_table,
    suggest_mapping,
    template_csv,
    validate,
)
from alliance_core.data.uploads import reading as uploads_reading
from alliance_core.errors import AnalysisError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "uploads"

R_MAPPING = ColumnMapping(study="study", es_id="es_id", r="r", n="n", n_therapists="ther")


def xlsx_bytes(sheets: dict[str, list[list]]) -> bytes:
    """An .xlsx workbook with the given sheets (name → rows), as bytes."""
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def checked(df: pd.DataFrame, mapping: ColumnMapping, **options) -> uploads.ValidationReport:
    """validate(), asserting on the way that the caller's frame is left exactly as it was."""
    before = copy.deepcopy(df)
    report = validate(df, mapping, **options)
    pd.testing.assert_frame_equal(df, before)
    assert report.n_usable + len(report.excluded_rows) == report.n_rows == len(df)
    return report


def only(problems, **fields) -> Problem:
    """The single problem whose fields equal ``fields``."""
    matching = [p for p in problems if all(getattr(p, k) == v for k, v in fields.items())]
    assert len(matching) == 1, (fields, problems)
    return matching[0]


def sheet(**columns) -> pd.DataFrame:
    return pd.DataFrame(columns)


# ---------------------------------------------------------------------------------------------
# Encodings, separators, decimal marks
# ---------------------------------------------------------------------------------------------


def test_utf8_with_bom_is_detected_and_the_bom_is_not_part_of_the_first_name():
    table = read_table((FIXTURES / "utf8_bom_comma.csv").read_bytes(), "utf8_bom_comma.csv")
    assert table.report.encoding == "utf-8-sig"
    assert table.report.delimiter == ","
    assert list(table.frame.columns) == ["study", "es_id", "r", "n"]
    assert table.frame["r"].tolist() == [0.31, 0.22, 0.40]
    assert "UTF-8 with BOM" in table.report.describe()


def test_latin1_semicolons_and_decimal_commas_are_detected_and_reported():
    data = (FIXTURES / "latin1_semicolon_decimal_comma.csv").read_bytes()
    table = read_table(data, "latin1_semicolon_decimal_comma.csv")
    report = table.report
    assert (report.encoding, report.delimiter, report.decimal) == ("cp1252", ";", ",")
    assert table.frame["label"].tolist() == ["Müller & Weiß (2003)", "Åström (2010)"]
    assert table.frame["r"].tolist() == [0.25, -0.12]
    assert table.frame["n"].dtype == np.int64
    assert report.describe() == (
        "Read as semicolon-separated text, decimal comma, Latin-1 (Windows-1252): "
        "2 rows, 5 columns."
    )


def test_utf8_accented_text_is_read_as_utf8_not_latin1():
    table = read_table("study,label\n1,Müller\n".encode(), "x.csv")
    assert table.report.encoding == "utf-8"
    assert table.frame["label"].tolist() == ["Müller"]


def test_tab_separated_file():
    table = read_table((FIXTURES / "tab_separated.tsv").read_bytes(), "tab_separated.tsv")
    assert table.report.delimiter == "\t"
    assert table.frame["study"].tolist() == ["Smith 2001", "Lee 2004"]
    assert table.frame["therapists"].tolist() == [10, 25]
    assert "tab-separated" in table.report.describe()


def test_utf16_with_byte_order_mark_is_read():
    table = read_table("study\tr\n1\t0.3\n".encode("utf-16"), "unicode.txt")
    assert table.report.encoding == "utf-16"
    assert table.frame["r"].tolist() == [0.3]


def test_quoted_cell_with_a_comma_stays_one_cell():
    table = read_table(b'study,label,r\n1,"Smith, Lee (2004)",0.3\n', "x.csv")
    assert table.frame["label"].tolist() == ["Smith, Lee (2004)"]
    assert table.report.notes == ()


def test_decimal_comma_in_a_tab_separated_file():
    table = read_table(b"r\tn\n0,31\t48\n-0,05\t60\n", "x.tsv")
    assert table.report.decimal == ","
    assert table.frame["r"].tolist() == [0.31, -0.05]


def test_two_consistent_separators_are_decided_by_rule_and_reported():
    # "a,b;c" splits into 2 columns on commas and 2 on semicolons: the tie goes to semicolons.
    table = read_table(b"a,b;c\n1,2;3\n", "x.csv")
    assert table.report.delimiter == ";"
    assert any("commas" in note for note in table.report.notes)


def test_mixed_decimal_marks_are_reported_and_the_minority_stays_text():
    table = read_table(b"study;r;n\n1;0,25;40\n2;0,31;50\n3;0.12;60\n", "x.csv")
    assert table.report.decimal == ","
    assert any("decimal commas" in note for note in table.report.notes)
    report = table.validate(ColumnMapping(study="study", r="r", n="n"))
    problem = only(report.problems, row=4, column="r")
    assert problem.value == "0.12"
    assert "'0.12' is not a number" in problem.message


def test_thousands_like_cells_do_not_decide_the_decimal_mark():
    table = read_table(b"study;n\n1;1,234\n", "x.csv")
    assert table.report.decimal == "."
    assert table.frame["n"].tolist() == ["1,234"]  # left as text, not read as 1.234
    assert any("thousands" in note for note in table.report.notes)


def test_user_choices_override_detection():
    data = b"study;r\n1;0,25\n"
    table = read_table(data, "x.csv", delimiter=";", decimal=".", encoding="utf-8")
    assert (table.report.delimiter, table.report.decimal) == (";", ".")
    assert table.frame["r"].tolist() == ["0,25"]


def test_a_wrong_user_encoding_is_named_in_the_error():
    with pytest.raises(AnalysisError, match=r"cannot be read as UTF-8: byte 0xfc"):
        read_table("r\nMüller\n".encode("cp1252"), "x.csv", encoding="utf-8")


def test_blank_rows_inside_the_table_keep_row_numbers_and_trailing_ones_are_dropped():
    table = read_table(b"study,r,n\n1,0.3,50\n\n2,0.2,60\n\n\n", "x.csv")
    assert len(table.frame) == 3
    report = table.validate(ColumnMapping(study="study", r="r", n="n"))
    empty = only(report.problems, kind="no values at all")
    assert empty.row == 3
    assert report.usable["study"].tolist() == ["1", "2"]  # the ids as typed


def test_blank_lines_above_the_header_shift_the_first_data_row():
    table = read_table(b"\n\nstudy,r,n\n1,0.3,2\n", "x.csv")
    assert table.report.first_data_row == 4
    report = table.validate(ColumnMapping(study="study", r="r", n="n"))
    assert only(report.problems, column="n").row == 4


def test_unnamed_and_repeated_column_names_are_renamed_and_reported():
    table = read_table(b"study,,r,r\n1,x,0.3,0.4\n", "x.csv")
    assert list(table.frame.columns) == ["study", "column B", "r", "r (2)"]
    assert len(table.report.notes) == 2


def test_trailing_separators_do_not_add_columns():
    table = read_table(b"study;r;n;;\n1;0,3;50;;\n", "x.csv")
    assert list(table.frame.columns) == ["study", "r", "n"]


def test_a_row_with_more_cells_than_the_header_is_an_error_naming_the_row():
    data = b"study,r,n\n1,0.30,50\n2,0,25,60\n"  # decimal comma in a comma-separated file
    with pytest.raises(AnalysisError, match=r"1 row \(row 3\)"):
        read_table(data, "x.csv")


def test_a_cell_longer_than_a_csv_field_may_be_is_an_analysis_error():
    data = b"label,r\n" + b"x" * 200_000 + b",0.3\n"
    with pytest.raises(
        AnalysisError, match=r"near line 2: a cell is longer than 131,072 characters"
    ):
        read_table(data, "x.csv")


def test_a_single_column_is_read_and_reported():
    table = read_table(b"r\n0.1\n0.2\n", "x.csv")
    assert table.frame["r"].tolist() == [0.1, 0.2]
    assert "one column" in table.report.describe()


def test_missing_markers_become_missing_values():
    table = read_table(b"r,n\n0.3,NA\n0.2,\n0.1,.\n0.4,n/a\n", "x.csv")
    assert table.frame["n"].isna().all()


# ---------------------------------------------------------------------------------------------
# Excel
# ---------------------------------------------------------------------------------------------


def test_excel_first_sheet_by_default_with_the_sheet_names_listed():
    data = xlsx_bytes(
        {
            "Coding": [["study", "r", "n"], ["Müller", 0.25, 48], ["Lee", 0.1, 60]],
            "Notes": [["note"], ["done"]],
        }
    )
    table = read_table(data, "sheet.xlsx")
    assert table.report.file_format == "excel"
    assert table.report.sheet_names == ("Coding", "Notes")
    assert table.report.sheet_name == "Coding"
    assert table.frame["study"].tolist() == ["Müller", "Lee"]
    assert table.frame["n"].tolist() == [48, 60]
    assert table.report.describe() == (
        "Read sheet 'Coding' of an Excel workbook (2 sheets): 2 rows, 3 columns."
    )


@pytest.mark.parametrize("choice", ["Notes", 1])
def test_excel_sheet_chosen_by_name_or_position(choice):
    data = xlsx_bytes({"Coding": [["a"], [1]], "Notes": [["note"], ["done"]]})
    table = read_table(data, "sheet.xlsx", sheet=choice)
    assert table.report.sheet_name == "Notes"
    assert table.frame["note"].tolist() == ["done"]


def test_excel_unknown_sheet_lists_the_sheets():
    data = xlsx_bytes({"Coding": [["a"], [1]]})
    with pytest.raises(AnalysisError, match=r"no sheet 'Other'; its sheets are 'Coding'"):
        read_table(data, "sheet.xlsx", sheet="Other")


def test_excel_row_numbers_match_the_sheet():
    data = xlsx_bytes({"Coding": [[], ["study", "r", "n"], [1, 0.3, 50], [2, 1.5, 60]]})
    table = read_table(data, "sheet.xlsx")
    assert table.report.first_data_row == 3
    report = table.validate(ColumnMapping(study="study", r="r", n="n"))
    assert only(report.problems, column="r").row == 4


def test_excel_text_cells_with_decimal_commas_are_read_and_reported():
    data = xlsx_bytes({"Coding": [["r", "n"], ["0,3", 50], [0.2, 60]]})
    table = read_table(data, "sheet.xlsx")
    assert table.report.decimal == ","
    assert table.frame["r"].tolist() == [0.3, 0.2]
    assert table.report.notes


def test_excel_numbers_in_a_text_column_stay_numbers_for_validation():
    # One text cell keeps the column as text; the native numbers must still validate.
    data = xlsx_bytes({"Coding": [["r", "n"], [0.25, 50], ["abc", 60], ["0,3", 70]]})
    table = read_table(data, "sheet.xlsx")
    assert table.report.decimal == ","
    assert table.frame["r"].tolist() == ["0,25", "abc", "0,3"]
    report = table.validate(ColumnMapping(r="r", n="n"))
    assert [(p.row, p.value) for p in report.problems] == [(3, "abc")]
    assert report.usable["r"].tolist() == [0.25, 0.3]


def test_a_workbook_named_csv_is_read_as_a_workbook():
    data = xlsx_bytes({"Coding": [["r", "n"], [0.3, 50]]})
    table = read_table(data, "export.csv")
    assert table.report.file_format == "excel"
    assert table.frame["r"].tolist() == [0.3]


def test_a_damaged_workbook_is_an_analysis_error():
    data = xlsx_bytes({"Coding": [["r", "n"], [0.3, 50]]})
    with pytest.raises(AnalysisError, match="could not be opened as an Excel workbook"):
        read_table(data[: len(data) // 2], "sheet.xlsx")


def test_a_zip_that_is_not_a_workbook_is_an_analysis_error():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hello")
    with pytest.raises(AnalysisError, match="could not be opened as an Excel workbook"):
        read_table(buffer.getvalue(), "sheet.xlsx")


def test_old_xls_format_is_refused_with_advice():
    data = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600
    with pytest.raises(AnalysisError, match=r"\.xls"):
        read_table(data, "old.xls")


def test_empty_excel_sheet_and_header_only_sheet():
    with pytest.raises(AnalysisError, match="is empty"):
        read_table(xlsx_bytes({"Coding": []}), "sheet.xlsx")
    with pytest.raises(AnalysisError, match="no data rows"):
        read_table(xlsx_bytes({"Coding": [["study", "r", "n"]]}), "sheet.xlsx")


def test_excel_row_limit(monkeypatch):
    monkeypatch.setattr(uploads_reading, "MAX_ROWS", 3)
    rows = [["r"]] + [[0.1]] * 3
    assert len(read_table(xlsx_bytes({"S": rows}), "s.xlsx").frame) == 3
    with pytest.raises(AnalysisError, match="more than 3 data rows"):
        read_table(xlsx_bytes({"S": rows + [[0.2]]}), "s.xlsx")


# ---------------------------------------------------------------------------------------------
# Limits and unreadable files
# ---------------------------------------------------------------------------------------------


def test_file_over_20_mb_is_refused():
    with pytest.raises(AnalysisError, match=r"files up to 20 MB"):
        read_table(b"r\n" + b"0" * (MAX_FILE_BYTES - 1), "big.csv")


def test_file_of_exactly_20_mb_passes_the_size_check():
    # NUL bytes fail later, as binary data; the point is that the size is not the complaint.
    with pytest.raises(AnalysisError) as raised:
        read_table(b"\x00" * MAX_FILE_BYTES, "big.csv")
    assert "MB" not in str(raised.value)


def test_more_than_200000_rows_is_refused():
    data = b"r\n" + b"1\n" * (MAX_ROWS + 1)
    with pytest.raises(AnalysisError, match=r"more than 200,000 data rows"):
        read_table(data, "long.csv")


def test_row_limit_counts_data_rows_not_trailing_blank_lines(monkeypatch):
    monkeypatch.setattr(uploads_reading, "MAX_ROWS", 3)
    assert len(read_table(b"r\n1\n2\n3\n\n\n\n", "x.csv").frame) == 3
    with pytest.raises(AnalysisError, match="more than 3 data rows"):
        read_table(b"r\n1\n2\n\n3\n", "x.csv")  # the blank row 4 is a row of the table


@pytest.mark.parametrize("data", [b"", b"   \n\r\n\n"])
def test_empty_file(data):
    with pytest.raises(AnalysisError, match="'x.csv' is empty"):
        read_table(data, "x.csv")


@pytest.mark.parametrize("data", [b"study,r,n\n", b"study,r,n", b"study,r,n\n\n,,\n"])
def test_header_only_file(data):
    with pytest.raises(AnalysisError, match=r"header row \(study, r, n\) but no data rows"):
        read_table(data, "x.csv")


def test_binary_file_is_refused():
    data = bytes(range(256)) * 8
    with pytest.raises(AnalysisError, match="not a text table"):
        read_table(data, "x.csv")


def test_utf16_without_byte_order_mark_is_named():
    with pytest.raises(AnalysisError, match="UTF-16"):
        read_table("study,r\n1,0.3\n".encode("utf-16-le"), "x.csv")


def test_text_converted_to_utf8_twice_is_noted():
    doubly = "Müller".encode().decode("cp1252")  # "MÃ¼ller"
    table = read_table(f"label,r\n{doubly},0.3\n".encode(), "x.csv")
    assert any("twice" in note for note in table.report.notes)


# ---------------------------------------------------------------------------------------------
# Suggesting a mapping
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "role"),
    [
        ("r", "r"),
        ("ri", "r"),
        ("COR", "r"),
        ("Correlation", "r"),
        ("r_ao", "r"),
        ("n", "n"),
        ("N", "n"),
        ("ni", "n"),
        ("n_patients", "n"),
        ("Sample Size", "n"),
        ("sample.size", "n"),
        ("therapists", "n_therapists"),
        ("n_ther", "n_therapists"),
        ("n_therapists", "n_therapists"),
        ("k therapists", "n_therapists"),
        ("nther", "n_therapists"),
        ("study", "study"),
        ("Study_ID", "study"),
        ("studyid", "study"),
        ("id", "study"),
        ("es", "es_id"),
        ("es_id", "es_id"),
        ("ESID", "es_id"),
        ("yi", "yi"),
        ("vi", "vi"),
        ("label", "label"),
        ("Author", "label"),
        ("study_label", "label"),
        ("Year", "year"),
    ],
)
def test_suggest_mapping_recognises_common_names(column, role):
    mapping = suggest_mapping(["unrelated", column])
    assert getattr(mapping, role) == column
    assert mapping.columns() == [column]


def test_suggest_mapping_prefers_the_more_specific_name_and_uses_each_column_once():
    mapping = suggest_mapping(["id", "Study", "es_id", "r", "N", "n_patients", "design"])
    assert mapping.study == "Study"
    assert mapping.n == "N"
    assert mapping.columns() == ["Study", "es_id", "r", "N"]


def test_suggest_mapping_chooses_no_moderators():
    mapping = suggest_mapping(["study", "r", "n", "design", "alliance_rater", "pd"])
    assert mapping.moderators == ()


def test_moderator_candidates_leave_out_roles_constants_and_row_names():
    df = sheet(
        study=[1, 2, 3, 4],
        r=[0.1, 0.2, 0.3, 0.4],
        n=[40, 50, 60, 70],
        design=["RCT", "RCT", "other", "other"],
        pd_percent=[10.0, 20.0, 0.0, 5.0],
        title=["a", "b", "c", "d"],
        country=["DE", "DE", "DE", "DE"],
        empty=[None, None, None, None],
    )
    mapping = ColumnMapping(study="study", r="r", n="n")
    assert moderator_candidates(df, mapping) == ["design", "pd_percent"]
    chosen = mapping.with_changes(moderators=["country"])
    assert moderator_candidates(df, chosen) == ["design", "pd_percent", "country"]


# ---------------------------------------------------------------------------------------------
# Validation: each problem with its row and column
# ---------------------------------------------------------------------------------------------


def good_rows(count: int = 4) -> dict[str, list]:
    return {
        "study": list(range(1, count + 1)),
        "es_id": [1] * count,
        "r": [0.1 * (i + 1) for i in range(count)],
        "n": [40 + 10 * i for i in range(count)],
        "ther": [4] * count,
    }


def with_cell(column: str, position: int, value) -> pd.DataFrame:
    """A clean table with one cell replaced (object column, so any value fits)."""
    columns = good_rows()
    columns[column] = list(columns[column])
    columns[column][position] = value
    return pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in columns.items()})


def test_a_clean_table_is_fully_usable_with_numbers_converted():
    df = pd.DataFrame({k: [str(v) for v in vals] for k, vals in good_rows().items()})
    report = checked(df, R_MAPPING)
    assert report.ok and report.problems == ()
    assert report.n_usable == 4
    assert report.usable["n"].dtype == np.int64
    assert report.usable["r"].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert report.summary() == "4 of 4 rows usable."


@pytest.mark.parametrize(
    ("column", "value", "kind", "words"),
    [
        ("r", 1.0, "|r| ≥ 1", "r = 1; a correlation must lie strictly between −1 and 1"),
        ("r", -1.2, "|r| ≥ 1", "r = -1.2"),
        ("r", float("inf"), "a non-finite r", "infinity is not a finite number"),
        ("n", 3, "n ≤ 3", "3 patients; a correlation needs more than 3"),
        ("n", 45.5, "a non-integer n", "45.5 patients is not a whole number"),
        ("ther", 0, "ther ≤ 0", "0 therapists; a study has at least one"),
        ("ther", 2.5, "a non-integer ther", "2.5 therapists is not a whole number"),
        ("ther", 200, "more therapists than patients", "200 therapists for 50 patients"),
        ("n", "twelve", "a non-numeric n", "'twelve' is not a number"),
        ("r", "0,25", "a non-numeric r", "'0,25' is not a number (to read it as a number"),
        ("r", "", "a missing r", "no value"),
        ("n", None, "a missing n", "no value"),
        ("study", "NA", "a missing study", "no value"),
    ],
)
def test_each_row_problem_names_row_and_column_and_leaves_only_that_row_out(
    column, value, kind, words
):
    df = with_cell(column, 1, value)  # second data row: spreadsheet row 3
    report = checked(df, R_MAPPING)
    problem = only(report.problems, severity="excluded")
    assert (problem.row, problem.column, problem.kind) == (3, column, kind)
    assert problem.message.startswith(f"Row 3, column '{column}': ")
    assert words in problem.message
    assert problem.message.endswith("row left out.")
    assert report.ok
    assert report.excluded_rows == (1,)
    assert report.usable.index.tolist() == [0, 2, 3]


def test_non_numeric_values_are_quoted_verbatim():
    report = checked(with_cell("n", 0, " 12 pts "), R_MAPPING)
    problem = only(report.problems, column="n")
    assert problem.value == " 12 pts "
    assert "' 12 pts ' is not a number" in problem.message


@pytest.mark.parametrize("value", ["1_000", "٣٠", "0x10", "1,000.5", "50 patients", "-nan", True])
def test_only_plain_numbers_count_as_numbers(value):
    report = checked(with_cell("n", 0, value), R_MAPPING)
    problem = only(report.problems, column="n")
    assert problem.kind == "a non-numeric n"
    assert problem.value == value


@pytest.mark.parametrize(("value", "number"), [("1e2", 100), ("+60", 60), ("−0.5", -0.5)])
def test_plain_number_notations_are_read(value, number):
    column = "r" if number < 1 else "n"
    report = checked(with_cell(column, 0, value), R_MAPPING)
    assert report.problems == ()
    assert report.usable[column].iloc[0] == number


def test_text_numbers_with_spaces_are_accepted():
    report = checked(with_cell("r", 0, " 0.25 "), R_MAPPING)
    assert report.problems == ()
    assert report.usable["r"].iloc[0] == 0.25


def test_decimal_comma_text_is_accepted_only_when_declared():
    df = with_cell("r", 0, "0,25")
    assert only(checked(df, R_MAPPING).problems, column="r").row == 2
    declared = checked(df, R_MAPPING, decimal=",")
    assert declared.problems == ()
    assert declared.usable["r"].iloc[0] == 0.25


def test_decimal_point_text_is_not_a_number_when_decimal_comma_is_declared():
    report = checked(with_cell("r", 0, "0.25"), R_MAPPING, decimal=",")
    assert only(report.problems, column="r").value == "0.25"


def test_several_problems_in_one_row_are_all_listed():
    df = with_cell("r", 2, 1.5)
    df.loc[2, "n"] = 2
    report = checked(df, R_MAPPING)
    assert {(p.row, p.column) for p in report.problems} == {(4, "r"), (4, "n")}
    assert report.excluded_rows == (2,)


def test_precomputed_effect_sizes_variance_and_yi_rules():
    df = sheet(
        study=[1, 2, 3, 4, 5],
        yi=[0.3, float("inf"), 0.2, 0.1, 0.25],
        vi=[0.02, 0.02, 0.0, -0.1, float("nan")],
    )
    report = checked(df, ColumnMapping(study="study", yi="yi", vi="vi"))
    assert only(report.problems, row=3).column == "yi"
    assert "not a finite number" in only(report.problems, row=3).message
    assert only(report.problems, row=4).message == (
        "Row 4, column 'vi': sampling variance 0; it must be a positive finite number "
        "— row left out."
    )
    assert only(report.problems, row=5).kind == "vi ≤ 0 or not finite"
    assert only(report.problems, row=6).kind == "a missing vi"
    assert report.usable.index.tolist() == [0]


def test_n_for_precomputed_effect_sizes_only_needs_to_be_positive():
    df = sheet(yi=[0.3, 0.2], vi=[0.1, 0.1], n=[2, 0], ther=[1, 1])
    mapping = ColumnMapping(yi="yi", vi="vi", n="n", n_therapists="ther")
    report = checked(df, mapping)
    assert only(report.problems).row == 3
    assert only(report.problems).kind == "n ≤ 0"


def test_duplicate_effect_size_ids_within_a_study_are_errors():
    df = sheet(study=["A", "A", "B", "A"], es_id=[1, 2, 1, 1], r=[0.1] * 4, n=[50] * 4)
    report = checked(df, ColumnMapping(study="study", es_id="es_id", r="r", n="n"))
    duplicates = [p for p in report.problems if p.kind == "a repeated es_id"]
    assert [(p.row, p.column, p.severity) for p in duplicates] == [
        (2, "es_id", "error"),
        (5, "es_id", "error"),
    ]
    assert "in study 'A' (rows 2, 5)" in duplicates[0].message
    assert not report.ok
    assert report.n_usable == 0


def test_duplicate_ids_overall_when_there_is_no_study_column():
    df = sheet(es_id=[1, 2, 1], r=[0.1] * 3, n=[50] * 3)
    report = checked(df, ColumnMapping(es_id="es_id", r="r", n="n"))
    assert [p.row for p in report.errors] == [2, 4]
    assert "in study" not in report.errors[0].message


def test_a_row_left_out_for_another_reason_does_not_count_as_a_duplicate():
    df = sheet(study=["A", "A"], es_id=[1, 1], r=[0.1, 1.5], n=[50, 50])
    report = checked(df, ColumnMapping(study="study", es_id="es_id", r="r", n="n"))
    assert report.ok
    assert report.n_usable == 1


def test_a_mapped_column_that_does_not_exist():
    df = sheet(r=[0.1], n=[50])
    report = checked(df, ColumnMapping(r="r", n="N_patients"))
    error = only(report.errors, kind="a missing column")
    assert error.column == "N_patients"
    assert "'N_patients' chosen for n is not in the table (its columns: 'r', 'n')" in (
        error.message
    )
    assert not report.ok and report.n_usable == 0


@pytest.mark.parametrize(
    ("mapping", "words"),
    [
        (ColumnMapping(study="study"), "Choose the columns that hold the effect sizes"),
        (ColumnMapping(r="r"), "not its number of patients (n)"),
        (ColumnMapping(n="n"), "not the correlation (r)"),
        (ColumnMapping(yi="r"), "yi is chosen but not its sampling variance (vi) or standard"),
    ],
)
def test_a_mapping_without_r_and_n_or_yi_and_vi(mapping, words):
    df = sheet(study=[1], r=[0.1], n=[50])
    report = checked(df, mapping)
    error = only(report.errors, kind="an incomplete mapping")
    assert words in error.message
    assert not report.ok
    assert report.summary().startswith("Cannot analyse this table: ")


def test_one_column_in_two_numeric_roles_is_an_error():
    report = checked(sheet(r=[0.1], n=[50]), ColumnMapping(r="r", n="n", n_therapists="n"))
    assert only(report.errors).kind == "one column in two roles"


def test_a_moderator_with_a_single_value_is_a_warning():
    df = sheet(r=[0.1, 0.2, 1.0], n=[50, 60, 70], design=["RCT", "RCT", "other"])
    report = checked(df, ColumnMapping(r="r", n="n", moderators=("design",)))
    warning = only(report.problems, severity="warning")
    assert warning.column == "design"
    assert "same value ('RCT') in every usable row" in warning.message
    assert report.ok


def test_a_missing_moderator_or_therapist_count_keeps_the_row_for_models_without_it():
    df = sheet(
        r=[0.1, 0.2, 0.3], n=[50, 60, 70], ther=[5, 6, "n.a."], design=["RCT", None, "other"]
    )
    mapping = ColumnMapping(r="r", n="n", n_therapists="ther", moderators=("design",))
    report = checked(df, mapping)
    assert report.problems == ()
    assert report.n_usable == 3
    assert report.missing_by_column == (("ther", 1), ("design", 1))
    assert "'ther' in 1 row, 'design' in 1 row" in report.summary()


def test_missing_label_or_year_leaves_no_row_out():
    df = sheet(r=[0.1, 0.2], n=[50, 60], label=["A", None], year=[2001, None])
    report = checked(df, ColumnMapping(r="r", n="n", label="label", year="year"))
    assert report.problems == ()


def test_both_effect_size_kinds_mapped_are_read_row_by_row_when_yi_is_a_correlation():
    # Forms by row (issue 20): r + n where given, else yi + vi, which must then be declared a
    # correlation on Fisher's z scale; otherwise two measures would be pooled.
    df = sheet(r=[0.1, None], n=[50, None], yi=[None, 0.1], vi=[None, 0.02])
    report = checked(df, ColumnMapping(r="r", n="n", yi="yi", vi="vi"))
    assert not report.ok
    assert [p.kind for p in report.errors] == ["two measures"]
    mapping = ColumnMapping(r="r", n="n", yi="yi", vi="vi", measure="correlation")
    report = checked(df, mapping)
    assert report.ok and report.n_usable == 2 and not report.problems
    assert report.effect_forms == (("r and n", (2,)), ("yi and vi", (3,)))


def test_no_usable_row_is_an_error_with_the_reason():
    df = sheet(r=[1.5, 2.0], n=[50, 60])
    report = checked(df, ColumnMapping(r="r", n="n"))
    assert not report.ok
    assert only(report.errors).message == "No row can be analysed."
    assert report.summary() == (
        "Cannot analyse this table: No row can be analysed. 0 of 2 rows usable; "
        "2 left out: 2 with |r| ≥ 1 (rows 2, 3)."
    )


def test_an_empty_table_is_an_error():
    report = checked(sheet(r=[], n=[]), ColumnMapping(r="r", n="n"))
    assert only(report.errors).message == "The table has no rows."


def test_row_numbers_follow_first_data_row_and_excluded_rows_keep_index_labels():
    df = with_cell("r", 3, 1.0)
    df.index = ["a", "b", "c", "d"]
    report = checked(df, R_MAPPING, first_data_row=10)
    assert only(report.problems).row == 13
    assert report.excluded_rows == ("d",)
    assert report.usable.index.tolist() == ["a", "b", "c"]


def test_summary_counts_and_lists_rows_by_reason():
    columns = good_rows(9)
    columns["n"] = [50, None, 60, None, 70, None, 80, None, None]
    columns["r"] = [0.1, 0.2, 1.2, 0.3, 0.2, 0.1, 0.3, 0.2, 0.2]
    df = pd.DataFrame(columns)
    report = checked(df, R_MAPPING)
    assert report.summary() == (
        "3 of 9 rows usable; 6 left out: 5 with a missing n (rows 3, 5, 7, 9, 10), "
        "1 with |r| ≥ 1 (row 4)."
    )


def test_summary_shortens_long_row_lists():
    columns = good_rows(8)
    columns["r"] = [1.5] * 7 + [0.2]
    report = checked(pd.DataFrame(columns), R_MAPPING)
    assert "7 with |r| ≥ 1 (rows 2, 3, 4, 5, 6, …)" in report.summary()


def test_problems_frame_lists_every_problem_for_display():
    df = with_cell("n", 0, "x")
    table = checked(df, R_MAPPING).problems_frame()
    assert list(table.columns) == ["row", "column", "value", "severity", "message"]
    assert table.to_dict("records")[0]["row"] == 2
    assert table.to_dict("records")[0]["value"] == "x"


def test_validate_after_read_uses_the_files_decimal_mark_and_rows():
    data = b"study;r;n\n1;0,3;50\n2;1,2;60\n3;abc;70\n"
    table = read_table(data, "x.csv")
    report = table.validate(ColumnMapping(study="study", r="r", n="n"))
    assert [(p.row, p.value) for p in report.problems] == [(3, 1.2), (4, "abc")]
    assert report.usable["r"].tolist() == [0.3]


def test_an_unknown_decimal_mark_is_an_analysis_error():
    with pytest.raises(AnalysisError, match="Decimal mark"):
        validate(sheet(r=[0.1], n=[50]), ColumnMapping(r="r", n="n"), decimal=";")


# ---------------------------------------------------------------------------------------------
# The template
# ---------------------------------------------------------------------------------------------

TEMPLATE_COLUMNS = [
    "study",
    "es_id",
    "label",
    "year",
    "r",
    "n",
    "patients",
    "n_therapists",
    "alliance_rater",
    "outcome_rater",
    "alliance_measure",
    "design",
    "pd",
]


def test_template_has_the_expected_columns_and_two_example_rows():
    rows = list(csv.reader(io.StringIO(template_csv().decode("utf-8"))))
    assert rows[0] == TEMPLATE_COLUMNS
    assert len(rows) == 3
    assert all(len(row) == len(TEMPLATE_COLUMNS) for row in rows)


def test_template_reads_and_validates_cleanly_with_the_suggested_mapping():
    table = read_table(template_csv(), "template.csv")
    mapping = suggest_mapping(table.frame.columns)
    assert (
        mapping.study,
        mapping.es_id,
        mapping.r,
        mapping.n,
        mapping.study_patients,
        mapping.n_therapists,
    ) == ("study", "es_id", "r", "n", "patients", "n_therapists")
    report = table.validate(mapping)
    assert report.ok and report.problems == ()
    assert report.n_usable == 2


def test_format_description_explains_every_template_column_and_the_ptr():
    for column in TEMPLATE_COLUMNS:
        assert f"`{column}`" in FORMAT_DESCRIPTION
    assert "PTR = study patients /\ntherapists" in FORMAT_DESCRIPTION
    assert "otherwise `n` / `n_therapists`" in FORMAT_DESCRIPTION
    for role in ("`z`", "`sei`", "`PTR`", "`n.a.`"):
        assert role in FORMAT_DESCRIPTION
    assert "alliance–outcome correlation" in FORMAT_DESCRIPTION
