"""Cluster wild bootstrap tests agree with wildmeta 0.3.2 (``Wald_test_cwb``) given the same
auxiliary weights.

Fixtures: tests/fixtures/wild_bootstrap (scripts/make_wild_bootstrap_fixtures.R; see that
folder's README): the observed Naive-F statistic (clubSandwich ``Wald_test`` with CR0/CR1
``vcovCR``), every bootstrap statistic, the p-value and the weights wildmeta drew. Tolerances:
observed statistic to a relative 1e-8; bootstrap statistics (each a refit whose variance
components metafor's optimiser finds to ~1e-8) to a relative 1e-5; p-values exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance_core as ac
from alliance_core.errors import AnalysisError
from alliance_core.model import che
from alliance_core.model import estimation as est
from alliance_core.model.components import estimate_dependent_sigma2
from alliance_core.model.wild_refits import BatchedCheRefits

FIXTURES = sorted((Path(__file__).parents[1] / "fixtures" / "wild_bootstrap").glob("*.json"))


def fit_case(case: dict) -> ac.MetaResult:
    spec = case["spec"]
    options = {}
    if spec["model"] != "two-level":
        options = {"cluster": "study", "es_id": "es", "rho": spec.get("rho")}
    return ac.fit(
        pd.DataFrame(case["data"]),
        moderators=list(spec["terms"]),
        method=spec["method"],
        **options,
    )


@pytest.fixture(scope="module", params=FIXTURES, ids=[p.stem for p in FIXTURES])
def pair(request):
    case = json.loads(request.param.read_text())
    res = fit_case(case)
    spec, expected = case["spec"], case["result"]
    weights = np.asarray(expected["weights"], dtype=float)
    position = {label: i for i, label in enumerate(expected["cluster_levels"])}
    columns = [position[label] for label in sorted(position)]
    cwb = res.wild_bootstrap(
        list(np.atleast_1d(spec["test_terms"])),
        weights=weights[:, columns],
        adjust=spec["adjust"],
        type=spec["type"],
        test=spec["test"],
        cluster="study",
    )
    return case, cwb


def test_fixtures_present():
    assert len(FIXTURES) >= 4


def test_clusters_in_the_order_of_the_weights(pair):
    case, cwb = pair
    assert sorted(case["result"]["cluster_levels"]) == list(cwb.clusters)
    assert list(cwb.terms) == list(np.atleast_1d(case["result"]["coefficients"]))


def test_observed_statistic_is_clubsandwich_wald_test(pair):
    case, cwb = pair
    np.testing.assert_allclose(cwb.statistic, case["result"]["statistic"], rtol=1e-8)


def test_bootstrap_statistics_and_pvalue(pair):
    case, cwb = pair
    expected = np.array([np.nan if b == "NA" else b for b in case["result"]["boot"]], dtype=float)
    np.testing.assert_allclose(cwb.boot, expected, rtol=1e-5)
    assert cwb.pval == pytest.approx(case["result"]["pval"], abs=1e-12)
    assert len(expected) == cwb.R


def _small(seed=4, studies=8):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 4, studies)
    study = np.repeat(np.arange(studies), sizes)
    k = len(study)
    return pd.DataFrame(
        {
            "yi": 0.3 + rng.normal(0, 0.1, studies)[study] + rng.normal(0, 0.1, k),
            "vi": rng.uniform(0.005, 0.03, k),
            "study": [f"s{i}" for i in study],
            "x": rng.normal(size=studies)[study],
        }
    )


def test_weights_of_one_reproduce_the_observed_data():
    """With every weight +1 the bootstrap outcome is the data itself, so each replicate's
    statistic is the observed one (closed form of y* = f + 1 * e)."""
    res = ac.fit(_small(), moderators=["x"], cluster="study")
    cwb = res.wild_bootstrap(["x"], weights=np.ones((3, 8)))
    np.testing.assert_allclose(cwb.boot, cwb.statistic, rtol=1e-8)
    assert cwb.pval == 0.0


def test_observed_statistic_matches_the_robust_module():
    """CR0 Naive-F from the robust module's CR1 covariance rescaled by (J - p) / J."""
    data = _small(studies=12)
    res = ac.fit(data, moderators=["x"], cluster="study")
    rob = res.robust(method="CR1")
    J, p = 12, res.p
    vcov = rob.vcov * (J - p) / J
    b = res.beta[1]
    cwb = res.wild_bootstrap(["x"], R=5, seed=2)
    assert cwb.statistic == pytest.approx(b * b / vcov[1, 1], rel=1e-6)


def test_defaults_seed_and_refusals():
    res = ac.fit(_small(), moderators=["x"], cluster="study")
    first = res.wild_bootstrap(["x"], R=20, seed=5)
    again = res.wild_bootstrap(["x"], R=20, seed=5)
    assert first.auxiliary == "Webb six"  # 8 clusters: below 10
    np.testing.assert_array_equal(first.boot, again.boot)
    assert 0.0 <= first.pval <= 1.0
    with pytest.raises(AnalysisError, match="R x 8"):
        res.wild_bootstrap(["x"], weights=np.ones((3, 7)))
    with pytest.raises(AnalysisError, match="type must be"):
        res.wild_bootstrap(["x"], type="CR3")
    with pytest.raises(AnalysisError, match="no null model"):
        res.wild_bootstrap(["intrcpt", "x"])
    two_level = ac.fit(_small(), moderators=["x"])
    with pytest.raises(AnalysisError, match="needs a cluster"):
        two_level.wild_bootstrap(["x"])


def test_progress_is_reported():
    res = ac.fit(_small(), moderators=["x"], cluster="study")
    seen = []
    res.wild_bootstrap(["x"], R=120, seed=1, progress=lambda done, total: seen.append(done))
    assert seen == [100, 120]  # after each block of 100 replicates and at the end


def _simulated_che(seed=11, studies=30):
    """Seeded CHE data: 1 to 6 effect sizes per study, a two-level categorical moderator."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 7, studies)
    study = np.repeat(np.arange(studies), sizes)
    k = len(study)
    group = rng.integers(0, 3, k)
    return pd.DataFrame(
        {
            "yi": 0.25
            + 0.05 * group
            + rng.normal(0, 0.12, studies)[study]
            + rng.normal(0, 0.08, k)
            + rng.normal(0, 0.1, k),
            "vi": rng.uniform(0.005, 0.03, k),
            "study": [f"s{i:02d}" for i in study],
            "es": np.arange(k),
            "group": np.array(["a", "b", "c"])[group],
        }
    )


@pytest.mark.parametrize(("rho", "method"), [(0.6, "REML"), (None, "REML"), (0.8, "ML")])
def test_batched_refits_equal_one_at_a_time(rho, method):
    """Every column refitted by the vectorised path equals the sequential maximisation
    (che.maximise_che_likelihood from the same start) and its GLS fit."""
    res = ac.fit(
        _simulated_che(), moderators=["group"], cluster="study", es_id="es", rho=rho, method=method
    )
    inputs = res.inputs
    order, starts = inputs.order, inputs.starts
    X, v, y = inputs.X[order], inputs.v[order], inputs.y[order]
    rng = np.random.default_rng(3)
    study = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, res.k)))
    Y = y.mean() + (y - y.mean())[:, None] * rng.choice([-1.0, 1.0], (len(starts), 40))[study]
    logdet = est.logdet_crossprod(X)
    start = res.sigma2.to_numpy(float)
    batch = BatchedCheRefits(X, v, starts, rho or 0.0, method == "REML", logdet)
    fits = batch.refit(Y, start)
    # the rare replicates the vectorised path leaves to the sequential routine (a component
    # heading for zero) are few; the rest must equal it
    assert fits.pending.sum() <= Y.shape[1] // 4
    for r in np.flatnonzero(~fits.pending):
        theta, _ = estimate_dependent_sigma2(
            Y[:, r], v, X, starts, rho or 0.0, method, logdet, None, start=start
        )
        gls = est.gls(Y[:, r], X, che.CheCovariance(v, starts, theta[0], theta[1], rho or 0.0))
        np.testing.assert_allclose(fits.theta[r], theta, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(fits.beta[r], gls.beta, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(fits.vb[r], gls.vb, rtol=1e-8)
        np.testing.assert_allclose(fits.e[:, r], gls.e, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("cluster", ["study", "region"])
def test_observed_cr2_statistic_matches_the_robust_module(cluster):
    """type = "CR2": F = b' (V_CR2)^-1 b / q with the robust module's CR2 covariance, with
    studies as clusters and with clusters of several studies."""
    data = _simulated_che(studies=40)
    data["region"] = [f"r{int(s[1:]) // 3}" for s in data["study"]]
    res = ac.fit(data, moderators=["group"], cluster="study", es_id="es", rho=0.6)
    rob = res.robust(method="CR2", cluster=cluster)
    idx = res.design.coefficient_indices(["group"])
    b = res.beta[idx]
    expected = float(b @ np.linalg.solve(rob.vcov[np.ix_(idx, idx)], b)) / len(idx)
    cwb = res.wild_bootstrap(["group"], R=3, seed=2, type="CR2", adjust="CR2", cluster=cluster)
    assert cwb.statistic == pytest.approx(expected, rel=1e-8)
    assert cwb.type == "CR2" and cwb.adjust == "CR2"


def test_smaller_blocks_give_the_same_statistics(monkeypatch):
    """Large data are refitted in smaller blocks of replicates; the block size changes
    nothing but how often progress is reported."""
    from alliance_core.model import wild_bootstrap as module

    res = ac.fit(_simulated_che(), moderators=["group"], cluster="study", es_id="es", rho=0.6)
    whole = res.wild_bootstrap(["group"], R=30, seed=4, type="CR2")
    per_replicate = res.k * (res.p + 2)
    monkeypatch.setattr(module, "BLOCK_ELEMENTS", 7 * per_replicate)
    seen = []
    parts = res.wild_bootstrap(
        ["group"], R=30, seed=4, type="CR2", progress=lambda done, total: seen.append(done)
    )
    np.testing.assert_allclose(parts.boot, whole.boot, rtol=1e-12)
    assert parts.pval == whole.pval
    assert seen[-1] == 30 and len(seen) > 1
