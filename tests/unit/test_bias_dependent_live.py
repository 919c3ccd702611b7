"""Live comparison with metafor + clubSandwich of Egger's test and PET-PEESE on the CHE model,
on randomly drawn nested datasets (seeded).

Each case draws a dataset, runs ``egger_test`` / ``pet_peese`` here (model-based and CR2) and
``Rscript scripts/bias_dependent_reference.R`` (the code of the committed fixtures), and
compares estimates, standard errors, df and p-values. Skipped when Rscript with metafor and
clubSandwich is absent; CI installs them and refuses to count such a skip as a pass.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance_core as ac
from alliance_core.analyses.small_study import egger_test, pet_peese
from tests.r_reference import needs_r

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "bias_dependent_reference.R"
RTOL = 1e-6

pytestmark = needs_r("metafor", "clubSandwich", "jsonlite")

# (seed, studies, rho, method, test, small-study slope)
CASES = [
    (401, 30, 0.6, "REML", "z", 1.0),
    (402, 12, 0.8, "ML", "t", 0.0),
    (403, 20, 0.4, "REML", "t", 0.5),
    (404, 8, 0.6, "REML", "z", 0.0),  # few studies: robust df small
]


def draw(seed: int, studies: int, slope: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 7, studies)
    study = np.repeat(np.arange(studies), sizes)
    k = len(study)
    n = rng.integers(15, 300, studies)[study]
    vi = 1.0 / (n - 3.0)
    yi = (
        0.25
        + slope * np.sqrt(vi)
        + rng.normal(0, 0.1, studies)[study]
        + rng.normal(0, 0.05, k)
        + rng.normal(0, np.sqrt(vi))
    )
    es = np.concatenate([np.arange(size) for size in sizes])
    return pd.DataFrame(
        {"yi": yi, "vi": vi, "study": [f"s{i}" for i in study], "es": [f"e{j}" for j in es]}
    )


def run_r(tmp_path: Path, data: pd.DataFrame, spec: dict) -> dict:
    data.to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "spec.json").write_text(json.dumps({"data_csv": "data.csv", "spec": spec}))
    out = tmp_path / "out.json"
    proc = subprocess.run(
        ["Rscript", str(SCRIPT), str(tmp_path / "spec.json"), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    result = json.loads(out.read_text())
    assert proc.returncode == 0, result.get("error", proc.stderr)
    return result


@pytest.mark.parametrize(
    ("seed", "studies", "rho", "method", "test", "slope"), CASES, ids=[str(c[0]) for c in CASES]
)
def test_random_dataset_agrees_with_metafor_and_club_sandwich(
    tmp_path, seed, studies, rho, method, test, slope
):
    data = draw(seed, studies, slope)
    expected = run_r(tmp_path, data, {"rho": rho, "method": method, "test": test})
    res = ac.fit(data, cluster="study", rho=rho, method=method, test=test)
    model_egger, model_pp = egger_test(res), pet_peese(res)
    cr2_egger, cr2_pp = egger_test(res, inference="CR2"), pet_peese(res, inference="CR2")
    pairs = (
        (model_egger.fit, cr2_egger.robust, expected["sei"]),
        (model_pp.peese, cr2_pp.peese_robust, expected["vi"]),
    )
    for fit, rob, ref in pairs:
        for column in ("estimate", "se", "statistic", "pval", "ci_lb", "ci_ub"):
            np.testing.assert_allclose(fit.coefficients[column], ref["model"][column], rtol=RTOL)
        for column in ("se", "statistic", "df", "pval", "ci_lb", "ci_ub"):
            np.testing.assert_allclose(rob.coefficients[column], ref["cr2"][column], rtol=RTOL)
    sei = expected["sei"]["cr2"]
    np.testing.assert_allclose(
        [cr2_egger.statistic, cr2_egger.ddf, cr2_egger.pval],
        [sei["statistic"][1], sei["df"][1], sei["pval"][1]],
        rtol=RTOL,
    )
