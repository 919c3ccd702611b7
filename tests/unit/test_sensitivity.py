"""Leave-one-out, influence diagnostics and cumulative meta-analysis agree with metafor 3.8.

Expected numbers come from tests/fixtures/metafor_bias (written by
scripts/make_bias_fixtures.R with metafor itself; see that folder's README): ``leave1out``,
``influence`` and ``cumul`` for two-level models, by-hand refits with ``rma.uni``/``rma.mv``
for models with moderators and for three-level models, and metafor's ``hatvalues``,
``rstandard`` and ``cooks.distance`` for ``rma.mv`` fits. Tolerances are those of the engine's
parity tests (relative 1e-6 with a small absolute floor, p-values 1e-7 absolute), except
where rma.mv's own precision is the limit (documented at the constants below).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bias_cases import cases_with, load

import alliance_core as ac
from alliance_core.analyses.influence import influence_diagnostics
from alliance_core.analyses.sensitivity import cumulative, leave_one_out, refit
from alliance_core.errors import AnalysisError

RTOL = 1e-6
P_ATOL = 1e-7
VAR_ATOL = 1e-8
# rma.mv reaches its variance components only to ~1e-7 relative (finite-difference BFGS on
# log sigma2; tests/fixtures/metafor/README.md), a little worse with an uncentred year, so
# sigma2 of three-level refits is compared at 1e-5. Cook's distance squares a difference of
# two nearly equal coefficient vectors, which magnifies that error: 1e-4.
THREE_LEVEL_VAR_RTOL = 1e-5
THREE_LEVEL_COOK_RTOL = 1e-4
COEFFICIENT_FIELDS = ("estimate", "se", "statistic", "pval", "ci_lb", "ci_ub")


def close(actual, expected, rtol=RTOL, atol=0.0, what=""):
    actual = np.asarray(actual, dtype=float)
    expected = np.asarray(expected, dtype=float)  # JSON null -> nan
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg=what)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def close_coefficients(table: pd.DataFrame, expected: dict, prefix: str = "", what=""):
    """estimate/se/CI relative 1e-6 (CI and estimate with a floor of 1e-7 x |est| + se)."""
    estimate = np.asarray(expected["estimate"], dtype=float)
    scale = np.nanmax(np.abs(estimate) + np.asarray(expected["se"], dtype=float))
    for field in COEFFICIENT_FIELDS:
        atol = P_ATOL if field in ("pval", "statistic") else 1e-7 * scale
        rtol = 0.0 if field == "pval" else RTOL
        close(table[prefix + field], expected[field], rtol=rtol, atol=atol, what=f"{what} {field}")


def test_fixtures_cover_the_promised_analyses():
    for analysis in ("leave1out", "influence", "cumul", "leave_out", "influence3", "cumul3"):
        assert cases_with(analysis), analysis
    assert any(load(n)[1].is_three_level for n in cases_with("leave_out"))
    assert any(load(n)[1].p > 1 for n in cases_with("leave_out"))


# -- leave one out -------------------------------------------------------------------------
@pytest.mark.parametrize("name", cases_with("leave1out"))
def test_leave_one_out_matches_metafor_leave1out(name):
    case, res = load(name)
    expected = case["results"]["leave1out"]
    table = leave_one_out(res).table
    assert len(table) == res.k and table["error"].isna().all()
    close_coefficients(table, expected, what=name)
    close(table["QE"], expected["QE"], what="QE")
    close(table["QE_pval"], expected["QE_pval"], rtol=0, atol=P_ATOL, what="QE p")
    close(table["I2"], expected["I2"], atol=1e-6, what="I2")
    close(table["H2"], expected["H2"], atol=1e-8, what="H2")
    if expected["tau2"] is not None:
        close(table["tau2"], expected["tau2"], atol=VAR_ATOL, what="tau2")


@pytest.mark.parametrize("name", cases_with("leave_out"))
def test_leave_one_out_with_moderators_or_studies_matches_refits_in_metafor(name):
    case, res = load(name)
    expected = case["results"]["leave_out"]
    terms = list(expected["estimate"])
    coefficient = terms[-1] if len(terms) > 1 else None
    result = leave_one_out(res, coefficient=coefficient)
    table = result.table
    if res.is_three_level:
        table = table.loc[[type(table.index[0])(s) for s in expected["left_out"]]]
    assert len(table) == len(expected["left_out"])  # two-level: rows in data order
    fitted = ~np.isnan(np.asarray(expected["QE"], dtype=float))
    assert (table["error"].isna().to_numpy() == fitted).all()
    ok = table[fitted]

    def column(field, term):
        return np.asarray(expected[field][term], dtype=float)[fitted]

    close_coefficients(ok, {f: column(f, "intrcpt") for f in COEFFICIENT_FIELDS}, what=name)
    if coefficient is not None:
        close_coefficients(
            ok, {f: column(f, coefficient) for f in COEFFICIENT_FIELDS}, "coef_", what=name
        )
    close(ok["k"], np.asarray(expected["k"])[fitted], what="k")
    close(ok["QE"], np.asarray(expected["QE"])[fitted], what="QE")
    close(ok["I2"], np.asarray(expected["I2"])[fitted], atol=1e-6, what="I2")
    if res.is_three_level:
        for level in ("sigma2_study", "sigma2_es"):
            close(
                ok[level],
                np.asarray(expected[level])[fitted],
                rtol=THREE_LEVEL_VAR_RTOL,
                atol=VAR_ATOL,
                what=level,
            )
    else:
        close(ok["tau2"], np.asarray(expected["tau2"])[fitted], atol=VAR_ATOL, what="tau2")


def test_leave_one_out_rows_equal_fits_without_that_study():
    """Each row is the engine's own fit to the data without one study (an independent path)."""
    case, res = load("assink2016_ml_t_mods")
    result = leave_one_out(res, coefficient="year")
    data = pd.DataFrame(case["data"])
    for study in ("1", "5", "11"):
        alone = ac.fit(
            data[data["study"] != study],
            moderators=["year", "deltype"],
            method="ML",
            test="t",
            cluster="study",
        )
        row = result.table.loc[study]
        assert row["estimate"] == pytest.approx(alone.beta[0], rel=1e-8)
        assert row["coef_estimate"] == pytest.approx(
            alone.coefficients.at["year", "estimate"], rel=1e-8
        )
        assert row["coef_se"] == pytest.approx(alone.coefficients.at["year", "se"], rel=1e-8)
        sigma2 = row[["sigma2_study", "sigma2_es"]].to_numpy(dtype=float)
        np.testing.assert_allclose(sigma2, alone.sigma2.to_numpy(), rtol=1e-7)


def test_leave_one_out_reports_a_study_whose_absence_makes_a_moderator_inestimable():
    # Study 16 holds every 'overt' effect size of assink2016: without it, deltypeovert is
    # a column of zeros (metafor drops it; the fixture records the row as null).
    _, res = load("assink2016_ml_t_mods")
    table = leave_one_out(res).table
    assert table.loc["16", "error"].startswith("Without 16:")
    assert "deltypeovert" in table.loc["16", "error"]
    assert np.isnan(table.loc["16", "estimate"])


def test_leave_one_out_follows_ptr_by_default_and_describes_the_range():
    _, res = load("alliance_studies_reml_knha_ptr")
    result = leave_one_out(res)
    assert result.coefficient == "log_PTR"
    text = result.describe()
    assert "log PTR coefficient ranged from" in text and "152 times" in text
    assert "significant at p < 0.05 in" in text


def test_leave_one_out_never_calls_a_flagged_coefficient_significant():
    # A caution (the state's flag of the followed coefficient) replaces the count of
    # significant refits: the range and the reason are given, no verdict.
    _, res = load("alliance_studies_reml_knha_ptr")
    result = leave_one_out(res)
    caution = "only 3 studies inform the moderator test (fewer than 10)"
    text = result.describe(caution=caution)
    assert "log PTR coefficient ranged from" in text and f"cannot be trusted ({caution})" in text
    assert "significant" not in text


# -- influence diagnostics -----------------------------------------------------------------
@pytest.mark.parametrize("name", cases_with("influence"))
def test_influence_matches_metafor_influence(name):
    case, res = load(name)
    expected = case["results"]["influence"]
    diagnostics = influence_diagnostics(res)
    table = diagnostics.effect_sizes
    assert diagnostics.studies is None
    for column in ("rstudent", "dffits", "cov_r", "hat", "weight"):
        close(table[column], expected[column], atol=1e-9, what=column)
    close(table["cook_d"], expected["cook_d"], atol=1e-10, what="cook_d")
    close(table["tau2_del"], expected["tau2_del"], atol=VAR_ATOL, what="tau2_del")
    close(table["QE_del"], expected["QE_del"], what="QE_del")
    for term, values in expected["dfbs"].items():
        close(table[f"dfbs_{term}"], values, atol=1e-9, what=f"dfbs {term}")
    assert table["influential"].tolist() == expected["is_infl"]


@pytest.mark.parametrize("name", cases_with("influence3"))
def test_three_level_diagnostics_match_metafor(name):
    case, res = load(name)
    expected = case["results"]["influence3"]
    diagnostics = influence_diagnostics(res)
    table = diagnostics.effect_sizes
    close(table["hat"], expected["hat"], atol=1e-9, what="hatvalues")
    rstandard = expected["rstandard"]
    close(table["resid"], rstandard["resid"], atol=1e-9, what="resid")
    close(table["se"], rstandard["se"], what="se")
    close(table["z"], rstandard["z"], atol=1e-7, what="z")

    studies = diagnostics.studies.copy()
    studies.index = studies.index.astype(str)
    by_cluster = expected["rstandard_cluster"]
    assert studies.loc[by_cluster["study"], "k"].tolist() == by_cluster["k"]
    close(studies.loc[by_cluster["study"], "X2"], by_cluster["X2"], what="X2")
    cooks = expected.get("cooks_distance") or {
        "study": case["results"]["leave_out"]["left_out"],
        "cook_d": case["results"]["leave_out"]["cook_d"],
    }
    close(
        studies.loc[cooks["study"], "cook_d"],
        cooks["cook_d"],
        rtol=THREE_LEVEL_COOK_RTOL,
        atol=1e-12,
        what="cooks.distance",
    )


def test_influence_flags_follow_the_cut_offs_stated():
    _, res = load("hackshaw1998_reml_z")
    table = influence_diagnostics(res).effect_sizes
    k, p = res.k, res.p
    from scipy import stats

    rule = (
        (table["dffits"].abs() > 3 * np.sqrt(p / (k - p)))
        | (stats.chi2.cdf(table["cook_d"], p) > 0.5)
        | (table["hat"] > 3 * p / k)
        | (table["dfbs_intrcpt"].abs() > 1)
    )
    assert (table["influential"] == rule).all()


# -- cumulative ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", cases_with("cumul"))
def test_cumulative_matches_metafor_cumul(name):
    case, res = load(name)
    expected = case["results"]["cumul"]
    table = cumulative(res, case["settings"]["order_by"]).table
    assert [res.data.index.get_loc(label) for label in table.index] == expected["row"]
    close_coefficients(table, expected, what=name)
    close(table["QE"], expected["QE"], atol=1e-10, what="QE")
    close(table["QE_pval"], expected["QE_pval"], rtol=0, atol=P_ATOL, what="QE p")
    close(table["I2"], expected["I2"], atol=1e-6, what="I2")
    close(table["H2"], expected["H2"], atol=1e-8, what="H2")
    if expected["tau2"] is not None:
        close(table["tau2"], expected["tau2"], atol=VAR_ATOL, what="tau2")


@pytest.mark.parametrize("name", cases_with("cumul3"))
def test_three_level_cumulative_matches_refits_in_metafor(name):
    case, res = load(name)
    expected = case["results"]["cumul3"]
    table = cumulative(res, case["settings"]["order_by"]).table
    assert list(table.index.astype(str)) == expected["study"]
    fitted = ~np.isnan(np.asarray(expected["estimate"], dtype=float))
    assert (table["error"].isna().to_numpy() == fitted).all()
    close_coefficients(table, expected, what=name)
    for level in ("sigma2_study", "sigma2_es"):
        close(table[level], expected[level], rtol=THREE_LEVEL_VAR_RTOL, atol=VAR_ATOL, what=level)


def test_cumulative_needs_a_model_without_moderators():
    _, res = load("molloy2014_reml_z_mods")
    with pytest.raises(AnalysisError, match="without moderators"):
        cumulative(res, "year")


def test_cumulative_orders_by_given_values_with_missing_last():
    _, res = load("bcg_reml_z")
    values = np.arange(res.k, 0, -1).astype(float)
    values[3] = np.nan
    table = cumulative(res, values).table
    assert table.index[-1] == res.data.index[3]
    assert table.index[0] == res.data.index[-1]


# -- the array-level refit -----------------------------------------------------------------
@pytest.mark.parametrize("method", ["EE", "DL", "HE", "SJ", "PM", "ML", "REML"])
@pytest.mark.parametrize("test", ["z", "knha"])
def test_refit_equals_fit_for_every_estimator(method, test):
    case, _ = load("molloy2014_reml_z_mods")
    data = pd.DataFrame(case["data"])
    res = ac.fit(data, moderators=["meanage", "design"], method=method, test=test)
    inputs = res.inputs
    fitted = refit(inputs.y, inputs.v, inputs.X, method=method, test=test)
    np.testing.assert_allclose(fitted.beta, res.beta, rtol=1e-12)
    np.testing.assert_allclose(fitted.vb, res.vb, rtol=1e-12)
    assert fitted.theta[0] == pytest.approx(res.tau2, rel=1e-12, abs=1e-15)
    assert pytest.approx((res.QE, res.I2, res.H2)) == (fitted.QE, fitted.I2, fitted.H2)
    table = res.coefficients.iloc[1]
    assert fitted.coefficient(1) == pytest.approx(table.to_dict(), rel=1e-12)
