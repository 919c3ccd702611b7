"""The Simulator page: runs, shows what alliance_core.teaching.simulator computes, and follows presets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from alliance_core.teaching.promises import patient_expectation, stored_shares
from alliance_core.teaching.simulator import PRESETS, run_simulation
from tests.app.conftest import unescaped

APP = Path(__file__).resolve().parents[2] / "app.py"


@pytest.fixture
def simulator() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.run()
    at.switch_page("pages/simulator.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def link(at: AppTest, key: str) -> list[str] | None:
    """A link parameter's values as the address bar holds them (AppTest gives one as text)."""
    value = at.query_params.get(key)
    return [value] if isinstance(value, str) else value


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_simulator_shows_the_fitted_and_theoretical_slopes(simulator):
    preset = PRESETS[simulator.selectbox(key="sim:preset").value]
    expected = run_simulation(preset.params, model="three-level", method="REML", ptr_scale="log")
    shown = float(metric(simulator, "Fitted PTR slope").replace("−", "-"))
    assert shown == pytest.approx(expected.slope["estimate"], abs=5e-4)
    theory = float(metric(simulator, "Theory's slope").replace("−", "-"))
    assert theory == pytest.approx(expected.theory_slope, abs=5e-4)
    assert metric(simulator, "Effect sizes (k)") == str(expected.result.k)
    assert any("SIMULATED" in m.value for m in simulator.markdown)


def test_the_ptr_sentence_states_the_slope_shown_beside_it(simulator):
    # One fit, one format: the sentence's slope and interval are the metric's and the caption's.
    estimate = metric(simulator, "Fitted PTR slope")
    caption = next(c.value for c in simulator.caption if c.value.startswith("Fitted slope ["))
    interval = re.match(r"Fitted slope \[(\S+), (\S+)\] \(95% CI\), (p [=<>] \.\d+)", caption)
    assert interval, caption
    low, high, p_text = interval.groups()
    sentence = next(unescaped(m.value) for m in simulator.markdown if "PTR coefficient" in m.value)
    stated = re.search(
        r"coefficient (?:is )?\(?(\S+?),? \(?95% CI (\S+) to (\S+), (p [=<>] \.\d+)\)", sentence
    )
    assert stated, sentence
    assert stated.groups() == (estimate, low, high, p_text)


def test_changing_the_preset_changes_the_simulated_world(simulator):
    before = metric(simulator, "Fitted PTR slope")
    simulator.selectbox(key="sim:preset").set_value("Only patients matter").run()
    assert not simulator.exception, [e.message for e in simulator.exception]
    after = metric(simulator, "Fitted PTR slope")
    assert after != before
    # Theory for this preset: r rises with PTR, so the slope is not negative.
    assert float(metric(simulator, "Theory's slope").replace("−", "-")) > 0


def test_patient_level_part_reports_both_slopes(simulator):
    labels = {m.label for m in simulator.metric}
    assert {"Between-therapist slope", "Within-therapist slope", "Therapists"} <= labels
    assert metric(simulator, "Therapists") == "20"


@pytest.mark.parametrize("name", list(PRESETS))
def test_what_to_look_for_is_a_heading_not_a_small_caption(simulator, name):
    simulator.selectbox(key="sim:preset").set_value(name).run()
    assert not simulator.exception, [e.message for e in simulator.exception]
    preset = PRESETS[name]
    assert any(preset.look_for in h.value for h in simulator.subheader)
    assert not any(preset.look_for in c.value for c in simulator.caption)
    assert any(m.value == preset.shows for m in simulator.markdown)


def test_the_figure_says_why_theory_and_fit_differ(simulator):
    preset = PRESETS[simulator.selectbox(key="sim:preset").value]
    run = run_simulation(preset.params, model="three-level", method="REML", ptr_scale="log")
    assert [i.value for i in simulator.info if i.value == run.why_lines_differ]


# -- promises, shrinkage and the link --------------------------------------------------------
def test_the_preset_states_its_promise_as_computed_shares(simulator):
    name = simulator.selectbox(key="sim:preset").value
    sentence = stored_shares()[name].sentence()
    assert any(sentence in m.value for m in simulator.markdown)


def test_the_patient_panel_explains_the_shrinkage_with_its_size(simulator):
    preset = PRESETS[simulator.selectbox(key="sim:preset").value]
    expected = patient_expectation(preset.params, 8)
    assert [i for i in simulator.info if i.value == expected.sentence()]
    assert any(c.value == f"Expected on average: {expected.between:.3f}" for c in simulator.caption)


def test_choosing_a_preset_puts_it_and_its_values_in_the_link(simulator):
    simulator.number_input(key="sim:seed").set_value(9)
    next(b for b in simulator.button if b.label == "Run the simulation").click().run()
    assert link(simulator, "seed") == ["9"]
    simulator.selectbox(key="sim:preset").set_value("Only patients matter").run()
    assert not simulator.exception, [e.message for e in simulator.exception]
    assert link(simulator, "sim") == ["patients"]
    # A new preset brings its own world, default seed included, so the seed leaves the link.
    assert "seed" not in simulator.query_params
    assert (
        simulator.number_input(key="sim:seed").value == PRESETS["Only patients matter"].params.seed
    )
    assert link(simulator, "page") == ["simulator"]


def test_a_link_opens_its_preset_seed_and_sliders():
    at = AppTest.from_file(str(APP), default_timeout=180)
    for key, value in {"sim": "equal", "seed": "7", "perther": "12", "icc": "0.5"}.items():
        at.query_params[key] = value
    at.run()
    at.switch_page("pages/simulator.py").run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.selectbox(key="sim:preset").value == "Both equal"
    assert at.number_input(key="sim:seed").value == 7
    assert at.slider(key="sim:icc").value == 0.5
    assert at.slider(key="sim:perther").value == 12
    assert any(c.value.startswith("240 simulated patients of 20") for c in at.caption)
    assert link(at, "sim") == ["equal"] and link(at, "seed") == ["7"]


def test_a_bad_link_value_is_named():
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.query_params["sim"] = "nobody"
    at.run()
    at.switch_page("pages/simulator.py").run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("sim=nobody" in unescaped(w.value) for w in at.warning)
    assert at.selectbox(key="sim:preset").value == "Only therapists matter"
