"""The two-level choices on nested data, rho and the paper preset: settings, links, files,
reconciling a request with the table, the aggregated model's rows, and readings by measure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import alliance_core as ac
from alliance_core.analyses.presets import (
    DEL_RE_2021,
    apply_preset_link,
    matching_preset,
    presets_for,
)
from alliance_core.analyses.run import effect_size_table, run_analysis
from alliance_core.analyses.settings import DEFAULT_RHO, MODELS, AnalysisSettings
from alliance_core.data.datasets import DEFAULT_DATASET, dataset_info, load_dataset
from alliance_core.data.mapping import ColumnMapping
from alliance_core.errors import AnalysisError
from alliance_core.model.nesting import (
    AGGREGATED,
    INDEPENDENT,
    aggregated_rows,
    independence_warning,
    is_nested,
)
from alliance_core.wording import reading
from pages._ui import sensitivity_tables as display
from pages._ui import state, tables


def defaults_for(name: str) -> AnalysisSettings:
    return state.default_settings(name, dataset_info(name).mapping)


def reconciled(name: str, **draft):
    info = dataset_info(name)
    table = effect_size_table(load_dataset(name), info.mapping)
    choices = state.offered_choices(name, info.mapping, table)
    return state.reconcile(state.Draft(dataset=name, **draft), choices, table)


# -- settings, links and files -----------------------------------------------------------------
@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("rho", [0.0, 0.35, 0.6, 0.99])
def test_every_model_and_rho_round_trip_through_query_and_json(model, rho):
    settings = AnalysisSettings(model=model, rho=rho, moderators=("PTR", "design"))
    assert AnalysisSettings.from_query(settings.to_query()) == (
        settings if settings.uses_rho else settings.with_changes(rho=DEFAULT_RHO)
    )
    assert AnalysisSettings.from_json(settings.to_json()) == settings


def test_link_codes_of_the_models():
    assert MODELS == {
        "two-level": "2L",
        "two-level-aggregated": "2L-agg",
        "two-level-independent": "2L-ind",
        "three-level": "3L",
    }
    query = AnalysisSettings(model=AGGREGATED, rho=0.45).to_query()
    assert query["model"] == "2L-agg" and query["rho"] == "0.45"
    # rho is the CHE working correlation of the three-level model: its links carry it.
    assert AnalysisSettings(model="three-level", rho=0.3).to_query()["rho"] == "0.3"
    assert "rho" not in AnalysisSettings(model=INDEPENDENT).to_query()


@pytest.mark.parametrize("rho", [-0.1, 1.0, 1.5, float("nan"), "high"])
def test_rho_outside_zero_to_099_is_refused(rho):
    with pytest.raises(AnalysisError, match="rho"):
        AnalysisSettings(model=AGGREGATED, rho=rho)


def test_a_malformed_rho_in_a_link_is_named_and_the_rest_of_the_link_applies():
    settings, problems = state.settings_from_link(
        {"model": ["2L-agg"], "rho": ["lots"], "mod": ["design"]}, defaults_for
    )
    assert settings.model == AGGREGATED and settings.rho == DEFAULT_RHO
    assert settings.moderators == ("design",)
    assert any("rho=lots" in p for p in problems)


def test_a_settings_file_without_rho_gets_the_default():
    old = AnalysisSettings(model=AGGREGATED).to_dict()
    del old["rho"]
    import json

    text = json.dumps({"alliance_dashboard_settings": 1, **old})
    assert AnalysisSettings.from_json(text).rho == DEFAULT_RHO


# -- reconciling a request with the table ------------------------------------------------------
def test_an_old_two_level_request_on_nested_data_becomes_the_aggregated_model_with_a_note():
    rec = reconciled(DEFAULT_DATASET, model="two-level", moderators=("PTR",))
    assert rec.settings.model == AGGREGATED
    assert any("model=2L" in note and "aggregated" in note for note in rec.notes)


@pytest.mark.parametrize("model", [AGGREGATED, INDEPENDENT])
def test_without_nesting_both_two_level_variants_are_the_plain_model(model):
    rec = reconciled("molloy2014", model=model)
    assert rec.settings.model == "two-level"
    assert any("one effect size" in note for note in rec.notes)


def test_nested_tables_offer_the_two_kinds_of_two_level_model():
    info = dataset_info(DEFAULT_DATASET)
    table = effect_size_table(load_dataset(DEFAULT_DATASET), info.mapping)
    choices = state.offered_choices(DEFAULT_DATASET, info.mapping, table)
    assert choices.nested
    assert choices.models == ("three-level", AGGREGATED, INDEPENDENT)
    molloy = dataset_info("molloy2014")
    flat = state.offered_choices(
        "molloy2014", molloy.mapping, effect_size_table(load_dataset("molloy2014"), molloy.mapping)
    )
    assert flat.models == ("two-level",)


def test_a_study_column_without_repeated_studies_offers_and_uses_the_two_level_model():
    # An uploaded sheet with a study column and one effect size per study: the three-level
    # model cannot be fitted there (the engine refuses it), so it is neither offered nor used
    # by default, and a link asking for it is answered with the model used and why.
    rng = np.random.default_rng(23)
    table = pd.DataFrame(
        {
            "study": [f"S{i}" for i in range(12)],
            "r": rng.uniform(0.1, 0.4, 12),
            "n": rng.integers(30, 200, 12),
            "n_therapists": rng.integers(2, 20, 12),
        }
    )
    mapping = ColumnMapping(study="study", r="r", n="n", n_therapists="n_therapists")
    rows = effect_size_table(table, mapping)
    choices = state.offered_choices("upload", mapping, rows)
    assert choices.has_study and not choices.nested
    assert choices.models == ("two-level",)
    default = state.default_settings("upload", mapping)
    assert default.model == "three-level"  # what a table with a study column starts from
    with pytest.raises(AnalysisError, match="exactly one effect size"):
        run_analysis(table, mapping, default)
    rec = state.reconcile(state.Draft.from_settings(default), choices, rows)
    assert rec.settings.model == "two-level"
    assert any(
        "one effect size" in note and "two-level model is used" in note for note in rec.notes
    )
    assert run_analysis(table, mapping, rec.settings).result.k == 12


# -- the aggregated model ------------------------------------------------------------------------
def test_the_aggregated_model_is_a_two_level_fit_to_aggregate_rows():
    info = dataset_info(DEFAULT_DATASET)
    data = load_dataset(DEFAULT_DATASET)
    settings = AnalysisSettings(model=AGGREGATED, rho=0.7, moderators=("PTR", "design"))
    run = run_analysis(data, info.mapping, settings)
    studies = ac.aggregate(effect_size_table(data, info.mapping), cluster="study", rho=0.7)
    direct = ac.fit(studies, moderators=["log_PTR", "design"], method="REML")
    np.testing.assert_allclose(run.result.beta, direct.beta, rtol=1e-10)
    assert run.result.tau2 == pytest.approx(direct.tau2, rel=1e-10)
    assert run.result.k == 152 and not run.result.is_three_level


def test_moderators_varying_within_studies_are_left_out_and_named():
    info = dataset_info(DEFAULT_DATASET)
    table = effect_size_table(load_dataset(DEFAULT_DATASET), info.mapping)
    rows, kept, notes = aggregated_rows(table, "study", 0.6, ("log_PTR", "alliance_rater"))
    assert kept == ("log_PTR",)
    assert len(rows) == table["study"].nunique()
    assert "log PTR" not in notes[-1] and "alliance_rater" in notes[-1]
    assert "ρ = 0.6" in notes[0]


def test_independent_two_level_fit_uses_every_row_and_is_more_precise():
    info = dataset_info(DEFAULT_DATASET)
    data = load_dataset(DEFAULT_DATASET)
    independent = run_analysis(
        data, info.mapping, AnalysisSettings(model=INDEPENDENT, moderators=("PTR",))
    ).result
    three = run_analysis(data, info.mapping, AnalysisSettings(moderators=("PTR",))).result
    assert independent.k == 811
    # The naive fit claims more precision for PTR than the model of the nesting.
    assert independent.coefficients.loc["log_PTR", "se"] < three.coefficients.loc["log_PTR", "se"]
    text = independence_warning(811, 152)
    assert "811" in text and "152" in text and "too narrow" in text


def test_plain_two_level_on_nested_rows_in_the_engine_is_the_aggregated_model():
    info = dataset_info(DEFAULT_DATASET)
    data = load_dataset(DEFAULT_DATASET)
    plain = run_analysis(data, info.mapping, AnalysisSettings(model="two-level", moderators=()))
    agg = run_analysis(data, info.mapping, AnalysisSettings(model=AGGREGATED, moderators=()))
    np.testing.assert_allclose(plain.result.beta, agg.result.beta)
    assert any("aggregated" in note for note in plain.notes)


def test_one_effect_size_cannot_be_meta_analysed():
    sheet = pd.DataFrame({"study": [1], "r": [0.3], "n": [50], "n_therapists": [5]})
    mapping = ColumnMapping(study="study", r="r", n="n", n_therapists="n_therapists")
    with pytest.raises(AnalysisError, match="one effect size.*at least two"):
        run_analysis(sheet, mapping, AnalysisSettings(moderators=("PTR",)))


def test_is_nested():
    assert is_nested(pd.DataFrame({"s": [1, 1, 2]}), "s")
    assert not is_nested(pd.DataFrame({"s": [1, 2, 3]}), "s")
    assert not is_nested(pd.DataFrame({"s": [1, 1]}), None)


# -- the paper preset ------------------------------------------------------------------------------
def test_the_paper_preset_sets_ptr_and_the_five_controls():
    assert DEL_RE_2021.moderators == (
        "PTR",
        "alliance_rater",
        "outcome_rater",
        "alliance_measure",
        "design",
        "pd",
    )
    info = dataset_info(DEFAULT_DATASET)
    table = effect_size_table(load_dataset(DEFAULT_DATASET), info.mapping)
    choices = state.offered_choices(DEFAULT_DATASET, info.mapping, table)
    assert presets_for(DEFAULT_DATASET, choices.moderators) == [DEL_RE_2021]
    assert choices.categorical["pd"] == ("no", "yes")
    assert "pd" in choices.filter_columns
    applied = DEL_RE_2021.apply(AnalysisSettings(moderators=("design",), method="REML"))
    assert matching_preset(applied) is DEL_RE_2021
    assert state.link_query(applied)["preset"] == [DEL_RE_2021.key]
    assert matching_preset(applied.with_changes(moderators=("PTR",))) is None


def test_a_preset_link_applies_and_an_unknown_or_unsuited_one_is_named():
    settings, problems = state.settings_from_link(
        {"preset": ["delre2021"], "rho": ["0.6"]}, defaults_for
    )
    assert settings.moderators == DEL_RE_2021.moderators and not problems
    _, problem = apply_preset_link(defaults_for("assink2016"), "delre2021")
    assert "alliance_simulated" in problem
    _, problem = apply_preset_link(AnalysisSettings(), "nope")
    assert "no such preset" in problem


def test_an_explicit_mod_in_the_same_link_overrides_the_preset():
    settings, _ = state.settings_from_link(
        {"preset": ["delre2021"], "mod": ["design"]}, defaults_for
    )
    assert settings.moderators == ("design",)


# -- words and tables ---------------------------------------------------------------------------
def test_readings_name_the_measure():
    info = dataset_info("assink2016")
    res = run_analysis(load_dataset("assink2016"), info.mapping, defaults_for("assink2016")).result
    text = reading.pooled_effect(res, on_r_scale=False, measure="SMD", topic="")
    pred = res.predict().iloc[0]
    assert text.startswith(
        f"The average standardized mean difference is {ac.formatting.format_number(pred['pred'])} "
    )
    assert "estimate =" not in text
    generic = reading.pooled_effect(res, on_r_scale=False, topic="")
    assert generic.startswith("The average effect size is ")
    assert reading.effect_words("ZCOR").symbol == "r"


def test_which_model_names_moderators_and_k():
    info = dataset_info(DEFAULT_DATASET)
    run = run_analysis(load_dataset(DEFAULT_DATASET), info.mapping, AnalysisSettings())
    text = reading.which_model(run.result, run.moderator_columns)
    assert text == (
        "Numbers on this page come from the model with moderators (log PTR); "
        "k = 811 effect sizes in 152 studies."
    )


def test_results_csv_can_hold_both_models_labelled():
    import io

    info = dataset_info(DEFAULT_DATASET)
    data = load_dataset(DEFAULT_DATASET)
    run = run_analysis(data, info.mapping, AnalysisSettings())
    pooled = run_analysis(data, info.mapping, AnalysisSettings(moderators=()))
    frame = pd.read_csv(io.BytesIO(tables.results_csv(run, True, pooled=pooled)))
    assert frame["model"].unique().tolist() == ["without moderators", "with moderators: log PTR"]
    qe = frame[frame["name"] == "QE"].set_index("model")["statistic"]
    assert qe["without moderators"] == pytest.approx(pooled.result.QE)
    assert qe["with moderators: log PTR"] == pytest.approx(run.result.QE)


def test_sensitivity_display_puts_ptr_first_and_effects_on_the_r_scale():
    from alliance_core.analyses.sensitivity import cumulative, leave_one_out

    info = dataset_info(DEFAULT_DATASET)
    data = load_dataset(DEFAULT_DATASET)
    res = run_analysis(data, info.mapping, AnalysisSettings()).result
    loo = leave_one_out(res)
    shown = display.leave_one_out_display(
        loo.table, unit="study", coefficient=loo.coefficient, on_r=True, has_moderators=True
    )
    assert list(shown.columns)[2:5] == ["log PTR coefficient", "log PTR 95% CI", "p (log PTR)"]
    first = loo.table.iloc[0]
    assert shown["Intercept (r)"].iloc[0] == ac.formatting.format_number(
        np.tanh(first["estimate"]), 3
    )
    pooled = run_analysis(data, info.mapping, AnalysisSettings(moderators=())).result
    steps = cumulative(pooled, order_by="year")
    chart = display.cumulative_chart(steps.table, on_r=True)
    ok = steps.table[steps.table["error"].isna()]
    np.testing.assert_allclose(chart["Pooled r"], np.tanh(ok["estimate"]))
    np.testing.assert_allclose(chart["Lower CI limit"], np.tanh(ok["ci_lb"]))
