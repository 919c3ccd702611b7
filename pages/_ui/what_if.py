"""The sidebar's what-if widgets: model, estimator, test, inference, moderators (with PTR's
interactions), reference levels and filters; the draft they describe and their state.

``sidebar.build_sidebar`` reads a draft from these widgets, reconciles it (``state.reconcile``),
writes the reconciled choices back into the widgets' state and then draws them.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from alliance_core.analyses.presets import ModelPreset, matching_preset, presets_for
from alliance_core.analyses.references import level_studies
from alliance_core.analyses.run import apply_filters
from alliance_core.analyses.settings import (
    DEFAULT_RHO,
    PTR,
    RHO_RANGE,
    AnalysisSettings,
    interaction_partner,
    interactions_of,
    ptr_interaction,
)
from alliance_core.formatting import escape_markdown
from alliance_core.model.nesting import INDEPENDENT, INFERENCE_HELP, RHO_HELP
from alliance_core.wording.glossary import with_definitions
from pages._ui import loading, session
from pages._ui.state import DataChoices, Draft, Reconciled, interaction_choices, methods_for


def draft_from_widgets(choices: DataChoices, base: AnalysisSettings) -> Draft:
    ss = st.session_state
    mains = tuple(ss.get(session.MODERATORS, main_effects(base.moderators)))
    interactions = ss.get(session.INTERACTIONS, interactions_of(base.moderators))
    moderators = (*mains, *(ptr_interaction(column) for column in interactions))
    filter_columns = ss.get(session.FILTER_COLUMNS, list(base.filters))
    filters = {
        column: tuple(ss.get(session.keep_key(column), choices.categorical.get(column, ())))
        for column in filter_columns
    }
    reference = {
        column: ss[session.reference_key(column)]
        for column in moderators
        if ss.get(session.reference_key(column)) is not None
    }
    return Draft(
        dataset=choices.dataset,
        model=ss.get(session.MODEL, base.model),
        method=ss.get(session.METHOD, base.method),
        test=ss.get(session.TEST, base.test),
        moderators=moderators,
        reference=reference,
        filters=filters,
        ptr_scale=ss.get(session.PTR_SCALE, base.ptr_scale),
        rho=ss.get(session.RHO, base.rho),
        inference=ss.get(session.INFERENCE, base.inference),
    )


def write_widget_state(rec: Reconciled, choices: DataChoices, table: pd.DataFrame) -> None:
    """Set every what-if widget to the reconciled choice before the widgets are drawn."""
    ss = st.session_state
    settings = rec.settings
    ss[session.MODEL] = settings.model
    ss[session.METHOD] = settings.method
    ss[session.TEST] = settings.test
    ss[session.MODERATORS] = list(main_effects(settings.moderators))
    ss[session.INTERACTIONS] = list(interactions_of(settings.moderators))
    ss[session.PTR_SCALE] = settings.ptr_scale
    ss[session.RHO] = settings.rho
    ss[session.INFERENCE] = settings.inference
    ss[session.FILTER_COLUMNS] = list(rec.filter_columns)
    for column in rec.filter_columns:
        ss[session.keep_key(column)] = list(rec.filter_levels[column])
    for column in settings.moderators:
        if column in choices.categorical:
            levels = rec.reference_levels(table, column)
            if levels:
                ss[session.reference_key(column)] = settings.reference.get(column, levels[0])


def what_if_widgets(rec: Reconciled, choices: DataChoices, data: loading.ActiveData) -> None:
    settings = rec.settings
    _preset_buttons(settings, choices)
    st.radio(
        "Model",
        list(choices.models),
        format_func=session.MODEL_LABELS.get,
        key=session.MODEL,
        disabled=len(choices.models) < 2,
        help="Three-level: several effect sizes per study share a study-level true effect "
        "(σ² between and within studies). Two-level: one true effect per study (τ²); when "
        "studies have several effect sizes, either combine them into one per study first "
        "(valid), or treat every effect size as its own study (too precise: not recommended).",
    )
    if not choices.has_study:
        st.caption("Three-level needs a study column; here every row is its own study.")
    if settings.uses_rho:
        st.number_input(
            "Sampling correlation within a study (ρ)",
            min_value=RHO_RANGE[0],
            max_value=RHO_RANGE[1],
            step=0.1,
            format="%.2f",
            key=session.RHO,
            help=with_definitions(
                "ρ", RHO_HELP + f" Default {DEFAULT_RHO:g}; 0 assumes independent sampling errors."
            ),
        )
    if settings.model == INDEPENDENT:
        st.warning(
            "Not recommended: effect sizes of one study are treated as independent, so "
            "intervals are too narrow and p-values too small.",
            icon=":material/warning:",
        )
    st.selectbox(
        "Estimator",
        list(methods_for(settings.model)),
        format_func=session.METHOD_LABELS.get,
        key=session.METHOD,
        help="How the heterogeneity variance is estimated. REML (restricted maximum "
        "likelihood) is the usual choice; EE assumes there is no heterogeneity at all.",
    )
    st.radio(
        "Test",
        ["z", "t"],
        format_func=session.test_labels(settings.model).get,
        key=session.TEST,
        horizontal=True,
        help="z: normal-theory tests and intervals. Knapp–Hartung / t: wider intervals that "
        "allow for the uncertainty in the heterogeneity estimate.",
    )
    st.radio(
        "Inference",
        list(session.INFERENCE_LABELS),
        format_func=session.INFERENCE_LABELS.get,
        key=session.INFERENCE,
        horizontal=True,
        disabled=not choices.has_study,
        help=with_definitions("CR2", INFERENCE_HELP, "Satterthwaite df"),
    )
    if settings.robust:
        st.caption(
            "Under CR2 every test is a t test on its Satterthwaite df; the z / t choice below "
            "applies to the model-based rows of the Sensitivity page.",
            help=with_definitions("CR2 Satterthwaite df"),
        )
    if not choices.has_study:
        st.caption(
            "Cluster-robust (CR2) inference is not offered: it groups effect sizes by study, and "
            "this table has no study column.",
            help=with_definitions("CR2"),
        )
    st.multiselect(
        "Moderators",
        list(choices.moderators),
        format_func=session.moderator_label,
        key=session.MODERATORS,
        placeholder="None: the average effect only",
        help="Study characteristics that may explain why effects differ (meta-regression). "
        "PTR is the patient–therapist ratio: patients per therapist in a study.",
    )
    offered = interaction_choices(settings.moderators, choices)
    if offered:
        st.multiselect(
            "Interactions with PTR",
            list(offered),
            format_func=session.interaction_label,
            key=session.INTERACTIONS,
            placeholder="None: one PTR slope for every study",
            help="Does the PTR slope differ between the levels of a categorical moderator? "
            "PTR × Alliance rater gives each rater its own PTR slope (metafor's "
            "mods = ~ PTR * alliance_rater). Removing PTR or the moderator removes the "
            "interaction.",
        )
    if not choices.has_therapists:
        st.caption(
            "PTR is not offered: this table has no number of therapists per study, so the "
            "patient–therapist ratio cannot be computed."
        )
    st.radio(
        "PTR enters the model as",
        list(session.PTR_SCALE_LABELS),
        format_func=session.PTR_SCALE_LABELS.get,
        key=session.PTR_SCALE,
        horizontal=True,
        disabled=PTR not in settings.moderators,
        help=with_definitions("PTR r", "log PTR: each doubling of PTR changes r equally."),
    )
    for column in settings.moderators:
        if column not in choices.categorical:
            continue
        levels = rec.reference_levels(data.table, column)
        if levels:
            studies = level_studies(
                apply_filters(data.table, rec.settings.filters), column, rec.study
            )
            single = {level for level, count in studies.items() if count == 1}
            st.selectbox(
                f"Reference level of {escape_markdown(column)}",
                list(levels),
                # A level from one study is flagged here too; choosing it as the reference is
                # refused (with the reason) when the analysis is reconciled.
                format_func=lambda level, single=single: (
                    f"{level} (1 study only)" if level in single else str(level)
                ),
                key=session.reference_key(column),
                help="The other levels' coefficients are differences from this level. The "
                "default is the level with the most studies; a level from one study cannot be "
                "the reference.",
            )
    if choices.filter_columns:
        st.multiselect(
            "Keep only some rows of",
            list(choices.filter_columns),
            key=session.FILTER_COLUMNS,
            placeholder="All rows (no filter)",
            help="What if only some studies counted? E.g. keep only observer-rated alliance.",
        )
        for column in rec.filter_columns:
            st.multiselect(
                f"Levels of {escape_markdown(column)} to keep",
                list(choices.categorical[column]),
                key=session.keep_key(column),
            )
            if not rec.filter_levels[column]:
                st.caption(
                    f"Pick at least one level of {escape_markdown(column)}; until then it "
                    "filters nothing."
                )


def _preset_buttons(settings: AnalysisSettings, choices: DataChoices) -> None:
    """One button per published specification this dataset is coded for."""
    for preset in presets_for(choices.dataset, choices.moderators):
        active = matching_preset(settings) is preset
        st.button(
            preset.label,
            key=f"preset:{preset.key}",
            on_click=_apply_preset,
            args=(preset, settings),
            disabled=active,
            icon=":material/menu_book:",
            help=preset.reference + " Sets exactly these moderators and the three-level model; "
            "take parts away afterwards to see what each contributes.",
            width="stretch",
        )
        if active:
            st.caption("The model of the paper is set (PTR and its five controls).")


def _apply_preset(preset: ModelPreset, settings: AnalysisSettings) -> None:
    """Callback: the preset's specification becomes the pending settings of the next run."""
    ss = st.session_state
    ss[session.PENDING] = preset.apply(settings)
    ss[session.NOTICES] = []


def main_effects(moderators) -> tuple[str, ...]:
    """The moderators without PTR's interactions (what the Moderators box holds)."""
    return tuple(m for m in moderators if interaction_partner(m) is None)
