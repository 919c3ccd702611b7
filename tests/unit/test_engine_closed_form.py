"""Engine checks against closed forms and dense-matrix computations (no R needed).

The metafor parity tests (test_metafor_parity.py) prove agreement with R; these check the
algebra from first principles, so a wrong fixture could not hide a wrong engine either.
"""

import numpy as np
import pandas as pd
import pytest

import alliance_core as ac
from alliance_core.model import estimation as est


def _two_level_data(seed=1, k=12):
    rng = np.random.default_rng(seed)
    vi = rng.uniform(0.005, 0.05, k)
    yi = 0.3 + rng.normal(0, 0.1, k) + rng.normal(0, np.sqrt(vi))
    return pd.DataFrame(
        {"yi": yi, "vi": vi, "x": rng.normal(size=k), "g": rng.choice(["a", "b", "c"], k)}
    )


def _three_level_data(seed=2, studies=9):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, studies)
    study = np.repeat([f"s{i}" for i in range(studies)], sizes)
    k = len(study)
    vi = rng.uniform(0.01, 0.04, k)
    u = rng.normal(0, 0.2, studies)[np.repeat(np.arange(studies), sizes)]
    yi = 0.25 + u + rng.normal(0, 0.1, k) + rng.normal(0, np.sqrt(vi))
    # shuffle so that a study's effect sizes are not adjacent in the input
    order = rng.permutation(k)
    return pd.DataFrame(
        {"study": study[order], "yi": yi[order], "vi": vi[order], "x": rng.normal(size=k)}
    )


def test_equal_effects_estimate_is_the_inverse_variance_weighted_mean():
    d = _two_level_data()
    res = ac.fit(d, method="EE")
    w = 1 / d["vi"]
    mean = np.sum(w * d["yi"]) / np.sum(w)
    assert res.coefficients.loc["intrcpt", "estimate"] == pytest.approx(mean, rel=1e-13)
    assert res.coefficients.loc["intrcpt", "se"] == pytest.approx(np.sqrt(1 / w.sum()), rel=1e-13)
    assert pytest.approx(np.sum(w * (d["yi"] - mean) ** 2), rel=1e-12) == res.QE
    assert res.weights.sum() == pytest.approx(100.0)


def test_dersimonian_laird_matches_its_formula():
    d = _two_level_data(seed=5)
    w = 1 / d["vi"]
    mean = np.sum(w * d["yi"]) / np.sum(w)
    q = np.sum(w * (d["yi"] - mean) ** 2)
    k = len(d)
    expected = max(0.0, (q - (k - 1)) / (w.sum() - (w**2).sum() / w.sum()))
    assert ac.fit(d, method="DL").tau2 == pytest.approx(expected, rel=1e-12)


def _dense_loglik(y, v, X, study, theta, reml):
    """Restricted or full log-likelihood built from the dense k x k marginal covariance."""
    same = study[:, None] == study[None, :]
    M = theta[0] * same + np.diag(v + theta[1])
    Minv = np.linalg.inv(M)
    A = X.T @ Minv @ X
    beta = np.linalg.solve(A, X.T @ Minv @ y)
    r = y - X @ beta
    k, p = X.shape
    ll = -0.5 * (np.linalg.slogdet(M)[1] + r @ Minv @ r)
    if reml:
        return (
            ll
            - 0.5 * ((k - p) * np.log(2 * np.pi) + np.linalg.slogdet(A)[1])
            + 0.5 * np.linalg.slogdet(X.T @ X)[1]
        )
    return ll - 0.5 * k * np.log(2 * np.pi)


@pytest.mark.parametrize("method", ["ML", "REML"])
def test_three_level_estimate_maximises_the_dense_likelihood(method):
    d = _three_level_data()
    res = ac.fit(d, moderators=["x"], cluster="study", method=method)
    y, v = d["yi"].to_numpy(), d["vi"].to_numpy()
    X = np.column_stack([np.ones(len(d)), d["x"]])
    study = d["study"].to_numpy()
    theta = res.sigma2.to_numpy()
    reml = method == "REML"
    best = _dense_loglik(y, v, X, study, theta, reml)
    assert res.loglik == pytest.approx(best, rel=1e-10)
    for direction in ([1, 0], [0, 1], [1, 1], [1, -1]):
        step = 1e-4 * np.array(direction)
        for sign in (1, -1):
            moved = np.maximum(theta + sign * step, 0)
            assert _dense_loglik(y, v, X, study, moved, reml) <= best + 1e-12


def test_block_inverse_equals_dense_inverse():
    d = _three_level_data(seed=7).sort_values("study", kind="stable")
    v = d["vi"].to_numpy()
    codes = pd.factorize(d["study"])[0]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    cov = est.NestedCovariance(v, starts, 0.03, 0.01)
    same = codes[:, None] == codes[None, :]
    M = 0.03 * same + np.diag(v + 0.01)
    B = np.random.default_rng(0).normal(size=(len(v), 3))
    np.testing.assert_allclose(cov.solve(B), np.linalg.solve(M, B), rtol=1e-10)
    np.testing.assert_allclose(cov.logdet(), np.linalg.slogdet(M)[1], rtol=1e-12)
    np.testing.assert_allclose(cov.inverse_diagonal(), np.diag(np.linalg.inv(M)), rtol=1e-10)


def test_three_level_with_no_study_variance_is_the_two_level_model():
    """With sigma2_study fixed at 0 the nested covariance reduces to diag(vi + tau2)."""
    d = _two_level_data(seed=3, k=30)
    y, v = d["yi"].to_numpy(), d["vi"].to_numpy()
    X = np.ones((len(d), 1))
    starts = np.arange(len(d))  # every effect size its own study
    nested = est.NestedCovariance(v, starts, 0.0, 0.02)
    flat = est.NestedCovariance(v, None, 0.0, 0.02)
    assert est.gls(y, X, nested).rss == pytest.approx(est.gls(y, X, flat).rss, rel=1e-13)


def test_rows_order_does_not_change_a_three_level_fit():
    d = _three_level_data(seed=11)
    a = ac.fit(d, moderators=["x"], cluster="study")
    b = ac.fit(d.iloc[::-1], moderators=["x"], cluster="study")
    np.testing.assert_allclose(a.sigma2, b.sigma2, rtol=1e-8)
    np.testing.assert_allclose(a.beta, b.beta, rtol=1e-8)
    pd.testing.assert_series_equal(a.weights.sort_index(), b.weights.sort_index(), rtol=1e-8)


def test_intercept_only_prediction_is_the_pooled_estimate_and_its_interval():
    d = _two_level_data(seed=4, k=20)
    res = ac.fit(d)
    pred = res.predict()
    row = res.coefficients.loc["intrcpt"]
    assert pred["pred"].iloc[0] == pytest.approx(row["estimate"])
    assert pred["ci_lb"].iloc[0] == pytest.approx(row["ci_lb"])
    half_width = 1.959963984540054 * np.sqrt(row["se"] ** 2 + res.tau2)
    assert pred["pi_ub"].iloc[0] - pred["pred"].iloc[0] == pytest.approx(half_width, rel=1e-9)
    r_scale = res.predict(transform="r")
    assert r_scale["pred"].iloc[0] == pytest.approx(np.tanh(row["estimate"]))
    assert np.isnan(r_scale["se"].iloc[0])


def test_wald_test_of_one_coefficient_is_its_squared_z():
    d = _two_level_data(seed=6, k=25)
    res = ac.fit(d, moderators=["x", "g"])
    single = res.wald_test(["x"])
    assert single.statistic == pytest.approx(res.coefficients.loc["x", "statistic"] ** 2, rel=1e-10)
    assert single.pval == pytest.approx(res.coefficients.loc["x", "pval"], rel=1e-9)
    everything = res.wald_test(["x", "g"])
    assert everything.statistic == pytest.approx(res.QM, rel=1e-12) and everything.df == res.QM_df


def test_knapp_hartung_scales_the_variance_by_the_weighted_residual_mean_square():
    d = _two_level_data(seed=8, k=15)
    z = ac.fit(d, moderators=["x"], method="REML", test="z")
    knha = ac.fit(d, moderators=["x"], method="REML", test="knha")
    w = 1 / (d["vi"] + z.tau2)
    resid = d["yi"] - np.column_stack([np.ones(len(d)), d["x"]]) @ z.beta
    s2w = np.sum(w * resid**2) / (len(d) - 2)
    np.testing.assert_allclose(knha.vb, z.vb * s2w, rtol=1e-10)
    assert knha.ddf == len(d) - 2 and knha.QM_df2 == len(d) - 2


def test_categorical_moderator_coding_follows_r_treatment_contrasts():
    d = _two_level_data(seed=9, k=30)
    res = ac.fit(d, moderators=["g", "x"])
    assert list(res.coefficients.index) == ["intrcpt", "gb", "gc", "x"]
    relevelled = ac.fit(d, moderators=["g", "x"], reference={"g": "c"})
    assert list(relevelled.coefficients.index) == ["intrcpt", "ga", "gb", "x"]
    # The same model, parameterised differently: fitted values and tau2 agree.
    assert relevelled.tau2 == pytest.approx(res.tau2, rel=1e-8)
    assert relevelled.beta[1] == pytest.approx(-res.beta[2], rel=1e-8)


def test_rows_with_missing_values_are_left_out_and_listed():
    d = _two_level_data(seed=10, k=20)
    d.loc[[3, 7], "x"] = np.nan
    d.loc[11, "yi"] = np.nan
    res = ac.fit(d, moderators=["x"])
    assert res.k == 17
    assert list(res.dropped.index) == [3, 7, 11]
    assert "'x'" in res.dropped.loc[3, "reason"] and "'yi'" in res.dropped.loc[11, "reason"]
    assert np.isnan(d.loc[3, "x"])  # the caller's data are untouched


def test_no_k_by_k_matrix_for_a_large_three_level_model():
    import tracemalloc

    rng = np.random.default_rng(12)
    studies = 4000
    sizes = rng.integers(1, 9, studies)
    study = np.repeat(np.arange(studies), sizes)
    k = len(study)
    vi = rng.uniform(0.005, 0.05, k)
    yi = (
        0.2
        + rng.normal(0, 0.15, studies)[study]
        + rng.normal(0, 0.1, k)
        + rng.normal(0, np.sqrt(vi))
    )
    d = pd.DataFrame({"study": study, "yi": yi, "vi": vi, "x": rng.normal(size=k)})
    tracemalloc.start()
    res = ac.fit(d, moderators=["x"], cluster="study")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert res.k == k > 15000
    # A single k x k float matrix would need 8 k^2 bytes (> 1.8 GB here); the fit stays
    # within a few hundred bytes per effect size.
    assert peak < 2000 * k
