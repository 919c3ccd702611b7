"""The issue's target: a messy coding sheet (level variants, missing codes, mixed forms) gives
the same model as its clean twin, as CSV and as a two-sheet workbook."""

from __future__ import annotations

import numpy as np
import pytest

from alliance_core.analyses.run import effect_size_table, run_analysis
from alliance_core.analyses.settings import PTR, AnalysisSettings
from alliance_core.data.mapping import ColumnMapping
from alliance_core.data.uploads import read_table
from tests.coding_sheets import sheet_bytes, twin_sheets, two_sheet_workbook

MODERATORS = ("Rater", "Design")
CLEAN_MAP = ColumnMapping(
    study="Study",
    es_id="ES",
    r="r",
    n="n",
    study_patients="Patients",
    n_therapists="Therapists",
    moderators=MODERATORS,
)
MESSY_MAP = ColumnMapping(**{**CLEAN_MAP.__dict__, "z": "z", "sei": "SE"})
SETTINGS = AnalysisSettings(dataset="upload", model="three-level", moderators=(PTR, *MODERATORS))


def analysed(content: bytes, name: str, mapping: ColumnMapping):
    uploaded = read_table(content, name)
    levels = uploaded.levels(mapping)
    report = uploaded.validate(mapping, levels)
    assert report.ok, report.summary()
    table = effect_size_table(report.usable, mapping)
    return run_analysis(report.usable, mapping, SETTINGS, table=table), report, levels


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_the_messy_sheet_gives_the_model_of_its_clean_twin(kind):
    clean, messy = twin_sheets()
    twin, _, _ = analysed(sheet_bytes(clean), "clean.csv", CLEAN_MAP)
    content = sheet_bytes(messy) if kind == "csv" else two_sheet_workbook(messy)
    run, report, levels = analysed(content, f"messy.{kind}", MESSY_MAP)

    # Same rows, levels and coefficients.
    assert list(run.data.index) == list(twin.data.index)
    for column in MODERATORS:
        assert list(run.data[column]) == list(twin.data[column])
    assert run.result.design.names == twin.result.design.names
    np.testing.assert_allclose(run.result.beta, twin.result.beta, rtol=0, atol=1e-12)
    np.testing.assert_allclose(run.result.sigma2, twin.result.sigma2, rtol=0, atol=1e-12)

    # Every merge, code and form is named.
    merged = {m.column: m for m in levels.merges}
    assert set(merged) == {"Rater", "Design"}
    assert merged["Rater"].shown == "patient" and merged["Design"].shown == "RCT"
    codes = {m.spelling for m in read_table(content, f"messy.{kind}").report.missing_spellings}
    assert {"n.r.", "nr", "notreported"} <= codes
    forms = dict(report.effect_forms)
    z_rows = tuple(i + 2 for i in range(0, len(messy), 5))
    assert forms["Fisher's z and its standard error"] == z_rows
    assert not [p for p in report.warnings if p.kind == "forms that disagree"]
