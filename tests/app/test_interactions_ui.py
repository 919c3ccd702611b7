"""PTR x a categorical moderator chosen in the sidebar, the per-level PTR curves, and the
Moderators page's own choices (marginal means, location-scale section, wild bootstrap) in the
link.

The numbers on the page are compared with the engine's fit of the same moderators
(``ac.fit(..., moderators=["log_PTR", "alliance_rater", "log_PTR:alliance_rater"])``), whose
agreement with metafor's ``mods = ~ log_PTR * alliance_rater`` is proven against the fixtures
of tests/fixtures/interactions (tests/unit/test_interactions.py).
"""

from __future__ import annotations

import base64

import numpy as np

import alliance_core as ac
from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.data.datasets import dataset_info, load_dataset
from alliance_core.formatting import escape_markdown, format_coefficient
from alliance_core.wording.table_text import markdown_text
from pages._ui import session
from tests.app.conftest import assert_ran_cleanly, chart_specs, new_app, page_paths, run_page

INTERACTION_MODERATORS = ("PTR", "alliance_rater", "PTR:alliance_rater")


def _with_interaction(at=None):
    at = run_page("pages/moderators.py", at)
    at.multiselect(key=session.MODERATORS).select("alliance_rater").run()
    assert_ran_cleanly(at)
    at.multiselect(key=session.INTERACTIONS).select("alliance_rater").run()
    assert_ran_cleanly(at)
    return at


def _coefficient_table(at):
    return next(t.value for t in at.table if t.value.index.name == "Term")


def _curves(at) -> list[dict]:
    """The curve traces of the PTR chart (the one chart with bubbles and curves)."""
    for figure in chart_specs(at):
        traces = figure["data"]
        if any((t.get("meta") or {}).get("role") == "bubbles" for t in traces):
            return [t for t in traces if (t.get("meta") or {}).get("role") == "curve"]
    raise AssertionError("no PTR chart on the page")


def _values(array) -> np.ndarray:
    """A trace's x or y: a list, or plotly's typed array ({"dtype", "bdata"} in base64)."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array, float)


def _param(at, key: str) -> list[str]:
    value = at.query_params.get(key)
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def _engine_fit(settings: AnalysisSettings):
    """The engine's own fit of the interaction model on the rows the state analyses: the same
    data, moderators and reference levels, fitted directly by ``ac.fit``."""
    info = dataset_info(settings.dataset)
    state = ac.analysis_state(load_dataset(settings.dataset), info.mapping, settings)
    run = state.moderated
    references = {t.column: t.reference for t in run.result.design.terms if t.kind == "categorical"}
    direct = ac.fit(
        run.data,
        moderators=["log_PTR", "alliance_rater", "log_PTR:alliance_rater"],
        reference=references,
        cluster=info.mapping.study,
        method=settings.method,
        test=settings.engine_test,
        rho=settings.che_rho,
    )
    return run, direct


def test_the_interaction_is_offered_only_beside_ptr_and_a_categorical_moderator():
    at = run_page("pages/moderators.py")
    assert_ran_cleanly(at)
    # PTR alone: nothing to interact with.
    assert not [m for m in at.multiselect if m.key == session.INTERACTIONS]
    at.multiselect(key=session.MODERATORS).select("alliance_rater").run()
    assert_ran_cleanly(at)
    offered = at.multiselect(key=session.INTERACTIONS)
    assert offered.options == ["PTR × Alliance rater"]  # options shown by display name
    assert offered.value == []
    # Without PTR the interaction is not offered.
    at.multiselect(key=session.MODERATORS).unselect("PTR").run()
    assert_ran_cleanly(at)
    assert not [m for m in at.multiselect if m.key == session.INTERACTIONS]


def test_choosing_the_interaction_shows_the_interaction_model_of_the_engine():
    at = _with_interaction()
    settings = AnalysisSettings(moderators=INTERACTION_MODERATORS)
    run, direct = _engine_fit(settings)
    # The state's fit is the engine's direct fit, coefficient for coefficient.
    assert list(run.result.coefficients.index) == list(direct.coefficients.index)
    assert list(direct.coefficients.index)[-1].startswith("log_PTR:alliance_rater")
    for column in ("estimate", "se", "pval"):
        assert (run.result.coefficients[column] - direct.coefficients[column]).abs().max() < 1e-9
    shown = _coefficient_table(at)
    assert len(shown) == len(direct.coefficients)
    expected = [
        format_coefficient(row["estimate"], row["se"], minimum=3)
        for _, row in direct.coefficients.iterrows()
    ]
    assert list(shown["Estimate"]) == [estimate for estimate, _ in expected]
    assert list(shown["SE"]) == [se for _, se in expected]
    interaction_rows = [term for term in shown.index if "×" in term]
    assert len(interaction_rows) == len(direct.design.term("log_PTR:alliance_rater").labels)
    # The Wald table tests the interaction as a whole.
    wald = next(t.value for t in at.table if t.value.index.name == "Moderator")
    assert markdown_text("log PTR × alliance_rater") in list(wald.index)


def test_the_ptr_chart_draws_one_curve_per_level_of_the_interacting_moderator():
    at = _with_interaction()
    levels = load_dataset("alliance_simulated")["alliance_rater"].dropna().unique()
    curves = _curves(at)
    assert len(curves) == len(levels)
    assert sorted(c["name"] for c in curves) == sorted(
        f"alliance_rater = {level}" for level in levels
    )


def test_per_level_curves_take_their_bands_from_cr2():
    at = _with_interaction()
    at.radio(key=session.INFERENCE).set_value("CR2").run()
    assert_ran_cleanly(at)
    settings = AnalysisSettings(moderators=INTERACTION_MODERATORS, inference="CR2")
    info = dataset_info(settings.dataset)
    run = ac.analysis_state(load_dataset(settings.dataset), info.mapping, settings).moderated
    curve = next(c for c in _curves(at) if c["name"] == "alliance_rater = observer")
    # The first grid point of the observer curve: the robust prediction at the smallest PTR.
    ptr = float(run.data["PTR"].min())
    expected = run.predict(
        {"log_PTR": [float(run.data["log_PTR"].min())], "alliance_rater": ["observer"]},
        transform="r",
    )
    assert abs(_values(curve["x"])[0] - ptr) < 1e-9
    assert abs(_values(curve["y"])[0] - float(expected["pred"].iloc[0])) < 1e-9
    assert any("CR2" in c.value for c in at.caption)


def test_removing_a_main_effect_removes_its_interaction_and_says_so():
    at = _with_interaction()
    at.multiselect(key=session.MODERATORS).unselect("alliance_rater").run()
    assert_ran_cleanly(at)
    notices = " ".join(w.value for w in at.warning)
    assert escape_markdown("PTR × alliance_rater was removed") in notices
    assert escape_markdown("'alliance_rater' is not among the moderators") in notices
    assert not [t for t in _coefficient_table(at).index if "×" in t]
    assert at.session_state[session.INTERACTIONS] == []


def test_the_link_carries_and_restores_the_interaction():
    at = _with_interaction()
    assert _param(at, "mod") == list(INTERACTION_MODERATORS)
    shown = _coefficient_table(at)
    reopened = new_app()
    reopened.query_params["mod"] = list(INTERACTION_MODERATORS)
    reopened.query_params["page"] = "moderators"
    reopened.run()
    assert_ran_cleanly(reopened)
    reopened = run_page("pages/moderators.py", reopened)
    assert_ran_cleanly(reopened)
    assert reopened.multiselect(key=session.INTERACTIONS).value == ["alliance_rater"]
    assert _coefficient_table(reopened).equals(shown)


def test_a_link_interaction_without_its_main_effect_is_named_and_left_out():
    at = new_app()
    at.query_params["mod"] = ["PTR", "PTR:alliance_rater", "PTR:nonesuch"]
    at.run()  # the landing page shows what the link asked for and did not get
    assert_ran_cleanly(at)
    notices = " ".join(w.value for w in at.warning)
    assert escape_markdown("'alliance_rater' is not among the moderators") in notices
    assert escape_markdown("'nonesuch' is not a moderator column of this table") in notices
    at.switch_page("pages/moderators.py").run()
    assert_ran_cleanly(at)
    assert not [t for t in _coefficient_table(at).index if "×" in t]


def test_the_marginal_means_moderator_travels_in_the_link():
    at = run_page("pages/moderators.py")
    at.multiselect(key=session.MODERATORS).select("alliance_rater").select("design").run()
    focal = at.selectbox(key="means:focal")
    assert focal.options[:2] == ["alliance_rater", "design"]
    focal.set_value("design").run()
    assert_ran_cleanly(at)
    assert _param(at, "means") == ["design"]
    reopened = new_app()
    for key in ("mod", "means"):
        reopened.query_params[key] = at.query_params[key]
    reopened = run_page("pages/moderators.py", reopened)
    assert_ran_cleanly(reopened)
    assert reopened.selectbox(key="means:focal").value == "design"


def test_the_location_scale_section_travels_in_the_link():
    at = new_app()
    at.query_params["model"] = "2L-agg"
    at.query_params["ls"] = "on"
    at = run_page("pages/moderators.py", at)
    assert_ran_cleanly(at)
    assert at.toggle(key="tau2:on").value is True
    text = " ".join(m.value for m in at.markdown)
    assert "between-study variance τ² changes by a factor of" in text
    at.toggle(key="tau2:on").set_value(False).run()
    assert_ran_cleanly(at)
    assert "ls" not in at.query_params


def test_a_wild_bootstrap_link_asks_for_a_button_press():
    at = new_app()
    at.query_params["mod"] = ["PTR", "alliance_rater"]
    at.query_params["inf"] = "CR2"
    at.query_params["cwb"] = "alliance_rater"
    at = run_page("pages/moderators.py", at)
    assert_ran_cleanly(at)
    assert at.selectbox(key="cwb:test").value == "alliance_rater"
    assert any("press the button" in i.value for i in at.info)
    assert _param(at, "cwb") == ["alliance_rater"]
    # Not run on opening: no result sentence yet.
    assert not any("Wild bootstrap of" in m.value for m in at.markdown)


def _interaction_app():
    at = new_app()
    at.query_params["mod"] = list(INTERACTION_MODERATORS)
    at.query_params["inf"] = "CR2"
    at.run()
    assert_ran_cleanly(at)
    return at


def test_every_page_runs_on_the_interaction_model():
    """No traceback and no error on any page, the Methods page's reproduction scripts of the
    interaction model included."""
    at = _interaction_app()
    for page in page_paths():
        at.switch_page(page).run()
        assert_ran_cleanly(at)
        assert not at.error, (page, [e.value for e in at.error])
