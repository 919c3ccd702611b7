"""CR2 predictions with their own Satterthwaite df against clubSandwich and metafor.

Fixtures: tests/fixtures/robust_prediction (scripts/make_robust_prediction_fixtures.R), each
holding clubSandwich ``linear_contrast(fit, vcov = "CR2", contrasts = X_new)`` and metafor
``predict(robust(fit, cluster, clubSandwich = TRUE), newmods)`` (on the model scale and with
``transf = tanh``) for dat.assink2016 and a simulated 35-study coding sheet (1-6 effect sizes
per study), CHE at rho 0 and 0.6 and a two-level model, without and with moderators.

Two routes: end to end (fit here, then ``res.robust().predict``), and the contrast algebra alone
on metafor's own estimates (blocks from metafor's sigma2 and beta), where agreement is tighter.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance_core as ac
from alliance_core.model.robust import robust_from_blocks
from alliance_core.model.robust_contrasts import PREDICTION_COLUMNS, contrast_df, linear_contrast
from alliance_core.model.robust_variance import marginal_blocks

FIXTURES = sorted((Path(__file__).parents[1] / "fixtures" / "robust_prediction").glob("*.json"))
CASES = [json.loads(path.read_text()) for path in FIXTURES]
IDS = [case["name"] for case in CASES]
RTOL = 1e-6  # the target for pred, se, df, CI and PI (end to end)
CORE_RTOL = 1e-8  # the contrast algebra on metafor's own estimates


def fitted(case: dict) -> ac.MetaResult:
    spec = case["spec"]
    data = pd.DataFrame(case["data"])
    moderators = spec["moderators"] or None
    if spec["model"] == "two-level":
        return ac.fit(data, moderators=moderators, method=spec["method"])
    return ac.fit(
        data, moderators=moderators, method=spec["method"], cluster="study", rho=spec["rho"]
    )


def newmods(case: dict) -> pd.DataFrame | None:
    return pd.DataFrame(case["newdata"]) if case["newdata"] else None


def robust_of(case: dict) -> ac.RobustResult:
    res = fitted(case)
    return res.robust(cluster="study" if case["spec"]["model"] == "two-level" else None)


def on_metafor_estimates(case: dict) -> ac.RobustResult:
    """The robust result built on metafor's beta and variance components (not ours)."""
    spec = case["spec"]
    result = case["result"]
    res = fitted(case)
    data = res.data
    v = data["vi"].to_numpy(float)
    if spec["model"] == "two-level":
        blocks = marginal_blocks(data["study"].to_numpy(), v, sigma2_es=result["tau2"])
        heterogeneity = result["tau2"]
    else:
        s2 = result["sigma2"]
        blocks = marginal_blocks(
            data["study"].to_numpy(),
            v,
            study=data["study"].to_numpy(),
            sigma2_study=s2[0],
            sigma2_es=s2[1],
            rho=spec["rho"],
        )
        heterogeneity = sum(s2)
    return robust_from_blocks(
        res.inputs.X,
        res.inputs.y,
        np.asarray(result["beta"]),
        blocks,
        result["coef_names"],
        design=res.design,
        heterogeneity=heterogeneity,
    )


def close(actual, expected, rtol: float, width, what: str) -> None:
    """|actual - expected| <= rtol * max(|expected|, width): relative, except that a bound
    near zero is judged relative to its interval's width (a relative error of a number
    that happens to be 0.0005 says nothing about the interval)."""
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    allowed = rtol * np.maximum(np.abs(expected), np.asarray(width, float))
    error = np.abs(actual - expected)
    assert np.all(error <= allowed), f"{what}: errors {error} allowed {allowed}"


def check_against_r(out: pd.DataFrame, case: dict, rtol: float) -> None:
    metafor = case["result"]["metafor"]
    sandwich = case["result"]["clubsandwich"]
    for column, expected in [
        ("pred", sandwich["est"]),
        ("se", sandwich["se"]),
        ("df", sandwich["df"]),
        ("ci_lb", sandwich["ci_lb"]),
        ("ci_ub", sandwich["ci_ub"]),
        ("pred", metafor["pred"]),
        ("se", metafor["se"]),
        ("df", metafor["df"]),
        ("ci_lb", metafor["ci_lb"]),
        ("ci_ub", metafor["ci_ub"]),
        ("pi_lb", metafor["pi_lb"]),
        ("pi_ub", metafor["pi_ub"]),
    ]:
        width = np.asarray(metafor["pi_ub"]) - np.asarray(metafor["pi_lb"])
        close(out[column], expected, rtol, width if column.startswith(("ci", "pi")) else 0, column)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cr2_predictions_agree_with_clubsandwich_and_metafor(case):
    out = robust_of(case).predict(newmods(case))
    assert list(out.columns[: len(PREDICTION_COLUMNS)]) == list(PREDICTION_COLUMNS)
    assert len(out) == len(case["result"]["metafor"]["pred"])
    check_against_r(out, case, RTOL)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cr2_predictions_on_the_r_scale_agree_with_metafor_transf_tanh(case):
    out = robust_of(case).predict(newmods(case), transform="r")
    expected = case["result"]["metafor_r"]
    width = np.asarray(expected["pi_ub"]) - np.asarray(expected["pi_lb"])
    for column in ("pred", "ci_lb", "ci_ub", "pi_lb", "pi_ub"):
        close(out[column], expected[column], RTOL, 0 if column == "pred" else width, column)
    assert out["se"].isna().all()  # metafor gives NA for a transformed se
    np.testing.assert_allclose(out["df"], case["result"]["metafor"]["df"], rtol=RTOL)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_contrast_algebra_on_metafor_estimates(case):
    rob = on_metafor_estimates(case)
    check_against_r(rob.predict(newmods(case)), case, CORE_RTOL)
    C = np.asarray(case["result"]["contrasts"])
    np.testing.assert_allclose(
        linear_contrast(rob, C)["df"], case["result"]["clubsandwich"]["df"], rtol=CORE_RTOL
    )


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_unit_contrast_has_its_coefficients_df(case):
    rob = on_metafor_estimates(case)
    unit = np.eye(len(rob.beta))
    np.testing.assert_allclose(contrast_df(rob.core, unit), rob.df, rtol=1e-12)
    np.testing.assert_allclose(rob.df, case["result"]["coef_df"], rtol=CORE_RTOL)


def test_predictions_do_not_borrow_the_smallest_coefficient_df():
    """assink2016 with deltype + year: the smallest coefficient df is about 2; every
    prediction's own df is above 3.7 (clubSandwich), so borrowing would widen the CI."""
    case = next(c for c in CASES if c["name"] == "assink_che_rho06_mods")
    rob = robust_of(case)
    out = rob.predict(newmods(case))
    assert rob.df.min() < 2.5
    assert (out["df"] > 3.5).all()
    np.testing.assert_allclose(out["df"], case["result"]["clubsandwich"]["df"], rtol=RTOL)


def test_cr1_predictions_use_clusters_minus_coefficients():
    case = next(c for c in CASES if c["name"] == "upload_che_rho06_mods")
    res = fitted(case)
    rob = res.robust(method="CR1")
    out = rob.predict(newmods(case))
    assert (out["df"] == rob.n_clusters - res.p).all()


def test_equal_effects_fit_has_no_prediction_interval():
    case = next(c for c in CASES if c["name"] == "upload_2l_mods")
    data = pd.DataFrame(case["data"])
    rob = ac.fit(data, moderators=["log_PTR"], method="EE").robust(cluster="study")
    out = rob.predict({"log_PTR": [0.0, 1.0]})
    assert out["pi_lb"].isna().all() and out["pi_ub"].isna().all()
    assert out["ci_lb"].notna().all()
