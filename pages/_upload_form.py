"""The Data page's upload callbacks and column-mapping editor."""

from __future__ import annotations

import streamlit as st

from alliance_core.errors import AnalysisError
from alliance_core.mapping import ColumnMapping
from alliance_core.uploads import (
    moderator_candidates,
)
from pages import _loading as loading
from pages import _session as session
from pages._state import (
    SOURCE_BUNDLED,
    SOURCE_UPLOAD,
    accept_upload,
)


# -- uploads (Data page callbacks) -------------------------------------------------------------
def receive_upload() -> None:
    """Callback of the Data page's uploader: keep the file, suggest a mapping, analyse it."""
    ss = st.session_state
    file = ss.get(session.UPLOAD_FILE)
    if file is None:  # the user removed the file
        for key in (session.UPLOAD, session.UPLOAD_MAPPING, session.UPLOAD_ERROR):
            ss.pop(key, None)
        ss[session.SOURCE] = SOURCE_BUNDLED
        return
    try:
        record, _, mapping = accept_upload(file.getvalue(), file.name, read=loading.read_upload)
    except AnalysisError as error:
        ss[session.UPLOAD_ERROR] = str(error)
        return
    ss.pop(session.UPLOAD_ERROR, None)
    ss[session.UPLOAD] = record
    ss[session.UPLOAD_MAPPING] = mapping
    ss[session.SOURCE] = SOURCE_UPLOAD


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
    ss[session.UPLOAD_MAPPING] = ColumnMapping(**roles, moderators=moderators)


def mapping_editor(view: loading.UploadView) -> None:
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
