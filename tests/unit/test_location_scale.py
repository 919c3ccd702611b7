"""Location-scale models (``fit(..., scale=[...])``) agree with metafor's ``rma(scale = ~ ...)``.

Fixtures: tests/fixtures/location_scale (scripts/make_location_scale_fixtures.R, metafor 3.8.1
with tight optimiser settings; see that folder's README). Tolerances: location coefficients and
their SEs to a relative 1e-6; the scale coefficients, their SEs, tau2 per row and predicted tau2
(variance parameters, which metafor's optimiser and numerical Hessian pin down to ~1e-7) to a
relative 1e-5; log-likelihoods and information criteria to 1e-8 absolute; the
likelihood-ratio and Wald tests of the scale part to a relative 1e-5, p-values to 1e-7.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance_core as ac
from alliance_core.errors import AnalysisError
from alliance_core.model import location_scale as ls
from alliance_core.model.location_scale import LocationScaleResult

FIXTURES = sorted((Path(__file__).parents[1] / "fixtures" / "location_scale").glob("*.json"))
VAR_RTOL = 1e-5


def fit_case(case: dict) -> LocationScaleResult:
    spec = case["spec"]
    return ac.fit(
        pd.DataFrame(case["data"]),
        moderators=spec["moderators"] or None,
        scale=spec["scale"],
        method=spec["method"],
    )


@pytest.fixture(scope="module", params=FIXTURES, ids=[p.stem for p in FIXTURES])
def pair(request):
    case = json.loads(request.param.read_text())
    return case, fit_case(case)


def test_fixtures_present():
    assert len(FIXTURES) >= 6


def test_location_coefficients(pair):
    case, res = pair
    expected = case["result"]["coefficients"]
    # jsonlite writes a one-element vector as a scalar
    assert list(res.coefficients.index) == np.atleast_1d(expected["names"]).tolist()
    np.testing.assert_allclose(res.coefficients["estimate"], expected["estimate"], rtol=1e-6)
    np.testing.assert_allclose(res.coefficients["se"], expected["se"], rtol=1e-6)
    np.testing.assert_allclose(res.coefficients["pval"], expected["pval"], rtol=0, atol=1e-7)
    if case["result"]["QM"] is not None:
        np.testing.assert_allclose(res.QM.statistic, case["result"]["QM"], rtol=1e-6)
    else:
        assert res.QM is None


def test_scale_coefficients_and_tau2(pair):
    case, res = pair
    expected = case["result"]["scale_coefficients"]
    table = res.scale_coefficients
    assert list(table.index) == np.atleast_1d(expected["names"]).tolist()
    for column in ("estimate", "se", "statistic", "ci_lb", "ci_ub"):
        np.testing.assert_allclose(table[column], expected[column], rtol=VAR_RTOL, err_msg=column)
    np.testing.assert_allclose(table["pval"], expected["pval"], rtol=VAR_RTOL, atol=1e-7)
    np.testing.assert_allclose(res.va, case["result"]["va"], rtol=VAR_RTOL)
    np.testing.assert_allclose(res.tau2, case["result"]["tau2"], rtol=VAR_RTOL)
    if case["result"]["QS"] is not None:
        np.testing.assert_allclose(res.QS.statistic, case["result"]["QS"], rtol=VAR_RTOL)
        np.testing.assert_allclose(res.QS.pval, case["result"]["QS_pval"], rtol=VAR_RTOL)


def test_fit_statistics_and_scale_test(pair):
    case, res = pair
    e = case["result"]
    for name in ("loglik", "aic", "bic", "aicc", "reduced_loglik"):
        np.testing.assert_allclose(getattr(res, name), e[name], rtol=0, atol=1e-8, err_msg=name)
    np.testing.assert_allclose(res.LRT, e["LRT"], rtol=VAR_RTOL)
    assert res.LRT_df == e["LRT_df"]
    np.testing.assert_allclose(res.LRT_pval, e["LRT_pval"], rtol=VAR_RTOL, atol=1e-9)


PREDICTION_FIXTURES = [p for p in FIXTURES if json.loads(p.read_text())["spec"]["newscale"]]


@pytest.mark.parametrize("path", PREDICTION_FIXTURES, ids=[p.stem for p in PREDICTION_FIXTURES])
def test_predicted_tau2(path):
    case = json.loads(path.read_text())
    res = fit_case(case)
    values = case["spec"]["newscale"]
    got = res.predict_tau2({case["spec"]["scale"][0]: values})
    want = case["result"]["predict"]
    for column in ("log_tau2", "se", "tau2", "ci_lb", "ci_ub"):
        np.testing.assert_allclose(got[column], want[column], rtol=VAR_RTOL, err_msg=column)


def _hetero(seed: int = 5, k: int = 70) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 4, k)
    vi = 1 / rng.integers(30, 300, k)
    tau2 = np.exp(-4.5 + 0.7 * x)
    return pd.DataFrame(
        {
            "yi": 0.3 + rng.normal(0, np.sqrt(tau2)) + rng.normal(0, np.sqrt(vi)),
            "vi": vi,
            "x": x,
            "g": rng.choice(["a", "b"], k),
        }
    )


@pytest.mark.parametrize("method", ["ML", "REML"])
def test_maximum_and_information_by_finite_differences(method):
    """At the estimate the profile log-likelihood is flat, and the analytic information
    matches a central-difference Hessian of the log-likelihood itself."""
    data = _hetero()
    res = ac.fit(data, moderators=["x"], scale=["x", "g"], method=method)
    X = np.column_stack([np.ones(len(data)), data["x"]])
    Z = np.column_stack([np.ones(len(data)), data["x"], (data["g"] == "b").astype(float)])
    y, v = data["yi"].to_numpy(), data["vi"].to_numpy()
    logdet = float(np.linalg.slogdet(X.T @ X)[1])
    reml = method == "REML"

    def ll(alpha):
        return ls.profile_loglik(alpha, y, v, X, Z, reml, logdet)

    h = 1e-4
    eye = np.eye(3) * h
    grad = np.array([(ll(res.alpha + e) - ll(res.alpha - e)) / (2 * h) for e in eye])
    assert np.max(np.abs(grad)) < 1e-6
    hess = np.array(
        [
            [
                (
                    ll(res.alpha + a + b)
                    - ll(res.alpha + a - b)
                    - ll(res.alpha - a + b)
                    + ll(res.alpha - a - b)
                )
                / (4 * h * h)
                for b in eye
            ]
            for a in eye
        ]
    )
    np.testing.assert_allclose(
        np.linalg.inv(-hess), res.va, rtol=1e-5, atol=1e-5 * float(np.max(np.abs(res.va)))
    )
    assert res.loglik == pytest.approx(ll(res.alpha), abs=1e-12)


def test_simulated_truth_is_recovered():
    """Seeded simulation with known scale slope 0.7: the estimate lies within 3 SEs."""
    data = _hetero(seed=9, k=400)
    res = ac.fit(data, moderators=["x"], scale=["x"], method="REML")
    slope = res.scale_coefficients.loc["x"]
    assert abs(slope["estimate"] - 0.7) < 3 * slope["se"]
    assert res.LRT_pval < 0.001


def test_refusals():
    data = _hetero()
    data["study"] = np.arange(len(data)) // 2
    with pytest.raises(AnalysisError, match="two-level model"):
        ac.fit(data, scale=["x"], cluster="study")
    with pytest.raises(AnalysisError, match="ML or REML"):
        ac.fit(data, scale=["x"], method="DL")
    with pytest.raises(AnalysisError, match="z tests only"):
        ac.fit(data, scale=["x"], test="knha")
    with pytest.raises(AnalysisError, match="same value"):
        ac.fit(data.assign(c=1.0), scale=["c"])


def test_reference_level_is_shared_by_both_parts():
    """A moderator in the location and the scale part is one factor: a reference level given
    for it applies to both (R codes one factor once)."""
    data = _hetero()
    res = ac.fit(data, moderators=["g"], scale=["g"], reference={"g": "b"})
    assert list(res.scale_coefficients.index) == ["intrcpt", "ga"]
    default = ac.fit(data, moderators=["g"], scale=["g"])
    assert res.loglik == pytest.approx(default.loglik, abs=1e-8)  # the same model, recoded
