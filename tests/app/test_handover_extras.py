"""What the other pages showed travels with the downloads: the Publication bias page's cuts
(the results file's selection model is the page's), and the Moderators page's comparison table
once the reader opened it. Expected numbers come from the engine (ac.selmodel,
ac.model_comparison), each proven against metafor / metaselection elsewhere."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

import alliance_core as ac
from alliance_core.analyses.bias_tests import selection_cluster
from alliance_core.analyses.selection import THREE_PSM, TWO_CUTS
from alliance_core.data.datasets import DEFAULT_DATASET
from alliance_core.handover.bias_results import BIAS_SECTIONS
from pages._ui.handover_extras import COMPARE_KEY, CUT_CHOICES, CUTS_KEY
from tests.app.conftest import new_app


def _results(at, downloads) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(downloads.bytes(at, "results")), comment="#")


def _default_state():
    info = ac.datasets.dataset_info(DEFAULT_DATASET)
    rows = ac.load_dataset(DEFAULT_DATASET)
    settings = ac.AnalysisSettings(dataset=DEFAULT_DATASET)
    return ac.analysis_state(rows, info.mapping, settings)


def _delta_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The estimated weights (the first interval's, fixed at 1, is no row)."""
    bias = frame[frame["section"].isin(BIAS_SECTIONS)]
    return bias[bias["name"].str.startswith("delta ")]


def _estimated(delta: pd.DataFrame) -> np.ndarray:
    return delta["estimate"].iloc[1:].to_numpy()


def test_the_results_file_holds_the_selection_model_with_the_bias_pages_cuts(downloads):
    state = _default_state()
    pooled = state.pooled.result
    at = new_app().run()
    three = _delta_rows(_results(at, downloads))
    expected = ac.selmodel(pooled, steps=THREE_PSM, cluster=selection_cluster(state))
    assert len(three) == len(expected.delta) - 1
    np.testing.assert_allclose(three["estimate"].to_numpy(), _estimated(expected.delta), rtol=1e-8)

    at.switch_page("pages/funnel.py").run()
    at.radio(key=CUTS_KEY).set_value(CUT_CHOICES[1]).run()
    at.switch_page("pages/overview.py").run()
    two = _delta_rows(_results(at, downloads))
    expected = ac.selmodel(pooled, steps=TWO_CUTS, cluster=selection_cluster(state))
    assert len(two) == len(expected.delta) - 1 == len(three) + 1
    np.testing.assert_allclose(two["estimate"].to_numpy(), _estimated(expected.delta), rtol=1e-8)


def test_the_comparison_table_travels_once_opened(downloads):
    at = new_app().run()
    at.switch_page("pages/moderators.py").run()
    assert "model comparison" not in set(_results(at, downloads)["section"])
    at.toggle(key=COMPARE_KEY).set_value(True).run()
    frame = _results(at, downloads)
    rows = frame[frame["section"] == "model comparison"]
    expected = ac.model_comparison(_default_state().model.result)
    assert not rows.empty
    aic = rows[rows["name"].str.endswith(": AIC")]
    assert len(aic) == len(expected.table)
    np.testing.assert_allclose(
        np.sort(aic["estimate"].to_numpy()), np.sort(expected.table["aic"].to_numpy()), rtol=1e-8
    )
