"""Study ids of an uploaded sheet keep the text typed (alliance_core.data.uploads).

Study.sample codes such as "1.1" and "1.10", or "01" and "1", look like numbers but name
different studies. Expected values are the cells written into each file here, read back by the
csv module alone.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd

from alliance_core.analyses.run import effect_size_table, run_analysis
from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.data.mapping import ColumnMapping
from alliance_core.data.uploads import read_table, suggest_roles
from alliance_core.handover.provenance import Provenance
from alliance_core.teaching.patient_level import fit_patient_level
from tests.r_reference import apply, needs_r
from tests.unit.reproduce_runs import assert_all_agree, run_batch, write_bundle
from tests.unit.reproduce_states import Prepared

# The reviewer's file: ten studies, one effect size each, one PTR per study.
REVIEWER_IDS = ("1.1", "1.10", "1.2", "2.1", "2.10", "3.1", "4.1", "5.1", "6.1", "7.1")
MAPPING = ColumnMapping(study="study", r="r", n="n", n_therapists="therapists")


def sheet(ids: tuple[str, ...], delimiter: str = ",", decimal: str = ".") -> bytes:
    """A coding sheet with one row per id: r, n and therapists (PTR = 5 + the row's position,
    so that PTR varies between rows and a PTR model can be fitted)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(["study", "r", "n", "therapists"])
    for position, study in enumerate(ids):
        r = f"0.{10 + position}".replace(".", decimal)
        writer.writerow([study, r, (5 + position) * (4 + position), 4 + position])
    return buffer.getvalue().encode()


def typed_ids(data: bytes, delimiter: str = ",") -> list[str]:
    """The study cells of a sheet as the csv module reads them (no app code)."""
    rows = list(csv.reader(io.StringIO(data.decode()), delimiter=delimiter))
    return [row[0] for row in rows[1:]]


def test_the_reviewers_study_sample_codes_are_ten_studies():
    data = sheet(REVIEWER_IDS)
    uploaded = read_table(data, "studies.csv")
    mapping = suggest_roles(uploaded.frame).mapping
    assert mapping.study == "study"

    report = uploaded.validate(mapping)

    assert report.ok and report.n_usable == 10
    assert report.usable["study"].tolist() == typed_ids(data) == list(REVIEWER_IDS)
    table = effect_size_table(report.usable, mapping)
    assert table["study"].nunique() == 10
    # One PTR per study: no row is warned about PTR varying within a study.
    assert not report.warnings


def test_leading_zeros_and_trailing_zeros_name_their_own_studies():
    ids = ("01", "1", "1.0", "2", " 3 ", "3.00")
    data = sheet(ids)

    usable = read_table(data, "zeros.csv").validate(MAPPING).usable

    # Spaces around a cell are trimmed, as in every text column; the rest is kept as typed.
    assert usable["study"].tolist() == [cell.strip() for cell in typed_ids(data)]
    assert usable["study"].nunique() == 6


def test_whole_numbers_in_a_column_with_decimals_keep_their_typed_zeros():
    ids = ("1.0", "1", "1.5", "2.50", "2.5")
    data = sheet(ids)

    usable = read_table(data, "decimals.csv").validate(MAPPING).usable

    assert usable["study"].tolist() == typed_ids(data) == list(ids)


def test_the_file_s_table_keeps_its_numbers_and_only_the_mapped_ids_become_text():
    uploaded = read_table(sheet(REVIEWER_IDS), "studies.csv")

    table = uploaded.table_for(MAPPING)

    assert table["study"].tolist() == list(REVIEWER_IDS)
    assert uploaded.frame["study"].dtype == np.float64  # the table read is not edited
    assert table["n"].dtype == np.int64 and table["therapists"].dtype == np.int64


def test_ids_with_a_decimal_comma_stay_as_typed():
    ids = ("1,1", "1,10", "2,1")
    data = sheet(ids, delimiter=";", decimal=",")

    uploaded = read_table(data, "komma.csv")

    assert uploaded.report.decimal == ","
    assert uploaded.validate(MAPPING).usable["study"].tolist() == typed_ids(data, ";")


def workbook_bytes(rows: list[list]) -> bytes:
    """An .xlsx file of ``rows``, each cell stored as its Python type (numbers as numbers)."""
    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_a_workbook_s_text_cell_01_and_number_cell_1_are_two_studies():
    rows = [["study", "r", "n", "therapists"], ["01", 0.1, 40, 4], [1, 0.2, 50, 5], [2, 0.3, 60, 6]]

    usable = read_table(workbook_bytes(rows), "studies.xlsx").validate(MAPPING).usable

    assert usable["study"].tolist() == ["01", "1", "2"]


def test_ids_a_workbook_stores_as_numbers_with_decimals_are_named_in_a_warning():
    rows = [["study", "r", "n"], [1.1, 0.1, 40], [1.1, 0.2, 50], [2.1, 0.3, 60], [3, 0.2, 45]]
    rows.append(["1.10", 0.25, 55])  # typed as text: kept as typed, no merge to report

    report = read_table(workbook_bytes(rows), "studies.xlsx").validate(
        MAPPING.with_changes(n_therapists=None)
    )

    assert report.ok
    assert report.usable["study"].tolist() == ["1.1", "1.1", "2.1", "3", "1.10"]
    (warning,) = [p for p in report.warnings if p.kind == "ids stored as numbers"]
    assert warning.column == "study"
    assert "stores as numbers with decimals (1.1, 2.1)" in warning.message


def test_a_workbook_s_ids_stored_as_text_or_whole_numbers_give_no_such_warning():
    rows = [["study", "r", "n"], ["1.1", 0.1, 40], ["1.10", 0.2, 50], [2, 0.3, 60]]

    report = read_table(workbook_bytes(rows), "studies.xlsx").validate(
        MAPPING.with_changes(n_therapists=None)
    )

    assert report.usable["study"].tolist() == ["1.1", "1.10", "2"]
    assert not [p for p in report.problems if p.kind == "ids stored as numbers"]


def test_a_missing_study_cell_stays_missing():
    data = sheet(("1.10", "NA", "2"))

    table = read_table(data, "gap.csv").table_for(MAPPING)

    assert table["study"].tolist()[0] == "1.10"
    assert table["study"].isna().tolist() == [False, True, False]


def test_a_column_that_is_also_a_moderator_keeps_its_numbers():
    mapping = MAPPING.with_changes(label="n", moderators=("study",))

    assert mapping.identifier_columns == ()
    table = read_table(sheet(REVIEWER_IDS), "studies.csv").table_for(mapping)
    pd.testing.assert_series_equal(
        table["study"], pd.Series([float(i) for i in REVIEWER_IDS], name="study")
    )


# Nested: two studies with two effect sizes each, so the three-level model has both levels.
NESTED_IDS = ("1.1", "1.1", "1.10", "1.10", "1.2", "2.1", "2.10", "01", "1", "3.1", "4.1", "5.1")
NESTED_MAPPING = ColumnMapping(study="study", r="r", n="n")


def nested_bundle(folder: Path, language: str) -> None:
    """The reproduction zip of a three-level model of a sheet with ``NESTED_IDS``, unpacked."""
    content = sheet(NESTED_IDS)
    report = read_table(content, "nested.csv").validate(NESTED_MAPPING)
    assert report.ok, report.summary()
    table = effect_size_table(report.usable, NESTED_MAPPING)
    settings = AnalysisSettings(dataset="upload", model="three-level", moderators=())
    run = run_analysis(report.usable, NESTED_MAPPING, settings, table=table)
    assert run.result.n_studies == len(set(NESTED_IDS)) == 10
    provenance = Provenance.of(
        run, NESTED_MAPPING, dataset="nested.csv", content=content, uploaded=True
    )
    prepared = Prepared(run, NESTED_MAPPING, provenance, True, table, None)
    write_bundle(folder / language, prepared, language)
    data = pd.read_csv(folder / language / "data.csv", dtype={"study": str})
    assert data["study"].tolist() == list(NESTED_IDS)


def test_the_python_script_reads_the_ids_as_typed_and_agrees(tmp_path):
    nested_bundle(tmp_path, "Python")
    assert_all_agree(run_batch(tmp_path, "Python", ["Python"], timeout=600), ["Python"])


@apply(needs_r("metafor"))
def test_the_r_script_reads_the_ids_as_typed_and_agrees(tmp_path):
    nested_bundle(tmp_path, "R")
    assert_all_agree(run_batch(tmp_path, "R", ["R"], timeout=600), ["R"])


def test_therapist_ids_of_a_patient_level_file_stay_as_typed():
    therapists = ("1.1", "1.10", "1.2", "01", "1")
    lines = ["therapist,alliance,outcome"]
    for t, therapist in enumerate(therapists):
        for i in range(4):
            alliance = 3 + 0.3 * t + 0.2 * i
            lines.append(
                f"{therapist},{alliance:.2f},{0.5 * alliance + 0.1 * ((i * 7 + t) % 5):.2f}"
            )
    uploaded = read_table("\n".join(lines).encode(), "patients.csv")

    patients = uploaded.with_typed_text(["therapist"])

    assert patients["therapist"].tolist() == [t for t in therapists for _ in range(4)]
    assert fit_patient_level(patients).n_therapists == len(therapists) == 5
