"""The sidebar's PTR interactions and the Moderators page's view in the link, as plain logic
(no Streamlit): reconciling an asked-for interaction with the table, and the view parameters
means=, ls= and cwb=."""

from __future__ import annotations

from alliance_core.analyses.run import effect_size_table
from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.data.datasets import DEFAULT_DATASET, dataset_info, load_dataset
from pages._ui import state, view_link


def reconciled(name: str = DEFAULT_DATASET, **draft):
    info = dataset_info(name)
    table = effect_size_table(load_dataset(name), info.mapping)
    choices = state.offered_choices(name, info.mapping, table)
    return state.reconcile(state.Draft(dataset=name, **draft), choices, table)


def defaults_for(name: str) -> AnalysisSettings:
    return state.default_settings(name, dataset_info(name).mapping)


def test_an_interaction_with_both_main_effects_is_kept_after_them():
    rec = reconciled(moderators=("PTR:alliance_rater", "PTR", "alliance_rater"))
    assert rec.settings.moderators == ("PTR", "alliance_rater", "PTR:alliance_rater")
    assert rec.notes == () and rec.refusals == ()


def test_an_interaction_written_the_other_way_round_is_the_same_interaction():
    rec = reconciled(moderators=("PTR", "alliance_rater", "alliance_rater:PTR"))
    assert rec.settings.moderators == ("PTR", "alliance_rater", "PTR:alliance_rater")


def test_removing_a_main_effect_removes_its_interaction_with_a_refusal():
    rec = reconciled(moderators=("PTR", "PTR:alliance_rater"))
    assert rec.settings.moderators == ("PTR",)
    # A refusal is shown even when the choice came from the widgets.
    assert len(rec.refusals) == 1
    assert "PTR × alliance_rater was removed" in rec.refusals[0]
    assert "'alliance_rater' is not among the moderators" in rec.refusals[0]
    rec = reconciled(moderators=("alliance_rater", "PTR:alliance_rater"))
    assert rec.settings.moderators == ("alliance_rater",)
    assert "'PTR' is not among" in rec.refusals[0]


def test_unknown_and_numeric_partners_are_named():
    rec = reconciled(moderators=("PTR", "pd_share", "PTR:nonesuch", "PTR:pd_share"))
    assert rec.settings.moderators == ("PTR", "pd_share")
    notes = " ".join(rec.notes)
    assert "'nonesuch' is not a moderator column of this table" in notes
    assert "'pd_share' is numeric" in notes


def test_an_interaction_on_a_table_without_therapist_counts_is_named():
    rec = reconciled("crede2010", moderators=("PTR", "criterion", "PTR:criterion"))
    assert rec.settings.moderators == ("criterion",)
    assert any("PTR × criterion was removed" in note for note in rec.notes)


def test_the_interaction_travels_through_a_dashboard_link():
    settings = AnalysisSettings(moderators=("PTR", "alliance_rater", "PTR:alliance_rater"))
    restored, problems = state.settings_from_link(state.link_query(settings), defaults_for)
    assert problems == []
    assert restored == settings


def test_the_moderators_page_view_round_trips():
    query = view_link.view_query(means="design", scale=True, cwb="alliance_rater")
    assert query == {"means": ["design"], "ls": ["on"], "cwb": ["alliance_rater"]}
    view, problems = view_link.view_from_link(query)
    assert problems == []
    assert (view.means, view.scale, view.cwb) == ("design", True, "alliance_rater")
    assert set(query) <= set(view_link.VIEW_PARAMETERS)


def test_a_closed_location_scale_section_is_not_written_and_a_bad_value_is_named():
    assert view_link.view_query(scale=False) == {}
    view, problems = view_link.view_from_link({"ls": ["maybe"]})
    assert view.scale is None
    assert problems == ["Link parameter ls=maybe: it is on or off; the section stays closed."]


def test_a_link_without_the_new_view_parameters_asks_for_none_of_them():
    view, problems = view_link.view_from_link({"mod": ["PTR"], "sort": ["effect"]})
    assert problems == []
    assert (view.means, view.scale, view.cwb) == (None, None, None)
