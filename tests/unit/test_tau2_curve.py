"""The tau2-against-PTR figure draws exp(a0 + a1 x) of the location-scale fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import alliance_core as ac
from alliance_core.errors import AnalysisError
from alliance_core.figures import tau2_curve_figure


def _data(seed: int = 8, k: int = 90) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    log_ptr = rng.uniform(0, 4, k)
    vi = 1 / rng.integers(30, 300, k)
    tau2 = np.exp(-4.5 + 0.6 * log_ptr)
    return pd.DataFrame(
        {
            "yi": 0.3 + rng.normal(0, np.sqrt(tau2)) + rng.normal(0, np.sqrt(vi)),
            "vi": vi,
            "log_ptr": log_ptr,
            "design": rng.choice(["RCT", "other"], k),
        }
    )


def _trace(fig, role):
    return next(t for t in fig.data if (t.meta or {}).get("role") == role)


def test_curve_is_the_exponential_of_the_scale_line():
    ls = ac.fit(_data(), moderators=["log_ptr"], scale=["log_ptr"])
    fig = tau2_curve_figure(ls, "log_ptr")
    curve = _trace(fig, "curve")
    a0, a1 = ls.alpha
    np.testing.assert_allclose(curve.y, np.exp(a0 + a1 * np.asarray(curve.x)), rtol=1e-12)
    assert len(_trace(fig, "studies").x) == ls.k


def test_other_scale_moderators_held_typical_and_refusals():
    ls = ac.fit(_data(), moderators=["log_ptr"], scale=["log_ptr", "design"])
    curve = _trace(tau2_curve_figure(ls, "log_ptr"), "curve")
    a0, a1, _ = ls.alpha  # design at its reference level (other): its dummy is 0
    np.testing.assert_allclose(curve.y, np.exp(a0 + a1 * np.asarray(curve.x)), rtol=1e-12)
    with pytest.raises(AnalysisError, match="categorical"):
        tau2_curve_figure(ls, "design")
    with pytest.raises(AnalysisError, match="not a moderator of the heterogeneity"):
        tau2_curve_figure(ls, "year")
