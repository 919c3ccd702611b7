"""The active table and the cached computations every page shares.

Loads the bundled dataset or the upload (cached per dataset, per file content and mapping),
fits the model for the current settings (cached per data key and settings) and runs the
publication-bias tests of the pooled model. Pages never fit on their own.

Memory is bounded for a server shared by a class: every cache has a number of entries and a
time to live; an upload's parsed table lives in its session's state, so it is freed when the
session ends rather than kept for every later visitor. Fits and bias tests of the bundled
datasets are also kept in a small on-disk store shared by the server's processes
(pages/_ui/disk_cache.py, enabled by ALLIANCE_FIT_CACHE_DIR): the first student's fit serves the
rest. A student's upload never goes to disk.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

import alliance_core
from alliance_core.analyses import selection
from alliance_core.analyses.bias_tests import BiasTests, bias_tests_of, selection_cluster
from alliance_core.analyses.run import (
    AnalysisRun,
    effect_size_table,
    within_study_test,
)
from alliance_core.analyses.settings import PTR, AnalysisSettings
from alliance_core.analyses.state import AnalysisState, analysis_state
from alliance_core.data import datasets
from alliance_core.data.datasets import DEFAULT_DATASET, DatasetInfo
from alliance_core.data.mapping import ColumnMapping
from alliance_core.data.uploads import (
    LevelReview,
    UploadedTable,
    ValidationReport,
    read_table,
    suggest_roles,
)
from alliance_core.errors import AnalysisError
from pages._ui import disk_cache, session
from pages._ui.state import (
    SOURCE_BUNDLED,
    SOURCE_UPLOAD,
    UPLOAD_DATASET,
    DataChoices,
    Reconciled,
    UploadRecord,
    default_settings,
    mapping_key,
)

# Bounds of the in-process caches: a lesson's worth of fits, and uploads only briefly (they are
# also held by their session, see upload_view).
CACHE_TTL = "2h"
TABLE_TTL = "24h"
UPLOAD_TTL = "10m"
PARSED_UPLOAD = "_parsed_upload"  # session-state key: ((sha, reading), UploadedTable) of the file
CHECKED_UPLOAD = "_checked_upload"  # session-state key: ((sha, reading, mapping), result)

SHARED = disk_cache.from_environment()


def _code_version() -> str:
    """Fingerprint of the engine's source: a stored result of other code is never read back."""
    digest = hashlib.sha256()
    for path in sorted(Path(alliance_core.__file__).parent.rglob("*.py")):
        digest.update(path.relative_to(Path(alliance_core.__file__).parent).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


CODE_VERSION = _code_version() if SHARED.enabled else ""


def shared(kind: str, data_key: str, settings_key: str, compute):
    """``compute()``, or its result stored by any server process (bundled datasets only)."""
    if not SHARED.enabled or not data_key.startswith("bundled:"):
        return compute()
    return SHARED.get_or_compute(f"{CODE_VERSION}|{kind}|{data_key}|{settings_key}", compute)


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
    sheet: str | None = None  # the workbook sheet chosen (None: the first, or a text file)
    real_values: tuple[str, ...] = ()  # missing-value spellings the user calls real values
    extra_codes: tuple[str, ...] = ()  # missing-value codes the user added
    levels: LevelReview | None = None  # spellings of moderator levels merged (a view)

    @property
    def reading_key(self) -> str:
        return reading_key(self.sheet, self.real_values, self.extra_codes, self.kept_apart)

    @property
    def kept_apart(self) -> tuple[tuple[str, str], ...]:
        return () if self.levels is None else tuple(m.ident for m in self.levels.kept_apart)


def reading_key(
    sheet: str | None,
    real_values: tuple[str, ...],
    extra_codes: tuple[str, ...] = (),
    kept_apart: tuple[tuple[str, str], ...] = (),
) -> str:
    """Which table of the file, read how: part of the cache keys (another sheet, a spelling
    declared a real value, an added missing-value code or a level merge kept apart gives
    another table, so fits refresh)."""
    return json.dumps([sheet, list(real_values), list(extra_codes), [list(k) for k in kept_apart]])


# The measure an upload's mapping declares, as the escalc code the readings know.
UPLOAD_MEASURE_CODES = {"correlation": "ZCOR", "smd": "SMD", "log_odds_ratio": "OR"}


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
        return self.mapping.on_fisher_z

    @property
    def measure(self) -> str | None:
        """The effect-size measure as an escalc code ("ZCOR", "SMD"); None when not known."""
        if self.mapping.on_fisher_z:
            return "ZCOR"
        if self.info is not None:
            return self.info.measure
        # An upload names its measure in the mapping's words; readings use escalc codes.
        return UPLOAD_MEASURE_CODES.get(self.mapping.effect_measure)

    @property
    def n_studies(self) -> int:
        if self.mapping.study and self.mapping.study in self.table.columns:
            return int(self.table[self.mapping.study].nunique())
        return len(self.table)


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


@st.cache_data(show_spinner=False, max_entries=16, ttl=TABLE_TTL)
def bundled_tables(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A bundled dataset's rows and effect-size table (cached per dataset)."""
    info = datasets.dataset_info(name)
    rows = datasets.load_dataset(name)
    return rows, effect_size_table(rows, info.mapping)


def read_upload(
    sha: str,
    file_name: str,
    content: bytes,
    sheet: str | None = None,
    real_values: tuple[str, ...] = (),
    extra_codes: tuple[str, ...] = (),
) -> UploadedTable:
    """The uploaded file as a table, parsed once per session, file, sheet and real-value
    spellings.

    Held in the session's state, not in a process-wide cache: the frame is freed when the
    session ends, and no copy is made on every rerun (st.cache_data unpickles a fresh copy of
    a cached frame at each hit).
    """
    ss = st.session_state
    identity = (sha, reading_key(sheet, real_values, extra_codes))
    held = ss.get(PARSED_UPLOAD)
    if held is None or held[0] != identity:
        ss.pop(CHECKED_UPLOAD, None)
        table = read_table(
            content, file_name, sheet=sheet, real_values=real_values, extra_codes=extra_codes
        )
        held = (identity, table)
        ss[PARSED_UPLOAD] = held
    return held[1]


def _checked_upload(
    sha: str,
    reading_id: str,
    mapping_id: str,
    uploaded: UploadedTable,
    mapping: ColumnMapping,
    levels: LevelReview | None = None,
) -> tuple[ValidationReport, pd.DataFrame | None, str | None]:
    ss = st.session_state
    identity = (sha, reading_id, mapping_id)
    held = ss.get(CHECKED_UPLOAD)
    if held is not None and held[0] == identity:
        return held[1]
    report = uploaded.validate(mapping, levels)
    if not report.ok:
        result = report, None, report.summary()
    else:
        try:
            result = report, effect_size_table(report.usable, mapping), None
        except AnalysisError as error:
            result = report, None, str(error)
    ss[CHECKED_UPLOAD] = (identity, result)
    return result


def upload_view() -> UploadView | None:
    """The current upload, read, mapped and validated (None before any upload)."""
    ss = st.session_state
    record: UploadRecord | None = ss.get(session.UPLOAD)
    if record is None:
        return None
    sheet = ss.get(session.UPLOAD_SHEET)
    real_values = tuple(ss.get(session.UPLOAD_REAL_VALUES, ()))
    extra_codes = tuple(ss.get(session.UPLOAD_EXTRA_CODES, ()))
    uploaded = read_upload(
        record.sha,
        record.name,
        record.content,
        sheet=sheet,
        real_values=real_values,
        extra_codes=extra_codes,
    )
    mapping = ss.get(session.UPLOAD_MAPPING) or suggest_roles(uploaded.frame).mapping
    levels = uploaded.levels(mapping, ss.get(session.UPLOAD_KEPT_APART, ()))
    kept_apart = tuple(merge.ident for merge in levels.kept_apart)
    reading = reading_key(sheet, real_values, extra_codes, kept_apart)
    report, table, problem = _checked_upload(
        record.sha, reading, mapping_key(mapping), uploaded, mapping, levels
    )
    return UploadView(
        record, uploaded, mapping, report, table, problem, sheet, real_values, extra_codes, levels
    )


def columns_identity(columns) -> str:
    """The column names of a table as a short key (which choices a table can keep)."""
    text = json.dumps([str(column) for column in columns])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def active_data() -> tuple[ActiveData | None, str | None]:
    """The table to analyse, or None and the reason there is none yet."""
    ss = st.session_state
    if ss.get(session.UPLOAD) is None:  # no file (or it was removed): free its table now
        ss.pop(PARSED_UPLOAD, None)
        ss.pop(CHECKED_UPLOAD, None)
    if ss.get(session.SOURCE, SOURCE_BUNDLED) == SOURCE_UPLOAD:
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
                key=f"upload:{view.record.sha}:{view.reading_key}:{mapping_key(view.mapping)}",
                # By columns, not content: a corrected file with the same columns keeps the
                # sidebar's choices (moderators, filters, reference levels, inference).
                identity=f"upload:{columns_identity(view.uploaded.frame.columns)}:{view.sheet or ''}",
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
    name = ss.get(session.DATASET, DEFAULT_DATASET)
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


def defaults_for(dataset: str) -> AnalysisSettings:
    return default_settings(dataset, datasets.dataset_info(dataset).mapping)


# -- the state: every model a page shows -----------------------------------------------------
def analysis_key(settings: AnalysisSettings) -> str:
    """Cache key of a state: the settings without the page (every page shares one state)."""
    return settings.with_changes(page=None).cache_key()


@st.cache_data(show_spinner="Fitting the model…", max_entries=64, ttl=CACHE_TTL)
def cached_state(
    data_key: str, settings_key: str, _data: ActiveData, _settings: AnalysisSettings
) -> AnalysisState | str:
    """The state's models (``analysis_state``), or the user-facing reason the pooled model
    cannot be fitted (also cached, so a model that does not converge is not refitted on every
    rerun)."""
    return shared("state", data_key, settings_key, lambda: _state(_data, _settings))


def _state(_data: ActiveData, _settings: AnalysisSettings) -> AnalysisState | str:
    try:
        return analysis_state(_data.rows, _data.mapping, _settings, table=_data.table)
    except AnalysisError as error:
        return str(error)


def state(ctx: Context) -> AnalysisState:
    """The current state: the pooled and the moderator model; AnalysisError (a sentence for the
    user) when not even the pooled model can be fitted."""
    if ctx.data is None or ctx.settings is None:
        raise AnalysisError(ctx.problem or "No data to analyse.")
    out = cached_state(ctx.data.key, analysis_key(ctx.settings), ctx.data, ctx.settings)
    if isinstance(out, str):
        raise AnalysisError(out)
    return out


def fitted(ctx: Context, *, without_moderators: bool = False) -> AnalysisRun:
    """The sidebar's model from the current state; AnalysisError (a sentence for the user) if
    it cannot be fitted.

    ``without_moderators`` gives the state's pooled model (same data, filters, estimator, test,
    no moderators): the pooled estimate a meta-analysis reports first.
    """
    current = state(ctx)
    return current.pooled if without_moderators else current.model


# -- variance components: intervals and the test of within-study heterogeneity ---------------
@dataclass(frozen=True, eq=False)
class VarianceDetails:
    """Confidence intervals of the variance components and, for the three-level model, the LRT
    of within-study heterogeneity; each with the reason when it could not be computed."""

    intervals: pd.DataFrame | None
    intervals_problem: str | None
    within_study: object | None  # LikelihoodRatioTest
    within_study_problem: str | None


@st.cache_data(max_entries=32, show_spinner="Profiling the variance components…")
def _variance_details(data_key: str, settings_key: str, _run: AnalysisRun) -> VarianceDetails:
    intervals = lrt = None
    intervals_problem = lrt_problem = None
    try:
        intervals = _run.result.variance_ci()
    except AnalysisError as error:
        intervals_problem = str(error)
    if _run.result.is_three_level:
        try:
            lrt = within_study_test(_run)
        except AnalysisError as error:
            lrt_problem = str(error)
    return VarianceDetails(intervals, intervals_problem, lrt, lrt_problem)


def variance_details(ctx: Context, run: AnalysisRun) -> VarianceDetails:
    """Cached per table and settings (the profile likelihood refits the model many times)."""
    return _variance_details(ctx.data.key, analysis_key(run.settings), run)


# -- publication bias ---------------------------------------------------------------------------
@st.cache_data(max_entries=16, show_spinner=False, ttl=CACHE_TTL)
def _bias_tests(data_key: str, settings_key: str, _state: AnalysisState) -> BiasTests:
    return shared("bias", data_key, settings_key, lambda: bias_tests_of(_state))


def bias_tests(ctx: Context) -> BiasTests:
    """The bias tests of the state's pooled model under the state's inference (Egger's test and
    PET-PEESE cluster-robust under CR2; cautions from the state's study count)."""
    return _bias_tests(
        ctx.data.key, analysis_key(ctx.settings.with_changes(moderators=())), state(ctx)
    )


@st.cache_data(max_entries=16, show_spinner=False, ttl=CACHE_TTL)
def _selection_model(
    data_key: str, settings_key: str, steps: tuple[float, ...], cluster: str | None, _pooled
):
    try:
        return selection.selmodel(_pooled, steps=steps, cluster=cluster), None
    except AnalysisError as error:
        return None, str(error)


def selection_model(
    ctx: Context, pooled, steps: tuple[float, ...]
) -> tuple[selection.SelectionResult | None, str | None]:
    """The step-function selection model of the pooled model, or why it cannot be fitted:
    cluster-robust by study for a three-level model and, under CR2, by the state's robust
    cluster (so a two-level model of nested rows is cluster-robust too, as the page says)."""
    key = analysis_key(ctx.settings.with_changes(moderators=()))
    cluster = selection_cluster(state(ctx))
    return _selection_model(ctx.data.key, key, tuple(steps), cluster, pooled)
