"""Coding sheets as researchers keep them: missing-value spellings, per-model row use,
study-level PTR, effect sizes as z or with standard errors, sheets, labels."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alliance_core.analyses.run import effect_size_table, run_analysis, study_ptr
from alliance_core.analyses.settings import PTR, AnalysisSettings
from alliance_core.data.mapping import ColumnMapping, measure_words, study_label
from alliance_core.data.uploads import (
    MISSING_SPELLINGS,
    read_table,
    suggest_mapping,
    validate,
)
from alliance_core.errors import AnalysisError
from alliance_core.model.fitting import fit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "uploads"
MESSY_CSV = FIXTURES / "messy_coding_sheet.csv"
MESSY_XLSX = FIXTURES / "messy_coding_sheet.xlsx"
FAST = settings(derandomize=True, deadline=None, max_examples=40, database=None)


def csv_bytes(header, rows) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def xlsx_bytes(sheets: dict[str, list[list]]) -> bytes:
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


# -- missing-value spellings -------------------------------------------------------------------
@st.composite
def written_spelling(draw):
    """A missing-value spelling as someone might type it: any case, spaces around and inside."""
    spelling = draw(st.sampled_from([s for s in MISSING_SPELLINGS if s]))
    cased = "".join(
        c.upper() if draw(st.booleans()) else c.lower() for c in spelling
    )  # case-insensitive
    inner = draw(st.sampled_from(["", " "]))
    if len(cased) > 1 and inner:
        position = draw(st.integers(1, len(cased) - 1))
        cased = cased[:position] + inner + cased[position:]
    return spelling, draw(st.sampled_from(["", " ", "  "])) + cased + draw(
        st.sampled_from(["", " "])
    )


@FAST
@given(
    cells=st.lists(st.tuples(st.booleans(), written_spelling()), min_size=2, max_size=12),
)
def test_every_missing_spelling_is_read_as_missing_in_text_and_number_columns(cells):
    # Column "design" mixes levels and spellings; column "n" mixes numbers and spellings.
    rows = []
    expected = {}
    for position, (is_missing, (spelling, written)) in enumerate(cells):
        design = written if is_missing else "RCT"
        n = written if not is_missing else str(40 + position)
        rows.append([f"0.{position + 1}", n, design])
        expected[spelling] = expected.get(spelling, 0) + 1
    table = read_table(csv_bytes(["r", "n", "design"], rows), "s.csv")
    frame = table.frame
    assert frame["design"].isna().sum() == sum(missing for missing, _ in cells)
    assert frame["n"].isna().sum() == sum(not missing for missing, _ in cells)
    assert frame["n"].dtype.kind in "if"  # the spellings did not turn the numbers into text
    found = {m.spelling: m.cells for m in table.report.missing_spellings}
    assert found == expected
    assert "n.a." not in set(frame["design"].dropna())


@FAST
@given(spelling=written_spelling())
def test_a_spelling_declared_a_real_value_stays_as_written(spelling):
    key, written = spelling
    data = csv_bytes(["r", "n", "comorbidity"], [["0.1", "40", written], ["0.2", "50", "MDD"]])
    table = read_table(data, "s.csv", real_values=[key.upper()])
    assert table.frame["comorbidity"].tolist() == [written.strip(), "MDD"]
    assert table.report.missing_spellings == ()
    assert table.report.real_values == (key,)
    report = table.validate(ColumnMapping(r="r", n="n", moderators=("comorbidity",)))
    assert report.missing_by_column == ()


def test_na_no_longer_becomes_the_reference_level():
    data = csv_bytes(
        ["r", "n", "design"],
        [["0.3", "50", "naturalistic"], ["0.2", "60", "n.a."], ["0.25", "70", "RCT"]],
    )
    frame = read_table(data, "s.csv").frame
    assert sorted(frame["design"].dropna()) == ["RCT", "naturalistic"]


# -- per-model row use --------------------------------------------------------------------------
@FAST
@given(
    missing=st.lists(st.booleans(), min_size=8, max_size=20),
    therapists_missing=st.lists(st.booleans(), min_size=20, max_size=20),
    seed=st.integers(0, 1000),
)
def test_a_row_missing_only_a_moderator_is_never_lost_to_a_model_without_it(
    missing, therapists_missing, seed
):
    rng = np.random.default_rng(seed)
    k = len(missing)
    rows = []
    for i in range(k):
        design = "n.a." if missing[i] else ("RCT" if i % 2 else "other")
        therapists = "n.a." if therapists_missing[i] else str(2 + i % 5)
        rows.append([str(i // 2), str(i % 2 + 1), f"{rng.uniform(0.05, 0.5):.3f}", str(30 + 7 * i),
                     therapists, design])  # fmt: skip
    table = read_table(csv_bytes(["study", "es", "r", "n", "ther", "design"], rows), "s.csv")
    mapping = suggest_mapping(table.frame.columns).with_changes(
        n_therapists="ther", moderators=("design",)
    )
    report = table.validate(mapping)
    assert report.n_usable == k  # nobody is lost to validation
    es_table = effect_size_table(report.usable, mapping)
    pooled = run_analysis(report.usable, mapping, _settings(()), table=es_table)
    assert pooled.result.k == k
    assert pooled.row_use() == f"This model used {k:,} of {k:,} rows."
    with_design = sum(not m for m in missing)
    levels = {("RCT" if i % 2 else "other") for i in range(k) if not missing[i]}
    if with_design >= 4 and len(levels) == 2:
        moderated = run_analysis(report.usable, mapping, _settings(("design",)), table=es_table)
        assert moderated.result.k == with_design
        if with_design < k:
            assert f"{k - with_design:,} without a value for 'design'" in moderated.row_use()
    with_ptr = sum(not t for t in therapists_missing[:k])
    if with_ptr >= 3:
        ptr_model = run_analysis(report.usable, mapping, _settings((PTR,)), table=es_table)
        assert ptr_model.result.k == with_ptr


def _settings(moderators) -> AnalysisSettings:
    # Every row is its own effect in the model, so k counts rows: the question here is which
    # rows a model uses, not how nested rows are combined.
    return AnalysisSettings(
        dataset="upload",
        model="two-level-independent",
        method="REML",
        test="z",
        moderators=moderators,
    )


# -- study-level PTR ----------------------------------------------------------------------------
STUDY_SHEET = pd.DataFrame(
    {
        "study": ["A", "A", "B", "B", "C"],
        "r": [0.3, 0.2, 0.25, 0.1, 0.3],
        "n": [149, 150, 40, 38, 60],
        "Patients": [150, 150, 40, 40, 60],
        "ther": [100, 100, 4, 4, 10],
    }
)


def test_ptr_from_the_studys_own_patients_is_constant_within_a_study():
    mapping = ColumnMapping(
        study="study", r="r", n="n", study_patients="Patients", n_therapists="ther"
    )
    report = validate(STUDY_SHEET, mapping)
    assert report.ok and report.warnings == ()
    ptr = study_ptr(report.usable, mapping)
    np.testing.assert_allclose(ptr, [1.5, 1.5, 10.0, 10.0, 6.0])
    table = effect_size_table(report.usable, mapping)
    np.testing.assert_allclose(table["log_PTR"], np.log([1.5, 1.5, 10.0, 10.0, 6.0]))


def test_ptr_varying_within_a_study_is_a_data_problem_listed_by_row_and_column():
    # Today's rule (n / therapists) with n differing between effect sizes of study A and B.
    mapping = ColumnMapping(study="study", r="r", n="n", n_therapists="ther")
    report = validate(STUDY_SHEET, mapping)
    varying = [p for p in report.warnings if p.kind == "PTR varying within a study"]
    assert [(p.row, p.column) for p in varying] == [(3, "n"), (5, "n")]
    assert "PTR = 1.5 differs from 1.49 in row 2 of the same study 'A'" in varying[0].message
    assert "study patients" in varying[0].message
    assert report.n_usable == 5  # a warning, not an exclusion

    # Therapist counts that differ name the therapist column.
    sheet = STUDY_SHEET.assign(ther=[100, 99, 4, 4, 10])
    mapping = mapping.with_changes(study_patients="Patients")
    varying = [p for p in validate(sheet, mapping).warnings if p.kind.startswith("PTR")]
    assert [(p.row, p.column) for p in varying] == [(3, "ther")]


def test_a_ready_made_ptr_column_is_used_as_it_is_and_checked():
    sheet = STUDY_SHEET.assign(PTR=[1.5, 1.5, "n.a.", "n.a.", -2])
    mapping = ColumnMapping(study="study", r="r", n="n", ptr="PTR")
    report = validate(sheet, mapping)
    assert [(p.row, p.column, p.kind) for p in report.exclusions] == [(6, "PTR", "PTR ≤ 0")]
    assert report.missing_by_column == (("PTR", 2),)
    assert mapping.has_therapists
    ptr = study_ptr(report.usable, mapping)
    np.testing.assert_allclose(ptr, [1.5, 1.5, np.nan, np.nan])


# -- effect sizes given as z or with a standard error ----------------------------------------
def test_yi_with_standard_errors_fits_as_yi_with_their_squares():
    rng = np.random.default_rng(3)
    n = rng.integers(20, 200, size=12)
    yi = rng.normal(0.3, 0.15, size=12)
    sei = 1 / np.sqrt(n - 3)
    sheet = pd.DataFrame({"yi": yi, "SE": sei})
    mapping = ColumnMapping(yi="yi", sei="SE", measure="smd")
    assert mapping.effect_form == "sei"
    report = validate(sheet, mapping)
    assert report.ok and report.problems == ()
    table = effect_size_table(report.usable, mapping)
    np.testing.assert_allclose(table["vi"], sei**2)
    by_se = fit(table)
    by_vi = fit(pd.DataFrame({"yi": yi, "vi": sei**2}))
    assert by_se.beta[0] == pytest.approx(by_vi.beta[0], rel=1e-12)
    assert by_se.tau2 == pytest.approx(by_vi.tau2, rel=1e-10)


def test_a_variance_column_holding_standard_errors_gets_a_warning():
    n = np.array([40, 60, 80, 120, 200])
    sheet = pd.DataFrame({"yi": [0.2, 0.3, 0.25, 0.1, 0.3], "v": 1 / np.sqrt(n - 3), "n": n})
    report = validate(sheet, ColumnMapping(yi="yi", vi="v", n="n"))
    warning = next(p for p in report.warnings if p.kind.startswith("a variance"))
    assert warning.column == "v" and "look like standard errors" in warning.message
    # The right variances: no warning; standard errors chosen as sei: none either.
    fine = sheet.assign(v=1 / (n - 3))
    assert validate(fine, ColumnMapping(yi="yi", vi="v", n="n")).warnings == ()
    assert validate(sheet, ColumnMapping(yi="yi", sei="v", n="n")).warnings == ()
    # Variances chosen as standard errors: the reverse warning.
    reverse = validate(fine, ColumnMapping(yi="yi", sei="v", n="n"))
    assert "look like sampling variances" in reverse.warnings[0].message


def test_fisher_z_with_n_is_the_same_analysis_as_r_with_n():
    r = np.array([0.1, 0.35, 0.22, 0.4, 0.05, 0.3])
    n = np.array([30, 80, 45, 120, 60, 200])
    sheet = pd.DataFrame({"z": np.arctanh(r), "r": r, "n": n})
    by_z = ColumnMapping(z="z", n="n")
    by_r = ColumnMapping(r="r", n="n")
    assert by_z.effect_form == "z" and by_z.on_fisher_z and by_z.effect_measure == "correlation"
    assert validate(sheet, by_z).problems == ()
    z_table = effect_size_table(sheet, by_z)
    r_table = effect_size_table(sheet, by_r)
    np.testing.assert_allclose(z_table["yi"], r_table["yi"], rtol=1e-12)
    np.testing.assert_allclose(z_table["vi"], 1 / (n - 3))
    bad = validate(sheet.assign(n=[3, 80, 45, 120, 60, 200]), by_z)
    assert [(p.row, p.column) for p in bad.exclusions] == [(2, "n")]


def test_the_measure_names_the_words_and_symbol_pages_use():
    assert measure_words("correlation") == ("correlation", "r")
    assert measure_words("smd") == ("standardized mean difference", "d")
    assert measure_words("log_odds_ratio") == ("log odds ratio", "log OR")
    assert measure_words(None) == ("effect size", "yi")
    assert ColumnMapping(yi="yi", vi="vi").effect_measure == "other"
    assert ColumnMapping(r="r", n="n", measure="smd").effect_measure == "correlation"


# -- sheets, labels, one row --------------------------------------------------------------------
def test_the_user_chooses_the_sheet_and_the_first_is_the_default():
    data = xlsx_bytes(
        {
            "readme": [["Notes"], ["nothing to analyse"]],
            "effects": [["r", "n"], [0.3, 50], [0.2, 60], [0.1, 70]],
        }
    )
    first = read_table(data, "book.xlsx")
    assert first.report.sheet_name == "readme"
    assert first.report.sheet_names == ("readme", "effects")
    chosen = read_table(data, "book.xlsx", sheet="effects")
    assert chosen.report.sheet_name == "effects"
    assert chosen.frame["r"].tolist() == [0.3, 0.2, 0.1]
    assert "Read sheet 'effects' of an Excel workbook (2 sheets)" in chosen.report.describe()
    with pytest.raises(AnalysisError, match="no sheet 'other'; its sheets are 'readme', 'effects'"):
        read_table(data, "book.xlsx", sheet="other")


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (3, "Study 3"),
        (3.0, "Study 3"),
        (np.int64(12), "Study 12"),
        ("17", "Study 17"),
        ("Eriksson et al. (1997)", "Eriksson et al. (1997)"),
        ("Study 4", "Study 4"),
        ("S12", "S12"),
    ],
)
def test_study_prefix_only_for_bare_numbers(value, label):
    assert study_label(value) == label


def test_a_one_row_file_needs_at_least_two_effect_sizes():
    table = read_table(b"r,n\n0.3,50\n", "one.csv")
    report = table.validate(ColumnMapping(r="r", n="n"))
    assert not report.ok
    assert report.errors[0].message == (
        "The table has one data row; at least two effect sizes are needed."
    )


# -- the realistic fixture sheet ----------------------------------------------------------------
def fixture_facts() -> dict[str, int]:
    """Counts taken from the fixture CSV with the csv module alone (independent of the app)."""
    text = MESSY_CSV.read_text(encoding="utf-8-sig")
    rows = [row for row in csv.reader(io.StringIO(text)) if row][1:]
    se_missing = [row for row in rows if row[5] == "?"]
    return {
        "rows": len(rows),
        "usable": len(rows) - len(se_missing),
        "na_cells": sum(cell == "n.a." for row in rows for cell in row),
        "no_therapists": sum(1 for row in rows if row[8] == "n.a." and row[5] != "?"),
        "no_design": sum(1 for row in rows if row[2] == "n.a." and row[5] != "?"),
    }


@pytest.mark.parametrize("path", [MESSY_CSV, MESSY_XLSX], ids=["csv", "xlsx"])
def test_the_messy_sheet_reads_with_its_missing_spellings_counted(path):
    facts = fixture_facts()
    table = read_table(path.read_bytes(), path.name)
    spellings = {m.spelling: m for m in table.report.missing_spellings}
    assert spellings["n.a."].cells == facts["na_cells"]
    assert spellings["n.a."].columns == ("Design", "Therapists")
    assert spellings["n/a"].cells == 1 and spellings["?"].cells == 1
    mapping = suggest_mapping(table.frame.columns)
    assert (mapping.yi, mapping.sei, mapping.n, mapping.study_patients, mapping.n_therapists) == (
        "yi",
        "SE",
        "n",
        "Patients",
        "Therapists",
    )
    report = table.validate(mapping.with_changes(moderators=("Design",)))
    assert report.n_rows == facts["rows"]
    assert report.n_usable == facts["usable"]
    assert [(p.row, p.column) for p in report.exclusions] == [(9, "SE")]
    assert dict(report.missing_by_column) == {
        "Therapists": facts["no_therapists"],
        "Design": facts["no_design"],
    }
    assert report.warnings == ()  # PTR is constant within every study (study patients)
    pooled = run_analysis(report.usable, mapping, _settings(()))
    assert pooled.result.k == facts["usable"]
    with_ptr = run_analysis(report.usable, mapping, _settings((PTR,)))
    assert with_ptr.result.k == facts["usable"] - facts["no_therapists"]
    assert "without PTR (missing 'Patients' or 'Therapists')" in with_ptr.row_use()
    assert math.isfinite(with_ptr.result.beta[1])


def test_forest_labels_prefix_only_bare_study_numbers():
    from alliance_core.figures import study_table

    sheet = pd.DataFrame(
        {
            "study": ["Eriksson et al. (1997)", "Eriksson et al. (1997)", "7", "7", "Okafor"],
            "yi": [0.3, 0.2, 0.25, 0.1, 0.4],
            "vi": [0.02, 0.03, 0.02, 0.04, 0.05],
        }
    )
    res = fit(sheet, cluster="study")
    labels = study_table(res, columns={"study": "study"})["label"].tolist()
    assert labels == ["Eriksson et al. (1997)", "Study 7", "Okafor"]


def test_z_and_standard_error_inputs_name_the_row_and_column_of_a_bad_value():
    from alliance_core.data.effect_sizes import from_fisher_z, from_standard_errors

    with pytest.raises(AnalysisError, match=r"Row 1, column 'n': n = 2; .*needs n > 3"):
        from_fisher_z(pd.DataFrame({"z": [0.1, 0.2], "n": [20, 2]}), z="z", n="n")
    with pytest.raises(AnalysisError, match=r"Row 0, column 'SE': standard error 0 must be"):
        from_standard_errors(pd.DataFrame({"yi": [0.1, 0.2], "SE": [0, 0.1]}), yi="yi", sei="SE")
    missing = from_standard_errors(
        pd.DataFrame({"yi": [0.1, np.nan], "SE": [0.2, 0.1]}), yi="yi", sei="SE"
    )
    assert missing["vi"].tolist() == pytest.approx([0.04, 0.01])
    assert np.isnan(missing["yi"].iloc[1])


def test_without_n_a_variance_column_of_typical_standard_errors_gets_a_warning():
    standard_errors = pd.DataFrame({"yi": [0.2, 0.3, 0.25, 0.1], "v": [0.21, 0.18, 0.3, 0.15]})
    report = validate(standard_errors, ColumnMapping(yi="yi", vi="v"))
    assert [p.kind for p in report.warnings] == ["a variance that looks like a standard error"]
    variances = standard_errors.assign(v=standard_errors["v"] ** 2)
    assert validate(variances, ColumnMapping(yi="yi", vi="v")).warnings == ()
