"""The sampling correlation rho and the inference choice (model-based / CR2): settings, links,
files, old links, and the one place (AnalysisRun) that decides the inference.

Expected numbers come from the engine's metafor- and clubSandwich-proven functions
(``ac.fit(..., rho=...)``, ``res.robust()``, ``ac.compare``, ``ac.aggregate``) called here
directly, and from closed forms (scipy's t quantile, c' V c).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import alliance_core as ac
from alliance_core.analyses.dependence import RHO_GRID, rho_sensitivity
from alliance_core.analyses.run import effect_size_table, run_analysis, within_study_test
from alliance_core.analyses.settings import DEFAULT_RHO, MODELS, AnalysisSettings
from alliance_core.data.datasets import DEFAULT_DATASET, dataset_info, load_dataset
from alliance_core.errors import AnalysisError
from alliance_core.figures import (
    BandInference,
    ptr_slope_readout,
    rho_sensitivity_figure,
    specification_figure,
)
from alliance_core.model.nesting import AGGREGATED, INDEPENDENT
from pages._ui import state, tables

COLUMNS = ["estimate", "se", "statistic", "df", "pval", "ci_lb", "ci_ub"]


def defaults_for(name: str) -> AnalysisSettings:
    return state.default_settings(name, dataset_info(name).mapping)


def bundled(name: str):
    info = dataset_info(name)
    rows = load_dataset(name)
    return rows, info.mapping, effect_size_table(rows, info.mapping)


# -- settings, links, files -----------------------------------------------------------------
@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("inference", ["model", "CR2"])
def test_rho_and_inference_round_trip_through_link_and_file(model, inference):
    settings = AnalysisSettings(model=model, rho=0.4, inference=inference)
    query = settings.to_query()
    assert ("inf" in query) == (inference == "CR2")
    back = AnalysisSettings.from_query(query)
    assert back == (settings if settings.uses_rho else settings.with_changes(rho=DEFAULT_RHO))
    assert AnalysisSettings.from_json(settings.to_json()) == settings


def test_the_link_through_the_dashboard_keeps_rho_and_cr2():
    settings = AnalysisSettings(rho=0.8, inference="CR2", moderators=("PTR",))
    query = state.link_query(settings)
    assert query["rho"] == ["0.8"] and query["inf"] == ["CR2"]
    back, problems = state.settings_from_link(query, defaults_for)
    assert not problems
    assert back == settings


def test_an_unknown_inference_in_a_link_is_named_and_the_default_kept():
    with pytest.raises(AnalysisError, match="inf=HC3"):
        AnalysisSettings.from_query({"inf": "HC3"})
    settings, problems = state.settings_from_link({"inf": ["HC3"], "rho": ["0.6"]}, defaults_for)
    assert settings.inference == "model"
    assert any("inf=HC3" in p for p in problems)


def test_an_old_three_level_link_without_rho_opens_rho_zero_with_a_notice():
    settings, problems = state.settings_from_link({"model": ["3L"], "mod": ["PTR"]}, defaults_for)
    assert settings.model == "three-level" and settings.rho == 0
    assert settings.che_rho is None  # today's model: independent sampling errors
    assert any("ρ = 0" in p for p in problems)


def test_new_sessions_and_links_with_rho_use_the_che_default():
    fresh, problems = state.settings_from_link({}, defaults_for)
    assert fresh.rho == DEFAULT_RHO == 0.6 and fresh.che_rho == 0.6 and not problems
    linked, problems = state.settings_from_link({"model": ["3L"], "rho": ["0.6"]}, defaults_for)
    assert linked.rho == 0.6 and not problems
    # The aggregated model always had rho: its old links keep their meaning (default 0.6).
    agg, problems = state.settings_from_link({"model": ["2L-agg"]}, defaults_for)
    assert agg.rho == DEFAULT_RHO and not problems


def test_an_old_three_level_settings_file_means_rho_zero_a_new_one_keeps_rho():
    old = {"alliance_dashboard_settings": 1, **AnalysisSettings(rho=0.6).to_dict()}
    del old["inference"]
    assert AnalysisSettings.from_json(json.dumps(old)).rho == 0
    old_agg = {"alliance_dashboard_settings": 1, **AnalysisSettings(model=AGGREGATED).to_dict()}
    assert AnalysisSettings.from_json(json.dumps(old_agg)).rho == 0.6
    new = AnalysisSettings(rho=0.6).to_json()
    assert json.loads(new)["alliance_dashboard_settings"] == 3  # version 3: upload choices
    assert AnalysisSettings.from_json(new).rho == 0.6


def test_cr2_without_a_study_column_falls_back_with_a_reason():
    name = "molloy2014"
    rows, mapping, table = bundled(name)
    choices = state.offered_choices(name, mapping, table)
    rec = state.reconcile(
        state.Draft(dataset=name, model="two-level", inference="CR2"), choices, table
    )
    assert rec.settings.inference == "model"
    assert any("study column" in note for note in rec.notes)
    with pytest.raises(AnalysisError, match="study column"):
        run_analysis(
            rows,
            mapping,
            AnalysisSettings(dataset=name, model="two-level", inference="CR2", moderators=()),
        )


# -- the one place that decides the inference -----------------------------------------------
def test_cr2_run_reports_the_robust_table_and_htz_test_of_the_che_fit():
    rows, mapping, table = bundled(DEFAULT_DATASET)
    settings = AnalysisSettings(rho=0.6, inference="CR2", moderators=("PTR", "design"))
    run = run_analysis(rows, mapping, settings, table=table)
    direct = ac.fit(table, moderators=["log_PTR", "design"], cluster="study", rho=0.6)
    robust = direct.robust(method="CR2")
    np.testing.assert_allclose(run.result.beta, direct.beta, rtol=1e-10)
    pd.testing.assert_frame_equal(run.inference_table[COLUMNS], robust.coefficients[COLUMNS])
    statistic, df1, df2, pval = run.omnibus
    assert (df1, df2) == (robust.QM_df[0], pytest.approx(robust.QM_df[1]))
    assert statistic == pytest.approx(robust.QM) and pval == pytest.approx(robust.QM_pval)
    assert run.statistic_name == "t"
    np.testing.assert_allclose(run.band_vcov, robust.vcov)
    # Curves and diamonds: every point on its own df (a unit contrast: the coefficient's).
    band = run.band_inference()
    assert band.robust is run.robust
    at_one = run.predict({"log_PTR": 0.0, "design": "other"})  # x = (1, 0, 0)
    assert at_one["df"].iloc[0] == pytest.approx(robust.coefficients.loc["intrcpt", "df"])
    shown = tables.inference_coefficient_table(run)
    assert list(shown.columns[:5]) == ["Term", "Estimate", "SE", "t", "df"]
    assert shown["df"].iloc[1] == f"{robust.coefficients['df'].iloc[1]:.1f}"


def test_model_based_run_reports_the_fit_and_rho_zero_is_the_independent_model():
    rows, mapping, table = bundled(DEFAULT_DATASET)
    run = run_analysis(rows, mapping, AnalysisSettings(rho=0.0, test="t"), table=table)
    direct = ac.fit(table, moderators=["log_PTR"], cluster="study", test="t")
    assert run.robust is None and run.result.rho is None
    np.testing.assert_allclose(run.inference_table["se"], direct.coefficients["se"], rtol=1e-10)
    assert (run.inference_table["df"] == direct.ddf).all()
    assert run.omnibus[3] == pytest.approx(direct.QM_pval)
    assert run.band_inference() is None
    # Model-based predictions stay the model's own.
    pd.testing.assert_frame_equal(run.predict(transform="r"), direct.predict(transform="r"))


def most_studies(table, column: str, study: str) -> str:
    """The level with the most studies (the analysis' default reference), by plain pandas;
    ties would go to the alphabetically first level (none occurs in these datasets)."""
    counts = table.groupby(column)[study].nunique()
    assert (counts == counts.max()).sum() == 1
    return str(counts.idxmax())


def test_cr2_on_the_aggregated_two_level_model_clusters_by_study():
    rows, mapping, table = bundled("crede2010")
    settings = AnalysisSettings(
        dataset="crede2010", model=AGGREGATED, rho=0.5, inference="CR2", moderators=("source",)
    )
    run = run_analysis(rows, mapping, settings, table=table)
    studies = ac.aggregate(table, cluster="studyid", rho=0.5)
    reference = {
        "source": most_studies(table, "source", "studyid")
    }  # 'journal', not 'dissertation'
    direct = ac.fit(studies, moderators=["source"], reference=reference)
    robust = direct.robust(cluster="studyid", method="CR2")
    np.testing.assert_allclose(run.inference_table["se"], robust.coefficients["se"], rtol=1e-8)
    np.testing.assert_allclose(run.inference_table["df"], robust.coefficients["df"], rtol=1e-8)


def test_cr2_on_the_independent_two_level_model_clusters_effect_sizes_by_study():
    rows, mapping, table = bundled("assink2016")
    settings = AnalysisSettings(
        dataset="assink2016", model=INDEPENDENT, inference="CR2", moderators=("deltype",)
    )
    run = run_analysis(rows, mapping, settings, table=table)
    # The default reference is 'general' (17 studies), not the alphabetical 'covert' (1 study).
    reference = {"deltype": most_studies(table, "deltype", "study")}
    direct = ac.fit(table, moderators=["deltype"], reference=reference)
    robust = direct.robust(cluster="study", method="CR2")
    assert run.robust.n_clusters == 17
    np.testing.assert_allclose(run.inference_table["se"], robust.coefficients["se"], rtol=1e-8)


def test_few_studies_left_give_plain_warnings():
    rows, mapping, table = bundled("assink2016")
    settings = AnalysisSettings(
        dataset="assink2016",
        inference="CR2",
        moderators=(),
        filters={"pubstatus": ("0",)},  # two studies
    )
    run = run_analysis(rows, mapping, settings, table=table)
    robust = ac.fit(run.data, cluster="study", rho=0.6).robust()
    assert robust.warnings  # the engine flags it ...
    warnings = run.inference_warnings()
    assert warnings  # ... and the run says it in words
    assert robust.n_clusters == 2
    assert any("Only 2 studies" in w for w in warnings)
    small = robust.coefficients["df"][robust.coefficients["df"] < 4]
    for df in small:
        assert any(f"df = {df:.1f}" in w and "not trustworthy" in w for w in warnings)


# -- bands from the chosen inference ------------------------------------------------------------
def test_predict_with_a_robust_covariance_uses_t_on_the_given_df():
    rows, mapping, table = bundled(DEFAULT_DATASET)
    res = ac.fit(table, moderators=["log_PTR"], cluster="study", rho=0.6)
    robust = res.robust()
    df = float(robust.coefficients.loc["log_PTR", "df"])
    x = np.array([[1.0, np.log(3.0)], [1.0, np.log(12.0)]])
    out = res.predict({"log_PTR": [np.log(3.0), np.log(12.0)]}, vcov=robust.vcov, df=df)
    se = np.sqrt(np.einsum("ij,jk,ik->i", x, robust.vcov, x))
    np.testing.assert_allclose(out["se"], se, rtol=1e-12)
    crit = stats.t.ppf(0.975, df)
    np.testing.assert_allclose(out["ci_ub"], x @ res.beta + crit * se, rtol=1e-10)


def test_ptr_slope_readout_takes_the_band_inference():
    rows, mapping, table = bundled(DEFAULT_DATASET)
    run = run_analysis(rows, mapping, AnalysisSettings(inference="CR2"), table=table)
    band = run.band_inference()
    assert isinstance(band, BandInference) and "own Satterthwaite df" in band.label
    model = ptr_slope_readout(run.result, ptr_column="PTR", from_ptr=2, to_ptr=8)
    robust = ptr_slope_readout(run.result, ptr_column="PTR", from_ptr=2, to_ptr=8, band=band)
    assert robust.difference_z == pytest.approx(model.difference_z)
    # log(8) - log(2) times the slope's robust SE: the contrast has one non-zero entry.
    expected = np.log(4.0) * run.robust.coefficients.loc["log_PTR", "se"]
    assert robust.difference_z_se == pytest.approx(expected, rel=1e-10)
    # PTR enters as one term, so the change's own df is the slope's (df is scale-invariant).
    df = run.robust.coefficients.loc["log_PTR", "df"]
    assert robust.df == pytest.approx(df, rel=1e-10)
    half = robust.difference_z_ci[1] - robust.difference_z
    assert half == pytest.approx(stats.t.ppf(0.975, df) * expected, rel=1e-8)
    assert robust.pval == pytest.approx(2 * stats.t.sf(abs(robust.statistic), df), rel=1e-8)


# -- overview: the within-study LRT; sensitivity across rho --------------------------------------
def test_within_study_test_is_compare_against_sigma2_es_held_at_zero():
    rows, mapping, table = bundled("assink2016")
    run = run_analysis(
        rows, mapping, AnalysisSettings(dataset="assink2016", moderators=()), table=table
    )
    full = ac.fit(table, cluster="study", rho=0.6)
    reduced = ac.fit(table, cluster="study", rho=0.6, fix_sigma2={"es": 0})
    expected = ac.compare(full, reduced)
    lrt = within_study_test(run)
    assert lrt.df == expected.df == 1
    assert pytest.approx(expected.LRT) == lrt.LRT and lrt.pval == pytest.approx(expected.pval)


def test_rho_sensitivity_refits_each_rho_with_both_inferences():
    rows, mapping, table = bundled(DEFAULT_DATASET)
    settings = AnalysisSettings(rho=0.6, inference="CR2")
    out = rho_sensitivity(rows, mapping, settings, "log_PTR", table=table)
    assert sorted(set(out["rho"])) == list(RHO_GRID)
    assert out["current"].sum() == 1
    assert out.loc[out["current"], "inference"].item() == "CR2"
    for rho in (0.0, 0.8):
        fitted = ac.fit(table, moderators=["log_PTR"], cluster="study", rho=rho or None)
        model = out[(out["rho"] == rho) & (out["inference"] == "model")].iloc[0]
        robust = out[(out["rho"] == rho) & (out["inference"] == "CR2")].iloc[0]
        assert model["se"] == pytest.approx(fitted.coefficients.loc["log_PTR", "se"])
        assert robust["df"] == pytest.approx(fitted.robust().coefficients.loc["log_PTR", "df"])
    fig = rho_sensitivity_figure(out, "log_PTR")
    assert len(fig.data) == 2


def test_rho_sensitivity_of_a_model_without_rho_has_one_row_per_inference():
    rows, mapping, table = bundled("assink2016")
    settings = AnalysisSettings(dataset="assink2016", model=INDEPENDENT, moderators=("deltype",))
    out = rho_sensitivity(rows, mapping, settings, "deltype" + "2", table=table)
    assert len(out) == 2 and set(out["inference"]) == {"model", "CR2"}


# -- the specification curve's rho and inference dimensions -------------------------------------
def test_specification_curve_crosses_rho_and_inference_with_the_engines_numbers():
    from alliance_core.analyses.specification import specification_curve

    rows, mapping, table = bundled(DEFAULT_DATASET)
    curve = specification_curve(
        rows,
        mapping,
        "log_PTR",
        ["design"],
        models=("three-level",),
        rhos=(None, 0.6),
        inferences=("model", "CR2"),
    )
    assert len(curve.table) == 2 * 2 * 2  # subsets x rho x inference
    label = curve.find(["design"], model="three-level", rho=0.6, inference="CR2")
    row = curve.table.loc[label]
    fitted = ac.fit(table, moderators=["log_PTR", "design"], cluster="study", rho=0.6)
    robust = fitted.robust().coefficients.loc["log_PTR"]
    for column in ("estimate", "se", "pval", "ci_lb", "ci_ub"):
        assert row[column] == pytest.approx(robust[column], rel=1e-5), column
    independent = curve.table.loc[curve.find([], model="three-level", rho=None)]
    plain = ac.fit(table, moderators=["log_PTR"], cluster="study").coefficients.loc["log_PTR"]
    assert independent["se"] == pytest.approx(plain["se"], rel=1e-5)
    choices = [
        trace.meta["choice"]
        for trace in specification_figure(curve).data
        if trace.meta and "choice" in trace.meta
    ]
    assert "ρ = 0.6" in choices and "CR2 inference" in choices


def test_specification_curve_refuses_cr2_without_a_study_column():
    from alliance_core.analyses.specification import specification_curve

    rows, mapping, table = bundled("molloy2014")
    with pytest.raises(AnalysisError, match="study column"):
        specification_curve(
            table,
            {"yi": "yi", "vi": "vi"},
            "meanage",
            [],
            models=("two-level",),
            inferences=("CR2",),
        )


def test_readings_use_the_chosen_inference():
    from alliance_core.formatting import format_p
    from alliance_core.wording import reading

    rows, mapping, table = bundled(DEFAULT_DATASET)
    run = run_analysis(
        rows, mapping, AnalysisSettings(inference="CR2", moderators=("PTR", "design")), table=table
    )
    robust = run.robust
    words = reading.moderator_test(run.result, omnibus=run.omnibus)
    assert f"F({robust.QM_df[0]}, {robust.QM_df[1]:.1f}) = {robust.QM:.2f}" in words
    assert format_p(robust.QM_pval, symbol=False) in words
    ptr = reading.ptr_effect(run.result, "log_PTR", coefficients=run.inference_table)
    assert format_p(robust.coefficients.loc["log_PTR", "pval"], symbol=False) in ptr
    model_words = reading.ptr_effect(run.result, "log_PTR")
    assert format_p(run.result.coefficients.loc["log_PTR", "pval"], symbol=False) in model_words
