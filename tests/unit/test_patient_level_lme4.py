"""The patient-level model's fixed-effects covariance follows lme4: (X'V⁻¹X)⁻¹.

Fixtures from ``scripts/make_lme4_fixtures.R`` (lme4's ``lmer`` and ``vcov``) with the data
embedded: three unbalanced designs (REML and ML, one with a patient-level covariate), where the
inverse of the full observed Hessian gives larger standard errors, and a balanced control.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.regression.mixed_linear_model import MixedLM, MixedLMParams

from alliance_core.patient_level import fit_patient_level, fixed_effects_covariance

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
