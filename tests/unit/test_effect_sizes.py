"""escalc and the r <-> z transformations, checked against their closed forms."""

import numpy as np
import pandas as pd
import pytest

import alliance_core as ac


@pytest.fixture
def sheet():
    return pd.DataFrame(
        {"r": [0.1, 0.35, -0.2, np.nan], "n": [40, 120, 12, 50], "tag": list("abcd")}
    )


def test_zcor_is_fisher_z_with_variance_one_over_n_minus_3(sheet):
    out = ac.escalc(sheet, r="r", n="n", measure="ZCOR")
    np.testing.assert_allclose(out["yi"][:3], np.arctanh(sheet["r"][:3]), rtol=1e-15)
    np.testing.assert_allclose(out["vi"], 1.0 / (sheet["n"] - 3.0), rtol=1e-15)
    assert np.isnan(out["yi"].iloc[3])


def test_cor_uses_large_sample_variance(sheet):
    out = ac.escalc(sheet, measure="COR")
    r = sheet["r"][:3]
    np.testing.assert_allclose(out["yi"][:3], r)
    np.testing.assert_allclose(out["vi"][:3], (1 - r**2) ** 2 / (sheet["n"][:3] - 1))


def test_escalc_returns_a_copy_and_leaves_the_input_alone(sheet):
    before = sheet.copy(deep=True)
    out = ac.escalc(sheet)
    pd.testing.assert_frame_equal(sheet, before)
    assert "yi" not in sheet.columns and "yi" in out.columns
    assert list(out.columns[:3]) == ["r", "n", "tag"]


def test_precomputed_takes_columns_as_they_are():
    df = pd.DataFrame({"g": [0.2, 0.5], "var_g": [0.04, 0.09]})
    out = ac.escalc(df, measure="precomputed", yi="g", vi="var_g")
    np.testing.assert_array_equal(out["yi"], df["g"])
    np.testing.assert_array_equal(out["vi"], df["var_g"])


def test_round_trip_of_z_and_r():
    r = np.linspace(-0.95, 0.95, 11)
    np.testing.assert_allclose(ac.z_to_r(ac.r_to_z(r)), r, rtol=1e-14)
    np.testing.assert_allclose(ac.transf(ac.r_to_z(r), "r"), r, rtol=1e-14)


def test_ptr_is_patients_per_therapist_and_undefined_without_therapists():
    ratio = ac.ptr([30, 30, 12], [3, 30, 0])
    np.testing.assert_allclose(ratio[:2], [10.0, 1.0])
    assert np.isnan(ratio[2])


@pytest.mark.parametrize(
    ("column", "value", "needle"),
    [("r", 1.0, "between -1 and 1"), ("r", -1.2, "between -1 and 1"), ("n", 3, "n > 3")],
)
def test_impossible_values_name_row_and_column(column, value, needle):
    df = pd.DataFrame({"r": [0.2, 0.3, 0.4], "n": [30, 40, 50]})
    df.loc[1, column] = value
    with pytest.raises(ac.AnalysisError, match=needle) as info:
        ac.escalc(df)
    assert "Row 1" in str(info.value) and f"'{column}'" in str(info.value)


def test_text_in_a_numeric_column_is_reported():
    df = pd.DataFrame({"r": ["0.2", "zero point three"], "n": [30, 40]})
    with pytest.raises(ac.AnalysisError, match="zero point three"):
        ac.escalc(df)
