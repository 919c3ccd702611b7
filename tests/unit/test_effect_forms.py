"""Forms by row: r + n, Fisher's z + SE (or variance) and yi + vi mixed in one sheet; each row's
form reported; two forms of a row that disagree flagged with the row and both columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alliance_core.analyses.run import run_analysis
from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.data.effect_forms import effect_sizes_by_row
from alliance_core.data.mapping import ColumnMapping
from alliance_core.data.uploads import validate

SETTINGS = AnalysisSettings(dataset="upload", model="three-level", moderators=())


def clean_sheet(seed: int = 7) -> pd.DataFrame:
    """Twelve studies, two effect sizes each, all as r and n."""
    rng = np.random.default_rng(seed)
    studies = np.repeat([f"S{i:02d}" for i in range(12)], 2)
    n = rng.integers(30, 250, size=len(studies))
    r = np.round(rng.uniform(0.05, 0.5, size=len(studies)), 3)
    return pd.DataFrame({"study": studies, "es": np.tile([1, 2], 12), "r": r, "n": n})


def mixed_twin(clean: pd.DataFrame, z_rows, vi_rows) -> pd.DataFrame:
    """The same effect sizes with some rows written as Fisher's z + SE, others as yi + vi
    (z = atanh(r), SE = 1/sqrt(n - 3): the closed form of escalc "ZCOR")."""
    mixed = clean.astype({"r": object, "n": object}).copy()
    mixed["z"] = None
    mixed["SE"] = None
    mixed["yi"] = None
    mixed["vi"] = None
    for row in z_rows:
        r, n = clean.at[row, "r"], clean.at[row, "n"]
        mixed.loc[row, ["r", "n", "z", "SE"]] = [None, None, np.arctanh(r), 1 / np.sqrt(n - 3)]
    for row in vi_rows:
        r, n = clean.at[row, "r"], clean.at[row, "n"]
        mixed.loc[row, ["r", "n", "yi", "vi"]] = [None, None, np.arctanh(r), 1 / (n - 3)]
    return mixed


def test_mapping_forms_in_row_order():
    mapping = ColumnMapping(r="r", n="n", z="z", sei="SE")
    assert mapping.row_forms == ("r", "z_sei", "z")
    assert mapping.mixed_forms and mapping.on_fisher_z
    assert ColumnMapping(r="r", n="n").mixed_forms is False
    assert ColumnMapping(z="z", sei="SE").row_forms == ("z_sei",)
    assert ColumnMapping(z="z", sei="SE").mixed_forms


def test_yi_and_vi_rows_among_correlations_give_the_clean_model_and_are_reported():
    clean = clean_sheet()
    mixed = mixed_twin(clean, z_rows=[], vi_rows=[3, 4, 10, 11, 17]).drop(columns=["z", "SE"])
    mapping = ColumnMapping(
        study="study", es_id="es", r="r", n="n", yi="yi", vi="vi", measure="correlation"
    )
    report = validate(mixed, mapping)
    assert report.ok and report.n_usable == 24, report.summary()
    # Spreadsheet rows: the header is row 1, so data row i is row i + 2.
    assert dict(report.effect_forms) == {
        "r and n": tuple(i + 2 for i in range(24) if i not in (3, 4, 10, 11, 17)),
        "yi and vi": (5, 6, 12, 13, 19),
    }
    assert "Effect sizes by row: r and n in 19 rows" in report.summary()
    assert "yi and vi in 5 rows (rows 5, 6, 12, 13, 19)" in report.summary()
    assert report.missing_by_column == ()  # a missing r is not a missing moderator
    run = run_analysis(report.usable, mapping, SETTINGS)
    clean_map = ColumnMapping(study="study", es_id="es", r="r", n="n")
    twin = run_analysis(validate(clean, clean_map).usable, clean_map, SETTINGS)
    np.testing.assert_allclose(run.result.beta, twin.result.beta, rtol=0, atol=1e-12)


@pytest.mark.parametrize("spread", ["SE", "V"])
def test_z_with_its_standard_error_or_variance_gives_the_clean_model(spread):
    clean = clean_sheet(11)
    mixed = mixed_twin(clean, z_rows=[0, 1, 6, 7, 13], vi_rows=[])
    if spread == "V":
        mixed["V"] = [None if v is None else v**2 for v in mixed["SE"]]
    mapping = ColumnMapping(
        study="study",
        es_id="es",
        r="r",
        n="n",
        z="z",
        **{"sei" if spread == "SE" else "vi": spread},
    )
    report = validate(mixed, mapping)
    assert report.ok and report.n_usable == 24, report.summary()
    run = run_analysis(report.usable, mapping, SETTINGS)
    clean_map = ColumnMapping(study="study", es_id="es", r="r", n="n")
    twin = run_analysis(validate(clean, clean_map).usable, clean_map, SETTINGS)
    assert run.result.k == twin.result.k == 24
    np.testing.assert_allclose(run.result.beta, twin.result.beta, rtol=0, atol=1e-12)
    np.testing.assert_allclose(run.result.sigma2, twin.result.sigma2, rtol=0, atol=1e-12)


def test_forms_that_disagree_are_flagged_with_row_and_columns():
    frame = pd.DataFrame(
        {
            "study": ["A", "B", "C", "D"],
            "r": [0.30, 0.20, None, 0.25],
            "n": [50, 60, None, 80],
            "z": [0.50, np.arctanh(0.20), 0.31, None],
            "SE": [0.15, 0.13, 0.12, None],
        }
    )
    mapping = ColumnMapping(study="study", r="r", n="n", z="z", sei="SE")
    report = validate(frame, mapping)
    assert report.ok and report.n_usable == 4
    flagged = [p for p in report.warnings if p.kind == "forms that disagree"]
    assert [(p.row, p.column) for p in flagged] == [(2, "z")]
    assert flagged[0].message.startswith(
        "Row 2, columns 'r' and 'z': r = 0.3 but z = 0.5 is r = 0.462"
    )
    assert "the row uses r and n" in flagged[0].message


def test_a_row_without_any_complete_form_is_left_out_and_said_why():
    frame = pd.DataFrame(
        {"study": ["A", "B", "C"], "r": [0.3, None, 0.2], "n": [50, 40, 60], "z": [None, 0.2, None]}
    )
    mapping = ColumnMapping(study="study", r="r", n="n", z="z", sei="SE")
    frame["SE"] = [None, None, None]
    report = validate(frame, mapping)
    assert report.n_usable == 3  # row 3 (B) has z and n: the z + n form
    frame.loc[1, "n"] = None
    report = validate(frame, mapping)
    assert report.n_usable == 2
    (problem,) = report.exclusions
    assert problem.row == 3 and "no complete effect size" in problem.message


def test_yi_pooled_with_correlations_must_be_declared_a_correlation():
    frame = pd.DataFrame({"r": [0.3, None], "n": [50, None], "yi": [None, 0.2], "vi": [None, 0.02]})
    mapping = ColumnMapping(r="r", n="n", yi="yi", vi="vi")
    assert not validate(frame, mapping).ok
    yi, vi, forms = effect_sizes_by_row(
        frame, ColumnMapping(**{**mapping.__dict__, "measure": "correlation"})
    )
    assert list(forms) == ["r", "vi"]
    np.testing.assert_allclose(yi, [np.arctanh(0.3), 0.2], rtol=0, atol=1e-15)
    np.testing.assert_allclose(vi, [1 / 47, 0.02], rtol=1e-15, atol=0)
