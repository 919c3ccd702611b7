"""The Publication bias page shows the engine's formal tests of the pooled model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from alliance_core.analyses import bias, bias_tests
from alliance_core.analyses.bias_verdict import bias_verdict
from alliance_core.analyses.run import run_analysis
from alliance_core.analyses.selection import selmodel as ac_selmodel
from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.data.datasets import dataset_info, load_dataset
from alliance_core.formatting import escape_markdown
from tests.app.conftest import unescaped

APP = Path(__file__).resolve().parents[2] / "app.py"


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
        f"**Egger's regression test.** {escape_markdown(bias.egger_test(res).describe(transform='r'))}"
        in shown
    )
    assert (
        f"**Begg and Mazumdar's rank correlation.** {escape_markdown(bias.rank_correlation_test(res).describe())}"
        in shown
    )
    assert (
        f"**Trim-and-fill.** {escape_markdown(bias.trim_and_fill(res).describe(transform='r'))}"
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
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
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
