"""The two-level model on one aggregated effect per study agrees with metafor end to end.

Fixtures: tests/fixtures/aggregated/*.json, written by scripts/make_aggregated_model_fixtures.R
(metafor ``aggregate.escalc(struct = "CS", rho)`` then ``rma()`` on the aggregated rows), with
the data embedded. Here the same data go through ``run_analysis`` with the dashboard's
"two-level-aggregated" model, so the aggregation, the dropping of nothing that metafor keeps,
and the fit are all checked together.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance_core.analyses.run import run_analysis
from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.data.mapping import ColumnMapping
from tests.r_reference import apply, needs_r

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "aggregated"
CASES = sorted(FIXTURES.glob("*.json"))


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_there_are_fixtures_for_correlations_and_standardized_mean_differences():
    names = {path.stem for path in CASES}
    assert any(n.startswith("alliance") for n in names) and any(
        n.startswith("assink") for n in names
    )


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_aggregated_two_level_model_agrees_with_metafor(path):
    case = load(path)
    spec, expected = case["spec"], case["result"]
    data = pd.DataFrame(case["data"])
    moderators = tuple(spec["moderators"])
    mapping = ColumnMapping(study="study", yi="yi", vi="vi", moderators=moderators)
    settings = AnalysisSettings(
        dataset="upload",
        model="two-level-aggregated",
        rho=spec["rho"],
        method=spec["method"],
        test="t" if spec["test"] == "knha" else "z",
        moderators=moderators,
    )
    run = run_analysis(data, mapping, settings)
    res = run.result

    assert res.k == expected["k"]
    np.testing.assert_allclose(run.data["yi"], expected["agg_yi"], rtol=1e-10)
    np.testing.assert_allclose(run.data["vi"], expected["agg_vi"], rtol=1e-10)
    np.testing.assert_allclose(res.beta, expected["beta"], rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(res.coefficients["se"], expected["se"], rtol=1e-6)
    np.testing.assert_allclose(res.coefficients["pval"], expected["pval"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(res.coefficients["ci_lb"], expected["ci_lb"], rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(res.coefficients["ci_ub"], expected["ci_ub"], rtol=1e-6, atol=1e-10)
    assert res.tau2 == pytest.approx(expected["tau2"], rel=1e-6, abs=1e-10)
    np.testing.assert_allclose(res.QE, expected["QE"], rtol=1e-6)
    assert res.QE_df == expected["QE_df"]
    np.testing.assert_allclose(res.I2, expected["I2"], rtol=1e-6, atol=1e-8)
    if expected["QM"] is not None:
        np.testing.assert_allclose(res.QM, expected["QM"], rtol=1e-6)


# -- live: random nested datasets through R -------------------------------------------------
R_SCRIPT = """
suppressPackageStartupMessages({library(metafor); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = FALSE)
rho <- as.numeric(args[2])
e <- escalc(yi = yi, vi = vi, data = d)
agg <- aggregate(e, cluster = study, rho = rho, struct = "CS")
fit <- rma(yi, vi, mods = ~ log_ptr, data = agg, method = "REML",
           control = list(threshold = 1e-10, maxiter = 1000))
writeLines(toJSON(list(beta = as.vector(fit$beta), se = as.vector(fit$se),
                       tau2 = fit$tau2, QE = fit$QE, k = fit$k), digits = NA, auto_unbox = TRUE),
           args[3])
"""


def draw_nested(seed: int, studies: int) -> pd.DataFrame:
    """Nested Fisher-z effects (1-6 per study) with a study-level log PTR and known truth."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 7, studies)
    study = np.repeat(np.arange(studies), sizes)
    n = rng.integers(20, 300, studies)[study]
    log_ptr = rng.normal(1.5, 1.0, studies)[study]
    truth = 0.3 - 0.03 * log_ptr + rng.normal(0, 0.1, studies)[study]
    truth = truth + rng.normal(0, 0.05, len(study))
    vi = 1.0 / (n - 3.0)
    return pd.DataFrame(
        {
            "study": [f"s{i}" for i in study],
            "yi": truth + rng.normal(0, np.sqrt(vi)),
            "vi": vi,
            "log_ptr": log_ptr,
        }
    )


@apply(needs_r("metafor", "jsonlite"))
@pytest.mark.parametrize(("seed", "studies", "rho"), [(11, 30, 0.6), (12, 12, 0.0), (13, 60, 0.85)])
def test_random_nested_data_agree_with_metafor(tmp_path, seed, studies, rho):
    data = draw_nested(seed, studies)
    data.to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "run.R").write_text(R_SCRIPT)
    proc = subprocess.run(
        [
            "Rscript",
            str(tmp_path / "run.R"),
            str(tmp_path / "data.csv"),
            str(rho),
            str(tmp_path / "out.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    expected = json.loads((tmp_path / "out.json").read_text())
    mapping = ColumnMapping(study="study", yi="yi", vi="vi", moderators=("log_ptr",))
    settings = AnalysisSettings(
        dataset="upload", model="two-level-aggregated", rho=rho, moderators=("log_ptr",)
    )
    res = run_analysis(data, mapping, settings).result
    assert res.k == expected["k"] == studies
    np.testing.assert_allclose(res.beta, expected["beta"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(res.coefficients["se"], expected["se"], rtol=1e-6)
    np.testing.assert_allclose(res.tau2, expected["tau2"], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(res.QE, expected["QE"], rtol=1e-6)
