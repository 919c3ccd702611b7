"""The step-function selection model's likelihood, score and edge cases, against closed forms,
numerical integration and seeded simulations with known truth (metafor parity is in
test_selection_metafor.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import alliance_core as ac
from alliance_core.analyses import selection_likelihood as S
from alliance_core.errors import AnalysisError


def simulate(seed: int, k: int, mu=0.2, tau2=0.02, delta=0.4, slope=0.0):
    """Fisher-z-like effect sizes (n 20..200) kept always when one-sided p <= .025 and with
    probability ``delta`` otherwise: a 3PSM with known weight."""
    rng = np.random.default_rng(seed)
    rows = []
    while len(rows) < k:
        n = rng.integers(20, 201)
        x = rng.normal()
        v = 1.0 / (n - 3)
        y = rng.normal(mu + slope * x, np.sqrt(tau2 + v))
        if stats.norm.sf(y / np.sqrt(v)) <= 0.025 or rng.uniform() < delta:
            rows.append((y, v, x))
    return pd.DataFrame(rows, columns=["yi", "vi", "x"])


def problem(seed=1, k=30, steps=(0.025, 0.5), moderators=False, tau2_fixed=None):
    dat = simulate(seed, k, slope=0.1 if moderators else 0.0)
    X = np.column_stack([np.ones(k), dat["x"]]) if moderators else np.ones((k, 1))
    data = S.step_data(dat["yi"].to_numpy(), dat["vi"].to_numpy(), X, steps)
    spec = S.Parameters(X.shape[1], data.intervals, tau2_fixed)
    rng = np.random.default_rng(seed + 100)
    theta = np.concatenate(
        [
            rng.normal(0.2, 0.05, X.shape[1]),
            [] if tau2_fixed is not None else [0.03],
            rng.uniform(0.3, 1.5, data.intervals - 1),
        ]
    )
    return data, spec, theta


def density_by_quadrature(y, v, mu, tau2, steps, delta):
    """f(y) = w(p(y)) phi(y; mu, v + tau2) / integral w(p(t)) phi(t; mu, v + tau2) dt, the
    normalising integral taken numerically piece by piece between the cuts."""
    eta = np.sqrt(v + tau2)
    cuts = np.sqrt(v) * stats.norm.isf(np.asarray(steps))  # effect sizes at p = a_j

    def weight(t):
        p = stats.norm.sf(t / np.sqrt(v))
        return delta[np.searchsorted(np.append(steps, 1.0), p, side="left")]

    edges = np.concatenate([[np.inf], cuts, [-np.inf]])
    total = 0.0
    for j in range(len(edges) - 1):
        hi, lo = edges[j], edges[j + 1]
        piece, _ = integrate.quad(lambda t: stats.norm.pdf(t, mu, eta), lo, hi, epsabs=1e-14)
        total += delta[j] * piece
    return weight(y) * stats.norm.pdf(y, mu, eta) / total


@pytest.mark.parametrize("steps", [(0.025,), (0.025, 0.5), (0.01, 0.05, 0.1, 0.5)])
def test_log_likelihood_equals_the_weighted_density_integrated_numerically(steps):
    data, spec, theta = problem(steps=steps)
    ll, _ = S.loglik_terms(theta, data, spec)
    beta, tau2, delta = spec.unpack(theta)
    for i in range(0, len(data.y), 7):
        expected = np.log(
            density_by_quadrature(data.y[i], data.v[i], beta[0], tau2, np.array(steps), delta)
        )
        assert ll[i] == pytest.approx(expected, rel=1e-9, abs=1e-10)


def test_without_selection_the_likelihood_is_the_random_effects_ml_likelihood():
    dat = simulate(2, 50)
    res = ac.fit(dat, method="ML")
    data = S.step_data(dat["yi"], dat["vi"], res.inputs.X, [0.025])
    spec = S.Parameters(1, 2, None)
    theta = np.array([res.beta[0], res.tau2, 1.0])  # delta = 1: no selection
    expected = stats.norm.logpdf(dat["yi"], res.beta[0], np.sqrt(dat["vi"] + res.tau2)).sum()
    assert S.loglik(theta, data, spec) == pytest.approx(expected, rel=1e-12)
    assert S.loglik(theta, data, spec) == pytest.approx(res.loglik, rel=1e-8)


@pytest.mark.parametrize(
    ("steps", "moderators", "tau2_fixed"),
    [((0.025,), False, None), ((0.025, 0.5), True, None), ((0.05, 0.1, 0.5), True, 0.0)],
)
def test_score_is_the_gradient_of_the_log_likelihood(steps, moderators, tau2_fixed):
    data, spec, theta = problem(steps=steps, moderators=moderators, tau2_fixed=tau2_fixed)
    analytic = S.score(theta, data, spec)
    for i in range(len(theta)):
        h = 1e-6 * max(abs(theta[i]), 1e-2)
        up, down = theta.copy(), theta.copy()
        up[i] += h
        down[i] -= h
        numeric = (S.loglik(up, data, spec) - S.loglik(down, data, spec)) / (2 * h)
        assert analytic[i] == pytest.approx(numeric, rel=1e-6, abs=1e-6), i


def test_hessian_matches_second_differences_of_the_log_likelihood():
    data, spec, theta = problem(steps=(0.025, 0.5), moderators=True)
    H = S.hessian(theta, data, spec, at_zero=False)
    h = 1e-4
    for i, j in [(0, 0), (1, 2), (2, 3), (3, 3)]:
        e_i = np.eye(len(theta))[i] * h
        e_j = np.eye(len(theta))[j] * h
        f = lambda t: S.loglik(t, data, spec)  # noqa: E731
        numeric = (
            f(theta + e_i + e_j)
            - f(theta + e_i - e_j)
            - f(theta - e_i + e_j)
            + f(theta - e_i - e_j)
        ) / (4 * h * h)
        assert H[i, j] == pytest.approx(numeric, rel=1e-4, abs=1e-3)


def test_weights_multiply_the_log_likelihood_like_repeated_effect_sizes():
    data, spec, theta = problem(k=12)
    counts = np.arange(12) % 3
    weighted = S.step_data(data.y, data.v, data.X, data.steps[:-1], weights=counts)
    repeated = S.step_data(
        np.repeat(data.y, counts),
        np.repeat(data.v, counts),
        np.repeat(data.X, counts, 0),
        data.steps[:-1],
    )
    assert S.loglik(theta, weighted, spec) == pytest.approx(S.loglik(theta, repeated, spec))


def test_recovers_a_known_selection_in_a_large_seeded_simulation():
    # truth: mu = 0.2, tau2 = 0.02, non-significant results published with probability 0.4
    dat = simulate(20261206, 1500)
    res = ac.fit(dat)
    sel = ac.selmodel(res, steps=[0.025])
    mu, se = sel.coefficients.loc["intrcpt", ["estimate", "se"]]
    assert abs(mu - 0.2) < 3 * se
    weight, weight_se = sel.delta.iloc[1][["estimate", "se"]]
    assert abs(weight - 0.4) < 3 * weight_se
    assert abs(sel.tau2 - 0.02) < 3 * sel.se_tau2
    # the unadjusted estimate is biased upwards, and the test detects the selection
    assert res.beta[0] > 0.2 + 3 * res.coefficients["se"].iloc[0]
    assert sel.LRT_pval < 0.001


def test_without_selection_the_test_of_selection_holds_its_level():
    # 120 seeded data sets without selection: the LRT rejects about 5% of them
    rejections = 0
    for seed in range(120):
        dat = simulate(seed, 60, delta=1.0)
        sel = ac.selmodel(ac.fit(dat), steps=[0.025])
        rejections += sel.LRT_pval < 0.05
    # binomial(120, .05): mean 6; P(count <= 1) = 1.6%, P(count >= 13) = 0.7%
    assert 2 <= rejections <= 12


def test_cuts_are_sorted_and_deduplicated_and_one_is_implied():
    res = ac.fit(simulate(3, 80))
    a = ac.selmodel(res, steps=[0.5, 0.025, 0.025, 1.0])
    b = ac.selmodel(res, steps=[0.025, 0.5])
    assert a.steps == b.steps == (0.025, 0.5, 1.0)
    np.testing.assert_allclose(a.coefficients, b.coefficients)
    assert list(a.delta.index) == ["0 < p <= 0.025", "0.025 < p <= 0.5", "0.5 < p <= 1"]


@pytest.mark.parametrize("steps", [[], [0.0], [1.2], [-0.1, 0.5], ["a"]])
def test_cuts_outside_zero_one_are_refused(steps):
    res = ac.fit(simulate(3, 40))
    with pytest.raises(AnalysisError, match="cuts"):
        ac.selmodel(res, steps=steps)


def test_too_few_effect_sizes_are_refused():
    dat = simulate(4, 4)
    res = ac.fit(dat, moderators=["x"])
    with pytest.raises(AnalysisError, match="too few"):
        ac.selmodel(res, steps=[0.025, 0.5, 0.9])


def test_an_interval_without_effect_sizes_is_named():
    dat = simulate(5, 40)
    dat = dat[stats.norm.sf(dat["yi"] / np.sqrt(dat["vi"])) <= 0.5]
    with pytest.raises(AnalysisError, match=r"0\.5 < p <= 1"):
        ac.selmodel(ac.fit(dat), steps=[0.025, 0.5])


def test_a_three_level_fit_needs_a_cluster():
    dat = simulate(6, 60)
    dat["study"] = np.arange(60) // 3
    res = ac.fit(dat, cluster="study")
    with pytest.raises(AnalysisError, match="cluster='study'"):
        ac.selmodel(res)


def test_an_equal_effects_fit_keeps_tau2_at_zero():
    sel = ac.selmodel(ac.fit(simulate(7, 80), method="EE"))
    assert sel.tau2 == 0 and sel.tau2_fixed and np.isnan(sel.se_tau2)
    assert "fixed at 0" in sel.summary()


def test_summary_and_html_show_user_text_as_text():
    dat = simulate(8, 90)
    dat["group <script>"] = np.where(np.arange(90) % 2, "<b>bold</b>", "plain & simple")
    res = ac.fit(dat, moderators=["group <script>"])
    sel = ac.selmodel(res, steps=[0.025])
    shown = sel._repr_html_()
    assert "<script>" not in shown and "<b>bold" not in shown
    assert "&lt;script&gt;" in shown
    text = sel.summary()
    assert "Selection weights" in text and "intrcpt" in text
    assert repr(sel).startswith("<SelectionResult")


# -- words and figure ----------------------------------------------------------------------
def test_describe_puts_the_adjusted_estimate_beside_the_unadjusted_one():
    res = ac.fit(simulate(20261206, 300))
    sel = ac.selmodel(res, steps=[0.025])
    text = sel.describe(transform="r")
    adjusted = np.tanh(sel.coefficients["estimate"].iloc[0])
    unadjusted = np.tanh(res.coefficients["estimate"].iloc[0])
    assert f"r = {adjusted:.2f}".replace("0.", ".") in text
    assert f"against {unadjusted:.2f}".replace("0.", ".") in text
    assert "3PSM" in text and "Test of selection" in text
    clustered = simulate(5, 120)
    clustered["study"] = np.arange(120) // 2
    robust = ac.selmodel(ac.fit(clustered, cluster="study"), cluster="study")
    assert "cluster-robust over 60 clusters" in robust.describe()


def test_selection_weights_figure_draws_the_estimated_steps_and_intervals():
    sel = ac.selmodel(ac.fit(simulate(9, 200)), steps=[0.025, 0.5])
    fig = ac.figures.selection_weights_figure(sel)
    steps = next(t for t in fig.data if t.meta["role"] == "steps")
    weights = next(t for t in fig.data if t.meta["role"] == "weights")
    assert list(steps.x) == [0, 0.025, 0.025, 0.5, 0.5, 1.0]
    np.testing.assert_allclose(steps.y, np.repeat(sel.delta["estimate"], 2))
    np.testing.assert_allclose(weights.y, sel.delta["estimate"].iloc[1:])
    np.testing.assert_allclose(
        weights.y + np.asarray(weights.error_y.array), sel.delta["ci_ub"].iloc[1:]
    )


def test_funnel_draws_the_selection_model_estimate_on_the_r_scale():
    res = ac.fit(simulate(10, 100))
    sel = ac.selmodel(res, steps=[0.025])
    fig = ac.funnel_figure(res, scale="r", selection_estimate=sel.estimate)
    line = next(t for t in fig.data if t.meta and t.meta.get("role") == "selection estimate")
    assert line.x[0] == line.x[1] == pytest.approx(np.tanh(sel.estimate))


def test_clustered_model_with_tau2_at_zero_reports_it_without_a_standard_error():
    dat = simulate(11, 120, tau2=0.0, delta=1.0)
    dat["study"] = np.arange(120) // 3
    sel = ac.selmodel(ac.fit(dat, cluster="study"), cluster="study")
    assert sel.tau2 == 0  # the seeded data put tau2 at its bound
    assert np.isnan(sel.se_tau2) and all(np.isnan(sel.tau2_ci))
    assert np.all(np.isfinite(sel.coefficients["se"]))
    assert "bound 0" in " ".join(sel.notes)
