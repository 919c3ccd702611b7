"""Live comparison of selmodel() with metafor's selmodel(type = "stepfun") on random data.

Seeded random data sets (with and without a moderator, one to three cuts, with and without
selection) are fitted here and by ``Rscript scripts/selection_reference.R`` (one R start-up
for all cases) and compared at the issue's tolerances (1e-5 relative; 1e-4 for tau2 and the
deltas). Skipped without Rscript and metafor; CI installs them and counts a skip as a failure.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import alliance_core as ac
from tests.r_reference import needs_r

pytestmark = needs_r("metafor", "jsonlite", "numDeriv")

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "selection_reference.R"
CASES = [
    # seed, k, cuts, moderator, probability of publishing a non-significant effect
    (101, 40, [0.025], False, 0.3),
    (102, 80, [0.025, 0.5], False, 0.5),
    (103, 120, [0.025], True, 1.0),
    (104, 150, [0.05, 0.1, 0.5], True, 0.4),
    (105, 60, [0.025, 0.5], True, 0.7),
    (106, 200, [0.01, 0.025, 0.5], False, 0.5),
]


def draw(seed: int, k: int, moderator: bool, weight: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    while len(rows) < k:
        n = rng.integers(15, 250)
        x = rng.normal()
        v = 1.0 / (n - 3)
        y = rng.normal(0.2 + (0.08 * x if moderator else 0.0), np.sqrt(0.03 + v))
        if stats.norm.sf(y / np.sqrt(v)) <= 0.025 or rng.uniform() < weight:
            rows.append((y, v, x))
    return pd.DataFrame(rows, columns=["yi", "vi", "x"])


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("selection_live")
    cases = []
    for seed, k, cuts, moderator, weight in CASES:
        d = draw(seed, k, moderator, weight)
        cases.append(
            {
                "yi": d.yi.tolist(),
                "vi": d.vi.tolist(),
                "x": d.x.tolist() if moderator else None,
                "steps": cuts,
            }
        )
    (tmp / "cases.json").write_text(json.dumps(cases))
    out = tmp / "out.json"
    proc = subprocess.run(
        ["Rscript", str(SCRIPT), str(tmp / "cases.json"), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


@pytest.mark.parametrize("index", range(len(CASES)))
def test_random_data_agree_with_metafor_selmodel(references, index):
    seed, k, cuts, moderator, weight = CASES[index]
    expected = references[index]
    d = draw(seed, k, moderator, weight)
    res = ac.fit(d, moderators=["x"] if moderator else None)
    if "error" in expected:
        with pytest.raises(ac.AnalysisError):
            ac.selmodel(res, steps=cuts)
        return
    sel = ac.selmodel(res, steps=cuts)
    se = np.asarray(expected["se"], float)
    np.testing.assert_allclose(sel.coefficients["estimate"], expected["beta"], atol=1e-5 * se.max())
    np.testing.assert_allclose(sel.coefficients["se"], se, rtol=1e-5)
    np.testing.assert_allclose(sel.tau2, expected["tau2"], rtol=1e-4, atol=1e-8)
    if expected["tau2"] > 1e-8:
        np.testing.assert_allclose(sel.se_tau2, expected["se_tau2"], rtol=1e-4)
    np.testing.assert_allclose(sel.delta["estimate"], expected["delta"], rtol=1e-4)
    np.testing.assert_allclose(
        sel.delta["se"].iloc[1:], np.asarray(expected["se_delta"][1:], float), rtol=1e-4
    )
    np.testing.assert_allclose(sel.LRT, expected["LRT"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(sel.loglik, expected["loglik"], rtol=1e-9)
