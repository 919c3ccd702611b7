"""Session-state keys of the dashboard's widgets and stores, and the labels the widgets show.

One place for the names, so the sidebar, the pages and the tests agree on them.
"""

from __future__ import annotations

from alliance_core.wording.glossary import column_name

# -- session-state keys ----------------------------------------------------------------------
# Widget keys (the sidebar's widgets live in app.py, so they exist on every page).
SOURCE = "source"
DATASET = "dataset"
MODEL = "model"
METHOD = "method"
TEST = "test"
MODERATORS = "moderators"  # the main effects
INTERACTIONS = "interactions"  # the categorical moderators PTR interacts with
PTR_SCALE = "ptr_scale"
RHO = "rho"
INFERENCE = "inference"
FILTER_COLUMNS = "filter_columns"
SETTINGS_FILE = "settings_file"
UPLOAD_FILE = "upload_file"
# Plain keys: Streamlit never cleans them up, so they survive pages without the widget.
UPLOAD = "_upload"  # UploadRecord: the file's bytes and name, never modified
UPLOAD_MAPPING = "_upload_mapping"  # ColumnMapping the user confirmed on the Data page
UPLOAD_ERROR = "_upload_error"  # why the last file could not be read
UPLOAD_SHEET = "_upload_sheet"  # the workbook sheet chosen on the Data page (None: the first)
UPLOAD_REAL_VALUES = "_upload_real_values"  # missing-value spellings the user calls real values
UPLOAD_SHEET_CHOICE = "upload_sheet_choice"  # the Data page's sheet widget
UPLOAD_REAL_VALUES_CHOICE = "upload_real_values_choice"  # the Data page's spellings widget
UPLOAD_EXTRA_CODES = "_upload_extra_codes"  # missing-value codes the user added
UPLOAD_EXTRA_CODES_CHOICE = "upload_extra_codes_choice"  # the Data page's codes widget
UPLOAD_TOKEN = "_upload_token"  # the server-side store's token of this upload (in the link)
UPLOAD_KEPT_UNTIL = "_upload_kept_until"  # when the store deletes it (Unix time)
UPLOAD_SAVED_CHOICES = "_upload_saved_choices"  # the choices last written to the store
UPLOAD_COLUMNS = "_upload_columns"  # column names of the upload, to know a corrected re-upload
UPLOAD_NOTICE = "_upload_notice"  # what a re-upload kept
UPLOAD_KEPT_APART = "_upload_kept_apart"  # level merges kept apart: (column, level key)
UPLOAD_KEPT_APART_CHOICE = "upload_kept_apart_choice"  # the Data page's merges widget
LAST_DATASET = "_last_dataset"  # the bundled dataset to return to after an upload
PENDING = "_pending_settings"  # settings from a link or file, applied at the next run
NOTICES = "_notices"  # sentences on what a link or file asked for and did not get
INITIALISED = "_initialised"
LINK_VIEW = "_link_view"  # ViewRequest of the opening link, each part taken once by its page
VIEW_QUERY = "_view_query"  # view link parameters (sort, colour, profile) as pages last set them
PROJECTOR = "projector"  # the sidebar's projector-view toggle (link: view=projector)
ACTIVE = "_active_table"  # identity of the table the widgets were set up for


def reference_key(column: str) -> str:
    return f"reference:{column}"


def keep_key(column: str) -> str:
    return f"keep:{column}"


MODEL_LABELS = {
    "three-level": "Three-level (effect sizes nested in studies)",
    "two-level": "Two-level (one true effect per study)",
    "two-level-aggregated": "Two-level, one aggregated effect per study",
    "two-level-independent": "Two-level, effect sizes treated as independent (not recommended)",
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
INFERENCE_LABELS = {"model": "Model-based", "CR2": "Cluster-robust (CR2)"}


def test_labels(model: str) -> dict[str, str]:
    t_label = "t (k − p df)" if model == "three-level" else "Knapp–Hartung"
    return {"z": "z (normal)", "t": t_label}


def moderator_label(name: str) -> str:
    """A moderator by its display name, with its column code (codes without one as they are)."""
    shown = column_name(name)
    return name if shown == name or name == "PTR" else f"{shown} ({name})"


def interaction_label(column: str) -> str:
    """PTR's interaction with a categorical moderator, by its display name: "PTR × Alliance
    rater"."""
    return f"PTR × {column_name(column)}"
