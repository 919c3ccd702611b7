"""Live comparison of CR2 predictions with R on random datasets (seeded).

Each case draws nested data (effect sizes in studies, a numeric and a categorical moderator,
studies grouped into coarser clusters) and random prediction rows, fits the model here and
with ``Rscript scripts/robust_prediction_reference.R`` (one R start-up for all cases), and
compares ``res.robust(cluster).predict(newmods)`` with clubSandwich ``linear_contrast`` and
metafor ``predict(robust(fit, cluster, clubSandwich = TRUE), newmods)``: pred, se, df, CI and
PI within 1e-6 relative (a bound near zero: relative to its interval's width). Skipped when
Rscript with metafor and clubSandwich is absent; CI installs them and refuses to count such a
skip as a pass.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance_core as ac
from tests.r_reference import needs_r

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "robust_prediction_reference.R"
RTOL = 1e-6
LEVELS = ("observer", "patient", "therapist")

pytestmark = needs_r("metafor", "clubSandwich", "jsonlite")

# (seed, model, studies, moderators, robust cluster, rho)
CASES = [
    (401, "che", 35, True, "study", 0.6),
    (402, "che", 20, False, "study", 0.0),
    (403, "three-level", 30, True, "group", None),  # clusters coarser than studies
    (404, "two-level", 25, True, "study", None),
    (405, "che", 9, True, "study", 0.8),  # few clusters: small df
]


def draw(seed: int, studies: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 7, studies)
    study = np.repeat(np.arange(studies), sizes)
    k = len(study)
    n = rng.integers(20, 300, studies)[study]
    log_ptr = rng.uniform(0.0, 3.5, studies)[study]
    rater = rng.choice(LEVELS, k)
    rater[:3] = LEVELS  # every level present
    vi = 1.0 / (n - 3.0)
    truth = 0.3 - 0.04 * log_ptr + 0.05 * (rater == "observer")
    truth = truth + 0.12 * rng.standard_t(4, studies)[study] + rng.normal(0, 0.06, k)
    return pd.DataFrame(
        {
            "yi": truth + rng.normal(0, np.sqrt(vi)),
            "vi": vi,
            "study": [f"s{i}" for i in study],
            "es": [f"e{j}" for j in range(k)],
            "group": [f"g{i // 3}" for i in study],
            "log_ptr": log_ptr,
            "rater": rater,
        }
    )


def new_rows(seed: int, mods: bool) -> dict:
    if not mods:
        return {}
    rng = np.random.default_rng(seed + 1000)
    return {
        "log_ptr": [float(v) for v in rng.uniform(-0.5, 4.0, 6)],  # some beyond the data
        "rater": [str(v) for v in rng.choice(LEVELS, 6)],
    }


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("robust_prediction_live")
    cases = []
    for seed, model, studies, mods, cluster, rho in CASES:
        draw(seed, studies).to_csv(tmp / f"data{seed}.csv", index=False)
        spec = {
            "model": model,
            "method": "REML",
            "moderators": ["log_ptr", "rater"] if mods else [],
            "cluster": cluster,
        }
        if rho is not None:
            spec["rho"] = rho
        cases.append({"data_csv": f"data{seed}.csv", "spec": spec, "newdata": new_rows(seed, mods)})
    (tmp / "cases.json").write_text(json.dumps(cases))
    out = tmp / "out.json"
    proc = subprocess.run(
        ["Rscript", str(SCRIPT), str(tmp / "cases.json"), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    result = json.loads(out.read_text())
    assert proc.returncode == 0, result.get("error", proc.stderr)
    return {case[0]: expected for case, expected in zip(CASES, result, strict=True)}


def close(actual, expected, width, what: str) -> None:
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    allowed = RTOL * np.maximum(np.abs(expected), width)
    error = np.abs(actual - expected)
    assert np.all(error <= allowed), f"{what}: errors {error} allowed {allowed}"


@pytest.mark.parametrize(
    ("seed", "model", "studies", "mods", "cluster", "rho"), CASES, ids=[str(c[0]) for c in CASES]
)
def test_random_predictions_agree_with_clubsandwich_and_metafor(
    references, seed, model, studies, mods, cluster, rho
):
    expected = references[seed]
    data = draw(seed, studies)
    moderators = ["log_ptr", "rater"] if mods else None
    if model == "two-level":
        res = ac.fit(data, moderators=moderators)
    else:
        res = ac.fit(data, moderators=moderators, cluster="study", rho=rho)
    rows = new_rows(seed, mods)
    out = res.robust(cluster=cluster).predict(pd.DataFrame(rows) if rows else None)
    metafor, sandwich = expected["metafor"], expected["clubsandwich"]
    width = np.asarray(metafor["pi_ub"]) - np.asarray(metafor["pi_lb"])
    for column, reference in [
        ("pred", sandwich["est"]),
        ("se", sandwich["se"]),
        ("df", sandwich["df"]),
        ("ci_lb", sandwich["ci_lb"]),
        ("ci_ub", sandwich["ci_ub"]),
        ("df", metafor["df"]),
        ("pi_lb", metafor["pi_lb"]),
        ("pi_ub", metafor["pi_ub"]),
    ]:
        close(out[column], reference, width if column[1:3] == "i_" else 0, column)
