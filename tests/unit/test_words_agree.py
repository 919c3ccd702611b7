"""Words that agree: one statement of what a negative PTR slope shows, and PTR's direction.

PTR is patients per therapist; the phrase "therapists per patient" inverts it and must not
appear in anything the dashboard shows (engine, pages, docs).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from alliance_core.analyses.run import run_analysis
from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.data.datasets import DEFAULT_DATASET, dataset_info, load_dataset
from alliance_core.wording import reading
from alliance_core.wording.ptr_slope import PTR_SLOPE_MEANING

ROOT = Path(__file__).resolve().parents[2]
SHOWN_TEXT = [
    *ROOT.joinpath("alliance_core").rglob("*.py"),
    *ROOT.joinpath("alliance_core").rglob("*.toml"),
    *ROOT.joinpath("pages").rglob("*.py"),
    *ROOT.joinpath("docs").glob("*.md"),
    ROOT / "README.md",
]
# Claims the one statement replaced: each said more (or less) than the data can show.
RETIRED_CLAIMS = (
    "A negative slope is what a therapist contribution to the alliance predicts.",
    "The true model has a therapist effect, so",
    "therapists have no special effect",
)


@pytest.mark.parametrize("path", SHOWN_TEXT, ids=lambda p: str(p.relative_to(ROOT)))
def test_ptr_direction_words(path):
    text = " ".join(path.read_text(encoding="utf-8").split())
    assert not re.search(r"therapists per patient", text, re.IGNORECASE)
    for claim in RETIRED_CLAIMS:
        assert claim not in text


def test_a_negative_ptr_slope_is_read_with_the_one_statement():
    info = dataset_info(DEFAULT_DATASET)
    run = run_analysis(
        load_dataset(DEFAULT_DATASET), info.mapping, AnalysisSettings(dataset=DEFAULT_DATASET)
    )
    row = run.result.coefficients.loc[run.ptr_column]
    assert row["estimate"] < 0 and row["pval"] < 0.05  # the bundled data's PTR slope
    text = reading.ptr_effect(run.result, run.ptr_column)
    assert text.endswith(PTR_SLOPE_MEANING)
    assert text.count("therapist contribution") == 1
