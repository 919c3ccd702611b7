"""The hand-over covers both models a page shows: one folder per model, and a runner whose
agreement line counts the numbers of both (the pooled model and the model with moderators).

The expected counts are the rows of each model's own results file (what each folder's script
compares); the numbers themselves are checked by the scripts (against metafor for R).
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile

import pandas as pd
import pytest

import alliance_core as ac
from alliance_core.handover import reproduce
from alliance_core.handover.reproduce import parse_agreement
from alliance_core.handover.reproduce.common import COMPARED_COLUMNS
from tests.r_reference import apply, needs_r
from tests.tools import bundled_provenance

COMPARED = list(COMPARED_COLUMNS)


def _state(name: str, **settings):
    info = ac.datasets.dataset_info(name)
    state = ac.analysis_state(
        ac.load_dataset(name), info.mapping, ac.AnalysisSettings(dataset=name, **settings)
    )
    return state, info


def _models(state, info, name):
    return [
        (
            label,
            run,
            bundled_provenance(run, name),
        )
        for label, run, _ in state.models()
    ]


CASES = {
    # CR2 on the three-level CHE model, PTR and a rater (the robust rows and prediction).
    "default-CR2": (
        ac.DEFAULT_DATASET,
        {"moderators": ("PTR", "alliance_rater"), "inference": "CR2"},
    ),
    # A moderator with missing values: the pooled model has more rows than the moderator model.
    "mcdaniel-type": ("mcdaniel1994", {"model": "two-level", "moderators": ("type",)}),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def bundle(request, tmp_path_factory):
    name, settings = CASES[request.param]
    state, info = _state(name, **settings)
    models = _models(state, info, name)
    out = {}
    for language in ("R", "Python"):
        folder = tmp_path_factory.mktemp(f"{request.param}-{language}")
        content = reproduce.models_bundle(
            models, info.mapping, on_r_scale=state.on_r_scale, language=language, table=None
        )
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            archive.extractall(folder)
        out[language] = folder
    return state, out


def _expected_count(folder) -> int:
    total = 0
    for part in ("pooled", "moderators"):
        frame = pd.read_csv(folder / part / "dashboard_results.csv", comment="#")
        total += int(frame[[c for c in COMPARED if c in frame.columns]].notna().to_numpy().sum())
    return total


def test_each_model_has_its_folder_with_its_own_rows(bundle):
    state, folders = bundle
    folder = folders["Python"]
    for part, run in (("pooled", state.pooled), ("moderators", state.moderated)):
        rows = pd.read_csv(folder / part / "data.csv")
        assert len(rows) == run.result.k or "ki" in run.data.columns
    results = pd.read_csv(folder / "moderators" / "dashboard_results.csv", comment="#")
    assert (results["section"] == "robust prediction").any() == (state.moderated.robust is not None)
    # Under CR2 both prediction rows say which inference they are.
    names = results.loc[results["section"].str.endswith("prediction"), "name"].tolist()
    if state.moderated.robust is not None:
        assert names[0].endswith("model-based") and "CR2" in names[1]
    else:
        assert len(names) == 1 and "model-based" not in names[0]


def test_the_python_runner_counts_both_models(bundle):
    _, folders = bundle
    folder = folders["Python"]
    proc = subprocess.run(
        [sys.executable, "analysis.py"], cwd=folder, capture_output=True, text=True, timeout=900
    )
    counts = parse_agreement(proc.stdout.splitlines()[-1])
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert counts == (_expected_count(folder), _expected_count(folder))
    assert "pooled and moderators" in proc.stdout.splitlines()[-1]


@apply(needs_r("metafor", "clubSandwich"))
def test_the_r_runner_counts_both_models(bundle):
    _, folders = bundle
    folder = folders["R"]
    proc = subprocess.run(
        ["Rscript", "analysis.R"], cwd=folder, capture_output=True, text=True, timeout=900
    )
    last = proc.stdout.strip().splitlines()[-1]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert parse_agreement(last) == (_expected_count(folder), _expected_count(folder))
