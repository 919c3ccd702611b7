"""The patient-level (between/within-therapist) analysis against simulations with known truth.

Data come from the worked model with a therapist effect on outcome added: for therapist t and
patient i,

    alliance a = u_t + e_i,                       u_t ~ N(0, ICC),  e_i ~ N(0, 1 − ICC)
    outcome  y = γ_b·u_t + γ_w·e_i + v_t + ε_i,   v_t ~ N(0, σ²_v), ε_i ~ N(0, σ²_ε)

(v_t keeps the therapist variance of outcome away from zero when γ_b = γ_w). With n patients per
therapist, a therapist's mean alliance has reliability λ = ICC / (ICC + (1 − ICC)/n), and the
model's slopes estimate (Lüdtke et al., 2008; module docstring of patient_level):

    between = γ_w + (γ_b − γ_w)·λ,   within = γ_w,   difference = (γ_b − γ_w)·λ.

These closed forms are the truth every estimate is compared with.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from alliance_core.errors import AnalysisError
from alliance_core.figures import OKABE_ITO
from alliance_core.teaching.patient_level import (
    BETWEEN,
    INTERCEPT,
    WITHIN,
    fit_patient_level,
    validate_patient_data,
)
from alliance_core.teaching.patient_level_figure import therapist_means_figure
from alliance_core.teaching.simulate import SimulationParameters, simulate_patients

Z_TOLERANCE = 3.5  # Monte Carlo standard errors
REPLICATIONS = 40
TAIL = 0.001  # binomial tail probability allowed for a rate check


@dataclass(frozen=True)
class World:
    therapists: int
    per_therapist: int
    icc: float
    slope_between: float
    slope_within: float
    therapist_outcome_var: float = 0.2
    residual_var: float = 0.5

    @property
    def reliability(self) -> float:
        return self.icc / (self.icc + (1.0 - self.icc) / self.per_therapist)

    @property
    def true_between(self) -> float:
        return self.slope_within + (self.slope_between - self.slope_within) * self.reliability

    @property
    def true_within(self) -> float:
        return self.slope_within

    @property
    def true_difference(self) -> float:
        return (self.slope_between - self.slope_within) * self.reliability

    @property
    def outcome_icc(self) -> float:
        therapist = self.slope_between**2 * self.icc + self.therapist_outcome_var
        patient = self.slope_within**2 * (1.0 - self.icc) + self.residual_var
        return therapist / (therapist + patient)

    def difference_test_power(self, alpha: float = 0.05) -> float:
        """Approximate power of the t test of the difference (noncentral t on T − 2 df).

        The between slope is the least-squares slope of therapist mean outcome on therapist
        mean alliance: residual variance (γ_b − γ_w)²·ICC·(1 − λ) + σ²_v + σ²_ε/n, alliance
        means with variance ICC + (1 − ICC)/n. The within slope has variance σ²_ε over
        (N − T)·(1 − ICC). The two are independent in a balanced design.
        """
        n, t = self.per_therapist, self.therapists
        mean_var = self.icc + (1.0 - self.icc) / n
        residual_between = (
            (self.slope_between - self.slope_within) ** 2 * self.icc * (1.0 - self.reliability)
            + self.therapist_outcome_var
            + self.residual_var / n
        )
        var_between = residual_between / ((t - 1) * mean_var)
        var_within = self.residual_var / ((n * t - t) * (1.0 - self.icc))
        shift = self.true_difference / np.sqrt(var_between + var_within)
        df = t - 2
        crit = stats.t.ppf(1.0 - alpha / 2.0, df)
        return float(stats.nct.sf(crit, df, shift) + stats.nct.cdf(-crit, df, shift))

    def draw(self, rng: np.random.Generator) -> pd.DataFrame:
        t, n = self.therapists, self.per_therapist
        therapist = np.repeat(np.arange(1, t + 1), n)
        u = rng.normal(0.0, np.sqrt(self.icc), t)[therapist - 1]
        e = rng.normal(0.0, np.sqrt(1.0 - self.icc), t * n)
        v = rng.normal(0.0, np.sqrt(self.therapist_outcome_var), t)[therapist - 1]
        residual = rng.normal(0.0, np.sqrt(self.residual_var), t * n)
        outcome = self.slope_between * u + self.slope_within * e + v + residual
        return pd.DataFrame({"therapist": therapist, "alliance": u + e, "outcome": outcome})


# Small studies (12 therapists × 5 patients) keep the replications fast; the t reference on
# T − 2 df is exact for the between slope in a balanced design, so coverage should be nominal.
DIFFERENT = World(therapists=12, per_therapist=5, icc=0.3, slope_between=2.5, slope_within=0.0)
EQUAL = World(therapists=12, per_therapist=5, icc=0.3, slope_between=0.4, slope_within=0.4)


def replicate(world: World, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(REPLICATIONS):
        res = fit_patient_level(world.draw(rng))
        truth = {
            "between": world.true_between,
            "within": world.true_within,
            "difference": world.true_difference,
        }
        row = {}
        for name, value in truth.items():
            slope = getattr(res, name)
            row[name] = slope.estimate
            row[f"{name}_covers"] = slope.ci_lb <= value <= slope.ci_ub
        row["difference_rejected"] = res.difference.pval < 0.05
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def replications() -> dict[str, tuple[World, pd.DataFrame]]:
    return {
        "different": (DIFFERENT, replicate(DIFFERENT, seed=20070601)),
        "equal": (EQUAL, replicate(EQUAL, seed=20070602)),
    }


# -- estimates against the truth ---------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["different", "equal"])
@pytest.mark.parametrize("slope", ["between", "within", "difference"])
def test_slopes_are_unbiased_within_monte_carlo_error(replications, scenario, slope):
    world, table = replications[scenario]
    truth = getattr(world, f"true_{slope}")
    estimates = table[slope]
    mc_se = estimates.std(ddof=1) / np.sqrt(len(estimates))
    assert abs(estimates.mean() - truth) < Z_TOLERANCE * mc_se


@pytest.mark.parametrize("scenario", ["different", "equal"])
@pytest.mark.parametrize("slope", ["between", "within", "difference"])
def test_95_percent_intervals_cover_the_truth_at_the_nominal_rate(replications, scenario, slope):
    _, table = replications[scenario]
    covered = int(table[f"{slope}_covers"].sum())
    # Fewer covering intervals than this happens with probability < 0.001 at true coverage .95.
    lowest = stats.binom.ppf(TAIL, REPLICATIONS, 0.95)
    assert covered >= lowest, f"{covered}/{REPLICATIONS} intervals covered the true {slope} slope"


def test_difference_test_rejects_when_the_slopes_differ_a_lot(replications):
    world, table = replications["different"]
    power = world.difference_test_power()
    assert power > 0.85  # the design is meant to make the difference obvious
    rejections = int(table["difference_rejected"].sum())
    assert rejections >= stats.binom.ppf(TAIL, REPLICATIONS, power)


def test_difference_test_holds_its_level_when_the_slopes_are_equal(replications):
    _, table = replications["equal"]
    rejections = int(table["difference_rejected"].sum())
    assert rejections <= stats.binom.ppf(1.0 - TAIL, REPLICATIONS, 0.05)


def test_slopes_from_the_project_simulator_match_the_closed_form():
    params = SimulationParameters(icc=0.25, slope_between=1.2, slope_within=0.2, seed=31)
    n_therapists, per_therapist = 60, 8
    patients = simulate_patients(params, n_therapists * per_therapist, n_therapists)
    res = fit_patient_level(patients)
    reliability = params.icc / (params.icc + (1.0 - params.icc) / per_therapist)
    between = params.slope_within + (params.slope_between - params.slope_within) * reliability
    assert abs(res.between.estimate - between) < Z_TOLERANCE * res.between.se
    assert abs(res.within.estimate - params.slope_within) < Z_TOLERANCE * res.within.se
    assert res.n_patients == n_therapists * per_therapist
    assert res.n_therapists == n_therapists
    assert (res.caseload == per_therapist).all()


def one_way_icc_se(icc: float, n: int, groups: int) -> float:
    """Large-sample SE of a one-way ICC with n per group (Fisher, 1925):
    var = 2(1 − ρ)²(1 + (n − 1)ρ)² / (n(n − 1)(T − 1))."""
    return float(
        np.sqrt(2 * (1 - icc) ** 2 * (1 + (n - 1) * icc) ** 2 / (n * (n - 1) * (groups - 1)))
    )


def test_therapist_iccs_of_alliance_and_outcome_are_recovered():
    world = World(therapists=80, per_therapist=8, icc=0.25, slope_between=1.0, slope_within=0.3)
    res = fit_patient_level(world.draw(np.random.default_rng(5)))
    for estimate, truth in ((res.icc_alliance, world.icc), (res.icc_outcome, world.outcome_icc)):
        se = one_way_icc_se(truth, world.per_therapist, world.therapists)
        assert abs(estimate - truth) < Z_TOLERANCE * se
    n = world.per_therapist
    assert res.alliance_mean_reliability == pytest.approx(
        n * res.icc_alliance / (1 + (n - 1) * res.icc_alliance)
    )


# -- the model against statsmodels written out directly ---------------------------------------


def test_fixed_effects_equal_a_direct_statsmodels_fit():
    data = DIFFERENT.draw(np.random.default_rng(11))
    res = fit_patient_level(data)
    frame = data.assign(
        mean=data.groupby("therapist")["alliance"].transform("mean"),
    ).assign(dev=lambda d: d["alliance"] - d["mean"])
    direct = smf.mixedlm("outcome ~ mean + dev", frame, groups=frame["therapist"]).fit(reml=True)
    assert res.coefficients.loc[BETWEEN, "estimate"] == pytest.approx(
        direct.params["mean"], abs=1e-4
    )
    assert res.coefficients.loc[WITHIN, "estimate"] == pytest.approx(direct.params["dev"], abs=1e-4)
    assert res.between.se == pytest.approx(direct.bse["mean"], rel=1e-3)
    assert res.within.se == pytest.approx(direct.bse["dev"], rel=1e-3)


def test_difference_equals_the_contextual_effect_of_the_raw_alliance_model():
    """Written as outcome ~ alliance + therapist mean, the mean's coefficient is between − within."""
    data = DIFFERENT.draw(np.random.default_rng(12))
    res = fit_patient_level(data)
    frame = data.assign(mean=data.groupby("therapist")["alliance"].transform("mean"))
    direct = smf.mixedlm("outcome ~ alliance + mean", frame, groups=frame["therapist"]).fit(
        reml=True
    )
    assert res.difference.estimate == pytest.approx(direct.params["mean"], abs=1e-4)
    assert res.difference.se == pytest.approx(direct.bse["mean"], rel=1e-3)


def test_containment_degrees_of_freedom_and_t_intervals():
    data = DIFFERENT.draw(np.random.default_rng(13))
    data["age"] = np.random.default_rng(14).normal(40, 10, len(data))
    res = fit_patient_level(data, covariates=["age"])
    t, n = DIFFERENT.therapists, len(data)
    assert res.between.df == t - 2  # intercept and therapist mean are therapist-level
    assert res.difference.df == t - 2
    assert res.within.df == n - t - 2  # within deviation and age vary within therapists
    crit = stats.t.ppf(0.975, res.between.df)
    assert res.between.ci_ub - res.between.estimate == pytest.approx(crit * res.between.se)
    assert res.between.pval == pytest.approx(
        2 * stats.t.sf(abs(res.between.estimate / res.between.se), res.between.df)
    )


# -- validation -------------------------------------------------------------------------------


def small_table() -> pd.DataFrame:
    data = World(therapists=12, per_therapist=4, icc=0.3, slope_between=1.0, slope_within=0.2).draw(
        np.random.default_rng(3)
    )
    data["therapist"] = "T" + data["therapist"].astype(str)
    data["age"] = np.arange(len(data), dtype=float)
    return data.astype({"alliance": object, "outcome": object, "age": object})


def test_missing_and_non_numeric_cells_are_left_out_with_row_and_column():
    data = small_table()
    data.iloc[0, data.columns.get_loc("alliance")] = None
    data.iloc[3, data.columns.get_loc("outcome")] = "NA"
    data.iloc[5, data.columns.get_loc("alliance")] = "high"
    data.iloc[7, data.columns.get_loc("age")] = "forty"
    data.iloc[9, data.columns.get_loc("therapist")] = ""
    before = data.copy()
    report = validate_patient_data(data, covariates=["age"])

    found = {(p.row, p.column, p.severity) for p in report.problems}
    # Spreadsheet rows: header is row 1, position 0 is row 2.
    assert (2, "alliance", "excluded") in found
    assert (5, "outcome", "excluded") in found
    assert (7, "alliance", "excluded") in found
    assert (9, "age", "excluded") in found
    assert (11, "therapist", "excluded") in found
    assert report.excluded_rows == (2, 5, 7, 9, 11)
    assert report.n_usable == len(data) - 5
    assert "'high' is not a number" in " ".join(p.message for p in report.problems)
    assert "5 left out" in report.summary()
    assert report.ok
    pd.testing.assert_frame_equal(data, before)

    res = fit_patient_level(data, covariates=["age"])
    assert res.n_patients == len(data) - 5
    assert any("left out" in note for note in res.notes)
    pd.testing.assert_frame_equal(data, before)


def test_row_numbers_follow_the_first_data_row():
    data = small_table()
    data.iloc[2, data.columns.get_loc("outcome")] = None
    report = validate_patient_data(data, first_data_row=5)
    assert report.exclusions[0].row == 7


def test_decimal_comma_text_is_read_as_numbers():
    data = small_table()
    data["alliance"] = [f"{v:.3f}".replace(".", ",") for v in data["alliance"]]
    report = validate_patient_data(data, decimal=",")
    assert report.ok and report.n_usable == len(data)
    assert report.usable["alliance"].dtype == float


def test_a_therapist_with_one_patient_is_a_warning_at_that_patients_row():
    data = small_table()
    data.iloc[10, data.columns.get_loc("therapist")] = "solo"
    report = validate_patient_data(data)
    alone = [p for p in report.warnings if p.kind == "a therapist with one patient"]
    assert [(p.row, p.column, p.value) for p in alone] == [(12, "therapist", "solo")]
    assert report.ok
    res = fit_patient_level(data)
    assert any("one patient" in note for note in res.notes)


def test_a_single_therapist_makes_the_analysis_impossible():
    data = small_table()
    data["therapist"] = "Dr A"
    report = validate_patient_data(data)
    assert not report.ok
    assert report.errors[0].column == "therapist"
    with pytest.raises(AnalysisError, match="single therapist"):
        fit_patient_level(data)


def test_two_therapists_are_an_error_and_few_are_a_warning():
    data = small_table()
    two = data.assign(therapist=np.where(np.arange(len(data)) % 2, "A", "B"))
    with pytest.raises(AnalysisError, match="only two therapists"):
        fit_patient_level(two)
    four = data.assign(therapist=np.arange(len(data)) % 4)
    report = validate_patient_data(four)
    assert report.ok
    assert [p.kind for p in report.warnings] == ["few therapists"]


def test_constant_alliance_and_alliance_without_within_variation_are_errors():
    data = small_table()
    with pytest.raises(AnalysisError, match="same value"):
        fit_patient_level(data.assign(alliance=3.0))
    therapist_level = data.assign(alliance=data["therapist"].str[1:].astype(float))
    with pytest.raises(AnalysisError, match="does not vary within"):
        fit_patient_level(therapist_level)


def test_mapping_problems_name_the_column():
    data = small_table()
    with pytest.raises(AnalysisError, match="'wai'"):
        fit_patient_level(data, alliance="wai")
    with pytest.raises(AnalysisError, match="both as alliance and as outcome"):
        fit_patient_level(data, outcome="alliance")
    with pytest.raises(AnalysisError, match="holds no numbers"):
        fit_patient_level(data.assign(alliance="good"))
    with pytest.raises(AnalysisError, match="REML or ML"):
        fit_patient_level(data, method="OLS")
    with pytest.raises(AnalysisError, match="linear combination"):
        fit_patient_level(
            data.assign(twice=pd.to_numeric(data["age"]) * 2), covariates=["age", "twice"]
        )


# -- quiet numerics ---------------------------------------------------------------------------


def test_boundary_fits_give_notes_not_warnings():
    # No therapist effect at all: every therapist variance sits at its boundary, zero.
    world = World(
        therapists=15,
        per_therapist=6,
        icc=0.0,
        slope_between=0.5,
        slope_within=0.5,
        therapist_outcome_var=0.0,
    )
    data = world.draw(np.random.default_rng(8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any leaked warning fails the test
        res = fit_patient_level(data)
        notes = res.notes
        res.summary()
    assert any("near) zero" in note for note in notes)
    assert np.isfinite(res.between.se) and np.isfinite(res.difference.se)


# -- reading and figure ------------------------------------------------------------------------


def test_summary_and_reading_report_the_slopes():
    res = fit_patient_level(DIFFERENT.draw(np.random.default_rng(21)))
    text = res.summary()
    assert "Difference between − within" in text
    assert f"{res.between.estimate:.4f}" in text
    reading = res.describe()
    assert reading.startswith("Therapists whose patients on average report a stronger alliance")
    assert "better outcomes" in reading
    assert "worse outcomes" in res.describe(higher_is_better=False)
    if res.difference.pval < 0.05:
        assert "runs more through therapists" in reading


def test_figure_shows_means_and_deviations_with_the_fitted_slopes():
    data = DIFFERENT.draw(np.random.default_rng(22))
    res = fit_patient_level(data)
    fig = therapist_means_figure(res)
    traces = {trace.meta["role"]: trace for trace in fig.data}
    means = traces["therapist means"]
    expected = data.groupby("therapist")[["alliance", "outcome"]].mean()
    np.testing.assert_allclose(np.sort(means.x), np.sort(expected["alliance"]))
    np.testing.assert_allclose(np.sort(means.y), np.sort(expected["outcome"]))
    np.testing.assert_array_equal(means.marker.size, DIFFERENT.per_therapist)

    beta = res.coefficients["estimate"]
    line = traces["between line"]
    np.testing.assert_allclose(line.y, beta[INTERCEPT] + beta[BETWEEN] * np.asarray(line.x))
    within = traces["within line"]
    np.testing.assert_allclose(within.y, res.within.estimate * np.asarray(within.x))
    deviations = traces["patient deviations"]
    np.testing.assert_allclose(np.mean(deviations.x), 0.0, atol=1e-12)

    assert line.line.color in OKABE_ITO and within.line.color in OKABE_ITO
    assert line.line.color != within.line.color
    assert fig.layout.paper_bgcolor == "rgba(0,0,0,0)"
    # Transparent and without text colours, so that Streamlit's light or dark theme applies.
    assert fig.layout.plot_bgcolor == "rgba(0,0,0,0)"
    assert fig.layout.font.color is None
    assert fig.layout.xaxis.title.text and fig.layout.xaxis2.title.text
