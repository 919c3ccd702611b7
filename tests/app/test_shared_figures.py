"""Figures are built once per server process for an analysis and a view, and shared by every
session that shows them (pages/_render.figure): each session must still see its own model."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from alliance_core.analyses.run import run_analysis
from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.data.datasets import DEFAULT_DATASET, dataset_info, load_dataset
from tests.app.conftest import chart_spec_texts, new_app


def values(array) -> np.ndarray:
    """A plotly JSON array: a list, or a typed array {"dtype", "bdata"}."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array, dtype=float)


def forest_diamond(method: str) -> tuple[str, np.ndarray]:
    """The wide forest plot's spec and the x of its pooled-estimate diamond, as a new session
    with this estimator and no moderators sees them."""
    at = new_app()
    at.query_params.update({"est": method, "mod": "none"})
    at.run()
    at.switch_page("pages/forest.py").run()
    assert not at.exception, [e.message for e in at.exception]
    text = chart_spec_texts(at)[0]
    diamond = next(t for t in json.loads(text)["data"] if t.get("name") == "Pooled estimate")
    return text, values(diamond["x"])


@pytest.fixture(scope="module")
def expected() -> dict[str, float]:
    """The pooled r of each estimator, from the engine."""
    info = dataset_info(DEFAULT_DATASET)
    rows = load_dataset(DEFAULT_DATASET)
    out = {}
    for method in ("REML", "ML"):
        settings = AnalysisSettings(method=method, moderators=())
        res = run_analysis(rows, info.mapping, settings).result
        out[method] = float(np.tanh(res.beta[0]))
    return out


def test_each_session_sees_the_forest_plot_of_its_own_estimator(expected):
    reml_spec, reml_x = forest_diamond("REML")
    ml_spec, ml_x = forest_diamond("ML")
    again_spec, _ = forest_diamond("REML")
    assert expected["REML"] != pytest.approx(expected["ML"], abs=1e-6)
    # The diamond's middle point is the pooled estimate (on the r scale).
    assert np.median(reml_x) == pytest.approx(expected["REML"], abs=1e-9)
    assert np.median(ml_x) == pytest.approx(expected["ML"], abs=1e-9)
    # A second session with the same choice is sent the same figure.
    assert again_spec == reml_spec and ml_spec != reml_spec
