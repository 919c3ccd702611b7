"""The shared what-if sidebar, the page Context, the link and the settings file.

app.py calls :func:`build_sidebar` once per run: it loads the active table, turns the sidebar's
widgets (or, on the first run, the link's query string) into valid ``AnalysisSettings`` and
leaves a :class:`Context` for the page, which the page reads with :func:`context`.
"""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.parse
from dataclasses import replace
from typing import NoReturn

import pandas as pd
import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from alliance_core.analyses.presets import ModelPreset, matching_preset, presets_for
from alliance_core.analyses.references import level_studies
from alliance_core.analyses.run import apply_filters
from alliance_core.analyses.settings import (
    DEFAULT_RHO,
    PTR,
    RHO_RANGE,
    AnalysisSettings,
    upload_choices_from_json,
)
from alliance_core.analyses.upload_choices import UploadChoices
from alliance_core.data import datasets
from alliance_core.data.datasets import DEFAULT_DATASET
from alliance_core.errors import AnalysisError
from alliance_core.formatting import escape_markdown
from alliance_core.model.nesting import INDEPENDENT, INFERENCE_HELP, RHO_HELP
from alliance_core.wording.glossary import with_definitions
from pages._ui import loading, session, upload_form
from pages._ui.loading import Context
from pages._ui.state import (
    SOURCE_BUNDLED,
    SOURCE_UPLOAD,
    UPLOAD_DATASET,
    VIEW_PARAMETERS,
    DataChoices,
    Draft,
    Reconciled,
    default_settings,
    display_title,
    link_query,
    methods_for,
    offered_choices,
    reconcile,
    settings_from_link,
    view_from_link,
)

# -- the sidebar -----------------------------------------------------------------------------
# The Context of the script run in progress: app.py sets it before running the page and clears
# it afterwards, so a page can tell whether it was reached through app.py in this very run.
_this_run = threading.local()


def set_context(ctx: loading.Context | None) -> None:
    _this_run.context = ctx


def context() -> Context:
    """The Context app.py built in this run (the page's sidebar choices and data)."""
    ctx = getattr(_this_run, "context", None)
    if ctx is None:
        _run_through_app()
    return ctx


def _run_through_app() -> NoReturn:
    """Run again, this time through app.py.

    Streamlit treats an app whose entrypoint has a ``pages/`` folder beside it as an old-style
    multipage app until ``st.navigation`` has run once in the process (AppTest resets this on
    every run). Until then a page address (``/moderators`` opened on a freshly started server,
    ``AppTest.switch_page``) runs the page script alone, without the sidebar. Doing what
    ``st.navigation`` itself does (switch that mode off) and rerunning sends the same page
    address through app.py.
    """
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
    st.rerun()


def current_query() -> dict[str, list[str]]:
    return {key: st.query_params.get_all(key) for key in st.query_params}


def page_key(page: st.Page, pages: dict[str, st.Page]) -> str:
    return next((key for key, candidate in pages.items() if candidate is page), "")


def build_sidebar(current: st.Page, pages: dict[str, st.Page]) -> Context:
    """Render the shared sidebar and return the page's Context.

    On a session's first run the link's query string becomes the pending settings; a link
    naming another page than the one opened switches to it. Pending settings (from a link or a
    settings file) are written into the widgets' session state before the widgets are drawn,
    and every sentence on what they asked for and did not get becomes a notice on the page.
    """
    ss = st.session_state
    page = page_key(current, pages)
    if session.INITIALISED not in ss:
        ss[session.INITIALISED] = True
        settings, problems = settings_from_link(current_query(), loading.defaults_for)
        view, view_problems = view_from_link(current_query())
        ss[session.LINK_VIEW] = view
        ss[session.VIEW_QUERY] = {
            key: list(values) for key, values in current_query().items() if key in VIEW_PARAMETERS
        }
        problems = [*problems, *view_problems]
        token = current_query().get(upload_form.UPLOAD_PARAMETER)
        if token and session.UPLOAD not in ss:
            stored = upload_form.restore_from_link(token[0])
            if stored is not None:
                settings = settings.with_changes(dataset=UPLOAD_DATASET)
                if stored.choices:
                    with contextlib.suppress(AnalysisError, ValueError):
                        restore_upload_choices(UploadChoices.from_dict(json.loads(stored.choices)))
            else:
                problems.append(
                    "The upload this link pointed to is no longer kept on the server (uploads "
                    "are kept for 24 hours, or until deleted); upload the file again."
                )
        ss[session.PENDING] = settings
        ss[session.NOTICES] = problems
        target = pages.get(settings.page or "")
        # Only the landing page defers to the link: an explicit page address wins.
        if target is not None and target is not current and current.url_path == "":
            st.switch_page(target)
    pending: AnalysisSettings | None = ss.pop(session.PENDING, None)
    notices = list(ss.pop(session.NOTICES, []))
    if pending is not None:
        if pending.dataset == UPLOAD_DATASET:
            ss[session.SOURCE] = SOURCE_UPLOAD
        else:
            ss[session.SOURCE] = SOURCE_BUNDLED
            ss[session.DATASET] = pending.dataset
    elif session.DATASET not in ss and session.LAST_DATASET in ss:
        ss[session.DATASET] = ss[
            session.LAST_DATASET
        ]  # back from an upload: the dataset chosen before it

    names = [info.name for info in datasets.list_datasets()]
    titles = {info.name: info.title for info in datasets.list_datasets()}
    with st.sidebar:
        st.radio(
            "Data source",
            [SOURCE_BUNDLED, SOURCE_UPLOAD],
            format_func={SOURCE_BUNDLED: "Bundled dataset", SOURCE_UPLOAD: "Your upload"}.get,
            key=session.SOURCE,
            horizontal=True,
        )
        if ss[session.SOURCE] == SOURCE_BUNDLED:
            if session.DATASET not in ss:
                ss[session.DATASET] = DEFAULT_DATASET
            # A long title would be cut by the box: it shows a short one, the whole one below.
            st.selectbox(
                "Dataset",
                names,
                format_func=lambda name: display_title(titles[name]),
                key=session.DATASET,
            )
            chosen = titles[ss[session.DATASET]]
            if display_title(chosen) != chosen:
                st.caption(escape_markdown(chosen))
            ss[session.LAST_DATASET] = ss[session.DATASET]
        data, problem = loading.active_data()
        if data is None:
            st.info(escape_markdown(problem))
            return Context(None, None, None, None, tuple(notices), problem, pages)
        if data.simulated:
            st.markdown(
                ":orange-badge[:material/science: SIMULATED] Generated for teaching, "
                "not real studies."
            )
        elif data.upload is not None:
            name = escape_markdown(data.upload.record.name)
            st.caption(f"Analysing **{name}** ({len(data.rows):,} usable rows).")

        choices = offered_choices(data.dataset, data.mapping, data.table)
        if pending is not None:
            draft = Draft.from_settings(pending.with_changes(dataset=data.dataset))
        elif ss.get(session.ACTIVE) != data.identity:
            # Another table: start from its defaults, keeping only the kind of test.
            base = default_settings(data.dataset, data.mapping)
            draft = Draft.from_settings(base.with_changes(test=ss.get(session.TEST, base.test)))
        else:
            draft = _draft_from_widgets(choices, default_settings(data.dataset, data.mapping))
        ss[session.ACTIVE] = data.identity
        reconciled = reconcile(replace(draft, page=page), choices, data.table)
        if pending is not None:
            notices += reconciled.notes
        else:
            notices += reconciled.refusals
        _write_widget_state(reconciled, choices, data.table)
        _what_if_widgets(reconciled, choices, data)
        _share_and_save(reconciled.settings, data)
    return Context(data, reconciled.settings, choices, reconciled, tuple(notices), None, pages)


def _draft_from_widgets(choices: DataChoices, base: AnalysisSettings) -> Draft:
    ss = st.session_state
    moderators = tuple(ss.get(session.MODERATORS, base.moderators))
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


def _write_widget_state(rec: Reconciled, choices: DataChoices, table: pd.DataFrame) -> None:
    """Set every what-if widget to the reconciled choice before the widgets are drawn."""
    ss = st.session_state
    settings = rec.settings
    ss[session.MODEL] = settings.model
    ss[session.METHOD] = settings.method
    ss[session.TEST] = settings.test
    ss[session.MODERATORS] = list(settings.moderators)
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


def _what_if_widgets(rec: Reconciled, choices: DataChoices, data: loading.ActiveData) -> None:
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


def share_link(settings: AnalysisSettings) -> str:
    """The address of this view: the app's URL with the settings as query parameters."""
    view = st.session_state.get(session.VIEW_QUERY, {})
    query = urllib.parse.urlencode(
        [(key, value) for key, values in (link_query(settings) | view).items() for value in values]
    )
    base = st.context.url or ""
    return f"{base}?{query}"


def upload_choices(data: loading.ActiveData) -> UploadChoices | None:
    """The uploaded sheet's choices for the settings file (None for a bundled dataset)."""
    view = data.upload
    if view is None:
        return None
    return UploadChoices(
        file_name=view.record.name,
        sha256=view.record.sha,
        columns=tuple(str(column) for column in view.uploaded.frame.columns),
        mapping=view.mapping,
        sheet=view.sheet,
        real_values=view.real_values,
        extra_codes=view.extra_codes,
        kept_apart=view.kept_apart,
    )


def _share_and_save(settings: AnalysisSettings, data: loading.ActiveData) -> None:
    with st.expander("Share or save this view", icon=":material/share:"):
        st.caption(
            "The address bar always holds every choice above: copy it (or the link below) to "
            "share this exact view."
        )
        # A slot, rewritten after the page has run (refresh_share_link): a page may add view
        # parameters (a what-if profile, a sort) after the sidebar was drawn.
        _this_run.link_slot = st.empty()
        _this_run.link_settings = settings
        _this_run.link_slot.text(share_link(settings))
        if settings.dataset == UPLOAD_DATASET:
            st.caption(
                "The address bar's link opens this upload while the server keeps it (24 "
                "hours); the link above leaves the upload out and opens these choices on the "
                "default dataset. The settings file also keeps the upload's column roles, "
                "missing codes and level merges, with the file's name and SHA-256: load it "
                "after uploading the file again."
            )
        st.download_button(
            "Download settings (JSON)",
            data=settings.to_json(upload_choices(data)),
            file_name="alliance-settings.json",
            mime="application/json",
            on_click="ignore",
            icon=":material/download:",
        )
        st.file_uploader(
            "Load settings (JSON)",
            type=["json"],
            key=session.SETTINGS_FILE,
            on_change=_load_settings_file,
        )


def _load_settings_file() -> None:
    """Callback: a settings file becomes the pending settings of the next run."""
    ss = st.session_state
    file = ss.get(session.SETTINGS_FILE)
    if file is None:
        return
    try:
        settings = AnalysisSettings.from_json(file.getvalue())
    except AnalysisError as error:
        ss[session.NOTICES] = [f"The settings file was not loaded: {error}"]
        return
    notices = []
    try:
        choices = upload_choices_from_json(file.getvalue())
    except AnalysisError as error:
        ss[session.NOTICES] = [f"The settings file was not loaded: {error}"]
        return
    names = [info.name for info in datasets.list_datasets()]
    if settings.dataset == UPLOAD_DATASET and session.UPLOAD not in ss:
        saved_for = f" ('{choices.file_name}')" if choices is not None else ""
        notices.append(
            f"These settings were saved for an uploaded table{saved_for}: upload it on the "
            "Data page, then load the settings again."
        )
        settings = settings.with_changes(dataset=DEFAULT_DATASET)
    elif settings.dataset == UPLOAD_DATASET and choices is not None:
        notices += restore_upload_choices(choices)
    elif settings.dataset not in names and settings.dataset != UPLOAD_DATASET:
        notices.append(f"No bundled dataset is called '{settings.dataset}'; the default is shown.")
        settings = settings.with_changes(dataset=DEFAULT_DATASET)
    ss[session.PENDING] = settings
    ss[session.NOTICES] = notices


def write_url(ctx: Context) -> None:
    """Mirror the settings in the address bar, only when they changed (no history noise)."""
    if ctx.settings is None:
        return
    wanted = link_query(ctx.settings) | dict(st.session_state.get(session.VIEW_QUERY, {}))
    token = st.session_state.get(session.UPLOAD_TOKEN)
    if token and ctx.data is not None and ctx.data.upload is not None:
        wanted[upload_form.UPLOAD_PARAMETER] = [token]  # a reload finds the upload again
        # ... and the Data page's choices for it, kept beside the file when they change.
        choices = json.dumps(upload_choices(ctx.data).to_dict(), sort_keys=True)
        if st.session_state.get(session.UPLOAD_SAVED_CHOICES) != choices:
            upload_form.upload_store().save_choices(token, choices)
            st.session_state[session.UPLOAD_SAVED_CHOICES] = choices
    if current_query() != wanted:
        st.query_params.from_dict(wanted)


def refresh_share_link() -> None:
    """Rewrite the sidebar's share link with the view the page has just written (app.py calls
    it after the page ran), so the link is current after every rerun."""
    slot = getattr(_this_run, "link_slot", None)
    settings = getattr(_this_run, "link_settings", None)
    if slot is not None and settings is not None:
        slot.text(share_link(settings))
    _this_run.link_slot = _this_run.link_settings = None


def _in_fragment_rerun() -> bool:
    run = get_script_run_ctx()
    return bool(run is not None and run.fragment_ids_this_run)


def take_link_view(part: str):
    """The opening link's ``part`` ("sort", "colour", "profiles", "tab" or "cuts") of the view,
    once: a page
    applies it on its first run, after which the user's choices rule."""
    ss = st.session_state
    view = ss.get(session.LINK_VIEW)
    if view is None:
        return None
    ss[session.LINK_VIEW] = replace(view, **{part: None})
    return getattr(view, part)


def write_view(query: dict[str, list[str] | None]) -> None:
    """Put view parameters (``None``: leave the parameter out) in the address bar and keep them
    there when the analysis settings change."""
    ss = st.session_state
    kept = dict(ss.get(session.VIEW_QUERY, {}))
    for key, values in query.items():
        if values:
            kept[key] = list(values)
        else:
            kept.pop(key, None)
    changed = kept != ss.get(session.VIEW_QUERY, {})
    ss[session.VIEW_QUERY] = kept
    for key, values in query.items():
        if values and st.query_params.get_all(key) != list(values):
            st.query_params[key] = list(values)
        elif not values and key in st.query_params:
            del st.query_params[key]
    if changed and _in_fragment_rerun():
        # A fragment (e.g. the what-if profiles) cannot redraw the sidebar: rerun the app once
        # so its share link carries the new view.
        st.rerun(scope="app")


def show_notices(ctx: Context) -> None:
    for notice in ctx.notices:
        # Notices quote link parameters and settings-file values: shown as text.
        st.warning(escape_markdown(notice), icon=":material/link_off:")


def restore_upload_choices(choices: UploadChoices) -> list[str]:
    """Column roles, missing codes, merges and sheet of a settings file, applied to the current
    upload when it is that file or has its columns; sentences on what differs."""
    ss = st.session_state
    record = ss[session.UPLOAD]
    columns = ss.get(session.UPLOAD_COLUMNS, ())
    differences = choices.differences(record.name, record.sha, columns)
    if record.sha == choices.sha256 or list(columns) == list(choices.columns):
        ss[session.UPLOAD_MAPPING] = choices.mapping
        ss[session.UPLOAD_SHEET] = choices.sheet
        ss[session.UPLOAD_REAL_VALUES] = choices.real_values
        ss[session.UPLOAD_EXTRA_CODES] = choices.extra_codes
        ss[session.UPLOAD_KEPT_APART] = choices.kept_apart
    return differences
