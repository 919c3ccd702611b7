"""PTR x a categorical moderator as a setting: its names, its round trip through the link and
the settings file (old links and files keep their meaning), the columns it resolves to, and
the fit it gives, which is the engine's fit of ``["log_PTR", "rater", "log_PTR:rater"]``
(itself proven against metafor in test_interactions.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import alliance_core as ac
from alliance_core.analyses.run import resolve_moderators, run_analysis
from alliance_core.analyses.settings import (
    AnalysisSettings,
    interaction_partner,
    interactions_of,
    ptr_interaction,
)
from alliance_core.analyses.state import model_flags
from alliance_core.data.mapping import ColumnMapping
from alliance_core.figures import level_curves, ptr_curve_figure, ptr_partners
from alliance_core.wording import reading

WITH_INTERACTION = ("PTR", "rater", "PTR:rater")


@pytest.fixture
def sheet():
    """A seeded coding sheet: 24 studies, 1-4 correlations each, a PTR slope per rater."""
    rng = np.random.default_rng(2207)
    sizes = rng.integers(1, 5, 24)
    study = np.repeat(np.arange(24), sizes)
    n = rng.integers(30, 200, 24)[study]
    therapists = np.maximum(1, (n / rng.uniform(1, 25, 24)[study]).astype(int))
    rater = rng.choice(["patient", "observer", "therapist"], len(study))
    slope = pd.Series(rater).map({"patient": -0.02, "observer": -0.08, "therapist": 0.0})
    z = 0.35 + slope.to_numpy() * np.log(n / therapists) + rng.normal(0, 0.05, 24)[study]
    r = np.tanh(z + rng.normal(0, 1 / np.sqrt(n - 3)))
    return pd.DataFrame(
        {
            "study": study,
            "r": r,
            "n": n,
            "therapists": therapists,
            "rater": rater,
            "design": rng.choice(["RCT", "other"], 24)[study],
        }
    )


@pytest.fixture
def mapping():
    return ColumnMapping(
        study="study", r="r", n="n", n_therapists="therapists", moderators=("rater", "design")
    )


def test_interaction_names():
    assert ptr_interaction("rater") == "PTR:rater"
    assert interaction_partner("PTR:rater") == "rater"
    assert interaction_partner("rater:PTR") == "rater"
    for not_one in ("PTR", "rater", "PTR:PTR", "PTR:", "a:b", "PTR:a:b"):
        assert interaction_partner(not_one) is None
    assert interactions_of(("PTR", "rater", "design", "PTR:rater", "PTR:design")) == (
        "rater",
        "design",
    )


def test_the_interaction_round_trips_through_the_link_and_the_settings_file():
    settings = AnalysisSettings(moderators=WITH_INTERACTION, reference={"rater": "observer"})
    query = settings.to_query()
    assert query["mod"] == list(WITH_INTERACTION)
    assert AnalysisSettings.from_query(query) == settings
    assert AnalysisSettings.from_json(settings.to_json()) == settings
    assert json.loads(settings.to_json())["moderators"] == list(WITH_INTERACTION)


def test_old_links_and_files_without_interactions_keep_their_meaning():
    old_link = {"ds": "alliance_simulated", "model": "3L", "rho": "0.6", "mod": ["PTR", "rater"]}
    settings = AnalysisSettings.from_query(old_link)
    assert settings.moderators == ("PTR", "rater")
    assert interactions_of(settings.moderators) == ()
    old_file = json.dumps(
        {"alliance_dashboard_settings": 3, "model": "three-level", "moderators": ["PTR"]}
    )
    assert AnalysisSettings.from_json(old_file).moderators == ("PTR",)


@pytest.mark.parametrize(("scale", "column"), [("log", "log_PTR"), ("raw", "PTR")])
def test_interaction_parts_resolve_like_their_main_effects(mapping, scale, column):
    settings = AnalysisSettings(moderators=WITH_INTERACTION, ptr_scale=scale)
    assert resolve_moderators(settings, mapping) == (column, "rater", f"{column}:rater")


@pytest.mark.parametrize(
    ("moderators", "missing"),
    [(("PTR", "PTR:rater"), "'rater'"), (("rater", "PTR:rater"), "'PTR'")],
)
def test_an_interaction_without_a_main_effect_is_refused_by_name(mapping, moderators, missing):
    settings = AnalysisSettings(moderators=moderators)
    with pytest.raises(ac.AnalysisError, match=f"PTR × rater needs {missing}"):
        resolve_moderators(settings, mapping)


def test_an_interaction_needs_therapist_counts(sheet):
    without = ColumnMapping(study="study", r="r", n="n", moderators=("rater",))
    with pytest.raises(ac.AnalysisError, match="number of therapists"):
        resolve_moderators(AnalysisSettings(moderators=("rater", "PTR:rater")), without)


@pytest.mark.parametrize("inference", ["model", "CR2"])
def test_the_interaction_run_is_the_engine_fit_of_those_moderators(sheet, mapping, inference):
    settings = AnalysisSettings(moderators=WITH_INTERACTION, inference=inference)
    run = run_analysis(sheet, mapping, settings)
    references = {"rater": run.result.design.term("rater").reference}
    direct = ac.fit(
        run.data,
        moderators=["log_PTR", "rater", "log_PTR:rater"],
        reference=references,
        cluster="study",
        rho=settings.che_rho,
    )
    assert list(run.result.coefficients.index) == list(direct.coefficients.index)
    assert [name for name in direct.coefficients.index if ":" in name] == [
        f"log_PTR:rater{level}" for level in direct.design.term("rater").levels[1:]
    ]
    np.testing.assert_allclose(
        run.result.coefficients.to_numpy(), direct.coefficients.to_numpy(), rtol=1e-12
    )
    if inference == "CR2":
        robust = direct.robust(method="CR2")
        np.testing.assert_allclose(run.inference_table["se"], robust.coefficients["se"])


def test_the_aggregated_model_leaves_an_interaction_out_with_its_varying_part(sheet, mapping):
    # rater varies within studies, so one aggregated effect per study has no rater: the
    # interaction goes with it, and the note names both.
    settings = AnalysisSettings(model="two-level-aggregated", moderators=WITH_INTERACTION)
    run = run_analysis(sheet, mapping, settings)
    assert run.moderator_columns == ("log_PTR",)
    assert any("rater" in note and "log_PTR:rater" in note for note in run.notes)


def test_an_interaction_with_a_study_level_moderator_survives_aggregation(sheet, mapping):
    settings = AnalysisSettings(
        model="two-level-aggregated", moderators=("PTR", "design", "PTR:design")
    )
    run = run_analysis(sheet, mapping, settings)
    assert run.moderator_columns == ("log_PTR", "design", "log_PTR:design")
    assert "log_PTR:design" in run.result.design.term_labels


def test_level_curves_give_one_profile_per_level(sheet, mapping):
    run = run_analysis(sheet, mapping, AnalysisSettings(moderators=WITH_INTERACTION))
    res = run.result
    assert ptr_partners(res, "PTR") == ("rater",)
    curves = level_curves(res, "PTR")
    levels = res.design.term("rater").levels
    assert [p["values"] for p in curves.profiles] == [{"rater": level} for level in levels]
    figure = ptr_curve_figure(res, ptr_column="PTR", profiles=curves.profiles)
    drawn = [t for t in figure.data if (t.meta or {}).get("role") == "curve"]
    assert len(drawn) == len(levels) == sheet["rater"].nunique()
    # Each curve is its level's prediction: at the grid's first point, predict() at that level.
    for trace, level in zip(drawn, levels, strict=True):
        ptr = float(trace.x[0])
        expected = res.predict({"log_PTR": [np.log(ptr)], "rater": [level]}, transform="r")
        assert trace.y[0] == pytest.approx(float(expected["pred"].iloc[0]), abs=1e-12)


def test_no_level_curves_without_an_interaction(sheet, mapping):
    run = run_analysis(sheet, mapping, AnalysisSettings(moderators=("PTR", "rater")))
    assert ptr_partners(run.result, "PTR") == ()
    assert level_curves(run.result, "PTR") is None


def test_level_curves_follow_the_preferred_partner(sheet, mapping):
    moderators = ("PTR", "rater", "design", "PTR:rater", "PTR:design")
    run = run_analysis(sheet, mapping, AnalysisSettings(moderators=moderators))
    assert ptr_partners(run.result, "PTR") == ("rater", "design")
    chosen = level_curves(run.result, "PTR", prefer="design")
    assert chosen.column == "design" and chosen.others == ("rater",)
    assert "held at its reference level" in chosen.note()
    assert level_curves(run.result, "PTR", prefer="study").column == "rater"


def test_the_ptr_sentence_names_the_level_whose_slope_it_is(sheet, mapping):
    run = run_analysis(sheet, mapping, AnalysisSettings(moderators=WITH_INTERACTION))
    reference = run.result.design.term("rater").reference
    text = reading.ptr_effect(run.result, "log_PTR")
    assert f"with rater = {reference}" in text
    assert "each level has its own PTR slope" in text
    plain = run_analysis(sheet, mapping, AnalysisSettings(moderators=("PTR", "rater")))
    assert "its own PTR slope" not in reading.ptr_effect(plain.result, "log_PTR")


def test_an_interaction_coefficient_of_a_one_study_level_is_flagged(sheet, mapping):
    # PTR is constant within a study, so PTR x a one-study level cannot be fitted (collinear);
    # a moderator varying within studies can interact with it, and its coefficient rests on
    # that one study as the level's own coefficient does.
    lone = sheet.copy()
    first = lone["study"] == lone["study"].iloc[0]
    lone.loc[first, "rater"] = "other"  # a level seen in one study only
    lone["dose"] = np.random.default_rng(5).normal(size=len(lone))
    mapping = ColumnMapping(study="study", r="r", n="n", moderators=("rater", "dose"))
    settings = AnalysisSettings(moderators=("rater", "dose", "dose:rater"))
    run = run_analysis(lone, mapping, settings)
    flagged = {label for label, _, _ in model_flags(run).one_study_levels}
    # labels follow the order the moderators are listed in (R's term labels)
    assert {"raterother", "raterother:dose"} <= flagged
    assert "raterpatient:dose" not in flagged
