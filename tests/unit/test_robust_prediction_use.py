"""Where a CR2 prediction is shown, it is the one with its own df: the forest diamond and
prediction interval, the PTR curve's bands and what-if profiles, and the "how much does r
change" readout, each checked against clubSandwich / metafor numbers of
tests/fixtures/robust_prediction (scripts/make_robust_prediction_fixtures.R).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance_core as ac
from alliance_core.figures import (
    BandInference,
    Profile,
    forest_figure,
    profile_predictions,
    ptr_coding,
    ptr_curve_figure,
    ptr_slope_readout,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "robust_prediction"
RTOL = 1e-6


def case(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def che_fit(fixture: dict) -> ac.MetaResult:
    spec = fixture["spec"]
    return ac.fit(
        pd.DataFrame(fixture["data"]),
        moderators=spec["moderators"] or None,
        cluster="study",
        rho=spec["rho"],
    )


def band_of(res: ac.MetaResult) -> BandInference:
    return BandInference(robust=res.robust(), label="cluster-robust (CR2)")


def one(fig, role):
    found = [t for t in fig.data if (t.meta or {}).get("role") == role]
    assert len(found) == 1, role
    return found[0]


def test_forest_diamond_and_prediction_interval_under_cr2_are_metafors():
    fixture = case("upload_che_rho06")  # intercept only: the diamond is the pooled estimate
    res = che_fit(fixture)
    fig = forest_figure(res, transform="r", band=band_of(res))
    expected = fixture["result"]["metafor_r"]
    diamond = one(fig, "diamond").meta
    np.testing.assert_allclose(diamond["estimate"], expected["pred"][0], rtol=RTOL)
    np.testing.assert_allclose(
        diamond["ci"], [expected["ci_lb"][0], expected["ci_ub"][0]], rtol=RTOL
    )
    bar = one(fig, "prediction interval").meta
    np.testing.assert_allclose(bar["pi"], [expected["pi_lb"][0], expected["pi_ub"][0]], rtol=RTOL)
    # The caption names the df the diamond was tested on: the estimate's own.
    df = fixture["result"]["metafor"]["df"][0]
    assert any(f"here df = {df:.1f}." in note for note in fig.layout.meta["notes"])


def test_forest_without_band_keeps_the_model_based_diamond():
    res = che_fit(case("upload_che_rho06"))
    model = res.predict(transform="r").iloc[0]
    diamond = one(forest_figure(res, transform="r"), "diamond").meta
    assert diamond["estimate"] == pytest.approx(model["pred"])
    assert diamond["ci"] == pytest.approx([model["ci_lb"], model["ci_ub"]])


def test_ptr_profile_predictions_under_cr2_are_metafors_at_each_point():
    fixture = case("upload_che_rho06_mods")
    res = che_fit(fixture)
    coding = ptr_coding(res, "PTR")
    rows = pd.DataFrame(fixture["newdata"])
    expected = fixture["result"]["metafor_r"]
    for rater in rows["rater"].unique():
        at = np.flatnonzero(rows["rater"] == rater)
        grid = np.exp(rows["log_PTR"].to_numpy()[at])
        profile = Profile(name=rater, values={"rater": rater}, held={})
        out = profile_predictions(res, coding, profile, grid, band_of(res))
        # A bound near zero is judged against its interval's width (relative error is
        # meaningless at 0.0005).
        width = np.asarray(expected["pi_ub"])[at] - np.asarray(expected["pi_lb"])[at]
        for column in ("pred", "ci_lb", "ci_ub", "pi_lb", "pi_ub"):
            error = np.abs(out[column].to_numpy() - np.asarray(expected[column])[at])
            allowed = RTOL * np.maximum(np.abs(np.asarray(expected[column])[at]), width)
            assert np.all(error <= allowed), (column, error, allowed)
        np.testing.assert_allclose(
            out["df"], np.asarray(fixture["result"]["metafor"]["df"])[at], rtol=RTOL
        )


def test_ptr_curve_bands_under_cr2_are_the_robust_predictions_on_the_grid():
    fixture = case("upload_che_rho06_mods")
    res = che_fit(fixture)
    band = band_of(res)
    fig = ptr_curve_figure(res, ptr_column="PTR", grid_points=40, band=band)
    curve = one(fig, "curve")
    grid = np.asarray(curve.x)
    expected = band.robust.predict({"log_PTR": np.log(grid)}, transform="r")
    np.testing.assert_allclose(
        one(fig, "ci band").y, np.r_[expected["ci_ub"], expected["ci_lb"][::-1]]
    )
    np.testing.assert_allclose(one(fig, "pi lower").y, expected["pi_lb"])
    # Points along the curve have different df: none is a borrowed coefficient df.
    assert expected["df"].nunique() == len(grid)


def test_change_in_r_between_two_ptr_values_is_tested_on_its_own_df():
    fixture = case("upload_che_rho06_ptr_both")  # PTR + log_PTR: the change moves two slopes
    res = che_fit(fixture)
    band = band_of(res)
    changes = fixture["result"]["changes"]
    for i, rater in enumerate(changes["from"]["rater"]):
        from_ptr, to_ptr = changes["from"]["PTR"][i], changes["to"]["PTR"][i]
        out = ptr_slope_readout(
            res, "PTR", from_ptr, to_ptr, profile_values={"rater": rater}, band=band
        )
        assert out.difference_z == pytest.approx(changes["est"][i], rel=RTOL)
        assert out.difference_z_se == pytest.approx(changes["se"][i], rel=RTOL)
        assert out.df == pytest.approx(changes["df"][i], rel=RTOL)
        np.testing.assert_allclose(
            out.difference_z_ci, [changes["ci_lb"][i], changes["ci_ub"][i]], rtol=RTOL
        )
        assert out.pval == pytest.approx(changes["pval"][i], rel=RTOL)
    slopes = band.robust.coefficients["df"][["PTR", "log_PTR"]].to_numpy()
    assert np.min(np.abs(changes["df"][0] / slopes - 1)) > 0.05  # borrowing would be wrong


def test_model_based_readout_is_unchanged_by_the_robust_path():
    res = che_fit(case("upload_che_rho06_ptr_both"))
    out = ptr_slope_readout(res, "PTR", 1, 10)
    x = np.zeros(len(res.beta))
    names = list(res.design.names)
    x[names.index("PTR")], x[names.index("log_PTR")] = 9.0, np.log(10.0)
    se = float(np.sqrt(x @ res.vb @ x))
    assert out.difference_z_se == pytest.approx(se, rel=1e-12)
    assert out.df is None  # z test: no df
