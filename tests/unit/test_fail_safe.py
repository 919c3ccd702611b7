"""Fail-safe N by its definition: adding N null results (and not N - 1) overturns the finding.

metafor parity is in test_selection_metafor.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import alliance_core as ac
from alliance_core.errors import AnalysisError


def data(seed: int, k: int = 25, mu: float = 0.25) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    vi = 1 / (rng.integers(20, 200, k) - 3)
    return pd.DataFrame({"yi": rng.normal(mu, np.sqrt(vi + 0.01)), "vi": vi})


@pytest.mark.parametrize("seed", range(5))
def test_rosenthal_n_null_studies_make_stouffers_z_non_significant(seed):
    d = data(seed)
    n = ac.fsn(d, type="Rosenthal").fsnum
    z_sum = np.sum(d.yi / np.sqrt(d.vi))
    crit = stats.norm.isf(0.05)
    assert z_sum / np.sqrt(len(d) + n) <= crit + 1e-12
    assert n == 0 or z_sum / np.sqrt(len(d) + n - 1) > crit


@pytest.mark.parametrize("seed", range(5))
def test_orwin_n_zero_effects_bring_the_mean_to_the_target(seed):
    d = data(seed)
    result = ac.fsn(d, type="Orwin", target=0.1)
    total = d.yi.sum()
    assert total / (len(d) + result.fsnum) <= 0.1 + 1e-12
    assert result.fsnum == 0 or total / (len(d) + result.fsnum - 1) > 0.1


@pytest.mark.parametrize("seed", range(5))
def test_rosenberg_n_average_weight_zeros_make_the_weighted_mean_non_significant(seed):
    d = data(seed)
    n = ac.fsn(d, type="Rosenberg").fsnum
    w = 1 / d.vi
    z = lambda extra: np.sum(w * d.yi) / np.sqrt(np.sum(w) + extra * w.mean())  # noqa: E731
    crit = stats.norm.isf(0.025)
    assert z(n) <= crit + 1e-12
    assert n == 0 or z(n - 1) > crit


def test_orwin_target_takes_the_side_of_the_mean_and_zero_is_infinite():
    d = data(1, mu=-0.3)
    assert ac.fsn(d, type="Orwin", target=0.1).target == -0.1
    assert np.isinf(ac.fsn(d, type="Orwin", target=0).fsnum)


def test_describe_states_the_caveats():
    text = ac.fsn(data(2), type="Rosenthal").describe()
    assert "neither a test of publication bias nor a correction" in text
    assert "heterogeneity" in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"type": "REM"}, "Unknown"), ({"alpha": 1.5}, "alpha"), ({"yi": "r"}, "not in the data")],
)
def test_bad_requests_are_refused(kwargs, message):
    with pytest.raises(AnalysisError, match=message):
        ac.fsn(data(3), **kwargs)


def test_non_positive_variances_are_refused_where_used():
    d = data(4)
    d.loc[0, "vi"] = 0
    with pytest.raises(AnalysisError, match="positive"):
        ac.fsn(d, type="Rosenberg")
    assert ac.fsn(d, type="Orwin").fsnum >= 0  # Orwin's unweighted N needs no variances
