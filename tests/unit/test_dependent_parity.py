"""Dependent effect sizes: every number agrees with metafor 3.8 on the same model.

The fixtures under tests/fixtures/metafor_dependent were written by
scripts/make_dependent_fixtures.R: CHE working models (``vcalc(vi, cluster = study, obs = es,
rho)`` then ``rma.mv(yi, V, random = ~ 1 | study/es)``), variance components held fixed
(``sigma2 = c(NA, 0)``), profile-likelihood intervals (``confint``) and likelihood-ratio tests
(``anova(full, reduced)``). Tolerances are those of test_metafor_parity.py (parity_checks.py).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import alliance_core as ac
from tests.unit import parity_checks as parity
from tests.unit.parity_checks import P_ATOL, VAR_ATOL, close, load_case

FIXTURES = sorted((Path(__file__).parents[1] / "fixtures" / "metafor_dependent").glob("*.json"))
# Profile intervals: each point is a metafor refit converged to ~1e-8.
CI_RTOL = 1e-5


def case_frame(case: dict) -> pd.DataFrame:
    return pd.DataFrame(case["data"])


def fit_settings(settings: dict, **override) -> dict:
    merged = {**settings, **override}
    return {
        "moderators": merged.get("moderators") or None,
        "reference": merged.get("reference") or None,
        "method": merged["method"],
        "test": merged["test"],
        "cluster": "study",
        "rho": merged.get("rho"),
        "fix_sigma2": merged.get("fix_sigma2") or None,
    }


def fit_case(case: dict, **override) -> ac.MetaResult:
    return ac.fit(case_frame(case), **fit_settings(case["settings"], **override))


@pytest.fixture(scope="module", params=FIXTURES, ids=[p.stem for p in FIXTURES])
def pair(request):
    case = load_case(request.param)
    return case, fit_case(case)


def test_fixture_set_covers_the_promised_cases():
    cases = [load_case(p) for p in FIXTURES]
    assert len(cases) >= 50
    assert all(c["result"]["metafor_version"].startswith("3.8") for c in cases)
    sources = {c["case"].split("_")[0] for c in cases}
    assert {"assink2016", "bornmann2007", "tannersmith2016", "lehmann2018", "sim"} <= sources
    seen = {(c["settings"]["method"], c["settings"]["test"]) for c in cases}
    assert seen == {("REML", "z"), ("REML", "t"), ("ML", "z"), ("ML", "t")}
    rhos = {c["settings"].get("rho") for c in cases}
    assert {0, 0.9, None} <= rhos
    assert sum("fix_sigma2" in c["settings"] for c in cases) >= 3
    assert sum(bool(c["result"].get("variance_ci")) for c in cases) >= 10
    assert sum(bool(c["result"].get("compare")) for c in cases) >= 10


def test_records_rho_and_fixed_components(pair):
    case, res = pair
    assert res.rho == case["settings"].get("rho")
    assert (res.fix_sigma2 or None) == (case["settings"].get("fix_sigma2") or None)


def test_coefficients(pair):
    case, res = pair
    parity.check_coefficients(res, case["result"]["coefficients"])


def test_variance_components(pair):
    case, res = pair
    close(res.sigma2, case["result"]["sigma2"], atol=VAR_ATOL, what="sigma2")


def test_heterogeneity_and_moderator_tests(pair):
    case, res = pair
    e = case["result"]
    parity.check_residual_heterogeneity(res, e)
    if e.get("QM") is None:
        assert res.QM is None
    else:
        close(res.QM, e["QM"], atol=1e-9, what="QM")
        assert res.QM_df == e["QM_df"] and res.QM_df2 == e.get("QM_df2")
        close(res.QM_pval, e["QM_pval"], rtol=0, atol=P_ATOL)
    # A component at the boundary is 0 here and up to VAR_ATOL in metafor; in I2 that is
    # 100 VAR_ATOL / (total + typical variance) percentage points.
    i2_atol = 1e-6 + 100.0 * VAR_ATOL / (res.total_heterogeneity + res.inputs.typical_variance)
    close(res.I2, e["I2"], atol=i2_atol, what="I2")
    close(res.I2_levels, e["I2_levels"], atol=i2_atol, what="I2 by level")
    close(res.H2, e["H2"], atol=1e-6, what="H2")
    if e.get("R2") is None:
        assert res.R2 is None or res.p == 1
    else:
        # R2 = 100 (t0 - t) / t0 carries the variance tolerance of both fits as
        # 100 * 2 VAR_ATOL / t0 percentage points.
        total0 = res.total_heterogeneity / (1.0 - e["R2"] / 100.0) if e["R2"] < 100 else 1.0
        close(res.R2, e["R2"], rtol=1e-5, atol=1e-5 + 200.0 * VAR_ATOL / total0, what="R2")


def test_fit_statistics(pair):
    case, res = pair
    parity.check_fit_statistics(res, case["result"])
    assert res.parameters == case["result"]["parms"]


def test_predictions(pair):
    case, res = pair
    if case["result"].get("predict") is None:
        return
    parity.check_predictions(res, case)


def test_weights(pair):
    case, res = pair
    close(res.weights.to_numpy(), case["result"]["weights"], atol=1e-9, what="weights")


def test_wald_test_of_chosen_terms(pair):
    case, res = pair
    expected = case["result"].get("wald")
    if not expected:
        return
    got = res.wald_test(expected["terms"])
    close(got.statistic, expected["QM"], atol=1e-9, what="Wald statistic")
    close(got.pval, expected["QM_pval"], rtol=0, atol=P_ATOL)


CI_FIXTURES = [p for p in FIXTURES if load_case(p)["result"].get("variance_ci")]


@pytest.mark.parametrize("path", CI_FIXTURES, ids=[p.stem for p in CI_FIXTURES])
def test_profile_likelihood_intervals(path):
    case = load_case(path)
    expected = case["result"]["variance_ci"]
    table = fit_case(case).variance_ci()
    assert list(table.index) == expected["component"]
    close(table["estimate"], expected["estimate"], atol=VAR_ATOL, what="estimate")
    # A bound at 0 is exact in both; elsewhere the bound is a root of the profile, which
    # metafor finds from refits converged to about 1e-8.
    close(table["ci_lb"], expected["ci_lb"], rtol=CI_RTOL, atol=1e-9, what="ci_lb")
    close(table["ci_ub"], expected["ci_ub"], rtol=CI_RTOL, atol=1e-9, what="ci_ub")


COMPARE_CASES = [
    (p, j) for p in FIXTURES for j, _ in enumerate(load_case(p)["result"].get("compare") or [])
]


@pytest.mark.parametrize(
    ("path", "index"), COMPARE_CASES, ids=[f"{p.stem}-{j}" for p, j in COMPARE_CASES]
)
def test_likelihood_ratio_test(path, index):
    case = load_case(path)
    expected = case["result"]["compare"][index]
    method = expected["method"]
    full = fit_case(case, method=method)
    reduced = fit_case(
        case,
        method=method,
        moderators=expected["reduced_moderators"],
        fix_sigma2=expected["reduced_fix_sigma2"] or None,
    )
    # metafor orders the pair by the number of parameters; so does compare().
    for result in (ac.compare(full, reduced), ac.compare(reduced, full)):
        close(result.LRT, expected["LRT"], rtol=1e-6, atol=1e-7, what="LRT")
        assert result.df == expected["df"]
        close(result.pval, expected["pval"], rtol=0, atol=P_ATOL, what="LRT p")
        for which in ("full", "reduced"):
            got, want = getattr(result, which), expected[which]
            assert got.parameters == want["parms"]
            for name in ("loglik", "deviance", "aic", "bic", "aicc"):
                close(getattr(got, name), want[name], atol=1e-8, what=f"{which} {name}")
            close(got.QE, want["QE"], what=f"{which} QE")
    assert "LRT" in str(result)
