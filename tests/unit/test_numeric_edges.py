"""Degenerate data reachable from an upload: a clear AnalysisError or a closed-form result."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import alliance_core as ac
from alliance_core.analyses.bias import egger_test
from alliance_core.analyses.run import run_analysis
from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.data.mapping import ColumnMapping
from alliance_core.errors import AnalysisError
from alliance_core.model.results import wald_test

VI = np.array([0.010, 0.020, 0.015, 0.030, 0.020, 0.050])


def equal_effects(value: float = 0.3) -> pd.DataFrame:
    return pd.DataFrame({"yi": np.full(len(VI), value), "vi": VI})


@pytest.mark.parametrize("method", ["REML", "DL", "ML", "PM", "EE"])
def test_equal_effects_with_knapp_hartung_is_a_message_not_a_zero_width_interval(method):
    with pytest.raises(AnalysisError, match="Knapp–Hartung.*zero width.*z tests"):
        ac.fit(equal_effects(), method=method, test="knha")


def test_equal_effects_with_z_tests_match_the_closed_form():
    # All yi equal: Q = 0, so tau2 = 0 and the estimate is the common value with
    # SE = 1 / sqrt(sum 1/vi) (the fixed-effect standard error).
    res = ac.fit(equal_effects(), method="REML", test="z")
    se = 1.0 / np.sqrt(np.sum(1.0 / VI))
    row = res.coefficients.iloc[0]
    assert res.tau2 == pytest.approx(0.0, abs=1e-8)
    assert row["estimate"] == pytest.approx(0.3)
    assert row["se"] == pytest.approx(se)
    z = stats.norm.ppf(0.975)
    assert row["ci_lb"] == pytest.approx(0.3 - z * se)
    assert row["ci_ub"] == pytest.approx(0.3 + z * se)
    assert abs(res.I2) < 1e-6


def test_egger_on_equal_effects_has_slope_zero_and_p_one():
    # y does not depend on sqrt(vi) at all: the fitted slope is 0, its z is 0, p = 1.
    egger = egger_test(ac.fit(equal_effects(), test="z"))
    assert egger.slope == pytest.approx(0.0, abs=1e-10)
    assert egger.pval == pytest.approx(1.0)


def test_egger_whose_refit_is_exact_under_knapp_hartung_is_an_analysis_error():
    # yi exactly linear in sqrt(vi): the pooled model has residuals, but the Egger model
    # fits every point, so Knapp-Hartung's scale is 0 (formerly a singular-matrix crash).
    data = pd.DataFrame({"yi": 0.1 + 2.0 * np.sqrt(VI), "vi": VI})
    res = ac.fit(data, method="DL", test="knha")
    with pytest.raises(AnalysisError, match="cannot be estimated.*Knapp–Hartung"):
        egger_test(res)


def test_a_singular_covariance_in_a_wald_test_is_an_analysis_error():
    with pytest.raises(AnalysisError, match="test of a, b is not available"):
        wald_test(np.array([0.1, 0.2]), np.zeros((2, 2)), [0, 1], ["a", "b"], None)


def test_an_infinite_moderator_names_the_rows_instead_of_dividing_by_zero():
    data = equal_effects().assign(yi=[0.1, 0.3, 0.2, 0.4, 0.25, 0.3])
    data["x"] = [0.0, np.log(2), np.log(3), -np.inf, 1.0, np.inf]
    with pytest.raises(
        AnalysisError, match=r"Moderator 'x' is not a finite number in row\(s\) 3, 5"
    ):
        ac.fit(data, moderators=["x"])


def ptr_table(patients: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "yi": [0.10, 0.30, 0.20, 0.40, 0.25, 0.35],
            "vi": VI,
            "n": patients,
            "n_therapists": [5, 4, 6, 2, 8, 3],
        },
        index=range(2, 8),  # spreadsheet rows: the header is row 1
    )


MAPPING = ColumnMapping(yi="yi", vi="vi", n="n", n_therapists="n_therapists")


def test_log_ptr_of_zero_names_the_rows():
    table = ptr_table([40, 0, 60, 30, 0, 45])
    settings = AnalysisSettings(dataset="upload", model="two-level", ptr_scale="log")
    with pytest.raises(AnalysisError, match=r"log PTR .* row\(s\) 3, 6 have 'n' = 0"):
        run_analysis(table, MAPPING, settings)


def test_raw_ptr_of_zero_is_fitted_as_a_number():
    table = ptr_table([40, 0, 60, 30, 0, 45])
    settings = AnalysisSettings(dataset="upload", model="two-level", ptr_scale="raw")
    run = run_analysis(table, MAPPING, settings)
    # The same regression fitted directly on the ratio column.
    direct = ac.fit(table.assign(ratio=table["n"] / table["n_therapists"]), moderators=["ratio"])
    assert run.result.coefficients["estimate"].to_numpy() == pytest.approx(
        direct.coefficients["estimate"].to_numpy()
    )
