"""The matrix of dashboard states the one-story tests run, each state built once with
``ac.analysis_state``, and the headline numbers of a state read back from a results table (the
results download, or the table a reproduction script builds from its own fit).

A state is named by the query parameters of its share link (what the sidebar describes), except
the upload, which is a sheet with a moderator level observed in one study.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import pandas as pd

import alliance_core as ac
from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.analyses.state import AnalysisState
from alliance_core.data.datasets import DEFAULT_DATASET, dataset_info, list_datasets, load_dataset
from alliance_core.data.mapping import ColumnMapping
from alliance_core.data.uploads.reading import read_table
from alliance_core.data.uploads.roles import suggest_roles
from alliance_core.handover.provenance import Provenance, bundled_sha256
from pages._ui.state import UPLOAD_DATASET, default_settings

STATES = {
    "default": {},
    "CR2": {"inf": "CR2"},
    "rho0": {"rho": "0"},
    "two-level-aggregated": {"model": "2L-agg"},
    # A filter leaving three studies (flagged: too few for the moderator test).
    "three-studies": {"ds": "assink2016", "keep": "deltype:overt", "mod": "year"},
    # A flagged moderator test: CR2 with a level from one study and df below 4.
    "flagged-CR2": {"ds": "assink2016", "mod": "deltype", "inf": "CR2"},
    # Moderator tests on real data: two-level model-based, and three-level under CR2.
    "molloy-design": {"ds": "molloy2014", "mod": "design"},
    "crede-criterion-CR2": {"ds": "crede2010", "mod": "criterion", "inf": "CR2"},
    **{
        f"dataset-{info.name}": {"ds": info.name}
        for info in list_datasets()
        if info.name != DEFAULT_DATASET
    },
}
# The bundled datasets open without moderators; every other state has a moderator model.
MODERATED_STATES = sorted(name for name in STATES if not name.startswith("dataset-"))

UPLOAD_STATE = "upload-one-study-level"
UPLOAD_FILE = "sheet.csv"
UPLOAD_MODERATORS = ("setting",)
ONE_STUDY_LEVEL = b"study,es_id,r,n,n_therapists,setting\n" + b"".join(
    f"{study},{es},{r},{n},{t},{'clinic' if study == 3 else 'lab'}\n".encode()
    for study, es, r, n, t in (
        (1, 1, 0.30, 50, 5),
        (1, 2, 0.22, 50, 5),
        (2, 1, 0.20, 60, 6),
        (2, 2, 0.28, 60, 6),
        (3, 1, 0.35, 45, 9),
        (3, 2, 0.31, 45, 9),
        (4, 1, 0.25, 80, 4),
        (4, 2, 0.18, 80, 4),
        (5, 1, 0.15, 120, 30),
        (6, 1, 0.40, 36, 3),
        (7, 1, 0.33, 70, 7),
        (8, 1, 0.27, 90, 10),
    )
)
ALL_STATES = sorted([*STATES, UPLOAD_STATE])


def settings_of(query: dict[str, list[str]]) -> AnalysisSettings:
    """The settings a share link's query describes (the dataset's defaults for the rest)."""
    name = query.get("ds", [DEFAULT_DATASET])[-1]
    return AnalysisSettings.from_query(
        query, default=default_settings(name, dataset_info(name).mapping)
    )


def query_of(name: str) -> dict[str, list[str]]:
    return {
        key: value if isinstance(value, list) else [value] for key, value in STATES[name].items()
    }


@dataclass(frozen=True, eq=False)
class BuiltState:
    name: str
    state: AnalysisState
    mapping: ColumnMapping
    data: pd.DataFrame
    dataset: str
    title: str
    sha256: str

    def provenance(self, run) -> Provenance:
        return Provenance.of(
            run,
            self.mapping,
            dataset=self.dataset,
            sha256=self.sha256,
            title=self.title,
            uploaded=self.name == UPLOAD_STATE,
            robust=run.robust,
        )

    @property
    def shown_run(self):
        """The model the page's downloads are made of: the moderator model when there is one."""
        return self.state.moderated if self.state.moderated is not None else self.state.pooled


def upload_mapping() -> ColumnMapping:
    """The Data page's suggestion for the upload, with its moderator chosen."""
    frame = read_table(ONE_STUDY_LEVEL, UPLOAD_FILE).frame
    mapping = suggest_roles(frame).mapping
    return ColumnMapping(**{**mapping.__dict__, "moderators": UPLOAD_MODERATORS})


@functools.cache
def built(name: str, settings: AnalysisSettings | None = None) -> BuiltState:
    """The state ``name`` built once per process (``settings``: as read from a page's link)."""
    if name == UPLOAD_STATE:
        frame = read_table(ONE_STUDY_LEVEL, UPLOAD_FILE).frame
        mapping = upload_mapping()
        chosen = settings or default_settings(UPLOAD_DATASET, mapping).with_changes(
            moderators=UPLOAD_MODERATORS
        )
        state = ac.analysis_state(frame, mapping, chosen)
        digest = hashlib.sha256(ONE_STUDY_LEVEL).hexdigest()
        return BuiltState(name, state, mapping, frame, UPLOAD_FILE, UPLOAD_FILE, digest)
    chosen = settings or settings_of(query_of(name))
    info = dataset_info(chosen.dataset)
    data = load_dataset(chosen.dataset)
    state = ac.analysis_state(data, info.mapping, chosen)
    return BuiltState(
        name, state, info.mapping, data, info.name, info.title, bundled_sha256(info.name)
    )


def headline_from_results(frame: pd.DataFrame, label: str, robust: bool) -> dict[str, float]:
    """The headline numbers of one model (``label``: "pooled" or "moderators"), keyed as
    ``AnalysisState.headline``, read from a results table (sections and names of
    ``results_frame``); under CR2 the robust sections are the ones the state reports."""
    rows = {
        (str(s), str(n)): row for (s, n), row in frame.set_index(["section", "name"]).iterrows()
    }

    def section_rows(section: str):
        return {name: row for (s, name), row in rows.items() if s == section}

    out: dict[str, float] = {}
    prediction = next(iter(section_rows("robust prediction" if robust else "prediction").values()))
    for name, column in (
        ("pred", "estimate"),
        ("ci_lb", "ci_lb"),
        ("ci_ub", "ci_ub"),
        ("pi_lb", "pi_lb"),
        ("pi_ub", "pi_ub"),
    ):
        out[f"{label}.prediction.{name}"] = float(prediction[column])
    out[f"{label}.k"] = float(rows[("model", "k")]["estimate"])
    heterogeneity = section_rows("heterogeneity")
    out[f"{label}.I2"] = float(heterogeneity["I2"]["estimate"])
    if "tau2" in heterogeneity:
        out[f"{label}.tau2"] = float(heterogeneity["tau2"]["estimate"])
    for name, row in heterogeneity.items():
        if name.startswith("sigma2_"):
            out[f"{label}.sigma2.{name.removeprefix('sigma2_')}"] = float(row["estimate"])
    tests = section_rows("robust test" if robust else "test")
    if "QM" in tests:
        out[f"{label}.omnibus.statistic"] = float(tests["QM"]["statistic"])
        out[f"{label}.omnibus.pval"] = float(tests["QM"]["pval"])
    for term, row in section_rows("robust coefficient" if robust else "coefficient").items():
        for name in ("estimate", "se", "pval", "ci_lb", "ci_ub"):
            out[f"{label}.{term}.{name}"] = float(row[name])
    return out
