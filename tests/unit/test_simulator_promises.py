"""The Simulator keeps its promises: shares over many literatures, the default seed rule, the
patient-level panel's closed-form expectation, and the Simulator's link.

Truths used: the between-therapist slope of therapist means is λ·γ_b + (1 − λ)·γ_w with
λ = ICC / (ICC + (1 − ICC)/m) (checked against a large seeded simulation with known γ's); the
promise shares stored in alliance_core/teaching/promises.json are checked seed by seed (the first
seeds recomputed exactly) and against fresh literatures within a binomial tolerance.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from alliance_core.teaching.promises import (
    PANEL_PER_THERAPIST,
    PROMISE_LITERATURES,
    LiteratureOutcome,
    PromiseShare,
    first_typical_seed,
    literature_outcome,
    mean_alliance_reliability,
    panel_fit,
    patient_expectation,
    stored_shares,
)
from alliance_core.teaching.simulate import SimulationParameters, simulate_patients
from alliance_core.teaching.simulator import DEFAULT_SEED, PRESETS, R_AXIS_RANGE, run_simulation
from alliance_core.teaching.simulator_view import PRESET_CODES, SLIDERS, SimulatorView

# Fresh literatures for the tolerance check: seeds the stored file does not use.
FRESH_SEEDS = range(10_001, 10_031)


# -- the patient-level expectation -----------------------------------------------------------
@pytest.mark.parametrize(("icc", "m"), [(0.25, 8), (0.6, 8), (0.1, 3), (0.25, 40)])
def test_reliability_is_spearman_brown(icc, m):
    # The same quantity written the Spearman–Brown way: m·ICC / (1 + (m − 1)·ICC).
    assert mean_alliance_reliability(icc, m) == pytest.approx(m * icc / (1 + (m - 1) * icc))


@pytest.mark.parametrize("name", list(PRESETS))
def test_between_slope_expectation_matches_a_large_simulation(name):
    """Known truth: therapist means of 4,000 therapists, regressed by least squares."""
    params = replace(PRESETS[name].params, seed=11)
    therapists, m = 4000, PANEL_PER_THERAPIST
    patients = simulate_patients(params, therapists * m, therapists, rng=11)
    means = patients.groupby("therapist")[["alliance", "outcome"]].mean()
    slope = np.polyfit(means["alliance"], means["outcome"], 1)[0]
    residual = means["outcome"] - np.polyval(
        np.polyfit(means["alliance"], means["outcome"], 1), means["alliance"]
    )
    se = residual.std(ddof=2) / (means["alliance"].std(ddof=1) * math.sqrt(therapists - 1))
    expected = patient_expectation(params, m).between
    assert abs(slope - expected) < 4 * se


def test_the_shrinkage_sentence_gives_its_size():
    params = PRESETS["Only therapists matter"].params
    expected = patient_expectation(params, 8)
    text = expected.sentence()
    lam = params.icc / (params.icc + (1 - params.icc) / 8)
    assert f"{lam:.2f}" in text and f"{lam * params.slope_between:.2f}" in text
    assert "not the 1.80 set above" in text


# -- the default seed ------------------------------------------------------------------------
def test_the_default_seed_is_the_first_typical_seed():
    assert first_typical_seed() == DEFAULT_SEED
    assert all(preset.params.seed == DEFAULT_SEED for preset in PRESETS.values())


@pytest.mark.parametrize(
    ("name", "difference"),
    [("Only therapists matter", 1), ("Only patients matter", -1), ("Both equal", 0)],
)
def test_the_patient_panel_agrees_with_its_preset_at_the_default_seed(name, difference):
    """What the panel's sentence says about the difference follows the preset's world."""
    fit = panel_fit(PRESETS[name].params, DEFAULT_SEED)
    if difference == 0:
        assert fit.difference.pval >= 0.05
        assert "do not differ significantly" in fit.describe()
    else:
        assert fit.difference.pval < 0.05 and np.sign(fit.difference.estimate) == difference
    if name == "Only patients matter":  # the between slope set to 0 is not found significant
        assert fit.between.pval >= 0.05


# -- promise shares --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shares() -> dict[str, PromiseShare]:
    return stored_shares()


def test_every_preset_has_its_stored_shares(shares):
    assert set(shares) == set(PRESETS)
    for share in shares.values():
        assert [o.seed for o in share.outcomes] == list(range(1, PROMISE_LITERATURES + 1))


@pytest.mark.parametrize("name", list(PRESETS))
def test_the_first_stored_literatures_recompute_exactly(shares, name):
    for outcome in shares[name].outcomes[:3]:
        assert literature_outcome(PRESETS[name], outcome.seed) == outcome


@pytest.mark.parametrize("name", list(PRESETS))
def test_fresh_literatures_agree_with_the_stored_shares(shares, name):
    fresh = PromiseShare(
        name,
        PRESETS[name].direction,
        tuple(literature_outcome(PRESETS[name], seed) for seed in FRESH_SEEDS),
    )
    for what in ("fell", "clear", "kept"):
        p = min(max(shares[name].share(what), 0.02), 0.98)
        tolerance = 3 * math.sqrt(p * (1 - p) / fresh.literatures) + 1 / fresh.literatures
        assert abs(fresh.share(what) - shares[name].share(what)) <= tolerance, what


@pytest.mark.parametrize("name", list(PRESETS))
def test_a_clear_preset_keeps_its_promise_in_most_literatures(shares, name):
    # The caption promises a direction; most literatures must show it.
    assert shares[name].share("fell") >= 0.75
    if PRESETS[name].clear:
        assert shares[name].share("clear") >= 0.8


def test_the_sentence_states_the_computed_shares():
    outcomes = tuple(
        LiteratureOutcome(seed, fell=seed <= 3, clear=seed <= 1, kept=seed <= 2)
        for seed in range(1, 5)
    )
    share = PromiseShare("Only therapists matter", -1, outcomes)
    text = share.sentence()
    assert "In 4 literatures" in text and "fell in 75 %" in text and "zero in 25 %" in text
    assert "held in 50 %" in text
    assert "one of the 25 %" in share.this_draw(outcomes[3])  # the slope did not fall
    assert "one of the 25 %" in share.this_draw(outcomes[0])  # clearly
    assert "as in 50 %" in share.this_draw(outcomes[2])


# -- the figure ------------------------------------------------------------------------------
def test_the_y_axis_is_the_same_for_every_preset():
    ranges = {
        name: tuple(run_simulation(replace(p.params, n_studies=40)).figure().layout.yaxis.range)
        for name, p in PRESETS.items()
    }
    assert set(ranges.values()) == {R_AXIS_RANGE}


# -- the link --------------------------------------------------------------------------------
def test_every_preset_has_a_link_code():
    assert set(PRESET_CODES.values()) == set(PRESETS)


def test_a_preset_view_round_trips_through_the_link():
    view = replace(
        SimulatorView.for_preset("Both equal"), seed=17, icc=0.35, therapists=30, per_therapist=5
    )
    query = view.to_query()
    assert query == {
        "sim": "equal",
        "seed": "17",
        "icc": "0.35",
        "therapists": "30",
        "perther": "5",
    }
    back, problems = SimulatorView.from_query({key: [value] for key, value in query.items()})
    assert back == view and problems == []
    assert not back.is_preset


def test_bad_link_values_are_named_and_skipped():
    view, problems = SimulatorView.from_query(
        {"sim": ["nobody"], "icc": ["2"], "seed": ["1.5"], "studies": ["abc"]}
    )
    assert view == SimulatorView()
    assert len(problems) == 4
    assert any("sim=nobody" in p for p in problems) and any("icc=2" in p for p in problems)


def test_every_slider_maps_to_the_view():
    fields = set(SimulatorView.__dataclass_fields__)
    assert {attribute for attribute, *_ in SLIDERS.values()} <= fields


def test_the_view_builds_the_parameters():
    view = replace(SimulatorView(), slope_between=0.5, n_studies=60)
    params = view.params
    assert isinstance(params, SimulationParameters)
    assert (params.slope_between, params.n_studies, params.seed) == (0.5, 60, DEFAULT_SEED)
