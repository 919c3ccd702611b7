"""Every number a fit reports agrees with metafor 3.8 on the same model.

The fixtures under tests/fixtures/metafor were written by scripts/make_metafor_fixtures.R
(metafor itself, converged to tight tolerances); see that folder's README. Tolerances:
estimates, standard errors, intervals, variance components and fit statistics to a relative
1e-6 (with an absolute floor for quantities that sit at or near zero), p-values to 1e-7
absolute.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import alliance_core as ac
from tests.unit import parity_checks as parity
from tests.unit.parity_checks import P_ATOL, VAR_ATOL, close, load_case

FIXTURES = sorted((Path(__file__).parents[1] / "fixtures" / "metafor").glob("*.json"))


def case_frame(case: dict) -> pd.DataFrame:
    frame = pd.DataFrame(case["data"])
    for column in case["settings"].get("categorical") or []:
        frame[column] = frame[column].map(lambda v: v if v is None else str(v))
    return frame


def fit_case(case: dict) -> ac.MetaResult:
    s = case["settings"]
    return ac.fit(
        case_frame(case),
        moderators=s.get("moderators") or None,
        reference=s.get("reference") or None,
        method=s["method"],
        test=s["test"],
        cluster="study" if s["model"] == "three-level" else None,
        level=s.get("level", 0.95),
    )


@pytest.fixture(scope="module", params=FIXTURES, ids=[p.stem for p in FIXTURES])
def pair(request):
    case = load_case(request.param)
    return case, fit_case(case)


def test_fixture_set_covers_the_promised_models():
    assert len(FIXTURES) >= 60
    seen = {
        (c["settings"]["model"], c["settings"]["method"], c["settings"]["test"])
        for c in map(load_case, FIXTURES)
    }
    for method in ("EE", "DL", "HE", "PM", "SJ", "ML", "REML"):
        for test in ("z", "knha"):
            assert ("two-level", method, test) in seen
    for method in ("ML", "REML"):
        for test in ("z", "t"):
            assert ("three-level", method, test) in seen


def test_coefficients(pair):
    case, res = pair
    parity.check_coefficients(res, case["result"]["coefficients"])


def test_variance_components(pair):
    case, res = pair
    expected = case["result"]
    if res.is_three_level:
        close(res.sigma2, expected["sigma2"], atol=VAR_ATOL, what="sigma2")
    else:
        close(res.tau2, expected["tau2"], atol=VAR_ATOL, what="tau2")
        if expected.get("tau2_se") is not None:
            close(res.tau2_se, expected["tau2_se"], rtol=1e-5, atol=1e-9, what="tau2_se")


def test_heterogeneity_and_moderator_tests(pair):
    case, res = pair
    e = case["result"]
    parity.check_residual_heterogeneity(res, e)
    if e.get("QM") is None or res.p == 1:
        assert res.QM is None
    else:
        close(res.QM, e["QM"], atol=1e-9, what="QM")
        assert res.QM_df == e["QM_df"]
        assert res.QM_df2 == e.get("QM_df2")
        close(res.QM_pval, e["QM_pval"], rtol=0, atol=P_ATOL)
    close(res.I2, e["I2"], atol=1e-6, what="I2")
    if not res.is_three_level:
        close(res.H2, e["H2"], what="H2")
    else:
        close(res.I2_levels, e["I2_levels"], atol=1e-6, what="I2 by level")
    if e.get("R2") is None:
        assert res.R2 is None or res.p == 1
    else:
        close(res.R2, e["R2"], rtol=1e-5, atol=1e-5, what="R2")


def test_fit_statistics(pair):
    case, res = pair
    parity.check_fit_statistics(res, case["result"])


def test_confidence_interval_for_tau2(pair):
    case, res = pair
    e = case["result"]
    if e.get("tau2_ci") is None:
        assert res.tau2_ci is None
        return
    close(res.tau2_ci, e["tau2_ci"], rtol=1e-5, atol=1e-9, what="tau2 CI")
    close(res.I2_ci, e["I2_ci"], rtol=1e-5, atol=1e-7, what="I2 CI")
    close(res.H2_ci, e["H2_ci"], rtol=1e-5, what="H2 CI")


def test_predictions(pair):
    case, res = pair
    parity.check_predictions(res, case)


WALD_FIXTURES = [p for p in FIXTURES if load_case(p)["result"].get("wald")]


@pytest.mark.parametrize("path", WALD_FIXTURES, ids=[p.stem for p in WALD_FIXTURES])
def test_wald_test_of_chosen_terms(path):
    case = load_case(path)
    res = fit_case(case)
    expected = case["result"]["wald"]
    got = res.wald_test(expected["terms"])
    close(got.statistic, expected["QM"], atol=1e-9, what="Wald statistic")
    assert got.df == expected["QM_df"] and got.df2 == expected.get("QM_df2")
    close(got.pval, expected["QM_pval"], rtol=0, atol=P_ATOL)


def test_weights(pair):
    case, res = pair
    close(res.weights.to_numpy(), case["result"]["weights"], atol=1e-9, what="weights")
    assert res.weights.sum() == pytest.approx(100.0)


def test_factor_levels(pair):
    case, res = pair
    for column, levels in (case["result"].get("factor_levels") or {}).items():
        assert list(res.design.term(column).levels) == list(levels)
