"""Dashboard states the reproduction scripts are tested on (shared by the unit tests).

Each state is what a user can reach in the sidebar: a bundled dataset (or an upload with
awkward column names) and its settings. ``analysis_of`` runs it as the dashboard does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from alliance_core.analyses.run import AnalysisRun, effect_size_table, run_analysis
from alliance_core.analyses.settings import PTR, AnalysisSettings
from alliance_core.data import datasets
from alliance_core.data.mapping import ColumnMapping
from alliance_core.data.uploads import read_table
from alliance_core.handover.provenance import Provenance
from alliance_core.model.fitting import fit
from alliance_core.model.nesting import AGGREGATED, INDEPENDENT
from alliance_core.model.robust import RobustResult

UPLOAD_NAME = "=awkward sheet, v2.csv"


@dataclass(frozen=True)
class State:
    name: str
    dataset: str  # bundled dataset, or "upload"
    changes: dict = field(default_factory=dict)
    che_rho: float | None = None  # three-level CHE working model with this rho
    upload_mapping: ColumnMapping | None = None  # an upload read with another mapping
    robust: bool = False  # CR2 cluster-robust inference by study


def _two_level_estimators() -> list[State]:
    out = []
    for i, method in enumerate(("REML", "ML", "DL", "PM", "HE", "SJ", "EE")):
        out.append(
            State(
                f"simulated-2L-{method}",
                "alliance_simulated",
                {
                    "model": "two-level",
                    "method": method,
                    "test": "t" if i % 2 else "z",
                    "moderators": (PTR, "outcome_rater"),
                },
            )
        )
    return out


STATES: tuple[State, ...] = (
    State("simulated-default-3L-REML-logPTR", "alliance_simulated"),
    State(
        "simulated-3L-ML-t-rawPTR-ref-filter",
        "alliance_simulated",
        {
            "method": "ML",
            "test": "t",
            "ptr_scale": "raw",
            "moderators": (PTR, "alliance_rater"),
            "reference": {"alliance_rater": "therapist"},
            "filters": {"design": ("RCT",)},
        },
    ),
    *_two_level_estimators(),
    State("molloy2014-default", "molloy2014"),
    State(
        "molloy2014-knha-ref",
        "molloy2014",
        {"test": "t", "moderators": ("design", "meanage"), "reference": {"design": "prospective"}},
    ),
    State("mcdaniel1994-default", "mcdaniel1994"),
    State("crede2010-default", "crede2010"),
    State(
        "crede2010-3L-t-ref-filter",
        "crede2010",
        {
            "test": "t",
            "moderators": ("class",),
            "reference": {"class": "science"},
            "filters": {"criterion": ("grade",)},
        },
    ),
    State("konstantopoulos2011-default", "konstantopoulos2011"),
    State(
        "assink2016-ref",
        "assink2016",
        {"moderators": ("deltype", "year"), "reference": {"deltype": "overt"}},
    ),
    State(
        "simulated-2L-aggregated-rho06",
        "alliance_simulated",
        {"model": AGGREGATED, "rho": 0.6, "moderators": (PTR, "design")},
    ),
    State(
        "assink2016-2L-aggregated-rho06",
        "assink2016",
        # deltype differs within studies: the aggregated model leaves it out.
        {"model": AGGREGATED, "rho": 0.6, "moderators": ("deltype", "pubstatus", "year")},
    ),
    State(
        "simulated-2L-independent",
        "alliance_simulated",
        {"model": INDEPENDENT, "test": "t", "moderators": (PTR,)},
    ),
    State("simulated-3L-CHE-rho06-logPTR", "alliance_simulated", che_rho=0.6),
    State(
        "simulated-3L-CHE-rho06-CR2",
        "alliance_simulated",
        {"moderators": (PTR, "alliance_rater"), "reference": {"alliance_rater": "observer"}},
        che_rho=0.6,
        robust=True,
    ),
    State(
        "upload-fisher-z-study-patients",
        "upload",
        {"model": "three-level", "moderators": (PTR,)},
        upload_mapping=ColumnMapping(
            study="Study ID",
            z="Fisher z",
            n="N patients",
            n_therapists="n thérapeutes",
            study_patients="Patients in study",
        ),
    ),
    State(
        "upload-se-given-PTR-aggregated",
        "upload",
        {"model": AGGREGATED, "rho": 0.4, "moderators": (PTR, "=Design"), "ptr_scale": "raw"},
        upload_mapping=ColumnMapping(
            study="Study ID",
            yi="Fisher z",
            sei="SE of z",
            ptr="PTR given",
            moderators=('Rater; "type"', "=Design"),
        ),
    ),
    State(
        "upload-forms-by-row",
        "upload",
        {"model": "three-level", "moderators": (PTR,)},
        upload_mapping=ColumnMapping(
            study="Study ID",
            r="r (alliance–outcome)",
            n="N patients",
            z="Fisher z",
            sei="SE of z",
            n_therapists="n thérapeutes",
        ),
    ),
    State(
        "upload-awkward-names",
        "upload",
        {
            "model": "three-level",
            "moderators": (PTR, 'Rater; "type"'),
            "reference": {'Rater; "type"': "thérapeute"},
            "filters": {"=Design": ("RCT", "quasi#1")},
        },
    ),
)


def upload_bytes(seed: int = 7, extra_columns: bool = False, mixed_forms: bool = False) -> bytes:
    """A coding sheet with awkward column names and levels (spaces, quotes, accents, '#')."""
    rng = np.random.default_rng(seed)
    studies = 24
    sizes = rng.integers(1, 4, studies)
    study = np.repeat(np.arange(1, studies + 1), sizes)
    k = len(study)
    n = rng.integers(30, 300, studies)[study - 1]
    therapists = rng.integers(1, 30, studies)[study - 1]
    rater = rng.choice(["patient", "thérapeute", "other #2"], k)
    design = rng.choice(["RCT", "quasi#1", "other"], studies)[study - 1]
    r = np.clip(0.3 - 0.03 * np.log(n / therapists) + rng.normal(0, 0.12, k), -0.9, 0.9)
    frame = pd.DataFrame(
        {
            "Study ID": [f"S {s:02d}" for s in study],
            "r (alliance–outcome)": np.round(r, 3),
            "N patients": n,
            "n thérapeutes": therapists,
            'Rater; "type"': rater,
            "=Design": design,
        }
    )
    if extra_columns:
        # Other effect-size and PTR forms of the same studies: Fisher's z with its SE, the
        # study's own patient count (larger than the n of its effect sizes), a given PTR.
        frame["Fisher z"] = np.round(np.arctanh(r), 4)
        frame["SE of z"] = np.round(1 / np.sqrt(n - 3), 5)
        frame["Patients in study"] = n + rng.integers(0, 40, studies)[study - 1]
        frame["PTR given"] = np.round(frame["Patients in study"] / therapists, 3)
    if mixed_forms:
        # Every fourth effect size reported as Fisher's z with its SE only: r not reported.
        frame["r (alliance–outcome)"] = frame["r (alliance–outcome)"].astype(object)
        frame.loc[frame.index % 4 == 1, "r (alliance–outcome)"] = "n.r."
    return frame.to_csv(index=False).encode("utf-8")


UPLOAD_MAPPING = ColumnMapping(
    study="Study ID",
    r="r (alliance–outcome)",
    n="N patients",
    n_therapists="n thérapeutes",
    moderators=('Rater; "type"', "=Design"),
)


@dataclass(frozen=True)
class Prepared:
    """A state run as the dashboard runs it, with what its downloads are made from."""

    run: AnalysisRun
    mapping: ColumnMapping
    provenance: Provenance
    on_r_scale: bool
    table: pd.DataFrame  # the effect-size table (the aggregated model's rows come from it)
    robust: RobustResult | None

    def bundle_options(self) -> dict:
        return {"on_r_scale": self.on_r_scale, "table": self.table, "robust": self.robust}


def analysis_of(state: State) -> tuple[AnalysisRun, ColumnMapping, Provenance, bool]:
    """The fitted analysis of a state, its mapping, provenance and whether effects are r."""
    prepared = prepare(state)
    return prepared.run, prepared.mapping, prepared.provenance, prepared.on_r_scale


def prepare(state: State) -> Prepared:
    """A state's fitted analysis with its effect-size table and robust inference (if any)."""
    if state.dataset == "upload":
        mapping = state.upload_mapping or UPLOAD_MAPPING
        content = upload_bytes(
            extra_columns=state.upload_mapping is not None, mixed_forms=mapping.mixed_forms
        )
        uploaded = read_table(content, UPLOAD_NAME)
        report = uploaded.validate(mapping)
        assert report.ok, report.summary()
        rows, simulated = report.usable, False
        settings = AnalysisSettings(dataset="upload", **state.changes)
        dataset = UPLOAD_NAME
    else:
        info = datasets.dataset_info(state.dataset)
        rows, mapping, simulated = (
            datasets.load_dataset(state.dataset),
            info.mapping,
            info.simulated,
        )
        content = (datasets.DATA_DIR / info.filename).read_bytes()
        base = AnalysisSettings(
            dataset=state.dataset,
            model="three-level" if mapping.study else "two-level",
            moderators=(PTR,) if mapping.has_therapists else (),
        )
        settings = base.with_changes(**state.changes)
        dataset = state.dataset
    table = effect_size_table(rows, mapping)
    run = run_analysis(rows, mapping, settings, table=table)
    if state.che_rho is not None:
        # The CHE working model on the same rows and moderators (the engine's fit with rho).
        res = run.result
        che = fit(
            run.data,
            moderators=list(run.moderator_columns),
            reference={c: v for c, v in settings.reference.items() if c in run.moderator_columns}
            or None,
            method=settings.method,
            cluster=res.cluster,
            test=res.test,
            rho=state.che_rho,
        )
        run = replace(run, result=che)
    robust = run.result.robust(method="CR2") if state.robust else None
    provenance = Provenance.of(
        run,
        mapping,
        dataset=dataset,
        content=content,
        title=None if state.dataset == "upload" else datasets.dataset_info(state.dataset).title,
        uploaded=state.dataset == "upload",
        simulated=simulated,
        robust=robust,
    )
    return Prepared(run, mapping, provenance, mapping.uses_correlations, table, robust)


def prepare_named(names) -> dict[str, Prepared]:
    """The states of ``STATES`` named in ``names``, prepared, in the order of ``STATES``."""
    return {state.name: prepare(state) for state in STATES if state.name in names}
