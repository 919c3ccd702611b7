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

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance_core as ac
from tests.r_reference import needs_r
from tests.unit.live_r import RATERS, draw_clustered, run_r_reference

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "robust_prediction_reference.R"
RTOL = 1e-6

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
    return draw_clustered(seed, studies, lambda rng, m: rng.uniform(0.0, 3.5, m), every_rater=True)


def new_rows(seed: int, mods: bool) -> dict:
    if not mods:
        return {}
    rng = np.random.default_rng(seed + 1000)
    return {
        "log_ptr": [float(v) for v in rng.uniform(-0.5, 4.0, 6)],  # some beyond the data
        "rater": [str(v) for v in rng.choice(RATERS, 6)],
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
    result = run_r_reference(SCRIPT, tmp / "cases.json", cases, timeout=600)
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
