"""Cluster-robust inference agrees with R's clubSandwich (CR2) and metafor robust() (CR1).

Fixtures: tests/fixtures/robust, written by scripts/make_robust_fixtures.R (see its README).
Two routes are checked against every reference number:

* end to end (two- and three-level fits): ``ac.fit(...)`` here, then ``res.robust()``. The
  variance components come from this package's own optimiser, which agrees with metafor to
  about 1e-8, so estimates, SEs, CIs and F statistics are compared to a relative 1e-6, the
  Satterthwaite/HTZ df to 2e-6 and p-values to 1e-6 absolute;
* the array-level core on metafor's own estimates (all cases, including the CHE working
  model with rho = 0, 0.6, 0.9, which ``fit`` does not offer yet): blocks built from R's
  sigma2 and rho, residuals from R's beta. Same inputs, so the tolerance is 1e-8 relative.

Closed forms: with one effect size per cluster and equal sampling variances CR2 is the HC2
estimator of OLS (statsmodels), and the Satterthwaite df equal a dense k x k evaluation of
their definition.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from robust_cases import fit_case, load, robust_case, robust_from_reference_fit

import alliance_core as ac
from alliance_core.robust import cluster_robust, marginal_blocks

CASES = load("robust")
IDS = [case["name"] for case in CASES]
END_TO_END = [case for case in CASES if case["spec"]["model"] != "che"]
E2E_IDS = [case["name"] for case in END_TO_END]

RTOL = 1e-6
DF_RTOL = 2e-6
P_ATOL = 1e-6
CORE_RTOL = 1e-8


def close(actual, expected, rtol, atol=0.0, what=""):
    np.testing.assert_allclose(
        np.asarray(actual, dtype=float),
        np.asarray(expected, dtype=float),
        rtol=rtol,
        atol=atol,
        err_msg=what,
    )


def check_cr2(rob: ac.RobustResult, reference: dict, rtol: float, df_rtol: float, p_atol: float):
    expected = reference["cr2"]
    table = rob.coefficients
    assert list(table.index) == reference["coef_names"]
    close(table["estimate"], reference["beta"], rtol, what="beta")
    close(table["se"], expected["se"], rtol, what="se")
    close(table["statistic"], expected["tstat"], rtol, atol=1e-12, what="t")
    close(table["df"], expected["df"], df_rtol, what="Satterthwaite df")
    close(table["pval"], expected["pval"], 0.0, atol=p_atol, what="p")
    close(table["ci_lb"], expected["ci_lb"], rtol, atol=1e-12, what="ci_lb")
    close(table["ci_ub"], expected["ci_ub"], rtol, atol=1e-12, what="ci_ub")
    close(rob.vcov, expected["vcov"], rtol, atol=1e-14, what="vcov")
    assert rob.n_clusters == reference["n_clusters"]
    if expected.get("QM") is None:
        assert rob.QM is None
    else:
        qm = expected["QM"]
        close(rob.QM, qm["Fstat"], rtol, what="HTZ F")
        assert rob.QM_df[0] == qm["df_num"]
        close(rob.QM_df[1], qm["df_denom"], df_rtol, what="HTZ df2")
        close(rob.QM_pval, qm["p_val"], 0.0, atol=p_atol, what="HTZ p")
    for wald in expected.get("wald") or []:
        test = rob.wald_test(wald["terms"])
        assert test.terms == tuple(wald["terms"])
        close(test.statistic, wald["Fstat"], rtol, what=f"HTZ F {wald['terms']}")
        close(test.df2, wald["df_denom"], df_rtol, what=f"HTZ df2 {wald['terms']}")
        close(test.pval, wald["p_val"], 0.0, atol=p_atol, what=f"HTZ p {wald['terms']}")


def check_cr1(rob: ac.RobustResult, reference: dict, rtol: float, p_atol: float):
    expected = reference["cr1"]
    table = rob.coefficients
    close(table["se"], expected["se"], rtol, what="CR1 se")
    close(table["statistic"], expected["tstat"], rtol, atol=1e-12, what="CR1 t")
    assert np.all(table["df"] == expected["df"])
    close(table["pval"], expected["pval"], 0.0, atol=p_atol, what="CR1 p")
    close(table["ci_lb"], expected["ci_lb"], rtol, atol=1e-12, what="CR1 ci_lb")
    close(table["ci_ub"], expected["ci_ub"], rtol, atol=1e-12, what="CR1 ci_ub")
    if expected["QM"] is not None:
        close(rob.QM, expected["QM"], rtol, what="CR1 F")
        assert rob.QM_df == tuple(expected["QM_df"])
        close(rob.QM_pval, expected["QM_pval"], 0.0, atol=p_atol, what="CR1 p(F)")


def test_fixture_set_covers_the_promised_cases():
    names = set(IDS)
    models = {(c["spec"]["model"], c["spec"]["method"]) for c in CASES}
    assert {("three-level", "REML"), ("three-level", "ML"), ("two-level", "REML")} <= models
    assert {c["spec"].get("rho") for c in CASES if c["spec"]["model"] == "che"} == {0, 0.6, 0.9}
    for dataset in ("assink", "tannersmith", "lehmann", "bornmann"):
        assert any(name.startswith(dataset) for name in names)
    few = next(c for c in CASES if c["name"] == "few_clusters_3l")
    assert min(few["result"]["cr2"]["df"]) < 4
    assert {"rare_level_3l", "coarse_cluster_3l"} <= names
    for case in CASES:
        assert case["result"]["versions"]["clubSandwich"]


@pytest.mark.parametrize("case", END_TO_END, ids=E2E_IDS)
def test_cr2_end_to_end_agrees_with_clubsandwich(case):
    check_cr2(robust_case(case), case["result"], RTOL, DF_RTOL, P_ATOL)


@pytest.mark.parametrize("case", END_TO_END, ids=E2E_IDS)
def test_cr1_end_to_end_agrees_with_metafor_robust(case):
    check_cr1(robust_case(case, method="CR1"), case["result"], RTOL, P_ATOL)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_core_on_metafor_estimates_agrees_with_clubsandwich(case):
    check_cr2(robust_from_reference_fit(case), case["result"], CORE_RTOL, CORE_RTOL, 1e-8)
    check_cr1(robust_from_reference_fit(case, method="CR1"), case["result"], CORE_RTOL, 1e-8)


def test_che_with_rho_zero_is_the_three_level_model():
    che = next(c for c in CASES if c["name"] == "assink_che_rho00_mods")
    three = next(c for c in CASES if c["name"] == "assink_3l_reml_mods")
    from_fit = robust_case(three)
    # the same model in R's two parametrisations: metafor's estimates agree to ~1e-7
    close(
        robust_from_reference_fit(che).coefficients["se"],
        from_fit.coefficients["se"],
        1e-5,
    )


# -- closed forms ------------------------------------------------------------------------
def _ols_data(seed: int, k: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=k)
    group = rng.choice(["a", "b", "c"], k)
    y = 0.2 + 0.3 * x + (group == "b") * 0.2 + rng.standard_t(3, size=k) * (1 + np.abs(x)) * 0.1
    return pd.DataFrame({"yi": y, "vi": 0.04, "x": x, "group": group, "id": np.arange(k)})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_one_effect_per_cluster_with_equal_weights_is_hc2(seed):
    data = _ols_data(seed)
    res = ac.fit(data, moderators=["x", "group"], method="EE")
    rob = res.robust(cluster="id")
    X = sm.add_constant(
        np.column_stack([data["x"], data["group"] == "b", data["group"] == "c"]).astype(float)
    )
    ols = sm.OLS(data["yi"].to_numpy(), X).fit(cov_type="HC2")
    close(rob.coefficients["estimate"], ols.params, 1e-10)
    close(rob.vcov, ols.cov_params(), 1e-9)


def _dense_satterthwaite(X, e, M, cluster):
    """Satterthwaite df of each coefficient from the k x k definition (Bell & McCaffrey 2002;
    Pustejovsky & Tipton 2018): V = sum_j (p_j' e)^2 with
    p_j = (I - H)_j' A_j W_j X_j B c, E V = sum_j p_j' M p_j, Var V = 2 sum_jk (p_j' M p_k)^2."""
    k, p = X.shape
    W = np.linalg.inv(M)
    B = np.linalg.inv(X.T @ W @ X)
    IH = np.eye(k) - X @ B @ X.T @ W
    labels = np.unique(cluster)
    df = []
    for i in range(p):
        c = np.eye(p)[i]
        P = []
        for label in labels:
            rows = np.flatnonzero(cluster == label)
            Mj, Xj = M[np.ix_(rows, rows)], X[rows]
            L = np.linalg.cholesky(Mj)
            G = L.T @ (Mj - Xj @ B @ Xj.T) @ L
            vals, vecs = np.linalg.eigh(G)
            A = L @ (vecs @ np.diag(vals**-0.5) @ vecs.T) @ L.T
            P.append(IH[rows].T @ A @ W[np.ix_(rows, rows)] @ Xj @ B @ c)
        P = np.array(P)
        S = P @ M @ P.T
        df.append(2 * np.trace(S) ** 2 / (2 * np.sum(S**2)))
    return np.array(df)


@pytest.mark.parametrize("seed", [4, 5])
def test_satterthwaite_df_equal_the_dense_definition(seed):
    rng = np.random.default_rng(seed)
    studies = 12
    sizes = rng.integers(1, 5, studies)
    study = np.repeat(np.arange(studies), sizes)
    k = len(study)
    v = rng.uniform(0.01, 0.05, k)
    X = np.column_stack([np.ones(k), rng.normal(size=k), rng.normal(size=studies)[study]])
    e = rng.normal(size=k) * 0.2
    sigma2_study, sigma2_es, rho = 0.03, 0.01, 0.5
    blocks = marginal_blocks(study, v, study, sigma2_study, sigma2_es, rho)
    same = study[:, None] == study[None, :]
    M = np.where(same, sigma2_study + rho * np.sqrt(np.outer(v, v)), 0.0)
    M[np.diag_indices(k)] = v + sigma2_study + sigma2_es
    core = cluster_robust(X, e, blocks)
    close(core.satterthwaite_df(), _dense_satterthwaite(X, e, M, study), 1e-9)


# -- the wrapper's checks and messages -------------------------------------------------------
@pytest.fixture(scope="module")
def assink_three_level():
    case = next(c for c in CASES if c["name"] == "assink_3l_reml_mods")
    return fit_case(case)


def test_two_level_fit_needs_a_named_cluster():
    case = next(c for c in CASES if c["name"] == "assink_2l_reml_mods")
    res = fit_case(case)
    with pytest.raises(ac.AnalysisError, match="two-level model needs a cluster"):
        res.robust()
    with pytest.raises(ac.AnalysisError, match="'nowhere' is not in the analysed data"):
        res.robust(cluster="nowhere")
    by_array = res.robust(cluster=res.data["study"].to_numpy())
    close(by_array.vcov, res.robust(cluster="study").vcov, 1e-14)
    assert by_array.cluster is None


def test_robust_clusters_must_contain_whole_studies(assink_three_level):
    res = assink_three_level
    finer = np.arange(res.k)  # one cluster per effect size splits the studies
    with pytest.raises(ac.AnalysisError, match="spans several clusters"):
        res.robust(cluster=finer)


def test_cluster_array_of_wrong_length_or_with_gaps(assink_three_level):
    res = assink_three_level
    with pytest.raises(ac.AnalysisError, match="one label per row"):
        res.robust(cluster=np.zeros(res.k - 1))
    labels = res.data["study"].to_numpy(dtype=object).copy()
    labels[3] = None
    with pytest.raises(ac.AnalysisError, match="cluster is missing"):
        res.robust(cluster=labels)
    with pytest.raises(ac.AnalysisError, match="choose one of CR2, CR1"):
        res.robust(method="HC0")


def test_one_cluster_is_refused():
    data = _ols_data(7)
    res = ac.fit(data, moderators=["x"], method="REML")
    with pytest.raises(ac.AnalysisError, match="two or more clusters"):
        res.robust(cluster=np.zeros(res.k))


def test_warnings_flag_small_df_and_few_clusters():
    few = next(c for c in CASES if c["name"] == "few_clusters_3l")
    rob = robust_case(few)
    text = " ".join(rob.warnings)
    assert "only 5 clusters" in text
    assert "Satterthwaite df below 4" in text
    assert "unreliable" in str(rob)
    many = robust_case(next(c for c in CASES if c["name"] == "tannersmith_3l_reml_mods"))
    flagged = [name for name in many.coefficients.index if any(name in w for w in many.warnings)]
    assert flagged == list(many.coefficients.index[many.df < 4])


def test_cr1_says_which_df_it_uses(assink_three_level):
    rob = assink_three_level.robust(method="CR1")
    assert rob.method == "CR1"
    assert any("clusters - coefficients" in w for w in rob.warnings)
    assert "CR1" in rob.summary()


def test_summary_and_wald_by_moderator_name(assink_three_level):
    rob = assink_three_level.robust()
    by_column = rob.wald_test("deltype")
    assert by_column.terms == ("deltypegeneral", "deltypeovert")
    assert "HTZ Test of moderators" in rob.summary()
    for name in rob.coefficients.index:
        assert name in str(rob)
    with pytest.raises(ac.AnalysisError):
        rob.wald_test("nothing")
