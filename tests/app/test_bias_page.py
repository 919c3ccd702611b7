"""The Publication bias page shows the engine's formal tests of the pooled model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import alliance_core as ac
from alliance_core.analyses import bias, bias_tests
from alliance_core.analyses.bias_tests import bias_tests_of
from alliance_core.analyses.bias_verdict import bias_verdict
from alliance_core.analyses.run import run_analysis
from alliance_core.analyses.selection import selmodel as ac_selmodel
from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.analyses.small_study import NOT_PROOF
from alliance_core.analyses.state import analysis_state
from alliance_core.data.datasets import dataset_info, load_dataset
from alliance_core.formatting import escape_markdown
from tests.app.conftest import chart_specs, unescaped

APP = Path(__file__).resolve().parents[2] / "app.py"
DEFAULT = "alliance_simulated"


def open_bias_page(query: dict) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=300)
    at.query_params.update(query)
    at.run()
    at.switch_page("pages/funnel.py").run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def pooled(name: str, **settings):
    info = dataset_info(name)
    chosen = AnalysisSettings(dataset=name, moderators=(), **settings)
    return run_analysis(load_dataset(name), info.mapping, chosen).result


def test_two_level_page_reports_egger_rank_and_trim_and_fill():
    at = open_bias_page({"ds": "molloy2014"})
    res = pooled("molloy2014", model="two-level")
    shown = [md.value for md in at.markdown]
    assert (
        f"**Egger's regression test.** {escape_markdown(bias.egger_test(res).describe(transform='r', caveat=False))}"
        in shown
    )
    assert (
        f"**Begg and Mazumdar's rank correlation.** {escape_markdown(bias.rank_correlation_test(res).describe(caveat=False))}"
        in shown
    )
    assert (
        f"**Trim-and-fill.** {escape_markdown(bias.trim_and_fill(res).describe(transform='r', caveat=False))}"
        in shown
    )


def test_three_level_trim_and_fill_runs_on_study_aggregates_and_says_so():
    at = open_bias_page({})
    text = next(md.value for md in at.markdown if md.value.startswith("**Trim-and-fill.**"))
    assert "aggregated effect per study" in text


def test_trim_and_fill_after_knapp_hartung_says_the_filled_model_uses_z_tests():
    at = open_bias_page({"ds": "molloy2014", "test": "t"})
    res = pooled("molloy2014", model="two-level", test="t")
    assert res.test == "knha"
    expected = bias.trim_and_fill(res)
    assert expected.k0 > 0 and expected.adjusted.test == "z"
    shown = [md.value for md in at.markdown]
    assert any(
        "As in metafor's trimfill, the model with the filled effect sizes uses z tests"
        in unescaped(text)
        for text in shown
    )


def test_selection_model_shows_the_adjusted_estimate_and_switches_cuts():
    at = open_bias_page({"ds": "molloy2014"})
    res = pooled("molloy2014", model="two-level")
    shown = [md.value for md in at.markdown]
    three = ac_selmodel(res, steps=(0.025,), cluster=res.cluster).describe(transform="r")
    assert escape_markdown(three) in shown
    at.radio(key="funnel:cuts").set_value("Two cuts (.025 and .5)").run()
    assert not at.exception, [e.message for e in at.exception]
    two = ac_selmodel(res, steps=(0.025, 0.5), cluster=res.cluster).describe(transform="r")
    assert escape_markdown(two) in [md.value for md in at.markdown]


def test_three_level_selection_model_is_cluster_robust_and_says_so():
    at = open_bias_page({})
    text = next(md.value for md in at.markdown if md.value.startswith("Adjusted for selection"))
    assert "cluster\\-robust over" in text


def test_funnel_shows_the_selection_model_estimate_of_the_chosen_cuts():
    at = open_bias_page({"ds": "molloy2014"})
    res = pooled("molloy2014", model="two-level")
    at.radio(key="funnel:cuts").set_value("Two cuts (.025 and .5)").run()
    at.run()  # the funnel above the choice follows it on the next run
    figure = chart_specs(at)[0]
    line = next(
        t for t in figure["data"] if (t.get("meta") or {}).get("role") == "selection estimate"
    )
    expected = ac_selmodel(res, steps=(0.025, 0.5)).estimate
    assert line["x"][0] == pytest.approx(np.tanh(expected), rel=1e-9)


def test_one_verdict_comes_first_and_matches_the_engine():
    at = open_bias_page({"ds": "molloy2014"})
    res = pooled("molloy2014", model="two-level")
    expected = bias_verdict(
        bias_tests.run_bias_tests(res), res, ac_selmodel(res, steps=(0.025,)), transform="r"
    )
    verdicts = [md.value for md in at.markdown if md.value.startswith("**Verdict.**")]
    assert verdicts == [f"**Verdict.** {escape_markdown(expected)}"]


def test_the_cut_choice_travels_in_the_link():
    res = pooled("molloy2014", model="two-level")
    two = escape_markdown(ac_selmodel(res, steps=(0.025, 0.5)).describe(transform="r"))
    at = open_bias_page({"ds": "molloy2014", "cuts": "two"})
    assert two in [md.value for md in at.markdown]
    assert at.radio(key="funnel:cuts").value == "Two cuts (.025 and .5)"
    assert at.query_params["cuts"] == "two"
    at.radio(key="funnel:cuts").set_value("3PSM (.025)").run()
    assert "cuts" not in at.query_params  # the default stays out of the link


def test_a_cut_choice_the_page_does_not_offer_is_named_in_a_warning():
    at = open_bias_page({"ds": "molloy2014", "cuts": "<b>five</b>"})
    warnings = [w.value for w in at.warning]
    shown = escape_markdown("Link parameter cuts=<b>five</b>: not available")
    assert any(w.startswith(shown) for w in warnings), warnings
    assert at.radio(key="funnel:cuts").value == "3PSM (.025)"


def state_of(name: str, **settings):
    info = dataset_info(name)
    chosen = AnalysisSettings(dataset=name, moderators=(), **settings)
    return analysis_state(load_dataset(name), info.mapping, chosen)


def page_text(at: AppTest) -> list[str]:
    return [
        unescaped(e.value) for kind in (at.markdown, at.caption, at.warning, at.info) for e in kind
    ]


def verdict_of(at: AppTest) -> str:
    verdicts = [md.value for md in at.markdown if md.value.startswith("**Verdict.**")]
    assert len(verdicts) == 1
    return unescaped(verdicts[0])


def reading_of(at: AppTest, name: str) -> str:
    return next(md.value for md in at.markdown if md.value.startswith(f"**{name}.**"))


@pytest.mark.parametrize(
    "query", [{}, {"inf": "CR2"}, {"ds": "molloy2014"}], ids=["default", "cr2", "two-level"]
)
def test_the_not_proof_caveat_is_said_once_on_the_page(query):
    at = open_bias_page(query)
    text = " ".join(page_text(at))
    assert text.count("not proof of publication bias") == 1
    assert NOT_PROOF not in text  # the per-test copy of the caveat is gone
    assert "not proof of publication bias" in verdict_of(at)


def test_under_cr2_the_tests_are_the_states_cluster_robust_ones_and_the_verdict_says_so():
    at = open_bias_page({"inf": "CR2"})
    state = state_of(DEFAULT, inference="CR2")
    assert state.pooled.robust is not None
    tests = bias_tests_of(state)
    assert tests.egger.robust is not None and tests.pet_peese.pet_robust is not None
    verdict = verdict_of(at)
    assert "cluster-robust (CR2)" in verdict and tests.inference_sentence() in verdict
    egger = escape_markdown(tests.egger.describe(transform="r", caveat=False))
    assert reading_of(at, "Egger's regression test") == f"**Egger's regression test.** {egger}"
    assert "tested cluster-robustly (CR2 by study" in unescaped(egger)
    pet = escape_markdown(tests.pet_peese.describe(transform="r", caveat=False))
    assert reading_of(at, "PET-PEESE") == f"**PET-PEESE.** {pet}"
    captions = [c.value for c in at.caption]
    assert any("Egger's test and PET-PEESE are tested cluster-robustly" in c for c in captions)


def test_model_based_three_level_tests_refit_the_three_level_model():
    at = open_bias_page({})
    tests = bias_tests_of(state_of(DEFAULT))
    assert tests.egger.robust is None and tests.egger.fit.is_three_level
    assert tests.egger.fit.rho == AnalysisSettings().rho
    assert "respect the dependence (model-based tests)" in verdict_of(at)


def test_a_flagged_test_is_not_called_significant_or_non_significant():
    query = {"ds": "assink2016", "inf": "CR2", "keep": "deltype:overt"}
    at = open_bias_page(query)
    state = state_of("assink2016", inference="CR2", filters={"deltype": ("overt",)})
    assert state.pooled_flags.few_studies
    tests = bias_tests_of(state)
    assert tests.egger.caution and tests.rank.caution and tests.pet_peese.caution
    verdict = verdict_of(at)
    assert tests.trim_fill.caution
    assert "Egger's test, Begg's rank test and trim-and-fill cannot be read here" in verdict
    # Egger's test appears only in the inference sentence and among the unreadable tests.
    sentence = tests.inference_sentence()
    rest = verdict.replace(sentence, "")
    mentions = [s for s in rest.split(". ") if "Egger" in s]
    assert mentions and all("cannot be read" in s for s in mentions), mentions
    egger = unescaped(reading_of(at, "Egger's regression test"))
    assert "cannot be read" in egger
    assert "found asymmetry" not in egger and "found no clear asymmetry" not in egger
    if "The selection model" in verdict:
        assert "The selection model finds" not in verdict
        assert "whether it finds selection cannot be read here" in verdict
    pet = unescaped(reading_of(at, "PET-PEESE"))
    assert "significantly" not in pet and "cannot be read" in pet


def test_fail_safe_numbers_are_the_engines_and_orwins_target_is_chosen():
    at = open_bias_page({"ds": "molloy2014"})
    res = pooled("molloy2014", model="two-level")
    for kind in ("Rosenthal", "Orwin", "Rosenberg"):
        expected = ac.fsn(res, type=kind)
        shown = reading_of(at, kind)
        assert shown == f"**{kind}.** {escape_markdown(expected.describe('r', caveat=False))}"
        assert f"{int(expected.fsnum):,}" in unescaped(shown)
    caveat = "A fail-safe N assumes the missing results average exactly zero"
    assert sum(caveat in text for text in page_text(at)) == 1
    assert "the default target, half the average" in unescaped(reading_of(at, "Orwin"))
    at.number_input(key="funnel:orwin_target").set_value(0.05).run()
    assert not at.exception, [e.message for e in at.exception]
    chosen = ac.fsn(res, type="Orwin", target=float(np.arctanh(0.05)))
    orwin = reading_of(at, "Orwin")
    assert orwin == f"**Orwin.** {escape_markdown(chosen.describe('r', caveat=False))}"
    assert "the target chosen" in unescaped(orwin) and "r = .050" in unescaped(orwin)
    assert not [i for i in at.info if "you typed" in i.value]
    # A target on the other side of the average is read on its side, and the page says so.
    at.number_input(key="funnel:orwin_target").set_value(-0.05).run()
    assert ac.fsn(res, type="Orwin", target=float(np.arctanh(-0.05))).target > 0
    notes = [unescaped(i.value) for i in at.info if "you typed" in i.value]
    assert notes == [
        "Orwin's target lies on the side of the average effect, so the target -0.05 you typed is read as 0.05."
    ]
    assert reading_of(at, "Orwin") == orwin


def test_under_cr2_a_two_level_model_of_nested_rows_gets_a_cluster_robust_selection_model():
    at = open_bias_page({"ds": "crede2010", "model": "2L-ind", "inf": "CR2"})
    state = state_of("crede2010", model="two-level-independent", inference="CR2")
    res = state.pooled.result
    assert not res.is_three_level and state.pooled.robust.cluster
    expected = ac_selmodel(res, steps=(0.025,), cluster=state.pooled.robust.cluster)
    assert expected.vcov_type == "robust"
    # The unadjusted average is given with the state's own (CR2) interval, as on the Overview.
    shown = next(md.value for md in at.markdown if md.value.startswith("Adjusted for selection"))
    assert shown.startswith(escape_markdown(expected.describe(transform="r").split(", against")[0]))
    tests = bias_tests_of(state)
    assert tests.egger.robust.n_clusters == state.pooled.robust.n_clusters
    assert "cluster-robust (CR2)" in verdict_of(at)


def test_under_cr2_the_selection_model_quotes_the_overviews_pooled_interval():
    # The reviewer's state: the selection model's unadjusted fit has a model-based interval,
    # the Overview the CR2 one; the page quotes the Overview's, and says which it is.
    query = {"ds": "assink2016", "mod": "deltype", "inf": "CR2"}
    at = open_bias_page(query)
    overview = AppTest.from_file(str(APP), default_timeout=300)
    overview.query_params.update(query)
    overview.run()
    state = state_of("assink2016", model="three-level", inference="CR2")
    pred = state.pooled_prediction()
    interval = f"95% CI [{pred['ci_lb']:.2f}, {pred['ci_ub']:.2f}]"
    model_based = state.pooled.result.coefficients.iloc[0]
    assert interval != f"95% CI [{model_based['ci_lb']:.2f}, {model_based['ci_ub']:.2f}]"
    # The Overview shows this interval for the pooled average...
    said = f"{pred['pred']:.2f} (95% CI {pred['ci_lb']:.2f} to {pred['ci_ub']:.2f})"
    assert said in " ".join(unescaped(m.value) for m in overview.markdown)
    text = unescaped(
        next(md.value for md in at.markdown if md.value.startswith("Adjusted for selection"))
    )
    # ...and the selection section quotes it as the unadjusted average's, naming its inference.
    assert f"against {pred['pred']:.2f}, {interval} without adjustment (CR2 cluster-robust" in text
