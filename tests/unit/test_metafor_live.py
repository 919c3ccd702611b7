"""Live comparison with R's metafor on randomly drawn datasets (seeded, so reproducible).

Each case draws a dataset (two- or three-level, numeric and categorical moderators, small k
and heterogeneity near zero among them), fits it here and with
``Rscript scripts/metafor_reference.R``, and compares the numbers. Skipped when Rscript with
metafor is absent; CI installs both and refuses to count such a skip as a pass.
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
SCRIPT = REPO / "scripts" / "metafor_reference.R"


pytestmark = needs_r("metafor", "jsonlite")

# (seed, model, method, test, k studies, tau scale, with moderators)
CASES = [
    (101, "two-level", "REML", "z", 40, 0.15, True),
    (102, "two-level", "DL", "knha", 12, 0.10, True),
    (103, "two-level", "PM", "z", 25, 0.20, False),
    (104, "two-level", "ML", "knha", 8, 0.0, True),  # no true heterogeneity, small k
    (105, "two-level", "SJ", "z", 30, 0.05, True),
    (106, "two-level", "HE", "knha", 20, 0.12, True),
    (107, "two-level", "EE", "z", 15, 0.0, True),
    (201, "three-level", "REML", "z", 30, 0.15, True),
    (202, "three-level", "ML", "t", 12, 0.10, True),
    (203, "three-level", "REML", "t", 20, 0.0, True),  # study-level variance truly zero
    (204, "three-level", "REML", "z", 60, 0.20, False),
]


def draw(seed: int, model: str, studies: int, tau: float) -> pd.DataFrame:
    """Fisher-z correlations with a PTR-like numeric moderator and a rater factor."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 6, studies) if model == "three-level" else np.ones(studies, int)
    study = np.repeat(np.arange(studies), sizes)
    k = len(study)
    n = rng.integers(15, 250, studies)[study]
    log_ptr = rng.normal(1.2, 0.9, studies)[study]
    rater = rng.choice(["patient", "observer", "therapist"], k)
    truth = 0.3 - 0.04 * log_ptr + 0.05 * (rater == "observer")
    truth = truth + rng.normal(0, tau, studies)[study] + rng.normal(0, tau / 2, k)
    vi = 1.0 / (n - 3.0)
    yi = truth + rng.normal(0, np.sqrt(vi))
    return pd.DataFrame(
        {
            "yi": yi,
            "vi": vi,
            "study": [f"s{i}" for i in study],
            "es": [f"e{j}" for j in range(k)],
            "log_ptr": log_ptr,
            "rater": rater,
        }
    )


def run_metafor(tmp_path: Path, data: pd.DataFrame, settings: dict) -> dict:
    spec = tmp_path / "spec.json"
    out = tmp_path / "out.json"
    data.to_csv(tmp_path / "data.csv", index=False)
    spec.write_text(json.dumps({"data_csv": "data.csv", "settings": settings}))
    proc = subprocess.run(
        ["Rscript", str(SCRIPT), str(spec), str(out)], capture_output=True, text=True, timeout=300
    )
    result = json.loads(out.read_text())
    assert proc.returncode == 0, result.get("error", proc.stderr)
    return result


@pytest.mark.parametrize(
    ("seed", "model", "method", "test", "studies", "tau", "mods"),
    CASES,
    ids=[str(c[0]) for c in CASES],
)
def test_random_dataset_agrees_with_metafor(
    tmp_path, seed, model, method, test, studies, tau, mods
):
    data = draw(seed, model, studies, tau)
    moderators = ["log_ptr", "rater"] if mods else []
    reference = {"rater": "patient"} if mods else {}
    newdata = (
        [{"log_ptr": 0.0, "rater": "observer"}, {"log_ptr": 2.3, "rater": "patient"}]
        if mods
        else []
    )
    settings = {
        "model": model,
        "method": method,
        "test": test,
        "moderators": moderators,
        "reference": reference,
        "newdata": newdata,
        "wald_terms": ["raterobserver", "ratertherapist"] if mods else [],
    }
    expected = run_metafor(tmp_path, data, settings)
    res = ac.fit(
        data,
        moderators=moderators,
        reference=reference or None,
        method=method,
        test=test,
        cluster="study" if model == "three-level" else None,
    )
    coef = expected["coefficients"]
    assert list(res.coefficients.index) == coef["term"]
    scale = float(np.max(np.abs(coef["estimate"]) + np.asarray(coef["se"])))
    np.testing.assert_allclose(
        res.coefficients["estimate"], coef["estimate"], rtol=1e-6, atol=1e-7 * scale
    )
    np.testing.assert_allclose(res.coefficients["se"], coef["se"], rtol=1e-6)
    np.testing.assert_allclose(res.coefficients["pval"], coef["pval"], rtol=0, atol=1e-7)
    if model == "three-level":
        np.testing.assert_allclose(res.sigma2, expected["sigma2"], rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(res.I2_levels, expected["I2_levels"], rtol=1e-6, atol=1e-6)
    else:
        np.testing.assert_allclose(res.tau2, expected["tau2"], rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(res.H2, expected["H2"], rtol=1e-6)
    np.testing.assert_allclose(res.QE, expected["QE"], rtol=1e-8)
    np.testing.assert_allclose(res.I2, expected["I2"], rtol=1e-6, atol=1e-6)
    for name in ("loglik", "deviance", "aic", "bic", "aicc"):
        np.testing.assert_allclose(
            getattr(res, name), expected[name], rtol=1e-7, atol=1e-8, err_msg=name
        )
    if mods:
        np.testing.assert_allclose(res.QM, expected["QM"], rtol=1e-6)
        np.testing.assert_allclose(res.QM_pval, expected["QM_pval"], rtol=0, atol=1e-7)
        wald = res.wald_test(["rater"])
        np.testing.assert_allclose(wald.statistic, expected["wald"]["QM"], rtol=1e-6)
        got = res.predict(pd.DataFrame(newdata))
        for column in ("pred", "ci_lb", "ci_ub"):
            np.testing.assert_allclose(
                got[column], expected["predict"][column], rtol=1e-6, atol=1e-7 * scale
            )
