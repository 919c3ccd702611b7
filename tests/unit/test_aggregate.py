"""``aggregate`` agrees with metafor's ``aggregate.escalc(struct = "CS", addk = TRUE)``.

Fixtures: tests/fixtures/robust/aggregate_*.json (scripts/make_robust_fixtures.R), rho = 0,
0.6 and 0.9 on assink2016 (rows shuffled so that the order of first appearance differs from
sorted order) and bornmann2007. yi and vi to a relative 1e-10; study order, counts, carried
columns and the list of columns that vary within a study exactly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from robust_cases import frame, load

import alliance_core as ac

CASES = load("aggregate")


def test_fixtures_cover_three_correlations():
    assert {c["spec"]["rho"] for c in CASES} == {0, 0.6, 0.9}
    assert any(c["result"]["varying"] for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_aggregate_agrees_with_metafor(case):
    spec, expected = case["spec"], case["result"]
    agg = ac.aggregate(frame(case), cluster=spec["cluster"], rho=spec["rho"])
    assert [str(s) for s in agg[spec["cluster"]]] == expected["cluster"]
    np.testing.assert_allclose(agg["yi"], expected["yi"], rtol=1e-10)
    np.testing.assert_allclose(agg["vi"], expected["vi"], rtol=1e-10)
    assert agg["ki"].tolist() == expected["ki"]
    assert set(agg.attrs["dropped_columns"]) == set(expected["varying"])
    for column, values in expected["carried"].items():
        assert agg[column].tolist() == values, column
    assert list(agg.columns) == [c for c in frame(case).columns if c not in expected["varying"]] + [
        "ki"
    ]


def test_rho_zero_is_the_inverse_variance_mean():
    data = pd.DataFrame(
        {
            "study": ["b", "b", "a", "b", "a"],
            "yi": [0.1, 0.3, 0.2, 0.5, 0.4],
            "vi": [1, 2, 4, 4, 4.0],
        }
    )
    agg = ac.aggregate(data, rho=0.0)
    assert agg["study"].tolist() == ["b", "a"]  # order of first appearance
    w = np.array([1, 0.5, 0.25])
    assert agg["yi"].iloc[0] == pytest.approx(np.sum(w * [0.1, 0.3, 0.5]) / w.sum())
    assert agg["vi"].iloc[0] == pytest.approx(1 / w.sum())
    assert agg["yi"].iloc[1] == pytest.approx(0.3)
    assert agg["vi"].iloc[1] == pytest.approx(2.0)


def test_equal_variances_under_compound_symmetry():
    # closed form: n estimates with variance v and correlation rho average to variance
    # v (1 + (n - 1) rho) / n, with equal weights.
    data = pd.DataFrame({"study": ["s"] * 4 + ["t"], "yi": [0.1, 0.2, 0.3, 0.6, 0.0], "vi": 0.02})
    agg = ac.aggregate(data, rho=0.6)
    assert agg["yi"].iloc[0] == pytest.approx(0.3)
    assert agg["vi"].iloc[0] == pytest.approx(0.02 * (1 + 3 * 0.6) / 4)
    assert agg["ki"].tolist() == [4, 1]


def test_missing_effect_sizes_are_left_out_and_listed():
    data = pd.DataFrame(
        {"study": ["a", "a", "b"], "yi": [0.1, None, 0.2], "vi": [0.01, 0.01, 0.02]},
        index=[10, 11, 12],
    )
    agg = ac.aggregate(data, rho=0.5)
    assert agg.attrs["dropped_rows"] == (11,)
    assert agg["ki"].tolist() == [1, 1]


def test_bad_input_is_named():
    data = pd.DataFrame({"study": ["a", "a"], "yi": [0.1, 0.2], "vi": [0.01, 0.01]})
    with pytest.raises(ac.AnalysisError, match="'trial' is not in the data"):
        ac.aggregate(data, cluster="trial")
    with pytest.raises(ac.AnalysisError, match="not positive definite"):
        ac.aggregate(data, rho=1.0)
    with pytest.raises(ac.AnalysisError, match="between -1 and 1"):
        ac.aggregate(data, rho=1.5)
    bad = data.assign(vi=[0.01, -0.01])
    with pytest.raises(ac.AnalysisError, match="Row 1, column 'vi'"):
        ac.aggregate(bad)
    text = data.assign(yi=["0.1", "high"])
    with pytest.raises(ac.AnalysisError, match="Row 1, column 'yi': 'high'"):
        ac.aggregate(text)
    with pytest.raises(ac.AnalysisError, match="already have a column 'ki'"):
        ac.aggregate(data.assign(ki=1))
    gap = data.assign(study=["a", None])
    with pytest.raises(ac.AnalysisError, match="Row 1, column 'study'"):
        ac.aggregate(gap)


def test_aggregated_rows_fit_as_a_two_level_model():
    case = next(c for c in CASES if c["name"] == "aggregate_assink_rho06")
    agg = ac.aggregate(frame(case), rho=0.6)
    res = ac.fit(agg)
    assert res.k == agg.shape[0] == len(case["result"]["cluster"])
