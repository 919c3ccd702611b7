"""The Simulator page: runs, shows what alliance_core.teaching.simulator computes, and follows presets."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from alliance_core.teaching.simulator import PRESETS, run_simulation

APP = Path(__file__).resolve().parents[2] / "app.py"


@pytest.fixture
def simulator() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.run()
    at.switch_page("pages/simulator.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


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
