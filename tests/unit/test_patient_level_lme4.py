"""The patient-level model's fixed-effects covariance follows lme4: (X'V⁻¹X)⁻¹.

Fixtures from ``scripts/make_lme4_fixtures.R`` (lme4's ``lmer`` and ``vcov``) with the data
embedded: three unbalanced designs (REML and ML, one with a patient-level covariate), where the
inverse of the full observed Hessian gives larger standard errors, and a balanced control.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.regression.mixed_linear_model import MixedLM, MixedLMParams

from alliance_core.teaching.mixed_model import fixed_effects_covariance
from alliance_core.teaching.patient_level import fit_patient_level
from tests.r_reference import apply, needs_r

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "lme4"
CASES = sorted(path.stem for path in FIXTURES.glob("*.json"))
# Beyond the convention, the fits differ only by where statsmodels' optimiser stops: variance
# components agree to 2e-4 relative, and so do the standard errors built from them.
SE_RTOL = 1e-4
VARIANCE_RTOL = 2e-4


def load(name: str):
    case = json.loads((FIXTURES / f"{name}.json").read_text())
    result = fit_patient_level(
        pd.DataFrame(case["data"]), covariates=case["covariates"], method=case["method"]
    )
    return case, result


def design(result) -> tuple[np.ndarray, np.ndarray]:
    data = result.data
    columns = [np.ones(len(data)), data["alliance_mean"], data["alliance_within"]]
    columns += [data[c] for c in result.covariates]
    return np.column_stack(columns), pd.factorize(data[result.therapist])[0]


def test_fixtures_cover_unbalanced_reml_and_ml_designs():
    methods = {json.loads((FIXTURES / f"{n}.json").read_text())["method"] for n in CASES}
    assert methods == {"REML", "ML"} and len(CASES) >= 4


@pytest.mark.parametrize("name", CASES)
def test_covariance_formula_is_lme4_vcov_at_the_same_variances(name):
    case, result = load(name)
    expected = case["results"]
    X, groups = design(result)
    covariance = fixed_effects_covariance(
        X, groups, expected["therapist_var"], expected["residual_var"]
    )
    np.testing.assert_allclose(covariance, np.array(expected["vcov"]), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", CASES)
def test_patient_level_fit_matches_lme4(name):
    case, result = load(name)
    expected = case["results"]
    table = result.coefficients
    np.testing.assert_allclose(table["estimate"], expected["fixef"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(table["se"], expected["se"], rtol=SE_RTOL)
    # Exact zeros (between and within parts are orthogonal) agree to rounding only.
    np.testing.assert_allclose(result.vb.to_numpy(), expected["vcov"], rtol=2 * SE_RTOL, atol=1e-12)
    assert result.therapist_var == pytest.approx(expected["therapist_var"], rel=VARIANCE_RTOL)
    assert result.residual_var == pytest.approx(expected["residual_var"], rel=VARIANCE_RTOL)
    assert result.between.se == pytest.approx(expected["se"][1], rel=SE_RTOL)


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith("unbalanced")])
def test_the_observed_hessian_convention_would_fail_these_comparisons(name):
    """The references can tell the conventions apart: statsmodels' own cov_params (the
    inverse observed Hessian) at the same estimates is off by more than the tolerance."""
    case, result = load(name)
    X, groups = design(result)
    model = MixedLM(result.data[result.outcome].to_numpy(), X, groups=groups)
    start = MixedLMParams.from_components(
        result.coefficients["estimate"].to_numpy(),
        np.array([[result.therapist_var / result.residual_var]]),
    )
    refit = model.fit(reml=case["method"] == "REML", start_params=start)
    observed = np.sqrt(np.diag(np.asarray(refit.cov_params()))[: X.shape[1]])
    assert np.max(np.abs(observed / np.array(case["results"]["se"]) - 1)) > 10 * SE_RTOL


# -- live: randomly drawn unbalanced designs against lme4 (seeded) -----------------------------
LIVE_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "lme4_reference.R"
# (seed, therapists, largest caseload, method, with a patient-level covariate)
LIVE_CASES = [
    (301, 6, 15, "REML", False),
    (302, 12, 30, "ML", True),
    (303, 25, 8, "REML", True),
    (304, 40, 20, "ML", False),
]


def draw_patients(seed: int, therapists: int, largest: int, with_covariate: bool) -> pd.DataFrame:
    """Patients nested in therapists with unequal caseloads; outcome on both alliance parts."""
    rng = np.random.default_rng(seed)
    caseloads = rng.integers(2, largest + 1, therapists)
    therapist = np.repeat(np.arange(therapists), caseloads)
    u = rng.normal(0, 0.6, therapists)[therapist]
    e = rng.normal(0, 1, len(therapist))
    frame = pd.DataFrame(
        {
            "therapist": [f"T{t:02d}" for t in therapist],
            "alliance": np.round(5 + u + e, 4),
        }
    )
    severity = np.round(rng.normal(0, 1, len(therapist)), 4)
    outcome = 0.5 * u + 0.15 * e + rng.normal(0, 0.4, therapists)[therapist]
    outcome = outcome + rng.normal(0, 1, len(therapist)) - (0.3 * severity if with_covariate else 0)
    frame["outcome"] = np.round(outcome, 4)
    if with_covariate:
        frame["severity"] = severity
    return frame


@apply(needs_r("lme4", "jsonlite"))
def test_live_random_designs_match_lme4(tmp_path):
    cases = []
    for seed, therapists, largest, method, with_covariate in LIVE_CASES:
        data = draw_patients(seed, therapists, largest, with_covariate)
        covariates = ["severity"] if with_covariate else []
        cases.append(
            {
                "id": str(seed),
                "method": method,
                "covariates": covariates,
                "data": data.to_dict(orient="list"),
            }
        )
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    proc = subprocess.run(
        ["Rscript", str(LIVE_SCRIPT), "cases.json", "out.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    reference = json.loads((tmp_path / "out.json").read_text())
    for case in cases:
        expected = reference[case["id"]]
        result = fit_patient_level(
            pd.DataFrame(case["data"]), covariates=case["covariates"], method=case["method"]
        )
        what = f"seed {case['id']}"
        np.testing.assert_allclose(
            result.coefficients["estimate"], expected["fixef"], rtol=1e-4, atol=1e-5, err_msg=what
        )
        np.testing.assert_allclose(
            result.coefficients["se"], expected["se"], rtol=SE_RTOL, err_msg=what
        )
        # A therapist variance at lme4's boundary (0) is matched up to optimiser slack.
        assert result.therapist_var == pytest.approx(
            expected["therapist_var"], rel=VARIANCE_RTOL, abs=1e-5 * expected["residual_var"]
        ), what
