"""Egger's test, the rank test, trim-and-fill and PET-PEESE.

The first three are checked against metafor 3.8 (``regtest``, ``ranktest``, ``trimfill``,
``aggregate``; fixtures in tests/fixtures/metafor_bias, written by
scripts/make_bias_fixtures.R), at the tolerances of the engine's parity tests. PET-PEESE has
no metafor function: its fits are compared with the engine's own meta-regression, and its
rule and Egger's test with seeded simulations whose truth is known. The exact Kendall
distribution is checked against its closed form and an independent implementation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bias_cases import cases_with, load
from scipy import stats

import alliance_core as ac
from alliance_core.analyses.bias import (
    aggregate_by_study,
    egger_test,
    kendall_test,
    pet_peese,
    rank_correlation_test,
    trim_and_fill,
)
from alliance_core.analyses.bias_tests import TEST_NAMES, run_bias_tests
from alliance_core.analyses.kendall import kendall_cdf
from alliance_core.errors import AnalysisError
from tests.unit.parity_checks import P_ATOL, VAR_ATOL, close


def close_fit(res: ac.MetaResult, expected: dict, what: str = ""):
    """A fit against a fixture's ``fit_summary``: coefficients, heterogeneity."""
    coefficients = expected["coefficients"]
    table = res.coefficients
    scale = np.max(np.abs(coefficients["estimate"]) + np.asarray(coefficients["se"]))
    for field in ("estimate", "ci_lb", "ci_ub"):
        close(table[field], coefficients[field], atol=1e-7 * scale, what=f"{what} {field}")
    close(table["se"], coefficients["se"], what=f"{what} se")
    close(table["pval"], coefficients["pval"], rtol=0, atol=P_ATOL, what=f"{what} pval")
    assert res.k == expected["k"]
    close(res.QE, expected["QE"], what=f"{what} QE")
    if res.is_three_level:
        close(res.sigma2, expected["sigma2"], atol=VAR_ATOL, what=f"{what} sigma2")
    else:
        close(res.tau2, expected["tau2"], atol=VAR_ATOL, what=f"{what} tau2")
        close(res.I2, expected["I2"], atol=1e-6, what=f"{what} I2")


def test_fixtures_cover_the_promised_analyses():
    for analysis in ("regtest", "ranktest", "trimfill", "aggregate"):
        assert cases_with(analysis), analysis
    three_level = [n for n in cases_with("regtest") if load(n)[1].is_three_level]
    assert three_level and any(load(n)[1].p > 1 for n in three_level)
    # both kinds of rank-test p-value: exact (no ties) and normal approximation (ties)
    warnings = {load(n)[0]["results"]["ranktest"]["warning"] for n in cases_with("ranktest")}
    assert None in warnings and len(warnings) > 1


# -- Egger's regression test ---------------------------------------------------------------
@pytest.mark.parametrize("name", cases_with("regtest"))
def test_egger_test_matches_metafor_regtest(name):
    case, res = load(name)
    expected = case["results"]["regtest"]
    result = egger_test(res)
    close(result.statistic, expected["statistic"], atol=1e-8, what="statistic")
    close(result.pval, expected["pval"], rtol=0, atol=P_ATOL, what="pval")
    assert result.ddf == expected["ddf"]
    if expected["est"] is None:
        assert result.limit_estimate is None and result.limit_ci is None
    else:
        close(result.limit_estimate, expected["est"], atol=1e-9, what="limit estimate")
        close(result.limit_ci, [expected["ci_lb"], expected["ci_ub"]], atol=1e-9, what="limit CI")
    close_fit(result.fit, expected["fit"], what=name)
    assert result.fit.design.names[-1] == "sei"


def test_egger_test_finds_a_built_in_small_study_effect():
    """Seeded simulation: yi = 0.2 + 1.5 sei + error, i.e. small studies report more."""
    rng = np.random.default_rng(7)
    n = rng.integers(20, 400, 60)
    vi = 1.0 / (n - 3)
    yi = 0.2 + 1.5 * np.sqrt(vi) + rng.normal(0, np.sqrt(vi + 0.002))
    res = ac.fit(pd.DataFrame({"yi": yi, "vi": vi}))
    result = egger_test(res)
    assert result.pval < 0.001 and result.slope > 0
    lo, hi = result.slope - 3 * result.slope_se, result.slope + 3 * result.slope_se
    assert lo < 1.5 < hi
    assert result.limit_ci[0] < 0.2 < result.limit_ci[1]
    assert result.funnel_line() == {"intercept": result.limit_estimate, "slope": result.slope}
    text = result.describe(transform="r")
    assert "found asymmetry" in text and "not proof of publication bias" in text


def test_egger_on_few_studies_is_not_read_and_the_rank_test_names_the_dependence():
    case, _ = load("assink2016_reml_z")
    data = pd.DataFrame(case["data"])
    few = data[data["study"].astype(int) <= 8]
    res = ac.fit(few, cluster="study")
    egger = egger_test(res)
    text = egger.describe()
    assert egger.caution == "only 8 studies (fewer than 10)" and egger.significant is None
    assert "cannot be read" in text and "only 8 studies" in text
    assert "found asymmetry" not in text and "found no clear asymmetry" not in text
    # Egger's refit is the three-level model itself: it respects the nesting and says so.
    assert "three-level model" in text and "not independent" not in text
    rank = rank_correlation_test(res).describe()
    assert "cannot be read" in rank and "not independent" in rank


def test_egger_test_with_the_variance_as_predictor_equals_the_fit_with_vi():
    _, res = load("bcg_reml_z")
    result = egger_test(res, predictor="vi")
    direct = ac.fit(res.data, moderators=["vi"], method="REML")
    close(result.fit.beta, direct.beta, rtol=1e-12)
    assert result.funnel_line() is None  # the line of a variance predictor is not straight


# -- rank correlation test -----------------------------------------------------------------
@pytest.mark.parametrize("name", cases_with("ranktest"))
def test_rank_test_matches_metafor_ranktest(name):
    case, res = load(name)
    expected = case["results"]["ranktest"]
    result = rank_correlation_test(res)
    close(result.tau, expected["tau"], atol=1e-12, what="tau")
    close(result.pval, expected["pval"], rtol=0, atol=P_ATOL, what="pval")
    assert result.exact == (expected["warning"] is None)


def test_exact_kendall_distribution_is_the_mahonian_distribution():
    # Inversions of permutations of 4 elements: 1, 3, 5, 6, 5, 3, 1 out of 24.
    counts = np.array([1, 3, 5, 6, 5, 3, 1])
    expected = np.cumsum(counts) / 24
    assert [kendall_cdf(q, 4) for q in range(7)] == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("n", [12, 40, 90])
def test_exact_kendall_p_agrees_with_scipy(n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=n)
    y = 0.3 * x + rng.normal(size=n)
    tau, pval, exact = kendall_test(x, y)
    reference = stats.kendalltau(x, y, method="exact")
    assert exact
    assert tau == pytest.approx(reference.statistic, abs=1e-14)
    assert pval == pytest.approx(reference.pvalue, abs=1e-12)


def test_exact_kendall_p_beyond_where_r_overflows():
    """R's cor.test returns NaN for n > 170 without ties; here the exact p is finite and
    close to the normal approximation, as it should be for large n."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=250)
    y = 0.1 * x + rng.normal(size=250)
    tau, pval, exact = kendall_test(x, y)
    z = 3 * tau * np.sqrt(250 * 249) / np.sqrt(2 * (2 * 250 + 5))
    assert exact and np.isfinite(pval)
    assert pval == pytest.approx(2 * stats.norm.sf(abs(z)), rel=0.02)


def test_kendall_p_uses_the_normal_approximation_for_many_effect_sizes():
    rng = np.random.default_rng(4)
    n = 600
    x = rng.normal(size=n)
    tau, pval, exact = kendall_test(x, 0.1 * x + rng.normal(size=n))
    z = 3 * tau * np.sqrt(n * (n - 1)) / np.sqrt(2 * (2 * n + 5))  # S / sd(S) without ties
    assert not exact
    assert pval == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-12)


# -- trim and fill -------------------------------------------------------------------------
@pytest.mark.parametrize("name", cases_with("trimfill"))
def test_trim_and_fill_matches_metafor_trimfill(name):
    case, res = load(name)
    for expected in case["results"]["trimfill"]:
        what = f"{name} side={expected['requested_side']} {expected['estimator']}"
        # These references pass the model's test on: trimfill(fit, test = <the fit's test>).
        result = trim_and_fill(
            res, side=expected["requested_side"], estimator=expected["estimator"], test=res.test
        )
        _check_trim_and_fill(result, expected, what)


@pytest.mark.parametrize("name", cases_with("trimfill_default"))
def test_trim_and_fill_follows_metafor_default_z_refit_after_knapp_hartung(name):
    """metafor's plain trimfill(fit) refits the filled data with z tests, also after knha."""
    case, res = load(name)
    assert res.test == "knha"
    filled_cases = 0
    for expected in case["results"]["trimfill_default"]:
        what = f"{name} default side={expected['requested_side']} {expected['estimator']}"
        result = trim_and_fill(
            res, side=expected["requested_side"], estimator=expected["estimator"]
        )
        _check_trim_and_fill(result, expected, what)
        if result.k0 > 0:
            filled_cases += 1
            assert result.adjusted.test == "z" and result.adjusted.ddf is None
            assert "As in metafor's trimfill, the model with the filled effect sizes uses z" in (
                result.describe()
            )
            kept = trim_and_fill(
                res, side=expected["requested_side"], estimator=expected["estimator"], test="knha"
            )
            se = (
                kept.adjusted.coefficients["se"].iloc[0],
                result.adjusted.coefficients["se"].iloc[0],
            )
            assert se[0] != pytest.approx(se[1], rel=1e-6)
    assert filled_cases, "the references should include a case with filled effect sizes"


def _check_trim_and_fill(result, expected, what):
    assert (result.k0, result.side) == (expected["k0"], expected["side"]), what
    close(result.se_k0, np.nan if expected["se_k0"] is None else expected["se_k0"], what=what)
    if expected["p_k0"] is None:
        assert result.p_k0 is None
    else:
        close(result.p_k0, expected["p_k0"], what=what)
    assert len(result.filled) == result.k0
    close(np.sort(result.filled["yi"]), np.sort(expected["filled_yi"]), atol=1e-12, what=what)
    close(np.sort(result.filled["vi"]), np.sort(expected["filled_vi"]), what=what)
    close_fit(result.adjusted, expected["fit"], what=what)


@pytest.mark.parametrize("name", cases_with("aggregate"))
def test_aggregate_by_study_matches_metafor_aggregate_and_trim_and_fill_runs_on_it(name):
    case, res = load(name)
    expected = case["results"]["aggregate"]
    studies = aggregate_by_study(res)
    assert studies["study"].astype(str).tolist() == expected["study"]
    close(studies["yi"], expected["yi"], atol=1e-14, what="yi")
    close(studies["vi"], expected["vi"], what="vi")
    assert studies["k"].sum() == res.k
    study_fit = ac.fit(studies, method=res.method)
    close_fit(study_fit, expected["fit"], what=f"{name} aggregated")
    for tf in expected["trimfill"]:
        result = trim_and_fill(
            study_fit, side=tf["requested_side"], estimator=tf["estimator"], test=study_fit.test
        )
        _check_trim_and_fill(result, tf, f"{name} aggregated {tf['estimator']}")


def test_aggregate_keeps_columns_that_are_constant_within_studies():
    _, res = load("assink2016_reml_z")
    studies = aggregate_by_study(res)
    assert "pubstatus" in studies.columns  # the same within every study
    assert "deltype" not in studies.columns and "year" not in studies.columns  # vary within


def test_trim_and_fill_refuses_three_level_models_and_points_to_aggregation():
    _, res = load("assink2016_reml_z")
    with pytest.raises(AnalysisError, match="aggregate_by_study"):
        trim_and_fill(res)


def test_trim_and_fill_refuses_models_with_moderators():
    _, res = load("molloy2014_reml_z_mods")
    with pytest.raises(AnalysisError, match="without moderators"):
        trim_and_fill(res)


def test_trim_and_fill_mirrors_the_most_extreme_effects_about_the_trimmed_estimate():
    _, res = load("hackshaw1998_ee_z")
    result = trim_and_fill(res)
    assert result.side == "left" and result.k0 == 7
    largest = np.sort(res.data["yi"].to_numpy())[-result.k0 :]
    # filled = 2 b - yi with b the pooled estimate of the k - k0 trimmed effects
    y_sorted = np.sort(res.data["yi"].to_numpy())
    v_sorted = res.data["vi"].to_numpy()[np.argsort(res.data["yi"].to_numpy(), kind="stable")]
    kept = slice(0, res.k - result.k0)
    b = np.sum(y_sorted[kept] / v_sorted[kept]) / np.sum(1 / v_sorted[kept])
    close(np.sort(result.filled["yi"]), np.sort(2 * b - largest), atol=1e-12)
    assert "7 missing effect sizes" in result.describe()


# -- PET-PEESE -----------------------------------------------------------------------------
def _simulated(effect: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = rng.integers(30, 600, 80)
    vi = 1.0 / (n - 3)
    return pd.DataFrame({"yi": effect + rng.normal(0, np.sqrt(vi + 0.001)), "vi": vi})


def test_pet_peese_fits_are_the_meta_regressions_on_se_and_variance():
    data = _simulated(0.3, seed=11)
    res = ac.fit(data)
    result = pet_peese(res)
    pet = ac.fit(data.assign(sei=np.sqrt(data["vi"])), moderators=["sei"])
    peese = ac.fit(data, moderators=["vi"])
    close(result.pet.beta, pet.beta, rtol=1e-12)
    close(result.peese.beta, peese.beta, rtol=1e-12)


def test_pet_peese_uses_peese_when_there_is_a_real_effect():
    result = pet_peese(ac.fit(_simulated(0.3, seed=11)))
    assert result.chosen == "PEESE" and result.pet_one_sided_p < 0.05
    assert result.estimate == pytest.approx(result.peese.beta[0])
    assert result.ci[0] < 0.3 < result.ci[1]
    assert "PEESE estimate is used" in result.describe(transform="r")


def test_pet_peese_keeps_pet_when_there_is_no_effect():
    result = pet_peese(ac.fit(_simulated(0.0, seed=12)))
    assert result.chosen == "PET" and result.pet_one_sided_p >= 0.05
    statistic = result.pet.coefficients["statistic"].iloc[0]
    assert result.pet_one_sided_p == pytest.approx(stats.norm.sf(statistic), rel=1e-12)
    assert result.estimate == pytest.approx(result.pet.beta[0])


def test_pet_peese_one_sided_p_uses_t_with_knapp_hartung():
    res = ac.fit(_simulated(0.3, seed=11), test="knha")
    result = pet_peese(res)
    statistic = result.pet.coefficients["statistic"].iloc[0]
    assert result.pet_one_sided_p == pytest.approx(stats.t.sf(statistic, res.k - 2), rel=1e-10)


# -- every test at once (what the dashboard and the report both show) ---------------------------
def test_run_bias_tests_holds_each_tests_own_result():
    dat = ac.escalc(pd.DataFrame({"r": np.linspace(0.05, 0.6, 14), "n": np.arange(20, 160, 10)}))
    pooled = ac.fit(dat)
    tests = run_bias_tests(pooled)
    assert tests.problems == () and tests.trim_fill_note is None
    assert tests.egger.statistic == pytest.approx(egger_test(pooled).statistic, rel=1e-12)
    assert tests.rank.tau == pytest.approx(ac.rank_correlation_test(pooled).tau, rel=1e-12)
    assert tests.trim_fill.k0 == trim_and_fill(pooled).k0
    assert tests.pet_peese.estimate == pytest.approx(ac.pet_peese(pooled).estimate, rel=1e-12)
    names = [name for name, _ in tests.readings(transform="r")]
    assert names == list(TEST_NAMES.values())


def test_run_bias_tests_names_each_test_that_cannot_run():
    # Two effect sizes: no model with the standard error as a moderator (Egger, PET-PEESE) and
    # no side for trim-and-fill; the rank test still runs.
    dat = ac.escalc(pd.DataFrame({"r": [0.1, 0.3], "n": [40, 80]}))
    tests = run_bias_tests(ac.fit(dat))
    assert tests.egger is None and tests.trim_fill is None and tests.pet_peese is None
    assert tests.rank is not None
    missing = dict(tests.problems)
    assert list(missing) == [TEST_NAMES["egger"], TEST_NAMES["trim_fill"], TEST_NAMES["pet_peese"]]
    assert all(reason.startswith("Not available here: ") for reason in missing.values())
    readings = dict(tests.readings(transform="r"))
    assert readings[TEST_NAMES["egger"]] == missing[TEST_NAMES["egger"]]


def test_three_level_trim_and_fill_runs_on_study_aggregates_and_says_how():
    pooled = ac.fit(ac.load_dataset("assink2016"), cluster="study")
    tests = run_bias_tests(pooled)
    assert "one aggregated effect per study" in tests.trim_fill_note
    direct = trim_and_fill(ac.fit(aggregate_by_study(pooled), method="REML"))
    assert tests.trim_fill.estimate == pytest.approx(direct.estimate, rel=1e-12)
