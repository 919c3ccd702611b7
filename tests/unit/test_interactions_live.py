"""Live comparison of interactions and marginal means with R on random datasets (seeded).

Each case draws nested alliance-like data, fits the model here and with
``Rscript scripts/interaction_reference.R`` (one R start-up for all cases; the same code as
the fixtures of tests/fixtures/interactions) and compares coefficient names, estimates, SEs,
the Wald test of every term, and the marginal means of every categorical moderator
(metafor ``predict`` and clubSandwich CR2 ``linear_contrast``), with the tolerances of
tests/unit/test_interactions.py and tests/unit/test_marginal_means.py. Skipped when Rscript
with metafor and clubSandwich is absent; CI installs them and refuses to count a skip as a
pass.
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
SCRIPT = REPO / "scripts" / "interaction_reference.R"

pytestmark = needs_r("metafor", "clubSandwich", "jsonlite")

# (seed, model, method, test, formula terms, rho)
CASES = [
    (2211, "two-level", "REML", "z", ["log_ptr", "rater", "log_ptr:rater"], None),
    (2212, "three-level", "REML", "t", ["log_ptr", "rater", "design", "log_ptr:rater"], None),
    (2213, "che", "ML", "z", ["rater", "design", "log_ptr", "rater:design"], 0.6),
]


def draw(seed: int, studies: int = 35) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, studies)
    study = np.repeat(np.arange(studies), sizes)
    k = len(study)
    n = rng.integers(25, 300, studies)[study]
    log_ptr = rng.normal(1.3, 0.8, studies)[study]
    rater = rng.choice(["observer", "patient", "therapist"], k)
    design = rng.choice(["RCT", "other"], studies)[study]
    vi = 1.0 / (n - 3.0)
    slope = np.where(rater == "observer", -0.08, -0.02)
    truth = 0.3 + slope * log_ptr + rng.normal(0, 0.1, studies)[study] + rng.normal(0, 0.05, k)
    return pd.DataFrame(
        {
            "yi": truth + rng.normal(0, np.sqrt(vi)),
            "vi": vi,
            "study": [f"s{i}" for i in study],
            "es": [f"e{j}" for j in range(k)],
            "log_ptr": log_ptr.round(6),
            "rater": rater,
            "design": design,
        }
    )


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("interactions_live")
    cases = []
    for seed, model, method, test, terms, rho in CASES:
        data = draw(seed)
        data.to_csv(tmp / f"data{seed}.csv", index=False)
        mains = [t for t in terms if ":" not in t]
        spec = {
            "model": model,
            "method": method,
            "test": test,
            "moderators": mains,
            "formula": "~ " + " + ".join(terms),
        }
        if rho is not None:
            spec["rho"] = rho
        cases.append({"name": str(seed), "data_csv": str(tmp / f"data{seed}.csv"), "spec": spec})
    (tmp / "cases.json").write_text(json.dumps(cases))
    subprocess.run(
        ["Rscript", str(SCRIPT), str(tmp / "cases.json"), str(tmp / "out.json")],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return json.loads((tmp / "out.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=[str(c[0]) for c in CASES])
def test_against_r(references, case):
    seed, model, method, test, terms, rho = case
    expected = references[str(seed)]
    options = {}
    if model != "two-level":
        options = {"cluster": "study", "es_id": "es", "rho": rho}
    res = ac.fit(draw(seed), moderators=terms, method=method, test=test, **options)
    coefficients = expected["coefficients"]
    assert list(res.design.names) == coefficients["names"]
    scale = float(np.max(np.abs(coefficients["estimate"]) + np.asarray(coefficients["se"])))
    for column in ("estimate", "se", "ci_lb", "ci_ub"):
        np.testing.assert_allclose(
            res.coefficients[column], coefficients[column], rtol=0, atol=1e-7 * scale
        )
    for wald in expected["wald"]:
        got = res.wald_test(wald["term"])
        np.testing.assert_allclose(got.statistic, wald["statistic"], rtol=1e-6)
        np.testing.assert_allclose(got.pval, wald["pval"], rtol=0, atol=1e-7)
    rob = res.robust(cluster="study")
    for means in expected["marginal_means"]:
        model_based = res.marginal_means(means["focal"]).table
        assert list(model_based.index) == means["levels"]
        np.testing.assert_allclose(model_based["estimate"], means["model"]["pred"], rtol=1e-6)
        np.testing.assert_allclose(model_based["se"], means["model"]["se"], rtol=1e-6)
        np.testing.assert_allclose(
            model_based["pi_ub"], means["model"]["pi_ub"], rtol=1e-6, atol=1e-7 * scale
        )
        robust = res.marginal_means(means["focal"], robust=rob).table
        np.testing.assert_allclose(robust["se"], means["cr2"]["se"], rtol=1e-6)
        np.testing.assert_allclose(robust["df"], means["cr2"]["df"], rtol=1e-6)
