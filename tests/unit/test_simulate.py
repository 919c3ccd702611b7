"""The simulator against its own known truth: parameters in, properties out.

Every expected value comes from the generating parameters or a closed form of the model;
tolerances are a few Monte Carlo standard errors of the quantity being compared.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alliance_core.errors import AnalysisError
from alliance_core.teaching.simulate import (
    ALLIANCE_MEASURES,
    RATERS,
    STUDY_TABLE_COLUMNS,
    SimulationParameters,
    expected_correlation,
    mean_sample_correlation,
    simulate_meta_analysis,
    simulate_patients,
)

# Tolerance in Monte Carlo standard errors.
Z_TOLERANCE = 3.5


def fixed_design(
    n_patients: int, n_therapists: int, n_studies: int, **model
) -> SimulationParameters:
    """Every study has the same N and T, one effect size, and no heterogeneity or rater error."""
    settings = dict(
        n_studies=n_studies,
        patients_median=n_patients,
        patients_log_sd=0.0,
        patients_min=4,
        patients_max=n_patients,
        ptr_median=n_patients / n_therapists,
        ptr_log_sd=0.0,
        effect_sizes_mean=1,
        effect_sizes_max=1,
        study_slope_sd=0.0,
        effect_size_slope_sd=0.0,
        alliance_error_var=0.0,
        outcome_error_var=0.0,
        same_rater_var=0.0,
        seed=7,
    )
    settings.update(model)
    return SimulationParameters(**settings)


def model_args(p: SimulationParameters) -> tuple[float, float, float, float]:
    return (p.icc, p.slope_between, p.slope_within, p.residual_var)


def mean_and_se(values: pd.Series) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))


# -- patient level ---------------------------------------------------------------------------


def one_way_icc(patients: pd.DataFrame, per_therapist: int) -> float:
    """ANOVA estimator (MSB − MSW) / (MSB + (k − 1)·MSW) for balanced caseloads k."""
    groups = patients.groupby("therapist")["alliance"]
    n_groups = groups.ngroups
    grand = patients["alliance"].mean()
    ms_between = per_therapist * ((groups.mean() - grand) ** 2).sum() / (n_groups - 1)
    within = patients["alliance"] - groups.transform("mean")
    ms_within = (within**2).sum() / (len(patients) - n_groups)
    return (ms_between - ms_within) / (ms_between + (per_therapist - 1) * ms_within)


def test_icc_is_recovered_from_one_large_study():
    params = SimulationParameters(icc=0.25, seed=11)
    n_therapists, per_therapist = 200, 25
    patients = simulate_patients(params, n_therapists * per_therapist, n_therapists)
    estimate = one_way_icc(patients, per_therapist)
    # Large-sample variance of the ANOVA ICC (Donner, 1986):
    # 2(1 − ρ)²(1 + (k − 1)ρ)² / (k(k − 1)(T − 1)).
    rho, k = params.icc, per_therapist
    se = np.sqrt(2 * (1 - rho) ** 2 * (1 + (k - 1) * rho) ** 2 / (k * (k - 1) * (n_therapists - 1)))
    assert abs(estimate - rho) < Z_TOLERANCE * se


def test_patients_are_spread_evenly_over_therapists():
    patients = simulate_patients(SimulationParameters(), n_patients=47, n_therapists=6, rng=3)
    caseloads = patients["therapist"].value_counts()
    assert list(patients.columns) == ["therapist", "alliance", "outcome"]
    assert sorted(caseloads.index) == list(range(1, 7))
    assert caseloads.max() - caseloads.min() <= 1


def test_one_therapist_means_one_shared_therapist_effect():
    # With T = 1 the therapist effect is a constant, so the within-study covariance of
    # alliance and outcome is the patient part only: slope_within · σ²_e.
    params = SimulationParameters(icc=0.4, slope_between=3.0, slope_within=0.5, seed=5)
    patients = simulate_patients(params, n_patients=40_000, n_therapists=1)
    covariance = np.cov(patients["alliance"], patients["outcome"])[0, 1]
    expected = params.slope_within * params.patient_var
    # SE of a sample covariance: √((σ_a²σ_y² + σ_ay²)/n).
    var_outcome = params.slope_within**2 * params.patient_var + params.residual_var
    se = np.sqrt((params.patient_var * var_outcome + expected**2) / len(patients))
    assert abs(covariance - expected) < Z_TOLERANCE * se


# -- closed forms ----------------------------------------------------------------------------


def test_equal_slopes_leave_only_range_restriction():
    # With γ_b = γ_w = γ, y = γ·a + ε: T can change r only through the alliance variance V(T)
    # the sample holds, so ρ²/(1 − ρ²) = γ²·V(T)/(σ²_ε·f) is proportional to V(T).
    icc, slope, residual, n = 0.3, 0.8, 1.0, 120
    therapists = np.array([1, 2, 5, 20, 120])
    rho = expected_correlation(n, therapists, icc, slope, slope, residual)
    alliance_var = icc * (1 - 1 / therapists) + (1 - icc) * (1 - 1 / n)
    signal_to_noise = rho**2 / (1 - rho**2)
    assert np.allclose(signal_to_noise / alliance_var, slope**2 / (residual * (1 - 1 / n)))


def regression_slope(study: pd.DataFrame) -> float:
    covariance = np.cov(study["alliance"], study["outcome"])
    return covariance[0, 1] / covariance[0, 0]


def test_equal_slopes_give_the_same_regression_slope_for_any_number_of_therapists():
    slope, n_patients = 0.6, 400
    params = SimulationParameters(icc=0.3, slope_between=slope, slope_within=slope, seed=9)
    rng = np.random.default_rng(params.seed)
    for therapists in (1, n_patients):
        studies = (simulate_patients(params, n_patients, therapists, rng) for _ in range(100))
        mean, se = mean_and_se(pd.Series([regression_slope(s) for s in studies]))
        assert abs(mean - slope) < Z_TOLERANCE * se


def test_without_a_within_slope_the_correlation_rises_with_therapists():
    icc, slope_between, residual, n = 0.2, 1.5, 1.0, 100
    therapists = np.array([1, 2, 3, 5, 10, 25, 50, 100])
    closed = expected_correlation(n, therapists, icc, slope_between, 0.0, residual)
    assert closed[0] == 0.0
    assert np.all(np.diff(closed) > 0)

    simulated = []
    for t in (2, 10, 50):
        params = fixed_design(n, t, 1500, icc=icc, slope_between=slope_between, slope_within=0.0)
        simulated.append(mean_and_se(simulate_meta_analysis(params)["r"]))
    for (low, se_low), (high, se_high) in zip(simulated, simulated[1:], strict=False):
        assert high - low > Z_TOLERANCE * np.hypot(se_low, se_high)


def test_mean_r_matches_expected_correlation_when_n_and_t_are_large():
    params = fixed_design(400, 100, 2000, icc=0.25, slope_between=1.2, slope_within=0.2)
    mean, se = mean_and_se(simulate_meta_analysis(params)["r"])
    assert abs(mean - expected_correlation(400, 100, *model_args(params))) < Z_TOLERANCE * se


@pytest.mark.parametrize("n_therapists", [1, 2, 5])
def test_mean_r_matches_mean_sample_correlation_with_few_therapists(n_therapists):
    params = fixed_design(60, n_therapists, 3000, icc=0.3, slope_between=1.5, slope_within=0.1)
    mean, se = mean_and_se(simulate_meta_analysis(params)["r"])
    expected = mean_sample_correlation(60, n_therapists, *model_args(params))
    assert abs(mean - expected) < Z_TOLERANCE * se


def test_small_studies_show_the_small_sample_bias_of_r():
    # With ICC = 0 the study is a plain bivariate normal sample, so E[r] is below ρ by
    # about ρ(1 − ρ²)/(2(N − 1)); with N = 10 that is several standard errors of the mean.
    params = fixed_design(10, 10, 6000, icc=0.0, slope_between=0.0, slope_within=0.5)
    mean, se = mean_and_se(simulate_meta_analysis(params)["r"])
    rho = expected_correlation(10, 10, *model_args(params))
    assert abs(mean - mean_sample_correlation(10, 10, *model_args(params))) < Z_TOLERANCE * se
    assert rho - mean > Z_TOLERANCE * se


def test_measurement_error_and_same_rater_variance_enter_as_derived():
    # All effect sizes rated by patients on both sides, so the shared rater term applies.
    errors = dict(alliance_error_var=0.4, outcome_error_var=0.3, same_rater_var=0.1)
    params = fixed_design(
        80,
        8,
        3000,
        icc=0.25,
        slope_between=1.2,
        slope_within=0.2,
        alliance_rater_probs=(1.0, 0.0, 0.0, 0.0),
        outcome_rater_probs=(1.0, 0.0, 0.0, 0.0),
        **errors,
    )
    mean, se = mean_and_se(simulate_meta_analysis(params)["r"])
    expected = mean_sample_correlation(80, 8, *model_args(params), **errors)
    assert abs(mean - expected) < Z_TOLERANCE * se
    # Measurement error attenuates: the same study without it expects a larger r.
    assert expected_correlation(80, 8, *model_args(params)) > expected_correlation(
        80, 8, *model_args(params), alliance_error_var=0.4, outcome_error_var=0.3
    )


def test_closed_forms_broadcast_over_designs():
    grid = expected_correlation(np.array([[50], [200]]), np.array([1, 5, 50]), 0.2, 1.0, 0.3, 1.0)
    means = mean_sample_correlation(
        np.array([[50], [200]]), np.array([1, 5, 50]), 0.2, 1.0, 0.3, 1.0
    )
    assert grid.shape == means.shape == (2, 3)
    assert isinstance(expected_correlation(50, 5, 0.2, 1.0, 0.3, 1.0), float)


def test_closed_forms_reject_impossible_designs():
    with pytest.raises(AnalysisError):
        expected_correlation(10, 11, 0.2, 1.0, 0.3, 1.0)
    with pytest.raises(AnalysisError):
        mean_sample_correlation(10, 0, 0.2, 1.0, 0.3, 1.0)


# -- study level -----------------------------------------------------------------------------


def test_meta_analysis_table_is_a_coherent_coding_sheet():
    params = SimulationParameters(n_studies=60, seed=3)
    table = simulate_meta_analysis(params)
    per_study = table.drop_duplicates("study")

    assert list(table.columns) == list(STUDY_TABLE_COLUMNS)
    assert table["study"].nunique() == params.n_studies
    assert table["es_id"].is_unique
    assert table["r"].between(-1, 1, inclusive="neither").all()
    assert table["n"].between(params.patients_min, params.patients_max).all()
    assert (table["n_therapists"] >= 1).all() and (table["n_therapists"] <= table["n"]).all()
    assert np.allclose(table["ptr"], table["n"] / table["n_therapists"])
    assert table.groupby("study").size().between(1, params.effect_sizes_max).all()
    assert set(table["alliance_rater"]) <= set(RATERS)
    assert set(table["outcome_rater"]) <= set(RATERS)
    assert set(table["alliance_measure"]) <= set(ALLIANCE_MEASURES)
    assert set(table["design"]) <= {"RCT", "other"}
    assert table["pd_share"].between(0, 1).all()
    assert ((table["pd"] == "yes") == (table["pd_share"] > 0)).all()
    assert table["year"].between(params.first_year, params.last_year).all()
    # Study-level attributes are constant within a study.
    study_columns = ["label", "year", "n", "n_therapists", "alliance_measure", "design"]
    assert (table.groupby("study")[study_columns].nunique() == 1).all().all()
    assert per_study["label"].str.fullmatch(r"Study \d{3} \(\d{4}\)").all()


def test_same_seed_same_data_and_different_seed_different_data():
    params = SimulationParameters(n_studies=40, seed=123)
    first = simulate_meta_analysis(params)
    pd.testing.assert_frame_equal(first, simulate_meta_analysis(params))
    other = simulate_meta_analysis(SimulationParameters(n_studies=40, seed=124))
    assert not np.allclose(first["r"].iloc[:10], other["r"].iloc[:10])
    pd.testing.assert_frame_equal(
        simulate_patients(params, 30, 3), simulate_patients(params, 30, 3)
    )


def test_invalid_parameters_name_the_problem():
    with pytest.raises(AnalysisError, match="icc"):
        SimulationParameters(icc=1.0)
    with pytest.raises(AnalysisError, match="alliance_rater_probs"):
        SimulationParameters(alliance_rater_probs=(0.5, 0.5, 0.5, 0.0))
    with pytest.raises(AnalysisError, match="therapists"):
        simulate_patients(SimulationParameters(), n_patients=5, n_therapists=6)


def test_large_meta_analysis_simulates_every_patient_row():
    # 500 studies × about 10 effect sizes × 200 patients ≈ 10⁶ rated patient rows. Its speed is
    # a benchmark (scripts/bench_simulator.py), not an assertion: a busy machine is no defect.
    params = SimulationParameters(
        n_studies=500,
        patients_median=200,
        patients_log_sd=0.0,
        patients_max=200,
        effect_sizes_mean=10,
        effect_sizes_max=1000,
    )
    table = simulate_meta_analysis(params)
    assert table["n"].sum() > 0.8 * 500 * 10 * 200
