"""Marginal means (``MetaResult.marginal_means``) agree with metafor and clubSandwich.

Fixtures: tests/fixtures/interactions (scripts/make_interaction_fixtures.R). For each
categorical moderator of each case they hold the reference-grid rows L built in R by the rule
emmeans documents for ``weights = "proportional"``, metafor's ``predict(fit, newmods = L[-1])``
(model-based) and clubSandwich's ``linear_contrast(fit, vcov = "CR2", contrasts = L)`` (CR2,
Satterthwaite df). Estimates, SEs and df to a relative 1e-6; interval bounds to a relative 1e-6
with a floor of 1e-7 of |estimate| + se (bounds can sit near zero).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import alliance_core as ac
from alliance_core.errors import AnalysisError

FIXTURES = sorted((Path(__file__).parents[1] / "fixtures" / "interactions").glob("*.json"))
RTOL = 1e-6


def fit_case(case: dict) -> ac.MetaResult:
    spec = case["spec"]
    options = {}
    if spec["model"] != "two-level":
        options = {"cluster": "study", "es_id": "es"}
    if spec["model"] == "che":
        options["rho"] = spec["rho"]
    return ac.fit(
        pd.DataFrame(case["data"]),
        moderators=spec["terms"],
        method=spec["method"],
        test=spec["test"],
        **options,
    )


CASES = [
    (path, mm["focal"])
    for path in FIXTURES
    for mm in json.loads(path.read_text())["result"]["marginal_means"]
]


@pytest.fixture(scope="module")
def fits():
    cache = {}

    def get(path):
        if path not in cache:
            case = json.loads(path.read_text())
            res = fit_case(case)
            cache[path] = (case, res, res.robust(cluster="study"))
        return cache[path]

    return get


def expected_for(case, focal):
    return next(mm for mm in case["result"]["marginal_means"] if mm["focal"] == focal)


def bounds_close(got, want, scale, what):
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-7 * scale, err_msg=what)


def test_every_categorical_moderator_has_a_reference():
    assert len(CASES) >= 10


@pytest.mark.parametrize("path,focal", CASES, ids=[f"{p.stem}-{f}" for p, f in CASES])
def test_model_based_marginal_means(fits, path, focal):
    case, res, _ = fits(path)
    expected = expected_for(case, focal)
    mm = res.marginal_means(focal)
    assert list(mm.table.index) == expected["levels"]
    np.testing.assert_allclose(mm.contrasts.to_numpy(), expected["rows"], rtol=0, atol=1e-12)
    want = expected["model"]
    t = mm.table
    np.testing.assert_allclose(t["estimate"], want["pred"], rtol=RTOL)
    np.testing.assert_allclose(t["se"], want["se"], rtol=RTOL)
    scale = float(np.max(np.abs(want["pred"]) + np.asarray(want["se"])))
    for column in ("ci_lb", "ci_ub", "pi_lb", "pi_ub"):
        bounds_close(t[column], want[column], scale, column)
    np.testing.assert_allclose(t["r"], np.tanh(want["pred"]), rtol=RTOL)
    ddf = np.inf if case["spec"]["test"] == "z" else res.k - res.p
    assert (t["df"] == ddf).all()


@pytest.mark.parametrize("path,focal", CASES, ids=[f"{p.stem}-{f}" for p, f in CASES])
def test_cr2_marginal_means(fits, path, focal):
    case, res, rob = fits(path)
    want = expected_for(case, focal)["cr2"]
    t = res.marginal_means(focal, robust=rob).table
    np.testing.assert_allclose(t["estimate"], want["est"], rtol=RTOL)
    np.testing.assert_allclose(t["se"], want["se"], rtol=RTOL)
    np.testing.assert_allclose(t["df"], want["df"], rtol=RTOL)
    scale = float(np.max(np.abs(want["est"]) + np.asarray(want["se"])))
    bounds_close(t["ci_lb"], want["ci_lb"], scale, "ci_lb")
    bounds_close(t["ci_ub"], want["ci_ub"], scale, "ci_ub")
    # clubSandwich gives no prediction interval: it is estimate +- t(df) sqrt(se^2 + total
    # heterogeneity), here with clubSandwich's estimate, se and df and metafor's components.
    heterogeneity = case["result"].get("tau2") or sum(case["result"]["sigma2"])
    crit = stats.t.ppf(0.975, want["df"])
    half = crit * np.sqrt(np.asarray(want["se"]) ** 2 + heterogeneity)
    bounds_close(t["pi_lb"], np.asarray(want["est"]) - half, scale, "pi_lb")


def _toy(seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    k = 80
    return pd.DataFrame(
        {
            "yi": rng.normal(0.3, 0.2, k),
            "vi": rng.uniform(0.01, 0.05, k),
            "x": rng.normal(2.0, 1.0, k),
            "a": rng.choice(["p", "q", "r"], k, p=[0.5, 0.3, 0.2]),
            "b": rng.choice(["u", "v"], k, p=[0.7, 0.3]),
            "flag": rng.choice([True, False], k),
        }
    )


def test_closed_form_without_interactions():
    """Without interactions the mean of level q is b0 + b_aq + b_x mean(x) + b_bv share(v)."""
    data = _toy()
    res = ac.fit(data, moderators=["a", "x", "b"])
    b = res.coefficients["estimate"]
    share_v = float((data["b"] == "v").mean())
    base = b["intrcpt"] + b["x"] * data["x"].mean() + b["bv"] * share_v
    expected = [base, base + b["aq"], base + b["ar"]]
    np.testing.assert_allclose(res.marginal_means("a").table["estimate"], expected, rtol=1e-12)
    assert list(res.marginal_means("a").table["k"]) == [
        int((data["a"] == level).sum()) for level in ("p", "q", "r")
    ]


def test_single_moderator_means_are_the_level_predictions():
    data = _toy()
    res = ac.fit(data, moderators=["a"])
    mm = res.marginal_means("a").table
    pred = res.predict({"a": ["p", "q", "r"]})
    for column in ("se", "ci_lb", "ci_ub", "pi_lb", "pi_ub"):
        np.testing.assert_allclose(mm[column].to_numpy(), pred[column].to_numpy(), rtol=1e-12)


def test_boolean_moderator_levels():
    res = ac.fit(_toy(), moderators=["flag", "x"])
    table = res.marginal_means("flag").table
    assert list(table.index) == ["FALSE", "TRUE"]
    assert table["k"].sum() == res.k


def test_numeric_or_unknown_focal_is_refused():
    res = ac.fit(_toy(), moderators=["a", "x", "a:x"])
    with pytest.raises(AnalysisError, match="numeric"):
        res.marginal_means("x")
    with pytest.raises(AnalysisError, match="an interaction"):
        res.marginal_means("a:x")
    with pytest.raises(AnalysisError, match="not a moderator"):
        res.marginal_means("b")


def test_robust_result_of_another_fit_is_refused():
    data = _toy()
    res = ac.fit(data, moderators=["a"])
    other = ac.fit(data.assign(yi=data["yi"] + 0.1), moderators=["a"])
    with pytest.raises(AnalysisError, match="another fit"):
        res.marginal_means("a", robust=other.robust(cluster=np.arange(len(data)) // 2))
