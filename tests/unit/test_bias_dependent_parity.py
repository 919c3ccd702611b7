"""Egger's test and PET-PEESE on the dependent-effects (CHE) model agree with metafor and
clubSandwich: ``rma.mv(yi ~ sqrt(vi) | vi, V, random = ~ 1 | study/es)`` with
``V = vcalc(vi, study, obs = es, rho)``, model-based and with ``coef_test(vcov = "CR2")``
(fixtures from scripts/make_bias_dependent_fixtures.R; see
tests/fixtures/bias_dependent/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance_core as ac
from alliance_core.analyses.bias_tests import bias_tests_of
from alliance_core.analyses.small_study import egger_test, pet_peese
from alliance_core.analyses.state import analysis_state
from alliance_core.data.datasets import DEFAULT_DATASET, dataset_info, load_dataset

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bias_dependent"
CASES = sorted(p.stem for p in FIXTURES.glob("*.json"))
RTOL = 1e-6


def load(name: str) -> tuple[dict, pd.DataFrame]:
    case = json.loads((FIXTURES / f"{name}.json").read_text())
    return case, pd.DataFrame(case["data"])


def fitted(case: dict, data: pd.DataFrame):
    spec = case["spec"]
    return ac.fit(data, cluster="study", rho=spec["rho"], method=spec["method"], test=spec["test"])


def close(actual, expected) -> None:
    np.testing.assert_allclose(np.asarray(actual, float), np.asarray(expected, float), rtol=RTOL)


def test_every_case_is_here():
    assert len(CASES) >= 6 and "alliance_rho60_reml_z" in CASES
    assert any(c.startswith("assink2016") for c in CASES)
    assert any(c.startswith("sim") for c in CASES)


@pytest.mark.parametrize("name", CASES)
def test_model_based_egger_and_peese_agree_with_metafor(name):
    case, data = load(name)
    res = fitted(case, data)
    egger = egger_test(res)
    peese = pet_peese(res).peese
    for fit, ref in ((egger.fit, case["result"]["sei"]), (peese, case["result"]["vi"])):
        close(fit.sigma2.to_numpy(), ref["sigma2"])
        table, expected = fit.coefficients, ref["model"]
        for column in ("estimate", "se", "statistic", "pval", "ci_lb", "ci_ub"):
            close(table[column], expected[column])
        assert fit.ddf == expected["ddf"]
    ref = case["result"]["sei"]["model"]
    close(
        [egger.slope, egger.slope_se, egger.statistic, egger.pval],
        [ref["estimate"][1], ref["se"][1], ref["statistic"][1], ref["pval"][1]],
    )
    close(
        [egger.limit_estimate, *egger.limit_ci],
        [ref["estimate"][0], ref["ci_lb"][0], ref["ci_ub"][0]],
    )
    assert egger.ddf == ref["ddf"] and egger.robust is None


@pytest.mark.parametrize("name", CASES)
def test_cr2_egger_and_pet_peese_agree_with_club_sandwich(name):
    case, data = load(name)
    res = fitted(case, data)
    egger = egger_test(res, inference="CR2")
    pp = pet_peese(res, inference="CR2")
    for rob, ref in (
        (egger.robust, case["result"]["sei"]),
        (pp.peese_robust, case["result"]["vi"]),
    ):
        table, expected = rob.coefficients, ref["cr2"]
        close(table["estimate"], ref["model"]["estimate"])
        for column in ("se", "statistic", "df", "pval", "ci_lb", "ci_ub"):
            close(table[column], expected[column])
        assert rob.n_clusters == case["result"]["n_studies"]
    sei = case["result"]["sei"]["cr2"]
    close(
        [egger.slope_se, egger.statistic, egger.ddf, egger.pval],
        [sei["se"][1], sei["statistic"][1], sei["df"][1], sei["pval"][1]],
    )
    close(egger.limit_ci, [sei["ci_lb"][0], sei["ci_ub"][0]])
    # PET-PEESE's rule reads PET's robust intercept test: one-sided p from its t and df.
    from scipy import stats

    one_sided = stats.t.sf(sei["statistic"][0], sei["df"][0])
    close(pp.pet_one_sided_p, one_sided)
    chosen = case["result"]["vi" if one_sided < 0.05 else "sei"]
    assert pp.chosen == ("PEESE" if one_sided < 0.05 else "PET")
    close(
        [pp.estimate, pp.se, pp.pval, *pp.ci],
        [
            chosen["model"]["estimate"][0],
            chosen["cr2"]["se"][0],
            chosen["cr2"]["pval"][0],
            chosen["cr2"]["ci_lb"][0],
            chosen["cr2"]["ci_ub"][0],
        ],
    )


@pytest.mark.parametrize("name", CASES)
def test_a_test_on_few_studies_or_few_robust_df_carries_its_caution(name):
    case, data = load(name)
    res = fitted(case, data)
    egger = egger_test(res, inference="CR2")
    studies = case["result"]["n_studies"]
    df = case["result"]["sei"]["cr2"]["df"][1]
    assert (egger.caution is not None) == (studies < 10 or df < 4)
    if egger.caution:
        assert egger.significant is None
        text = egger.describe()
        assert "cannot be read" in text and "found asymmetry" not in text
        assert "found no clear asymmetry" not in text


def test_the_default_state_under_cr2_tests_egger_as_the_fixture():
    """The dashboard's default state (CHE, rho 0.6, REML, z) with CR2: its bias tests are the
    fixture's numbers on the data the state analyses."""
    case, data = load("alliance_rho60_reml_z")
    info = dataset_info(DEFAULT_DATASET)
    settings = ac.AnalysisSettings(dataset=DEFAULT_DATASET, moderators=(), inference="CR2")
    state = analysis_state(load_dataset(DEFAULT_DATASET), info.mapping, settings)
    pooled = state.pooled.result
    assert state.settings.rho == case["spec"]["rho"] and pooled.rho == case["spec"]["rho"]
    np.testing.assert_allclose(pooled.data["yi"].to_numpy(), data["yi"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(pooled.data["vi"].to_numpy(), data["vi"].to_numpy(), rtol=1e-12)
    tests = bias_tests_of(state)
    assert tests.inference == "CR2" and tests.nested
    sei = case["result"]["sei"]["cr2"]
    close(
        [tests.egger.statistic, tests.egger.ddf, tests.egger.pval],
        [sei["statistic"][1], sei["df"][1], sei["pval"][1]],
    )
    assert "cluster-robust (CR2)" in tests.inference_sentence()
