"""The Data page's upload callbacks and column-mapping editor."""

from __future__ import annotations

import json
import time

import streamlit as st

from alliance_core.data.mapping import MEASURES, ColumnMapping, measure_words
from alliance_core.data.uploads import (
    moderator_candidates,
    shown_spelling,
    suggest_roles,
)
from alliance_core.errors import AnalysisError
from alliance_core.formatting import escape_markdown
from pages._ui import loading, session
from pages._ui.state import (
    SOURCE_BUNDLED,
    SOURCE_UPLOAD,
    UploadRecord,
    accept_upload,
)
from pages._ui.upload_store import StoredUpload, UploadStore


# -- uploads (Data page callbacks) -------------------------------------------------------------
def receive_upload() -> None:
    """Callback of the Data page's uploader: keep the file, suggest a mapping, analyse it."""
    ss = st.session_state
    file = ss.get(session.UPLOAD_FILE)
    if file is None:  # the user removed the file
        for key in (
            session.UPLOAD,
            session.UPLOAD_MAPPING,
            session.UPLOAD_ERROR,
            session.UPLOAD_SHEET,
            session.UPLOAD_REAL_VALUES,
            session.UPLOAD_EXTRA_CODES,
            session.UPLOAD_KEPT_APART,
            session.UPLOAD_COLUMNS,
            session.UPLOAD_NOTICE,
        ):
            ss.pop(key, None)
        delete_kept_upload()
        ss[session.SOURCE] = SOURCE_BUNDLED
        return
    try:
        record, uploaded, mapping = accept_upload(
            file.getvalue(), file.name, read=loading.read_upload
        )
        sheet = ss.get(session.UPLOAD_SHEET)
        if sheet is not None and sheet in uploaded.report.sheet_names:
            uploaded = loading.read_upload(record.sha, record.name, record.content, sheet=sheet)
    except AnalysisError as error:
        ss[session.UPLOAD_ERROR] = str(error)
        return
    ss.pop(session.UPLOAD_ERROR, None)
    columns = tuple(str(column) for column in uploaded.frame.columns)
    if ss.get(session.UPLOAD) is not None and ss.get(session.UPLOAD_COLUMNS) == columns:
        # A corrected file with the same columns: keep the roles, codes, merges and sheet
        # (the sidebar keeps its choices too: the table's identity is its columns).
        ss[session.UPLOAD_NOTICE] = (
            f"'{record.name}' has the same columns as the file before: its column roles, "
            "missing codes, level merges and the analysis choices were kept."
        )
    else:
        for key in (
            session.UPLOAD_SHEET,
            session.UPLOAD_REAL_VALUES,
            session.UPLOAD_EXTRA_CODES,
            session.UPLOAD_KEPT_APART,
            session.UPLOAD_NOTICE,
        ):
            ss.pop(key, None)
        ss[session.UPLOAD_MAPPING] = mapping
    ss[session.UPLOAD_COLUMNS] = columns
    ss[session.UPLOAD] = record
    ss[session.SOURCE] = SOURCE_UPLOAD
    keep_on_server(record)


def choose_sheet() -> None:
    """Callback of the sheet choice: read that sheet and suggest roles from its columns."""
    ss = st.session_state
    record = ss.get(session.UPLOAD)
    sheet = ss.get(session.UPLOAD_SHEET_CHOICE)
    if record is None:
        return
    try:
        uploaded = loading.read_upload(
            record.sha,
            record.name,
            record.content,
            sheet=sheet,
            real_values=tuple(ss.get(session.UPLOAD_REAL_VALUES, ())),
            extra_codes=tuple(ss.get(session.UPLOAD_EXTRA_CODES, ())),
        )
    except AnalysisError as error:
        ss[session.UPLOAD_ERROR] = str(error)
        return
    ss.pop(session.UPLOAD_ERROR, None)
    ss[session.UPLOAD_SHEET] = sheet
    ss[session.UPLOAD_MAPPING] = suggest_roles(uploaded.frame).mapping


def update_real_values() -> None:
    """Callback of the spellings choice: these spellings are real values, not missing ones."""
    ss = st.session_state
    ss[session.UPLOAD_REAL_VALUES] = tuple(sorted(ss.get(session.UPLOAD_REAL_VALUES_CHOICE, [])))


def update_extra_codes() -> None:
    """Callback of the codes field: more spellings of this sheet that mean "missing"."""
    ss = st.session_state
    written = str(ss.get(session.UPLOAD_EXTRA_CODES_CHOICE) or "")
    ss[session.UPLOAD_EXTRA_CODES] = parse_codes(written)


def parse_codes(written: str) -> tuple[str, ...]:
    """Codes typed as a comma- or semicolon-separated list ("k.A.; -99"), each once, sorted."""
    parts = (part.strip() for part in written.replace(";", ",").split(","))
    return tuple(sorted({part for part in parts if part}))


MAPPING_ROLES = {
    "study": "Study",
    "es_id": "Effect-size id",
    "label": "Label",
    "r": "Correlation r",
    "z": "Fisher's z",
    "n": "Patients n (of this effect size)",
    "yi": "Effect size yi",
    "vi": "Sampling variance vi",
    "sei": "Standard error sei",
    "study_patients": "Study patients (total)",
    "n_therapists": "Therapists",
    "ptr": "PTR (ready-made)",
    "year": "Year",
}
MAPPING_HELP = {
    "n": "Sample size of this correlation; it may differ between effect sizes of a study.",
    "vi": "The variance: the standard error squared. Choose a standard-error column as sei.",
    "sei": "The standard error: the square root of the variance (vi = sei²).",
    "study_patients": "All patients of the study; PTR = study patients / therapists.",
    "ptr": "Patients per therapist as reported; used instead of computing PTR.",
}


def mapping_key_of(role: str) -> str:
    return f"map:{role}"


def update_upload_mapping() -> None:
    """Callback of the mapping widgets: store the mapping they show (roles, then moderators)."""
    ss = st.session_state
    roles = {role: ss.get(mapping_key_of(role)) for role in MAPPING_ROLES}
    taken = {column for column in roles.values() if column is not None}
    moderators = tuple(m for m in ss.get(mapping_key_of("moderators"), []) if m not in taken)
    measure = ss.get(mapping_key_of("measure"))
    ss[session.UPLOAD_MAPPING] = ColumnMapping(**roles, moderators=moderators, measure=measure)


def mapping_editor(view: loading.UploadView) -> None:
    """Which column plays which role; every change is stored at once (a callback)."""
    ss = st.session_state
    columns = list(view.uploaded.frame.columns)
    mapping = view.mapping
    for role in MAPPING_ROLES:
        ss[mapping_key_of(role)] = getattr(mapping, role)
    ss[mapping_key_of("moderators")] = list(mapping.moderators)
    ss[mapping_key_of("measure")] = mapping.measure
    grid = st.columns(3)
    for position, (role, label) in enumerate(MAPPING_ROLES.items()):
        grid[position % 3].selectbox(
            label,
            [None, *columns],
            format_func=lambda column: "— none —" if column is None else str(column),
            placeholder="— none —",
            key=mapping_key_of(role),
            on_change=update_upload_mapping,
            help=MAPPING_HELP.get(role),
        )
    st.selectbox(
        "The effect sizes are",
        [None, *MEASURES],
        format_func=lambda m: "— not said (other) —" if m is None else measure_words(m)[0],
        key=mapping_key_of("measure"),
        on_change=update_upload_mapping,
        disabled=mapping.on_fisher_z,
        help="Correlations (r or Fisher's z) are always correlations; for yi, say what it is.",
    )
    st.multiselect(
        "Moderator columns (offered in the sidebar)",
        moderator_candidates(view.uploaded.frame, mapping),
        key=mapping_key_of("moderators"),
        on_change=update_upload_mapping,
        help="Columns with at least two values that group rows: rater, measure, design, ...",
    )


def sheet_choice(view: loading.UploadView) -> None:
    """For a workbook with several sheets: which sheet to analyse (the first by default)."""
    names = view.uploaded.report.sheet_names
    if len(names) < 2:
        return
    st.session_state[session.UPLOAD_SHEET_CHOICE] = view.uploaded.report.sheet_name
    st.selectbox(
        "Sheet to analyse",
        list(names),
        key=session.UPLOAD_SHEET_CHOICE,
        on_change=choose_sheet,
        help="The workbook has several sheets; the first is read unless you choose another.",
    )


def missing_values(view: loading.UploadView) -> None:
    """Which spellings were read as missing, in how many cells; the user may call some real."""
    report = view.uploaded.report
    found = report.missing_spellings
    if found:
        listed = "; ".join(escape_markdown(spelling.describe()) for spelling in found)
        st.caption(f":material/info: Read as missing values: {listed}.")
    st.session_state[session.UPLOAD_EXTRA_CODES_CHOICE] = ", ".join(view.extra_codes)
    st.text_input(
        "More codes that mean 'missing' in this sheet (separated by commas)",
        key=session.UPLOAD_EXTRA_CODES_CHOICE,
        on_change=update_extra_codes,
        placeholder="e.g. k.A., -99, not coded",
        help=(
            "The usual codes (NA, n.a., n.r., NR, not reported, -, ?, missing, unknown, …) are "
            "read as missing in every column. Add codes your sheet uses; a row with a missing "
            "value is left out only of the models that use that column."
        ),
    )
    options = sorted({spelling.spelling for spelling in found} | set(view.real_values))
    if not options:
        return
    st.session_state[session.UPLOAD_REAL_VALUES_CHOICE] = list(view.real_values)
    st.multiselect(
        "Spellings that are real values in this sheet (not missing)",
        options,
        format_func=shown_spelling,
        key=session.UPLOAD_REAL_VALUES_CHOICE,
        on_change=update_real_values,
        help=(
            "Cells such as 'NA', 'n.a.', '-', '?' or 'none' are read as missing. If one of "
            "them is a real answer in your sheet (e.g. 'none' as a comorbidity), choose it here."
        ),
    )


def update_kept_apart() -> None:
    """Callback of the merges choice: these spellings stay apart, as written."""
    ss = st.session_state
    chosen = ss.get(session.UPLOAD_KEPT_APART_CHOICE, [])
    ss[session.UPLOAD_KEPT_APART] = tuple(sorted(tuple(json.loads(item)) for item in chosen))


def level_spellings(view: loading.UploadView) -> None:
    """Each merge of spellings into one level, near-duplicates, and the choice to keep apart."""
    levels = view.levels
    if levels is None or not (levels.all_merges or levels.near_duplicates):
        return
    for merge in levels.merges:
        st.caption(f":material/merge: {escape_markdown(merge.describe())}")
    for merge in levels.kept_apart:
        st.caption(
            f":material/call_split: Kept apart as you chose: {escape_markdown(merge.describe())}"
        )
    for near in levels.near_duplicates:
        st.caption(f":material/warning: {escape_markdown(near.describe())}")
    merges = {json.dumps(list(merge.ident)): merge for merge in levels.all_merges}
    if not merges:
        return
    st.session_state[session.UPLOAD_KEPT_APART_CHOICE] = [
        json.dumps(list(merge.ident)) for merge in levels.kept_apart
    ]
    st.multiselect(
        "Spellings to keep apart as separate levels",
        list(merges),
        format_func=lambda item: merges[item].describe(),
        key=session.UPLOAD_KEPT_APART_CHOICE,
        on_change=update_kept_apart,
        help=(
            "Values of a moderator that differ only in case, spaces or Unicode form are read as "
            "one level under their most frequent spelling. Your file is not changed; choose a "
            "merge here to analyse its spellings as separate levels."
        ),
    )


def role_reasons(view: loading.UploadView) -> None:
    """Why each role was suggested, and the columns the suggestion asks about."""
    suggestion = suggest_roles(view.uploaded.frame)
    for question in suggestion.questions:
        st.warning(escape_markdown(question), icon=":material/help:")
    if suggestion.reasons:
        listed = " ".join(escape_markdown(reason) for _, reason in suggestion.reasons)
        st.caption(f":material/info: Suggested roles: {listed}")


# -- keeping an upload over a reload (the server-side store) ----------------------------------
UPLOAD_PARAMETER = "upload"  # the link's parameter holding the store's token


def upload_store() -> UploadStore:
    return UploadStore()


def keep_on_server(record: UploadRecord) -> None:
    """Keep the file in the server's store; its token goes into the link (``write_url``)."""
    ss = st.session_state
    delete_kept_upload()  # the previous file of this session is not needed any more
    kept = upload_store().put(record.content, record.name)
    if kept is not None:
        ss[session.UPLOAD_TOKEN] = kept.token
        ss[session.UPLOAD_KEPT_UNTIL] = kept.expires_at


def restore_from_link(token: str) -> StoredUpload | None:
    """A reloaded tab: the upload kept under the link's token, as if uploaded again (None when
    the store no longer has it)."""
    ss = st.session_state
    stored = upload_store().get(token)
    if stored is None:
        return None
    record = UploadRecord.from_bytes(stored.content, stored.name)
    try:
        uploaded = loading.read_upload(record.sha, record.name, record.content)
    except AnalysisError:
        return None
    ss[session.UPLOAD] = record
    ss[session.UPLOAD_MAPPING] = suggest_roles(uploaded.frame).mapping
    ss[session.UPLOAD_COLUMNS] = tuple(str(column) for column in uploaded.frame.columns)
    ss[session.UPLOAD_TOKEN] = token
    ss[session.UPLOAD_KEPT_UNTIL] = stored.expires_at
    ss[session.SOURCE] = SOURCE_UPLOAD
    return stored


def delete_kept_upload() -> None:
    """Delete this session's upload from the server's store now (the session keeps its copy)."""
    ss = st.session_state
    token = ss.pop(session.UPLOAD_TOKEN, None)
    ss.pop(session.UPLOAD_KEPT_UNTIL, None)
    if token:
        upload_store().delete(token)


def kept_on_server() -> None:
    """How long the server keeps the upload, and a button to delete it now."""
    ss = st.session_state
    until = ss.get(session.UPLOAD_KEPT_UNTIL)
    if until is None:
        st.caption(
            ":material/info: This upload is not kept on the server: reloading the page loses "
            "it (upload it again)."
        )
        return
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(until))
    st.caption(
        f":material/schedule: The file is kept on this server until {when} (24 hours) so that "
        "reloading the page keeps it; only this page's link opens it. It is deleted then, or "
        "now if you ask."
    )
    st.button(
        "Delete it from the server now",
        on_click=delete_kept_upload,
        icon=":material/delete:",
        key="delete_kept_upload",
    )
