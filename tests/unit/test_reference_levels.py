"""Reference levels that can carry a comparison: the default is the level with the most
studies; a level of one study is flagged; a chosen reference of one study is refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import alliance_core as ac
from alliance_core.analyses.references import (
    reference_order,
    reference_refusal,
    resolve_references,
    single_study_notes,
)
from alliance_core.analyses.run import run_analysis
from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.data.mapping import ColumnMapping
from alliance_core.errors import AnalysisError


def sheet() -> pd.DataFrame:
    """The issue's trap: 'n.r.' sorts first but comes from one study; 'no' has the most."""
    rng = np.random.default_rng(20)
    pd_levels = ["n.r."] + ["no"] * 7 + ["yes"] * 4
    studies = ["S1", "S2", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S8", "S9", "S10"]
    n = rng.integers(40, 200, size=len(studies))
    r = np.round(rng.uniform(0.05, 0.45, size=len(studies)), 3)
    return pd.DataFrame({"study": studies, "r": r, "n": n, "pd": pd_levels})


def test_the_default_reference_is_the_level_with_the_most_studies():
    rows = sheet()
    # By hand: 'n.r.' 1 study (S1), 'no' 6 studies (S2..S7), 'yes' 3 studies (S8, S9, S10).
    assert reference_order(rows, "pd", "study") == ("no", "n.r.", "yes")
    assert resolve_references(rows, ["pd"], {}, "study") == {"pd": "no"}


def test_ties_go_to_the_alphabetically_first_level_and_without_studies_rows_count():
    rows = pd.DataFrame({"design": ["b", "a", "b", "a", "c"]})
    assert reference_order(rows, "design", None) == ("a", "b", "c")


def test_a_reference_of_one_study_is_refused_with_the_next_best():
    rows = sheet()
    reason = reference_refusal(rows, "pd", "study", "n.r.")
    assert reason is not None
    assert "'n.r.' cannot be the reference level of 'pd': it comes from 1 study" in reason
    assert "The next best is 'no' (6 studies)." in reason
    assert reference_refusal(rows, "pd", "study", "yes") is None
    with pytest.raises(AnalysisError, match="cannot be the reference level"):
        resolve_references(rows, ["pd"], {"pd": "n.r."}, "study")


def test_a_level_of_one_study_is_flagged():
    assert single_study_notes(sheet(), ["pd"], "study") == [
        "Level 'n.r.' of 'pd' comes from a single study: its coefficient compares one study "
        "with the reference level, not a kind of study."
    ]


def test_the_analysis_uses_the_default_reference_and_matches_the_engine_with_it_named():
    rows = sheet()
    mapping = ColumnMapping(study="study", r="r", n="n", moderators=("pd",))
    settings = AnalysisSettings(dataset="upload", model="two-level", moderators=("pd",))
    run = run_analysis(rows, mapping, settings)
    assert run.result.design.term("pd").reference == "no"
    assert any("comes from a single study" in note for note in run.notes)
    # The same model with the reference named explicitly (the engine's own check).
    direct = ac.fit(run.data, moderators=["pd"], reference={"pd": "no"})
    np.testing.assert_allclose(run.result.beta, direct.beta, rtol=0, atol=1e-12)
    assert list(run.result.coefficients.index) == ["intrcpt", "pdn.r.", "pdyes"]
