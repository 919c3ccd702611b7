"""The Sensitivity page: leave-one-out, influence, cumulative and the specification curve."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from alliance_core.analysis import effect_size_table, run_analysis
from alliance_core.datasets import DEFAULT_DATASET, dataset_info, load_dataset
from alliance_core.formatting import escape_markdown
from alliance_core.sensitivity import leave_one_out
from alliance_core.settings import AnalysisSettings
from alliance_core.specification import specification_curve

APP = Path(__file__).resolve().parents[2] / "app.py"


@pytest.fixture(scope="module")
def sensitivity() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=300)
    at.run()
    at.switch_page("pages/sensitivity.py").run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def test_leave_one_out_reading_is_the_engines(sensitivity):
    info = dataset_info(DEFAULT_DATASET)
    res = run_analysis(load_dataset(DEFAULT_DATASET), info.mapping, AnalysisSettings()).result
    expected = leave_one_out(res).describe()
    assert any(md.value == escape_markdown(expected) for md in sensitivity.markdown)


def test_specification_curve_share_matches_a_direct_computation(sensitivity):
    at = sensitivity
    controls = at.multiselect(key="spec:controls").value
    at.toggle(key="spec:run").set_value(True).run()
    assert not at.exception, [e.message for e in at.exception]
    info = dataset_info(DEFAULT_DATASET)
    table = effect_size_table(load_dataset(DEFAULT_DATASET), info.mapping)
    # Nested rows: the page fits the three-level model only (the two-level fit would treat
    # the effect sizes of a study as independent).
    curve = specification_curve(
        table,
        {"yi": "yi", "vi": "vi", "study": info.mapping.study},
        "log_PTR",
        controls,
        models=("three-level",),
        # The curve follows the sidebar's sampling correlation (the CHE default).
        rhos=(AnalysisSettings().che_rho,),
    )
    shown = next(m.value for m in at.metric if m.label.startswith("Specifications with"))
    assert shown == f"{curve.share_significant:.0%}"
    assert any(md.value == escape_markdown(curve.describe()) for md in at.markdown)
    assert any("Left out: the two-level model" in c.value for c in at.caption)
