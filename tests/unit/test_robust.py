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
from robust_cases import (
    CORE_RTOL,
    DF_RTOL,
    P_ATOL,
    RTOL,
    check_cr1,
    check_cr2,
    close,
    fit_case,
    load,
    robust_case,
    robust_from_reference_fit,
)

import alliance_core as ac
from alliance_core.model.robust_variance import ClusterBlocks, cluster_robust, marginal_blocks

CASES = load("robust")
IDS = [case["name"] for case in CASES]
END_TO_END = [case for case in CASES if case["spec"]["model"] != "che"]
E2E_IDS = [case["name"] for case in END_TO_END]


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
    assert repr(rob).startswith(f"<RobustResult CR2 clusters={rob.n_clusters} p=4 QM=")
    for name in rob.coefficients.index:
        assert name in str(rob)
    with pytest.raises(ac.AnalysisError):
        rob.wald_test("nothing")


def test_robust_variance_does_not_depend_on_the_model_test():
    # The sandwich uses the unscaled bread (X'WX)^-1, as clubSandwich does. metafor 3.8's
    # robust(adjust = TRUE) on a Knapp-Hartung rma.uni fit instead starts from the
    # KH-scaled vb, which multiplies its CR1 SEs by s2w (documented in the README).
    case = next(c for c in CASES if c["name"] == "assink_2l_reml_mods")
    data, moderators = pd.DataFrame(case["data"]), case["spec"]["moderators"]
    z_fit = ac.fit(data, moderators=moderators, test="z")
    kh_fit = ac.fit(data, moderators=moderators, test="knha")
    for method in ("CR2", "CR1"):
        close(
            kh_fit.robust(cluster="study", method=method).vcov,
            z_fit.robust(cluster="study", method=method).vcov,
            1e-12,
        )


def test_core_accepts_blocks_given_per_cluster():
    case = next(c for c in CASES if c["name"] == "lehmann_che_rho06_mods")
    data = pd.DataFrame(case["data"])
    v, study = data["vi"].to_numpy(), data["study"].to_numpy()
    sigma2, rho = case["result"]["sigma2"], case["spec"]["rho"]
    given = []
    for label in pd.unique(study):
        vj = v[study == label]
        block = sigma2[0] + rho * np.sqrt(np.outer(vj, vj))
        block[np.diag_indices(len(vj))] = vj + sigma2[0] + sigma2[1]
        given.append(block)
    from_list = ClusterBlocks.from_blocks(study, given)
    built = marginal_blocks(study, v, study, sigma2[0], sigma2[1], rho)
    X = np.column_stack([np.ones(len(v)), data["year"].to_numpy() - 2010.0])
    e = data["yi"].to_numpy() - X @ np.linalg.lstsq(X, data["yi"].to_numpy(), rcond=None)[0]
    a, b = cluster_robust(X, e, from_list), cluster_robust(X, e, built)
    close(a.vcov, b.vcov, 1e-10)
    close(a.satterthwaite_df(), b.satterthwaite_df(), 1e-10)
    with pytest.raises(ac.AnalysisError, match="give one per cluster"):
        ClusterBlocks.from_blocks(study, given[:-1])
    with pytest.raises(ac.AnalysisError, match="covariance block has shape"):
        ClusterBlocks.from_blocks(study, [np.eye(1)] * len(given))


def test_working_covariance_must_be_positive_definite():
    study = np.array(["a", "a", "b", "b", "c"])
    v = np.full(5, 0.02)
    blocks = marginal_blocks(study, v, study, rho=-1.0)  # perfectly anti-correlated pairs
    X = np.ones((5, 1))
    with pytest.raises(ac.AnalysisError, match="cluster 'a' is not positive definite"):
        cluster_robust(X, np.zeros(5), blocks)
