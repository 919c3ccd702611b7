"""Selection models of dependent effect sizes against metaselection 0.1.5
``selection_model(..., estimator = "CML", vcov_type = "robust", priors = NULL)``.

Fixtures: tests/fixtures/selection_clustered (scripts/make_metaselection_fixtures.R; see its
README). metaselection reports tau2 and the deltas on the log scale (gamma = log tau2,
zeta = log delta); the engine's SE(tau2) = tau2 SE(gamma) and SE(delta) = delta SE(zeta), and
its intervals are exp(gamma +/- z SE), so both are compared on metaselection's scale. Target
of the issue: every estimate and robust SE within 1e-4.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance_core as ac
from alliance_core.analyses import selection as S

FIXTURES = Path(__file__).parents[1] / "fixtures" / "selection_clustered"
RTOL = 1e-4


@functools.cache
def load(name: str) -> tuple[dict, ac.MetaResult]:
    case = json.loads((FIXTURES / f"{name}.json").read_text())
    s = case["settings"]
    res = ac.fit(
        pd.DataFrame(case["data"]),
        moderators=s["moderators"] or None,
        reference=s["reference"] or None,
        cluster=s["cluster"],
    )
    return case, res


ENTRIES = [
    (path.stem, i)
    for path in sorted(FIXTURES.glob("*.json"))
    for i in range(len(json.loads(path.read_text())["selection_model"]))
]


def close(actual, expected, what, rtol=RTOL, atol=0.0):
    np.testing.assert_allclose(
        np.asarray(actual, float), np.asarray(expected, float), rtol=rtol, atol=atol, err_msg=what
    )


def test_fixtures_cover_moderators_several_cuts_and_the_default_data():
    fits = [load(n)[0]["selection_model"][i] for n, i in ENTRIES]
    assert any(len(f["steps"]) == 2 for f in fits)
    assert any(sum(p.startswith("beta") for p in f["est"]["param"]) > 2 for f in fits)
    assert any(len(load(n)[0]["data"]["yi"]) == 811 for n, _ in ENTRIES)


@pytest.mark.parametrize(("name", "index"), ENTRIES)
def test_clustered_selection_model_matches_metaselection(name, index):
    case, res = load(name)
    expected = case["selection_model"][index]
    sel = ac.selmodel(res, steps=expected["steps"], cluster="study")
    what = f"{name} {expected['steps']}"
    est = pd.DataFrame(expected["est"]).set_index("param")
    beta = est[est.index.str.startswith("beta")]
    table = sel.coefficients
    scale = float(beta["SE"].max())
    close(table["estimate"], beta["Est"], f"{what} beta", atol=RTOL * scale)
    close(table["se"], beta["SE"], f"{what} se")
    close(table["ci_lb"], beta["CI_lo"], f"{what} ci_lb", atol=RTOL * scale)
    close(table["ci_ub"], beta["CI_hi"], f"{what} ci_ub", atol=RTOL * scale)
    close(table["pval"], beta["p_value"], f"{what} pval", atol=1e-6)
    gamma = est.loc["gamma"]
    close(np.log(sel.tau2), gamma["Est"], f"{what} log tau2", atol=RTOL)
    close(sel.se_tau2 / sel.tau2, gamma["SE"], f"{what} SE log tau2")
    close(np.log(sel.tau2_ci), [gamma["CI_lo"], gamma["CI_hi"]], f"{what} tau2 CI", atol=RTOL)
    zeta = est[est.index.str.startswith("zeta")]
    delta = sel.delta.iloc[1:]
    close(np.log(delta["estimate"]), zeta["Est"], f"{what} log delta", atol=RTOL)
    close(delta["se"] / delta["estimate"], zeta["SE"], f"{what} SE log delta")
    close(np.log(delta["ci_lb"]), zeta["CI_lo"], f"{what} delta ci_lb", atol=RTOL)
    close(np.log(delta["ci_ub"]), zeta["CI_hi"], f"{what} delta ci_ub", atol=RTOL)
    close(delta["pval"], zeta["p_value"], f"{what} delta pval", atol=1e-6)
    close(sel.loglik, expected["loglik"], f"{what} composite loglik", rtol=1e-8)
    assert list(sel.delta["k"]) == expected["k"]
    assert list(sel.delta["clusters"]) == expected["m"]
    assert sel.n_clusters == expected["n_clusters"]
    assert sel.vcov_type == "robust" and sel.cluster == "study"
    assert np.isnan(sel.LRT)  # no likelihood-ratio test on a composite likelihood


def test_the_che_working_model_gives_the_same_selection_model():
    # the selection model uses the effect sizes and moderators of the fit, not its V
    case, res = load("assink2016")
    che = ac.fit(pd.DataFrame(case["data"]), cluster="study", rho=0.6)
    a = ac.selmodel(res, steps=[0.025], cluster="study")
    b = ac.selmodel(che, steps=[0.025], cluster="study")
    close(b.coefficients, a.coefficients, "CHE vs three-level", rtol=1e-7, atol=1e-9)


# -- the cluster bootstrap -----------------------------------------------------------------
def test_cluster_bootstrap_is_reproducible_by_seed_and_reports_progress():
    _, res = load("sim_clustered")
    calls = []
    a = ac.selmodel(
        res,
        cluster="study",
        bootstrap="multinomial",
        R=60,
        seed=11,
        progress=lambda done, total: calls.append((done, total)),
    )
    b = ac.selmodel(res, cluster="study", bootstrap="multinomial", R=60, seed=11)
    c = ac.selmodel(res, cluster="study", bootstrap="multinomial", R=60, seed=12)
    assert calls == [(i, 60) for i in range(1, 61)]
    pd.testing.assert_frame_equal(a.bootstrap.replicates, b.bootstrap.replicates)
    assert not a.bootstrap.replicates.equals(c.bootstrap.replicates)
    assert len(a.bootstrap.replicates) + a.bootstrap.failed == 60
    assert {"boot_lb", "boot_ub"} <= set(a.coefficients.columns) | set(a.delta.columns)


def test_cluster_bootstrap_intervals_agree_with_the_sandwich_on_the_default_data():
    # 152 clusters: percentile and large-sample intervals of the mean should be close
    _, res = load("alliance")
    sel = ac.selmodel(res, cluster="study", bootstrap="multinomial", R=199, seed=3)
    row = sel.coefficients.loc["intrcpt"]
    assert row["boot_lb"] < row["estimate"] < row["boot_ub"]
    ratio = (row["boot_ub"] - row["boot_lb"]) / (row["ci_ub"] - row["ci_lb"])
    assert 0.75 < ratio < 1.33
    assert sel.bootstrap.failed == 0


def test_bootstrap_needs_a_cluster_and_a_known_type():
    case, res = load("assink2016")
    two_level = ac.fit(pd.DataFrame(case["data"]))
    with pytest.raises(ac.AnalysisError, match="needs a cluster"):
        ac.selmodel(two_level, bootstrap="multinomial")
    with pytest.raises(ac.AnalysisError, match="Unknown bootstrap"):
        ac.selmodel(res, cluster="study", bootstrap="wild")


def test_each_bootstrap_replicate_maximises_its_weighted_likelihood():
    # the quick refit (BFGS from the full-sample estimate) lands where the full maximiser does
    _, res = load("sim_clustered")
    sel = ac.selmodel(res, steps=[0.025, 0.5], cluster="study")
    data = S.step_data(res.inputs.y, res.inputs.v, res.inputs.X, [0.025, 0.5])
    spec = S.Parameters(res.p, 3, None)
    estimate = np.concatenate([sel.beta, [sel.tau2], sel.delta["estimate"].iloc[1:]])
    clusters = pd.factorize(res.data["study"])[0]
    boot = S.cluster_bootstrap(data, spec, estimate, clusters, list("abcde"), 0.95, 12, 7)
    rng = np.random.default_rng(7)  # the same draws, in the same order
    row = 0
    for _ in range(12):
        counts = rng.multinomial(
            clusters.max() + 1, np.full(clusters.max() + 1, 1 / (clusters.max() + 1))
        )
        w = counts[clusters]
        if np.any(np.bincount(data.group[w > 0], minlength=3) == 0):
            continue
        weighted = S.StepData(data.y, data.v, data.X, data.steps, data.cut_z, data.group, w * 1.0)
        best = S.maximise(weighted, spec, estimate).theta
        np.testing.assert_allclose(boot.replicates.iloc[row], best, rtol=1e-6, atol=1e-8)
        row += 1
    assert row == len(boot.replicates)
