"""CSV downloads: text a spreadsheet would run as a formula is neutralised, numbers are not."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from alliance_core.handover.csv_export import csv_bytes, neutralise_formula, neutralised

PAYLOADS = [
    '=HYPERLINK("http://evil.example/x","click")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "-2+3",
    "\t=1+1",
    "\r=1+1",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_text_that_starts_like_a_formula_gets_a_quote(payload):
    assert neutralise_formula(payload) == "'" + payload


@pytest.mark.parametrize("value", ["Ames (2001)", "RCT", "", "'=already quoted", "a=b"])
def test_ordinary_text_is_unchanged(value):
    assert neutralise_formula(value) == value


@pytest.mark.parametrize("value", [-0.25, -3, 0.0, np.float64(-1.5), None, np.nan])
def test_numbers_and_missing_values_are_unchanged(value):
    assert neutralise_formula(value) is value


def test_a_frame_keeps_its_numbers_and_quotes_its_text_cells_and_names():
    frame = pd.DataFrame(
        {
            "label": ["=1+1", "Ames", "-2+3"],
            "yi": [-0.25, 0.1, -1.0],
            "=evil": ["a", "b", "c"],
            "level": pd.Series(["@x", "y", "@x"], dtype="category"),
            "text": pd.Series(["+1", None, "z"], dtype="string"),
        }
    )
    out = neutralised(frame)
    assert out["label"].tolist() == ["'=1+1", "Ames", "'-2+3"]
    assert out["yi"].tolist() == [-0.25, 0.1, -1.0]
    assert out["yi"].dtype == float
    assert list(out.columns) == ["label", "yi", "'=evil", "level", "text"]
    assert out["level"].tolist() == ["'@x", "y", "'@x"]
    assert out["text"].tolist()[0] == "'+1" and pd.isna(out["text"].tolist()[1])
    # The original is untouched: only the export changes.
    assert frame["label"].iloc[0] == "=1+1"


def test_the_csv_reads_back_with_numbers_as_numbers_and_no_cell_starting_a_formula():
    frame = pd.DataFrame({"label": PAYLOADS, "yi": np.linspace(-0.5, 0.5, len(PAYLOADS))})
    back = pd.read_csv(io.BytesIO(csv_bytes(frame)), keep_default_na=False)
    assert back["yi"].tolist() == pytest.approx(frame["yi"].tolist())
    assert all(str(cell).startswith("'") for cell in back["label"])


def test_an_index_of_text_is_neutralised_when_written():
    frame = pd.DataFrame({"estimate": [0.1, -0.2]}, index=pd.Index(["=x", "y"], name="term"))
    text = csv_bytes(frame, index=True).decode()
    assert text.splitlines()[1:] == ["'=x,0.1", "y,-0.2"]
