"""The orchard plot shows the marginal-means table's numbers and every effect size once."""

from __future__ import annotations

import numpy as np
import pandas as pd

import alliance_core as ac


def _data(seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    k = 60
    return pd.DataFrame(
        {
            "yi": rng.normal(0.3, 0.15, k),
            "vi": rng.uniform(0.005, 0.05, k),
            "x": rng.normal(size=k),
            # a hostile level label: user text, shown escaped
            "rater": rng.choice(["observer", "patient", "<b>odd</b> & co"], k),
        }
    )


def _traces(fig, role):
    return [t for t in fig.data if (t.meta or {}).get("role") == role]


def test_orchard_matches_the_marginal_means():
    data = _data()
    res = ac.fit(data, moderators=["rater", "x"])
    means = res.marginal_means("rater")
    fig = ac.orchard_figure(res, means)
    table = means.table
    for trace in _traces(fig, "marginal mean"):
        level = trace.meta["level"]
        assert trace.x[0] == np.tanh(table.loc[level, "estimate"])
    for trace in _traces(fig, "confidence interval"):
        level = trace.meta["level"]
        np.testing.assert_allclose(trace.x, np.tanh(table.loc[level, ["ci_lb", "ci_ub"]]))
    points = _traces(fig, "effect sizes")
    assert sum(len(t.x) for t in points) == res.k
    for trace in points:
        assert len(trace.x) == table.loc[trace.meta["level"], "k"]


def test_orchard_escapes_levels_and_is_reproducible():
    data = _data()
    res = ac.fit(data, moderators=["rater"])
    means = res.marginal_means("rater")
    fig = ac.orchard_figure(res, means)
    text = " ".join(fig.layout.yaxis.ticktext)
    assert "<b>" not in text and "&lt;b&gt;odd&lt;/b&gt; &amp; co" in text
    again = ac.orchard_figure(res, means)
    np.testing.assert_array_equal(
        _traces(fig, "effect sizes")[0].y, _traces(again, "effect sizes")[0].y
    )
    z_scale = ac.orchard_figure(res, means, transform=None)
    level = _traces(z_scale, "marginal mean")[0].meta["level"]
    assert _traces(z_scale, "marginal mean")[0].x[0] == means.table.loc[level, "estimate"]
