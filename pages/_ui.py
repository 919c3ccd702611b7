"""Streamlit plumbing shared by app.py and the pages.

app.py calls :func:`build_sidebar` once per run: it loads the active table (cached), turns the
sidebar's widgets (or, on the first run, the link's query string) into valid
``AnalysisSettings``, and leaves a :class:`Context` for the page. Pages call
:func:`context`, :func:`fitted` (the cached fit), the header and download helpers, and
render what ``alliance_core`` returns. Pure logic lives in ``pages/_state.py`` and
``pages/_tables.py``, where plain pytest can reach it.
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from typing import NoReturn

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from alliance_core import bias, datasets
from alliance_core.analysis import AnalysisRun, effect_size_table, run_analysis
from alliance_core.datasets import DEFAULT_DATASET, DatasetInfo
from alliance_core.errors import AnalysisError
from alliance_core.figures import export_figure
from alliance_core.fitting import fit
from alliance_core.mapping import ColumnMapping
from alliance_core.settings import PTR, AnalysisSettings
from alliance_core.uploads import (
    UploadedTable,
    ValidationReport,
    moderator_candidates,
    read_table,
    suggest_mapping,
)
from pages import _tables as tables
from pages._state import (
    SOURCE_BUNDLED,
    SOURCE_UPLOAD,
    UPLOAD_DATASET,
    DataChoices,
    Draft,
    Reconciled,
    UploadRecord,
    accept_upload,
    default_settings,
    link_query,
    mapping_key,
    methods_for,
    offered_choices,
    reconcile,
    settings_from_link,
)

LOG = logging.getLogger("alliance_dashboard")
if not LOG.handlers:  # unexpected errors go to the server console, never to the browser
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    LOG.addHandler(_handler)
    LOG.setLevel(logging.INFO)

# Shown instead of a traceback; tests look for its first words to catch unexpected failures.
UNEXPECTED = "Something went wrong on the server"

# -- session-state keys ----------------------------------------------------------------------
# Widget keys (the sidebar's widgets live in app.py, so they exist on every page).
SOURCE = "source"
DATASET = "dataset"
MODEL = "model"
METHOD = "method"
TEST = "test"
MODERATORS = "moderators"
PTR_SCALE = "ptr_scale"
FILTER_COLUMNS = "filter_columns"
SETTINGS_FILE = "settings_file"
UPLOAD_FILE = "upload_file"
# Plain keys: Streamlit never cleans them up, so they survive pages without the widget.
UPLOAD = "_upload"  # UploadRecord: the file's bytes and name, never modified
UPLOAD_MAPPING = "_upload_mapping"  # ColumnMapping the user confirmed on the Data page
UPLOAD_ERROR = "_upload_error"  # why the last file could not be read
LAST_DATASET = "_last_dataset"  # the bundled dataset to return to after an upload
PENDING = "_pending_settings"  # settings from a link or file, applied at the next run
NOTICES = "_notices"  # sentences on what a link or file asked for and did not get
INITIALISED = "_initialised"
ACTIVE = "_active_table"  # identity of the table the widgets were set up for


def reference_key(column: str) -> str:
    return f"reference:{column}"


def keep_key(column: str) -> str:
    return f"keep:{column}"


MODEL_LABELS = {
    "two-level": "Two-level (one true effect per study)",
    "three-level": "Three-level (effect sizes nested in studies)",
}
METHOD_LABELS = {
    "REML": "REML (restricted ML)",
    "ML": "ML (maximum likelihood)",
    "DL": "DL (DerSimonian–Laird)",
    "PM": "PM (Paule–Mandel)",
    "HE": "HE (Hedges)",
    "SJ": "SJ (Sidik–Jonkman)",
    "EE": "EE (equal effects)",
}
PTR_SCALE_LABELS = {"log": "log PTR", "raw": "PTR"}


def test_labels(model: str) -> dict[str, str]:
    t_label = "Knapp–Hartung" if model == "two-level" else "t (k − p df)"
    return {"z": "z (normal)", "t": t_label}


def moderator_label(name: str) -> str:
    return name


# -- the active table ------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class UploadView:
    """An upload as the Data page shows it: how it was read, mapped and checked."""

    record: UploadRecord
    uploaded: UploadedTable
    mapping: ColumnMapping
    validation: ValidationReport
    table: pd.DataFrame | None  # effect sizes of the usable rows; None if none can be analysed
    problem: str | None


@dataclass(frozen=True, eq=False)
class ActiveData:
    """The table the analysis runs on, bundled or uploaded."""

    key: str  # cache key: changes with the table and its mapping
    identity: str  # which table: a new one resets the what-if choices
    dataset: str  # AnalysisSettings.dataset
    title: str
    simulated: bool
    mapping: ColumnMapping
    rows: pd.DataFrame  # rows offered to the analysis (for an upload: the usable ones)
    table: pd.DataFrame  # effect_size_table(rows, mapping): yi, vi, PTR, log_PTR
    info: DatasetInfo | None = None
    upload: UploadView | None = None

    @property
    def correlations(self) -> bool:
        """Effects are correlations (analysed as Fisher's z, shown as r)."""
        return self.mapping.uses_correlations

    @property
    def n_studies(self) -> int:
        if self.mapping.study and self.mapping.study in self.table.columns:
            return int(self.table[self.mapping.study].nunique())
        return len(self.table)


@st.cache_data(show_spinner=False)
def bundled_tables(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A bundled dataset's rows and effect-size table (cached per dataset)."""
    info = datasets.dataset_info(name)
    rows = datasets.load_dataset(name)
    return rows, effect_size_table(rows, info.mapping)


@st.cache_data(show_spinner=False, max_entries=8)
def read_upload(sha: str, file_name: str, _content: bytes) -> UploadedTable:
    """The uploaded file as a table (cached per file content)."""
    return read_table(_content, file_name)


@st.cache_data(show_spinner=False, max_entries=16)
def _checked_upload(
    sha: str, mapping_id: str, file_name: str, _content: bytes, _mapping: ColumnMapping
) -> tuple[ValidationReport, pd.DataFrame | None, str | None]:
    report = read_upload(sha, file_name, _content).validate(_mapping)
    if not report.ok:
        return report, None, report.summary()
    try:
        return report, effect_size_table(report.usable, _mapping), None
    except AnalysisError as error:
        return report, None, str(error)


def upload_view() -> UploadView | None:
    """The current upload, read, mapped and validated (None before any upload)."""
    ss = st.session_state
    record: UploadRecord | None = ss.get(UPLOAD)
    if record is None:
        return None
    uploaded = read_upload(record.sha, record.name, record.content)
    mapping = ss.get(UPLOAD_MAPPING) or suggest_mapping(uploaded.frame.columns)
    report, table, problem = _checked_upload(
        record.sha, mapping_key(mapping), record.name, record.content, mapping
    )
    return UploadView(record, uploaded, mapping, report, table, problem)


def active_data() -> tuple[ActiveData | None, str | None]:
    """The table to analyse, or None and the reason there is none yet."""
    ss = st.session_state
    if ss.get(SOURCE, SOURCE_BUNDLED) == SOURCE_UPLOAD:
        view = upload_view()
        if view is None:
            return None, "No file uploaded yet: upload your coding sheet on the Data page."
        if view.table is None:
            return None, (
                f"'{view.record.name}' cannot be analysed yet. {view.problem} "
                "Fix the column mapping or the file on the Data page."
            )
        return (
            ActiveData(
                key=f"upload:{view.record.sha}:{mapping_key(view.mapping)}",
                identity=f"upload:{view.record.sha}",
                dataset=UPLOAD_DATASET,
                title=f"Your upload: {view.record.name}",
                simulated=False,
                mapping=view.mapping,
                rows=view.validation.usable,
                table=view.table,
                upload=view,
            ),
            None,
        )
    name = ss.get(DATASET, DEFAULT_DATASET)
    info = datasets.dataset_info(name)
    rows, table = bundled_tables(name)
    return (
        ActiveData(
            key=f"bundled:{name}",
            identity=name,
            dataset=name,
            title=info.title,
            simulated=info.simulated,
            mapping=info.mapping,
            rows=rows,
            table=table,
            info=info,
        ),
        None,
    )


def _defaults_for(dataset: str) -> AnalysisSettings:
    return default_settings(dataset, datasets.dataset_info(dataset).mapping)


# -- the fit ---------------------------------------------------------------------------------
def analysis_key(settings: AnalysisSettings) -> str:
    """Cache key of a fit: the settings without the page (every page shares one fit)."""
    return settings.with_changes(page=None).cache_key()


@st.cache_data(show_spinner="Fitting the model…", max_entries=64)
def _cached_fit(
    data_key: str, settings_key: str, _data: ActiveData, _settings: AnalysisSettings
) -> AnalysisRun | str:
    """The fitted model, or the user-facing reason it cannot be fitted (also cached, so a
    model that does not converge is not refitted on every rerun)."""
    try:
        run = run_analysis(_data.rows, _data.mapping, _settings, table=_data.table)
    except AnalysisError as error:
        return str(error)
    # Derived statistics refit the model; compute them once here so the cached copy has them.
    for name in ("R2", "tau2_ci"):
        with suppress(AnalysisError):
            getattr(run.result, name)
    return run


def fitted(ctx: Context, *, without_moderators: bool = False) -> AnalysisRun:
    """The model for the current choices; AnalysisError (a sentence for the user) if none.

    ``without_moderators`` gives the same model (data, filters, estimator, test) with no
    moderators: the pooled estimate a meta-analysis reports first.
    """
    if ctx.data is None or ctx.settings is None:
        raise AnalysisError(ctx.problem or "No data to analyse.")
    settings = ctx.settings.with_changes(moderators=()) if without_moderators else ctx.settings
    out = _cached_fit(ctx.data.key, analysis_key(settings), ctx.data, settings)
    if isinstance(out, str):
        raise AnalysisError(out)
    return out


# -- the sidebar -----------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Context:
    """What a page needs: the table, the valid settings, and the page registry."""

    data: ActiveData | None
    settings: AnalysisSettings | None
    choices: DataChoices | None
    reconciled: Reconciled | None
    notices: tuple[str, ...]
    problem: str | None
    pages: dict[str, st.Page]

    @property
    def ptr_column(self) -> str | None:
        """The model column of PTR (log_PTR or PTR) when PTR is a moderator."""
        if self.settings is None or PTR not in self.settings.moderators:
            return None
        return "log_PTR" if self.settings.ptr_scale == "log" else "PTR"


# The Context of the script run in progress: app.py sets it before running the page and clears
# it afterwards, so a page can tell whether it was reached through app.py in this very run.
_this_run = threading.local()


def set_context(ctx: Context | None) -> None:
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
    if INITIALISED not in ss:
        ss[INITIALISED] = True
        settings, problems = settings_from_link(current_query(), _defaults_for)
        ss[PENDING] = settings
        ss[NOTICES] = problems
        target = pages.get(settings.page or "")
        # Only the landing page defers to the link: an explicit page address wins.
        if target is not None and target is not current and current.url_path == "":
            st.switch_page(target)
    pending: AnalysisSettings | None = ss.pop(PENDING, None)
    notices = list(ss.pop(NOTICES, []))
    if pending is not None:
        if pending.dataset == UPLOAD_DATASET:
            ss[SOURCE] = SOURCE_UPLOAD
        else:
            ss[SOURCE] = SOURCE_BUNDLED
            ss[DATASET] = pending.dataset
    elif DATASET not in ss and LAST_DATASET in ss:
        ss[DATASET] = ss[LAST_DATASET]  # back from an upload: the dataset chosen before it

    names = [info.name for info in datasets.list_datasets()]
    titles = {info.name: info.title for info in datasets.list_datasets()}
    with st.sidebar:
        st.radio(
            "Data source",
            [SOURCE_BUNDLED, SOURCE_UPLOAD],
            format_func={SOURCE_BUNDLED: "Bundled dataset", SOURCE_UPLOAD: "Your upload"}.get,
            key=SOURCE,
            horizontal=True,
        )
        if ss[SOURCE] == SOURCE_BUNDLED:
            if DATASET not in ss:
                ss[DATASET] = DEFAULT_DATASET
            st.selectbox("Dataset", names, format_func=titles.get, key=DATASET)
            ss[LAST_DATASET] = ss[DATASET]
        data, problem = active_data()
        if data is None:
            st.info(problem)
            return Context(None, None, None, None, tuple(notices), problem, pages)
        if data.simulated:
            st.markdown(
                ":orange-badge[:material/science: SIMULATED] Generated for teaching, "
                "not real studies."
            )
        elif data.upload is not None:
            st.caption(f"Analysing **{data.upload.record.name}** ({len(data.rows):,} usable rows).")

        choices = offered_choices(data.dataset, data.mapping, data.table)
        if pending is not None:
            draft = Draft.from_settings(pending.with_changes(dataset=data.dataset))
        elif ss.get(ACTIVE) != data.identity:
            # Another table: start from its defaults, keeping only the kind of test.
            base = default_settings(data.dataset, data.mapping)
            draft = Draft.from_settings(base.with_changes(test=ss.get(TEST, base.test)))
        else:
            draft = _draft_from_widgets(choices, default_settings(data.dataset, data.mapping))
        ss[ACTIVE] = data.identity
        reconciled = reconcile(replace(draft, page=page), choices, data.table)
        if pending is not None:
            notices += reconciled.notes
        _write_widget_state(reconciled, choices, data.table)
        _what_if_widgets(reconciled, choices, data)
        _share_and_save(reconciled.settings)
    return Context(data, reconciled.settings, choices, reconciled, tuple(notices), None, pages)


def _draft_from_widgets(choices: DataChoices, base: AnalysisSettings) -> Draft:
    ss = st.session_state
    moderators = tuple(ss.get(MODERATORS, base.moderators))
    filter_columns = ss.get(FILTER_COLUMNS, list(base.filters))
    filters = {
        column: tuple(ss.get(keep_key(column), choices.categorical.get(column, ())))
        for column in filter_columns
    }
    reference = {
        column: ss[reference_key(column)]
        for column in moderators
        if ss.get(reference_key(column)) is not None
    }
    return Draft(
        dataset=choices.dataset,
        model=ss.get(MODEL, base.model),
        method=ss.get(METHOD, base.method),
        test=ss.get(TEST, base.test),
        moderators=moderators,
        reference=reference,
        filters=filters,
        ptr_scale=ss.get(PTR_SCALE, base.ptr_scale),
    )


def _write_widget_state(rec: Reconciled, choices: DataChoices, table: pd.DataFrame) -> None:
    """Set every what-if widget to the reconciled choice before the widgets are drawn."""
    ss = st.session_state
    settings = rec.settings
    ss[MODEL] = settings.model
    ss[METHOD] = settings.method
    ss[TEST] = settings.test
    ss[MODERATORS] = list(settings.moderators)
    ss[PTR_SCALE] = settings.ptr_scale
    ss[FILTER_COLUMNS] = list(rec.filter_columns)
    for column in rec.filter_columns:
        ss[keep_key(column)] = list(rec.filter_levels[column])
    for column in settings.moderators:
        if column in choices.categorical:
            levels = rec.reference_levels(table, column)
            if levels:
                ss[reference_key(column)] = settings.reference.get(column, levels[0])


def _what_if_widgets(rec: Reconciled, choices: DataChoices, data: ActiveData) -> None:
    settings = rec.settings
    st.radio(
        "Model",
        list(MODEL_LABELS),
        format_func=MODEL_LABELS.get,
        key=MODEL,
        disabled=not choices.has_study,
        help="Three-level: several effect sizes per study share a study-level true effect "
        "(σ² between and within studies). Two-level: each row is an independent study (τ²).",
    )
    if not choices.has_study:
        st.caption("Three-level needs a study column; here every row is its own study.")
    st.selectbox(
        "Estimator",
        list(methods_for(settings.model)),
        format_func=METHOD_LABELS.get,
        key=METHOD,
        help="How the heterogeneity variance is estimated. REML (restricted maximum "
        "likelihood) is the usual choice; EE assumes there is no heterogeneity at all.",
    )
    st.radio(
        "Test",
        ["z", "t"],
        format_func=test_labels(settings.model).get,
        key=TEST,
        horizontal=True,
        help="z: normal-theory tests and intervals. Knapp–Hartung / t: wider intervals that "
        "allow for the uncertainty in the heterogeneity estimate.",
    )
    st.multiselect(
        "Moderators",
        list(choices.moderators),
        format_func=moderator_label,
        key=MODERATORS,
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
        list(PTR_SCALE_LABELS),
        format_func=PTR_SCALE_LABELS.get,
        key=PTR_SCALE,
        horizontal=True,
        disabled=PTR not in settings.moderators,
        help="log PTR lets each doubling of patients per therapist change r by the same amount.",
    )
    for column in settings.moderators:
        if column not in choices.categorical:
            continue
        levels = rec.reference_levels(data.table, column)
        if levels:
            st.selectbox(
                f"Reference level of {column}",
                list(levels),
                key=reference_key(column),
                help="The other levels' coefficients are differences from this level.",
            )
    if choices.filter_columns:
        st.multiselect(
            "Keep only some rows of",
            list(choices.filter_columns),
            key=FILTER_COLUMNS,
            placeholder="All rows (no filter)",
            help="What if only some studies counted? E.g. keep only observer-rated alliance.",
        )
        for column in rec.filter_columns:
            st.multiselect(
                f"Levels of {column} to keep",
                list(choices.categorical[column]),
                key=keep_key(column),
            )
            if not rec.filter_levels[column]:
                st.caption(f"Pick at least one level of {column}; until then it filters nothing.")


def share_link(settings: AnalysisSettings) -> str:
    """The address of this view: the app's URL with the settings as query parameters."""
    query = urllib.parse.urlencode(
        [(key, value) for key, values in link_query(settings).items() for value in values]
    )
    base = st.context.url or ""
    return f"{base}?{query}"


def _share_and_save(settings: AnalysisSettings) -> None:
    with st.expander("Share or save this view", icon=":material/share:"):
        st.caption(
            "The address bar always holds every choice above: copy it (or the link below) to "
            "share this exact view."
        )
        st.code(share_link(settings), language=None, wrap_lines=True)
        if settings.dataset == UPLOAD_DATASET:
            st.caption("Uploaded data are not part of a link: it opens on the default dataset.")
        st.download_button(
            "Download settings (JSON)",
            data=settings.to_json(),
            file_name="alliance-settings.json",
            mime="application/json",
            on_click="ignore",
            icon=":material/download:",
        )
        st.file_uploader(
            "Load settings (JSON)",
            type=["json"],
            key=SETTINGS_FILE,
            on_change=_load_settings_file,
        )


def _load_settings_file() -> None:
    """Callback: a settings file becomes the pending settings of the next run."""
    ss = st.session_state
    file = ss.get(SETTINGS_FILE)
    if file is None:
        return
    try:
        settings = AnalysisSettings.from_json(file.getvalue())
    except AnalysisError as error:
        ss[NOTICES] = [f"The settings file was not loaded: {error}"]
        return
    notices = []
    names = [info.name for info in datasets.list_datasets()]
    if settings.dataset == UPLOAD_DATASET and UPLOAD not in ss:
        notices.append(
            "These settings were saved for an uploaded table: upload it on the Data page, "
            "then load the settings again."
        )
        settings = settings.with_changes(dataset=DEFAULT_DATASET)
    elif settings.dataset not in names and settings.dataset != UPLOAD_DATASET:
        notices.append(f"No bundled dataset is called '{settings.dataset}'; the default is shown.")
        settings = settings.with_changes(dataset=DEFAULT_DATASET)
    ss[PENDING] = settings
    ss[NOTICES] = notices


def write_url(ctx: Context) -> None:
    """Mirror the settings in the address bar, only when they changed (no history noise)."""
    if ctx.settings is None:
        return
    wanted = link_query(ctx.settings)
    if current_query() != wanted:
        st.query_params.from_dict(wanted)


def show_notices(ctx: Context) -> None:
    for notice in ctx.notices:
        st.warning(notice, icon=":material/link_off:")


# -- uploads (Data page callbacks) -------------------------------------------------------------
def receive_upload() -> None:
    """Callback of the Data page's uploader: keep the file, suggest a mapping, analyse it."""
    ss = st.session_state
    file = ss.get(UPLOAD_FILE)
    if file is None:  # the user removed the file
        for key in (UPLOAD, UPLOAD_MAPPING, UPLOAD_ERROR):
            ss.pop(key, None)
        ss[SOURCE] = SOURCE_BUNDLED
        return
    try:
        record, _, mapping = accept_upload(file.getvalue(), file.name, read=read_upload)
    except AnalysisError as error:
        ss[UPLOAD_ERROR] = str(error)
        return
    ss.pop(UPLOAD_ERROR, None)
    ss[UPLOAD] = record
    ss[UPLOAD_MAPPING] = mapping
    ss[SOURCE] = SOURCE_UPLOAD


MAPPING_ROLES = {
    "study": "Study",
    "es_id": "Effect-size id",
    "r": "Correlation r",
    "n": "Patients n",
    "n_therapists": "Therapists",
    "yi": "Effect size yi",
    "vi": "Sampling variance vi",
    "label": "Label",
    "year": "Year",
}


def mapping_key_of(role: str) -> str:
    return f"map:{role}"


def update_upload_mapping() -> None:
    """Callback of the mapping widgets: store the mapping they show (roles, then moderators)."""
    ss = st.session_state
    roles = {role: ss.get(mapping_key_of(role)) for role in MAPPING_ROLES}
    taken = {column for column in roles.values() if column is not None}
    moderators = tuple(m for m in ss.get(mapping_key_of("moderators"), []) if m not in taken)
    ss[UPLOAD_MAPPING] = ColumnMapping(**roles, moderators=moderators)


# -- page helpers ----------------------------------------------------------------------------
@contextmanager
def shown_errors(what: str = "This part of the page") -> Iterator[None]:
    """Show a user's mistake (AnalysisError) as its message, anything else as a short notice.

    Streamlit's own control flow (rerun, stop, page switch) derives from BaseException and
    passes through untouched.
    """
    try:
        yield
    except AnalysisError as error:
        st.error(str(error), icon=":material/error:")
    except Exception:
        LOG.exception("Unexpected error while drawing %s", what.lower())
        st.error(
            f"{UNEXPECTED}: {what.lower()} could not be shown. The rest of the dashboard still "
            "works; the details are in the server log.",
            icon=":material/error:",
        )


def describe_settings(settings: AnalysisSettings) -> str:
    model = "Three-level" if settings.model == "three-level" else "Two-level"
    test = {"z": "z", "t": "Knapp–Hartung" if settings.model == "two-level" else "t"}[settings.test]
    moderators = [
        PTR_SCALE_LABELS[settings.ptr_scale] if m == PTR else m for m in settings.moderators
    ]
    parts = [f"{model} {settings.method}", f"{test} tests"]
    parts.append("moderators: " + ", ".join(moderators) if moderators else "no moderators")
    for column, levels in settings.filters.items():
        parts.append(f"only {column} = {' / '.join(levels)}")
    return " · ".join(parts)


def page_header(title: str, ctx: Context, *, needs_data: bool = True) -> bool:
    """Title, the data and model in one line (SIMULATED when it is), and whether to go on."""
    st.title(title)
    if ctx.data is None:
        if needs_data:
            st.info(ctx.problem or "No data to analyse.", icon=":material/upload_file:")
            st.page_link(
                ctx.pages["data"], label="Go to the Data page", icon=":material/table_view:"
            )
        return not needs_data
    badge = ":orange-badge[:material/science: SIMULATED] " if ctx.data.simulated else ""
    st.markdown(f"{badge}**{ctx.data.title}**  \n{describe_settings(ctx.settings)}")
    return True


def plot(fig: go.Figure, key: str) -> None:
    st.plotly_chart(
        fig,
        key=key,
        theme="streamlit",
        # No mode bar: it would cover the figures' top rows (the forest plot's column headers)
        # on hover; dragging still zooms, a double click resets, and files come from the
        # download buttons.
        config={"displayModeBar": False},
    )


def figure_downloads(fig: go.Figure, stem: str, version: str) -> None:
    """Interactive HTML at once; PNG or SVG on request (drawn by Chromium, which takes seconds)."""
    html_col, static_col = st.columns([1, 3], vertical_alignment="bottom")
    html_col.download_button(
        "Interactive HTML",
        data=lambda: export_figure(fig, "html"),
        file_name=f"{stem}.html",
        mime="text/html",
        on_click="ignore",
        icon=":material/download:",
        key=f"{stem}:html",
    )
    with static_col:
        _static_export(fig, stem, version)


@st.fragment
def _static_export(fig: go.Figure, stem: str, version: str) -> None:
    ss = st.session_state
    store = f"_export:{stem}"
    row = st.container(horizontal=True, vertical_alignment="bottom")
    fmt = row.radio(
        "Image format", ["png", "svg"], horizontal=True, key=f"{stem}:fmt", format_func=str.upper
    )
    if row.button("Make image file", key=f"{stem}:make", icon=":material/image:"):
        with st.spinner(f"Drawing the {fmt.upper()} in a headless browser…"):
            try:
                ss[store] = (version, fmt, export_figure(fig, fmt))
            except AnalysisError as error:
                ss.pop(store, None)
                st.warning(f"No {fmt.upper()} this time: {error}")
            except Exception:
                ss.pop(store, None)
                LOG.exception("Figure export to %s failed", fmt)
                st.warning(
                    f"The {fmt.upper()} could not be drawn on this server; the interactive HTML "
                    "download works, and its camera icon saves a PNG."
                )
    made = ss.get(store)
    if made is not None and made[0] == version:
        _, made_fmt, content = made
        st.download_button(
            f"Download {made_fmt.upper()}",
            data=content,
            file_name=f"{stem}.{made_fmt}",
            mime="image/png" if made_fmt == "png" else "image/svg+xml",
            on_click="ignore",
            icon=":material/download:",
            key=f"{stem}:static",
        )


def bullet_notes(notes: Sequence[str]) -> None:
    for note in notes:
        st.caption(note)


def about_alliance(data: ActiveData) -> bool:
    """Uploads follow the alliance coding sheet; of the bundled tables only the alliance one does."""
    return data.info is None or "alliance" in data.info.name


def plain(text: str, ctx: Context) -> str:
    """A plain-language reading, without "alliance–outcome" when the data are about another link."""
    if ctx.data is not None and not about_alliance(ctx.data):
        return text.replace("alliance–outcome ", "")
    return text


def analysis_notes(run: AnalysisRun) -> None:
    """What the filter and the model left out, and the engine's own notes."""
    notes = list(run.notes) + list(run.result.notes)
    dropped = run.result.dropped
    if not dropped.empty:
        reasons = dropped["reason"].value_counts()
        notes.append(
            f"{len(dropped)} row(s) left out by the model: "
            + "; ".join(f"{count} with {reason}" for reason, count in reasons.items())
            + "."
        )
    for note in notes:
        st.caption(f":material/info: {note}")


def download_stem(ctx: Context) -> str:
    return "alliance-upload" if ctx.data.upload is not None else ctx.data.dataset


def result_downloads(run: AnalysisRun, ctx: Context) -> None:
    """Results table, analysed rows and settings; files are made only when clicked."""
    stem = download_stem(ctx)
    on_r = ctx.data.correlations
    row = st.container(horizontal=True)
    row.download_button(
        "Results (CSV)",
        data=lambda: tables.results_csv(run, on_r),
        file_name=f"{stem}-results.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
        key="download:results",
        help="Coefficients, the average effect, heterogeneity and tests, one row per number.",
    )
    row.download_button(
        "Analysed rows (CSV)",
        data=lambda: tables.data_csv(run),
        file_name=f"{stem}-analysed-rows.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
        key="download:rows",
        help="The rows the model was fitted to (after exclusions and the filter), with yi and vi.",
    )
    row.download_button(
        "Settings (JSON)",
        data=ctx.settings.to_json(),
        file_name="alliance-settings.json",
        mime="application/json",
        on_click="ignore",
        icon=":material/download:",
        key="download:settings",
        help="Load it again in the sidebar under 'Share or save this view'.",
    )


def mapping_editor(view: UploadView) -> None:
    """Which column plays which role; every change is stored at once (a callback)."""
    ss = st.session_state
    columns = list(view.uploaded.frame.columns)
    mapping = view.mapping
    for role in MAPPING_ROLES:
        ss[mapping_key_of(role)] = getattr(mapping, role)
    ss[mapping_key_of("moderators")] = list(mapping.moderators)
    grid = st.columns(3)
    for position, (role, label) in enumerate(MAPPING_ROLES.items()):
        grid[position % 3].selectbox(
            label,
            [None, *columns],
            format_func=lambda column: "— none —" if column is None else str(column),
            placeholder="— none —",
            key=mapping_key_of(role),
            on_change=update_upload_mapping,
        )
    st.multiselect(
        "Moderator columns (offered in the sidebar)",
        moderator_candidates(view.uploaded.frame, mapping),
        key=mapping_key_of("moderators"),
        on_change=update_upload_mapping,
        help="Columns with at least two values that group rows: rater, measure, design, ...",
    )


def figure_columns(data: ActiveData) -> dict[str, str]:
    """Role -> column for the figures' labels, sorting and hover text, from the mapping."""
    columns = {
        role: getattr(data.mapping, role)
        for role in ("study", "es_id", "label", "year", "n", "n_therapists")
        if getattr(data.mapping, role) is not None
    }
    if data.mapping.has_therapists:
        columns["ptr"] = "PTR"  # computed by effect_size_table
    return columns


def can_sort_by(sort: str, columns: dict[str, str], rows: pd.DataFrame) -> bool:
    """Whether the forest plot has the column a sort needs."""
    if sort in ("effect", "precision"):
        return True
    column = columns.get(sort, "label" if sort == "label" else None)
    if sort == "label":
        return True  # rows are always labelled (study names or numbers)
    return column is not None and column in rows.columns


# -- publication bias ---------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class BiasTests:
    """The formal small-study/publication-bias tests of the pooled model, with what failed."""

    egger: object | None
    rank: object | None
    trim_fill: object | None
    pet_peese: object | None
    problems: tuple[tuple[str, str], ...]
    trim_fill_note: str | None

    def readings(self, transform: str | None) -> list[tuple[str, str]]:
        out = []
        if self.egger is not None:
            out.append(("Egger's regression test", self.egger.describe(transform=transform)))
        if self.rank is not None:
            out.append(("Begg and Mazumdar's rank correlation", self.rank.describe()))
        if self.trim_fill is not None:
            text = self.trim_fill.describe(transform=transform)
            out.append(
                ("Trim-and-fill", f"{self.trim_fill_note} {text}" if self.trim_fill_note else text)
            )
        if self.pet_peese is not None:
            out.append(("PET-PEESE", self.pet_peese.describe(transform=transform)))
        out.extend(self.problems)
        return out


@st.cache_data(max_entries=16, show_spinner=False)
def _bias_tests(data_key: str, settings_key: str, _pooled) -> BiasTests:
    results: dict[str, object | None] = {
        "egger": None,
        "rank": None,
        "trim_fill": None,
        "pet_peese": None,
    }
    problems = []
    note = None
    steps = {
        "egger": ("Egger's regression test", lambda: bias.egger_test(_pooled)),
        "rank": (
            "Begg and Mazumdar's rank correlation",
            lambda: bias.rank_correlation_test(_pooled),
        ),
        "trim_fill": ("Trim-and-fill", lambda: _trim_and_fill(_pooled)),
        "pet_peese": ("PET-PEESE", lambda: bias.pet_peese(_pooled)),
    }
    for key, (name, compute) in steps.items():
        try:
            results[key] = compute()
        except AnalysisError as error:
            problems.append((name, f"Not available here: {error}"))
    if _pooled.is_three_level and results["trim_fill"] is not None:
        note = (
            "Trim-and-fill assumes independent effects, so it was run on one aggregated effect "
            "per study (inverse-variance mean of its effect sizes, two-level model)."
        )
    return BiasTests(problems=tuple(problems), trim_fill_note=note, **results)


def _trim_and_fill(pooled):
    if not pooled.is_three_level:
        return bias.trim_and_fill(pooled)
    studies = bias.aggregate_by_study(pooled)
    method = pooled.method if pooled.method in ("REML", "ML") else "REML"
    return bias.trim_and_fill(fit(studies, method=method))


def bias_tests(ctx: Context, pooled) -> BiasTests:
    return _bias_tests(ctx.data.key, analysis_key(ctx.settings.with_changes(moderators=())), pooled)
