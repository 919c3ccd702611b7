"""Dependent effect sizes against closed forms and dense-matrix computations.

The CHE algebra (per-study Woodbury form) is checked against the k x k matrices it avoids;
the likelihood derivatives against finite differences; a fit with both variance components
held fixed against the GLS estimate computed by hand; rho = 0 against the independent-errors
fit; and the input checks and comparison rules against their promised messages.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import linalg

import alliance_core as ac
from alliance_core.errors import AnalysisError
from alliance_core.model import che
from alliance_core.model import estimation as est

LOG_2PI = np.log(2 * np.pi)


def dataset(seed: int = 5, studies: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 6, studies)
    study = np.repeat(np.arange(studies), sizes)
    k = len(study)
    vi = 1.0 / (rng.integers(20, 200, studies)[study] - 3.0)
    x = rng.normal(0, 1, studies)[study]
    yi = 0.2 + 0.1 * x + rng.normal(0, 0.1, studies)[study] + rng.normal(0, 0.05, k)
    yi = yi + rng.normal(0, np.sqrt(vi))
    return pd.DataFrame({"yi": yi, "vi": vi, "study": study, "x": x})


def dense_m(vi, study, sigma2_study, sigma2_es, rho):
    """The marginal covariance as a k x k matrix, built entry by entry."""
    same = study[:, None] == study[None, :]
    sd = np.sqrt(vi)
    V = np.where(same, rho * np.outer(sd, sd), 0.0)
    np.fill_diagonal(V, vi)
    return V + sigma2_study * same + sigma2_es * np.eye(len(vi))


@pytest.mark.parametrize(
    ("s_study", "s_es", "rho"),
    [(0.02, 0.01, 0.6), (0.0, 0.03, 0.9), (0.05, 0.0, 0.0), (0.0, 0.0, 0.4)],
)
def test_woodbury_form_matches_the_dense_matrix(s_study, s_es, rho):
    data = dataset()
    order, starts, _ = est.study_blocks(data["study"].to_numpy())
    vi, study = data["vi"].to_numpy()[order], data["study"].to_numpy()[order]
    cov = che.CheCovariance(vi, starts, s_study, s_es, rho)
    M = dense_m(vi, study, s_study, s_es, rho)
    M_inv = np.linalg.inv(M)
    W = np.random.default_rng(1).normal(size=(len(vi), 3))
    np.testing.assert_allclose(cov.solve(W), M_inv @ W, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(cov.solve(W[:, 0]), M_inv @ W[:, 0], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(cov.logdet(), np.linalg.slogdet(M)[1], rtol=1e-12)
    np.testing.assert_allclose(cov.inverse_diagonal(), np.diag(M_inv), rtol=1e-10)
    np.testing.assert_allclose(cov.frobenius_sq(), np.sum(M_inv * M_inv), rtol=1e-10)


@pytest.mark.parametrize("reml", [True, False])
def test_score_and_information_match_finite_differences(reml):
    data = dataset(seed=9, studies=15)
    order, starts, _ = est.study_blocks(data["study"].to_numpy())
    y, v = data["yi"].to_numpy()[order], data["vi"].to_numpy()[order]
    X = np.column_stack([np.ones(len(y)), data["x"].to_numpy()[order]])
    logdet_xtx = est.logdet_crossprod(X)
    theta, rho, h = np.array([0.01, 0.004]), 0.6, 1e-6

    def loglik(t):
        return che.profile(y, X, v, starts, rho, t, reml, logdet_xtx).loglik

    def score(t):
        fitted = che.profile(y, X, v, starts, rho, t, reml, logdet_xtx)
        return che.likelihood_derivatives(fitted, reml)[0]

    fitted = che.profile(y, X, v, starts, rho, theta, reml, logdet_xtx)
    got_score, expected_info, observed = che.likelihood_derivatives(fitted, reml)
    numeric_score = [(loglik(theta + h * e) - loglik(theta - h * e)) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(got_score, numeric_score, rtol=1e-5)
    numeric_hessian = np.column_stack(
        [(score(theta + h * e) - score(theta - h * e)) / (2 * h) for e in np.eye(2)]
    )
    np.testing.assert_allclose(observed, -numeric_hessian, rtol=1e-5)
    # Expected information 1/2 tr(A M_r A M_s) with dense matrices (A = P or M^-1).
    study = data["study"].to_numpy()[order]
    M = dense_m(v, study, *theta, rho)
    M_inv = np.linalg.inv(M)
    P = M_inv - M_inv @ X @ np.linalg.inv(X.T @ M_inv @ X) @ X.T @ M_inv
    A = P if reml else M_inv
    derivatives = [(study[:, None] == study[None, :]).astype(float), np.eye(len(y))]
    dense = [[0.5 * np.trace(A @ a @ A @ b) for b in derivatives] for a in derivatives]
    np.testing.assert_allclose(expected_info, dense, rtol=1e-9)


def test_fit_with_fixed_components_is_the_hand_computed_gls():
    data = dataset(seed=3, studies=4)
    s_study, s_es, rho = 0.03, 0.01, 0.7
    res = ac.fit(
        data,
        moderators=["x"],
        cluster="study",
        rho=rho,
        fix_sigma2={"study": s_study, "es": s_es},
        method="ML",
    )
    y, v = data["yi"].to_numpy(), data["vi"].to_numpy()
    X = np.column_stack([np.ones(len(y)), data["x"].to_numpy()])
    M = dense_m(v, data["study"].to_numpy(), s_study, s_es, rho)
    chol = linalg.cho_factor(M)
    vb = np.linalg.inv(X.T @ linalg.cho_solve(chol, X))
    beta = vb @ X.T @ linalg.cho_solve(chol, y)
    r = y - X @ beta
    loglik = -0.5 * (len(y) * LOG_2PI + np.linalg.slogdet(M)[1] + r @ linalg.cho_solve(chol, r))
    np.testing.assert_allclose(res.beta, beta, rtol=1e-10)
    np.testing.assert_allclose(res.vb, vb, rtol=1e-10)
    np.testing.assert_allclose(res.loglik, loglik, rtol=1e-12)
    np.testing.assert_allclose(res.sigma2, [s_study, s_es])
    # Only the two coefficients are estimated.
    assert res.parameters == 2
    np.testing.assert_allclose(res.aic, -2 * loglik + 4, rtol=1e-12)
    weights = np.diag(np.linalg.inv(M))
    np.testing.assert_allclose(res.weights, 100 * weights / weights.sum(), rtol=1e-10)


def test_single_study_with_fixed_components_is_the_hand_computed_weighted_mean():
    data = dataset(seed=4, studies=6)
    data.loc[data["study"] != data["study"].iloc[0], "study"] = 99  # two studies
    s_study, s_es, rho = 0.02, 0.005, 0.5
    res = ac.fit(data, cluster="study", rho=rho, fix_sigma2={"study": s_study, "es": s_es})
    M = dense_m(data["vi"].to_numpy(), data["study"].to_numpy(), s_study, s_es, rho)
    w = np.linalg.solve(M, np.ones(len(data)))
    np.testing.assert_allclose(res.beta[0], w @ data["yi"].to_numpy() / w.sum(), rtol=1e-12)
    np.testing.assert_allclose(res.coefficients["se"].iloc[0], np.sqrt(1 / w.sum()), rtol=1e-12)


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_rho_zero_is_the_independent_errors_fit(method):
    data = dataset(seed=8, studies=20)
    plain = ac.fit(data, moderators=["x"], cluster="study", method=method)
    che_fit = ac.fit(data, moderators=["x"], cluster="study", method=method, rho=0.0)
    assert plain.rho is None and che_fit.rho == 0.0
    np.testing.assert_allclose(che_fit.sigma2, plain.sigma2, rtol=1e-8, atol=1e-12)
    for column in plain.coefficients.columns:
        np.testing.assert_allclose(
            che_fit.coefficients[column], plain.coefficients[column], rtol=1e-8
        )
    for name in ("QE", "I2", "H2", "loglik", "deviance", "aic", "bic", "aicc", "R2"):
        np.testing.assert_allclose(getattr(che_fit, name), getattr(plain, name), rtol=1e-8)
    np.testing.assert_allclose(che_fit.weights, plain.weights, rtol=1e-8)


def test_rho_none_keeps_the_independent_errors_path():
    data = dataset(seed=8, studies=20)
    first = ac.fit(data, moderators=["x"], cluster="study")
    second = ac.fit(data, moderators=["x"], cluster="study", rho=None, fix_sigma2=None)
    assert second.rho is None and second.fix_sigma2 is None
    np.testing.assert_array_equal(first.beta, second.beta)
    np.testing.assert_array_equal(first.sigma2, second.sigma2)


@pytest.mark.parametrize("rho", [-0.1, 1.0, 1.5, "high", float("nan")])
def test_rho_outside_its_range_is_refused(rho):
    with pytest.raises(AnalysisError, match="rho"):
        ac.fit(dataset(), cluster="study", rho=rho)


def test_rho_needs_a_study_column():
    with pytest.raises(AnalysisError, match="study column"):
        ac.fit(dataset(), rho=0.6)
    with pytest.raises(AnalysisError, match="study column"):
        ac.fit(dataset(), fix_sigma2={"es": 0})


@pytest.mark.parametrize(
    ("fixed", "message"),
    [({"between": 0}, "unknown component"), ({"es": -1}, ">= 0"), ({"es": "x"}, "non-negative")],
)
def test_bad_fixed_components_are_refused(fixed, message):
    with pytest.raises(AnalysisError, match=message):
        ac.fit(dataset(), cluster="study", fix_sigma2=fixed)


def test_compare_orders_models_and_refuses_invalid_pairs():
    data = dataset(seed=6, studies=25)
    full = ac.fit(data, moderators=["x"], cluster="study", rho=0.6)
    no_es = ac.fit(data, moderators=["x"], cluster="study", rho=0.6, fix_sigma2={"es": 0})
    forward, backward = ac.compare(full, no_es), ac.compare(no_es, full)
    assert forward == backward
    assert forward.df == 1 and forward.full.parameters == 4
    assert pytest.approx(max(0.0, 2 * (full.loglik - no_es.loglik)), rel=1e-12) == forward.LRT
    assert "LRT" in forward.summary()
    reduced = ac.fit(data, cluster="study", rho=0.6)
    with pytest.raises(AnalysisError, match="method='ML'"):
        ac.compare(full, reduced)
    with pytest.raises(AnalysisError, match="different data"):
        ac.compare(full, ac.fit(data.iloc[:-1], moderators=["x"], cluster="study", rho=0.6))
    with pytest.raises(AnalysisError, match="sampling covariances"):
        ac.compare(full, ac.fit(data, cluster="study", rho=0.3, fix_sigma2={"es": 0}))
    with pytest.raises(AnalysisError, match="same number of parameters"):
        ac.compare(full, ac.fit(data, moderators=["x"], cluster="study", rho=0.6))
    with pytest.raises(AnalysisError, match="different estimators"):
        ac.compare(full, ac.fit(data, cluster="study", rho=0.6, method="ML"))
    ml = ac.compare(
        ac.fit(data, moderators=["x"], cluster="study", rho=0.6, method="ML"),
        ac.fit(data, cluster="study", rho=0.6, method="ML"),
    )
    assert ml.df == 1 and ml.method == "ML"


def test_variance_ci_labels_and_fixed_components():
    data = dataset(seed=6, studies=25)
    both = ac.fit(data, cluster="study", rho=0.6).variance_ci()
    assert list(both.index) == ["sigma2.study", "sigma2.es"]
    assert list(both.columns) == ["estimate", "ci_lb", "ci_ub"]
    assert (both["ci_lb"] <= both["estimate"]).all() and (both["estimate"] <= both["ci_ub"]).all()
    one = ac.fit(data, cluster="study", rho=0.6, fix_sigma2={"es": 0}).variance_ci()
    assert list(one.index) == ["sigma2.study"]
    two_level = ac.fit(data).variance_ci()
    assert list(two_level.index) == ["tau2"]
    with pytest.raises(AnalysisError, match="no variance component"):
        ac.fit(data, method="EE").variance_ci()


def test_downstream_analyses_keep_rho_or_refuse():
    data = dataset(seed=6, studies=25)
    res = ac.fit(data, moderators=["x"], cluster="study", rho=0.6)
    loo = ac.leave_one_out(res)
    # Leaving out a study refits the same CHE model: compare one row with a direct fit.
    first = loo.table.index[0]
    direct = ac.fit(data[data["study"] != first], moderators=["x"], cluster="study", rho=0.6)
    np.testing.assert_allclose(loo.table.iloc[0]["estimate"], direct.beta[0], rtol=1e-8)
    # The last step of a cumulative analysis holds every study: the full CHE fit.
    full = ac.fit(data, cluster="study", rho=0.6)
    steps = ac.cumulative(full, order_by="x")
    np.testing.assert_allclose(steps.table.iloc[-1]["estimate"], full.beta[0], rtol=1e-8)
    with pytest.raises(AnalysisError, match="rho"):
        ac.influence_diagnostics(res)
    # Aggregating a CHE fit's studies uses its rho (compound symmetry), as ac.aggregate does.
    by_study = ac.bias.aggregate_by_study(res)
    expected = ac.aggregate(res.data, cluster="study", rho=0.6)
    np.testing.assert_allclose(by_study["yi"], expected["yi"], rtol=1e-12)
    np.testing.assert_allclose(by_study["vi"], expected["vi"], rtol=1e-12)
    data["group"] = np.where(data["study"] % 2 == 0, "even", "odd")
    grouped = ac.fit(data, cluster="study", rho=0.6, fix_sigma2={"es": 0.001})
    fits = ac.subgroup_fits(grouped, "group", min_studies=2)
    assert all(f.result is not None for f in fits)
    for f in fits:
        assert f.result.rho == 0.6 and f.result.fix_sigma2 == {"es": 0.001}


def test_summary_says_rho_and_which_components_are_fixed():
    res = ac.fit(dataset(), cluster="study", rho=0.6, fix_sigma2={"es": 0})
    text = res.summary()
    assert "rho = 0.6" in text and "(fixed)" in text
    assert "rho=0.6" in repr(res)
    plain = ac.fit(dataset(), cluster="study").summary()
    assert "rho" not in plain and "(fixed)" not in plain
