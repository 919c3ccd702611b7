"""The Simulator's engine: presets do what they say, theory is the closed form, figures show the fit.

What the theory says for each preset follows from ``simulate.expected_correlation``: with T
therapists the sample's therapist variance is ICC·(1 − 1/T) and the patient variance
(1 − ICC)·(1 − 1/N), and r mixes the two slopes in that proportion.

* Only therapists matter (γ_w = 0): the covariance is γ_b·ICC·(1 − 1/T), zero with one therapist,
  so r falls as PTR = N/T grows: a clearly negative PTR slope.
* Only patients matter (γ_b = 0): the therapist variance adds alliance variance that outcome does
  not follow, so r *rises* slightly with PTR: a small positive slope, never a negative one.
* Both equal: the regression slope is the same everywhere, but fewer therapists leave less
  alliance variance (range restriction), so r falls slightly with PTR.

The fitted slopes are also compared with ``theory_slope`` (the model's coefficient at the
expected effect sizes): the estimator is linear in the effect sizes, so the estimate should lie
within a few standard errors of it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.data.effect_sizes import escalc
from alliance_core.errors import AnalysisError
from alliance_core.formatting import format_number
from alliance_core.teaching.simulate import (
    SimulationParameters,
    expected_correlation,
    mean_sample_correlation,
    simulate_meta_analysis,
)
from alliance_core.teaching.simulator import (
    PRESETS,
    PROGRESS_STEPS,
    expected_effect_sizes,
    run_simulation,
    same_rater_share,
    theory_curve,
)

Z_TOLERANCE = 3.5
# Enough studies that the therapists-only slope is unmistakable, few enough to stay fast.
STUDIES = 300
SEED = 8


def preset_params(name: str) -> SimulationParameters:
    return replace(PRESETS[name].params, n_studies=STUDIES, seed=SEED)


@pytest.fixture(scope="module")
def runs() -> dict[str, object]:
    return {name: run_simulation(preset_params(name)) for name in PRESETS}


def small_params(seed: int = 4) -> SimulationParameters:
    return replace(PRESETS["Only therapists matter"].params, n_studies=60, seed=seed)


@pytest.fixture(scope="module")
def small_run():
    return run_simulation(small_params())


def model_args(p: SimulationParameters) -> tuple[float, float, float, float]:
    return (p.icc, p.slope_between, p.slope_within, p.residual_var)


def errors(p: SimulationParameters, same_rater: bool) -> dict[str, float]:
    return {
        "alliance_error_var": p.alliance_error_var,
        "outcome_error_var": p.outcome_error_var,
        "same_rater_var": p.same_rater_var if same_rater else 0.0,
    }


# -- presets ------------------------------------------------------------------------------------


def test_presets_set_the_slopes_they_are_named_after():
    therapists = PRESETS["Only therapists matter"].params
    patients = PRESETS["Only patients matter"].params
    equal = PRESETS["Both equal"].params
    assert therapists.slope_within == 0 and therapists.slope_between > 0
    assert patients.slope_between == 0 and patients.slope_within > 0
    assert equal.slope_between == equal.slope_within > 0
    assert all(
        preset.shows.endswith(".") and preset.name == name for name, preset in PRESETS.items()
    )


def theory_direction(params: SimulationParameters) -> float:
    """Sign of the large-sample r change from PTR 1 to PTR 50 in a study of 100 patients."""
    n = 100
    r = expected_correlation(n, np.array([n / 1.0, n / 50.0]), *model_args(params))
    return float(np.sign(r[1] - r[0]))


def test_only_therapists_matter_gives_a_significantly_negative_ptr_slope(runs):
    run = runs["Only therapists matter"]
    assert theory_direction(run.params) < 0
    assert run.slope["estimate"] < 0 and run.slope["pval"] < 0.05
    assert run.theory["r_theory"].is_monotonic_decreasing


def test_only_patients_matter_never_gives_a_significantly_negative_slope(runs):
    """Theory: r rises with PTR here (therapist variance is noise for outcome)."""
    run = runs["Only patients matter"]
    assert theory_direction(run.params) > 0
    assert run.theory_slope > 0
    assert run.theory["r_theory"].is_monotonic_increasing
    significantly_negative = run.slope["estimate"] < 0 and run.slope["pval"] < 0.05
    assert not significantly_negative


def test_equal_slopes_leave_only_a_small_range_restriction_slope(runs):
    run = runs["Both equal"]
    assert theory_direction(run.params) < 0
    # Against a therapists-only world of the same ICC and literature, the fall is small.
    therapists_only = run_simulation(
        replace(
            run.params,
            slope_between=PRESETS["Only therapists matter"].params.slope_between,
            slope_within=0.0,
        )
    ).theory_slope
    assert therapists_only < run.theory_slope < 0
    assert abs(run.theory_slope) < abs(therapists_only) / 3


@pytest.fixture(scope="module")
def default_runs() -> dict[str, object]:
    """Each preset exactly as the page starts it: its own parameters and seed, the sidebar's
    default model (three-level, REML, log PTR)."""
    settings = AnalysisSettings()
    return {
        name: run_simulation(
            preset.params,
            model=settings.model,
            method=settings.method,
            ptr_scale=settings.ptr_scale,
        )
        for name, preset in PRESETS.items()
    }


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_keeps_its_promise_at_its_default_settings_and_seed(default_runs, name):
    preset, run = PRESETS[name], default_runs[name]
    row = run.slope
    direction = preset.direction
    # The caption's direction, in the fitted slope, the theory's slope and the theory curve.
    assert np.sign(row["estimate"]) == direction
    assert np.sign(run.theory_slope) == direction
    theory = run.theory["r_theory"].to_numpy()
    assert np.sign(theory[-1] - theory[0]) == direction
    if preset.clear:  # "clearly": the interval excludes zero on the promised side
        assert (row["ci_ub"] < 0) if direction < 0 else (row["ci_lb"] > 0)
        assert row["pval"] < 1 - run.result.level
    else:  # "not negative" / "not positive": never significant the other way
        assert (row["ci_ub"] > 0) if direction > 0 else (row["ci_lb"] < 0)
    assert preset.promise_kept(run)


def test_a_broken_promise_is_detected():
    """promise_kept can fail: the therapists-only run does not keep the patients-only promise."""
    run = run_simulation(PRESETS["Only therapists matter"].params)
    assert not PRESETS["Only patients matter"].promise_kept(run)


def test_presets_have_a_short_sentence_to_look_for():
    for preset in PRESETS.values():
        assert preset.look_for.endswith(".") and len(preset.look_for) <= 90


@pytest.mark.parametrize("name", list(PRESETS))
def test_fitted_slope_agrees_with_the_theory_slope(runs, name):
    run = runs[name]
    z = (run.slope["estimate"] - run.theory_slope) / run.slope["se"]
    assert abs(z) < Z_TOLERANCE


# -- theory -------------------------------------------------------------------------------------


def test_theory_curve_is_the_mean_sample_correlation_on_the_grid(runs):
    run = runs["Only therapists matter"]
    p, n = run.params, run.typical_n
    ptr = run.theory["ptr"].to_numpy()
    share = sum(a * o for a, o in zip(p.alliance_rater_probs, p.outcome_rater_probs, strict=True))
    direct = (1 - share) * mean_sample_correlation(
        n, n / ptr, *model_args(p), **errors(p, False)
    ) + share * mean_sample_correlation(n, n / ptr, *model_args(p), **errors(p, True))
    np.testing.assert_allclose(run.theory["r_theory"], direct, rtol=1e-12)
    therapists = run.theory["n_therapists"].to_numpy()
    np.testing.assert_allclose(ptr, n / therapists)
    np.testing.assert_array_equal(therapists, np.rint(therapists))  # whole therapists only
    assert share == pytest.approx(same_rater_share(p))
    # The grid spans the simulated PTRs that a study of n patients can have.
    assert therapists[0] == min(n, round(n / max(1.0, run.data["ptr"].min())))
    assert therapists[-1] == max(1, round(n / run.data["ptr"].max()))
    assert np.all(np.diff(ptr) > 0)
    studies = run.data.drop_duplicates("study")
    assert run.typical_n == int(np.median(studies["n"]))


def test_expected_effect_sizes_follow_each_rows_design():
    params = replace(PRESETS["Both equal"].params, n_studies=20, seed=3)
    sheet = simulate_meta_analysis(params)
    z = expected_effect_sizes(sheet, params)
    for row, zi in zip(sheet.itertuples(), z, strict=True):
        same = row.alliance_rater == row.outcome_rater
        r = mean_sample_correlation(
            row.n, row.n_therapists, *model_args(params), **errors(params, same)
        )
        assert zi == pytest.approx(np.arctanh(r), rel=1e-12)


def test_theory_slope_is_the_generalised_least_squares_fit_at_the_expected_effect_sizes(
    small_run,
):
    """Dense check of the study-by-study Sherman–Morrison products."""
    run = small_run
    res = run.result
    X, v = res.inputs.X, res.inputs.v
    study = res.data["study"].to_numpy()
    sigma2_study, sigma2_es = res.sigma2.iloc[0], res.sigma2.iloc[1]
    V = sigma2_study * (study[:, None] == study[None, :]) + np.diag(sigma2_es + v)
    z = expected_effect_sizes(res.data, run.params)
    W = np.linalg.inv(V)
    beta = np.linalg.solve(X.T @ W @ X, X.T @ W @ z)
    assert run.theory_slope == pytest.approx(beta[1], rel=1e-9)


def test_theory_curve_stays_where_t_is_between_one_and_n():
    params = SimulationParameters()
    curve = theory_curve(params, 50, [0.5, 400.0], grid_points=30)
    assert curve["ptr"].iloc[0] == 1.0 and curve["ptr"].iloc[-1] == 50.0
    assert curve["n_therapists"].between(1, 50).all()
    assert len(curve) <= 30


# -- the fit and the figure -----------------------------------------------------------------


def test_fit_uses_the_chosen_model_and_ptr_scale(small_run):
    params = small_params()
    raw = run_simulation(params, model="two-level", method="DL", ptr_scale="raw")
    assert raw.result.model == "two-level" and raw.result.method == "DL"
    assert raw.ptr_term == "PTR" and "PTR" in raw.result.coefficients.index
    logged = small_run
    assert logged.result.is_three_level and logged.ptr_term == "log_PTR"
    data = escalc(simulate_meta_analysis(params))
    np.testing.assert_allclose(logged.data["yi"], data["yi"])
    np.testing.assert_allclose(logged.data["log_PTR"], np.log(data["ptr"]))


@pytest.mark.parametrize("log_x", [True, False])
def test_figure_traces_equal_predict_and_theory(runs, log_x):
    run = runs["Only therapists matter"]
    fig = run.figure(log_x=log_x)
    traces = {trace.meta["role"]: trace for trace in fig.data if trace.meta}
    curve = traces["curve"]
    ptr = np.asarray(curve.x)
    pred = run.result.predict({"log_PTR": np.log(ptr)}, transform="r")
    np.testing.assert_allclose(curve.y, pred["pred"])
    band = np.asarray(traces["ci band"].y)
    np.testing.assert_allclose(band[: len(ptr)], pred["ci_ub"])
    np.testing.assert_allclose(band[len(ptr) :], pred["ci_lb"][::-1])
    theory = traces["theory"]
    np.testing.assert_allclose(theory.x, run.theory["ptr"])
    np.testing.assert_allclose(theory.y, run.theory["r_theory"])
    assert theory.line.dash == "dash" and theory.line.color != curve.line.color
    bubbles = traces["bubbles"]
    np.testing.assert_allclose(bubbles.y, np.tanh(run.result.data["yi"]))
    np.testing.assert_allclose(bubbles.marker.size, run.result.weights.to_numpy())
    assert fig.layout.xaxis.type == ("log" if log_x else "linear")
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    assert "pi band" not in traces  # the teaching figure keeps to the fit and the theory


def test_describe_reports_the_fitted_and_the_theory_slope(runs):
    run = runs["Only therapists matter"]
    text = run.describe()
    assert "weaker alliance–outcome link" in text
    assert format_number(run.theory_slope, 3) in text
    assert format_number(run.slope["estimate"], 3) in text
    assert "inside the interval" in text


# -- reproducibility and plumbing ----------------------------------------------------------------


def test_same_seed_same_run_and_another_seed_another_run(small_run):
    again = run_simulation(small_params())
    first = small_run
    pd.testing.assert_frame_equal(again.data, first.data)
    pd.testing.assert_frame_equal(again.result.coefficients, first.result.coefficients)
    pd.testing.assert_frame_equal(again.theory, first.theory)
    assert again.theory_slope == first.theory_slope
    other = run_simulation(small_params(seed=5))
    assert not np.allclose(other.data["r"].head(50), first.data["r"].head(50))


def test_progress_is_reported_after_every_step():
    calls = []
    run_simulation(
        replace(SimulationParameters(), n_studies=30), progress=lambda d, t: calls.append((d, t))
    )
    total = len(PROGRESS_STEPS)
    assert calls == [(i, total) for i in range(1, total + 1)]


def test_bad_choices_raise_analysis_errors():
    with pytest.raises(AnalysisError, match="two-level or three-level"):
        run_simulation(model="four-level")
    with pytest.raises(AnalysisError, match="log or raw"):
        run_simulation(ptr_scale="sqrt")
    with pytest.raises(AnalysisError, match="SimulationParameters"):
        run_simulation({"icc": 0.2})
    with pytest.raises(AnalysisError, match="choose one of REML, ML"):
        run_simulation(replace(SimulationParameters(), n_studies=20), method="DL")


def test_the_ptr_sentence_reads_the_state_of_the_slope_shown():
    # The sentence is the state's reading of the very fit whose slope the page shows, in the
    # page's format; with fewer than 10 studies that state flags the test and the sentence
    # gives no verdict.
    for studies, flagged in ((6, True), (40, False)):
        run = run_simulation(replace(SimulationParameters(), n_studies=studies))
        estimate, low, high = run.slope_shown()
        sentence = run.ptr_sentence()
        assert f"({estimate}, 95% CI {low} to {high}" in sentence or (
            f"is {estimate} (95% CI {low} to {high}" in sentence
        )
        assert run.slope["estimate"] == run.result.coefficients.loc[run.ptr_term, "estimate"]
        assert run.state.moderated_flags.few_studies is flagged
        assert ("cannot be trusted" in sentence) is flagged
        if flagged:
            assert "significant" not in sentence and "do not support" not in sentence
        assert run.describe().startswith(sentence)
