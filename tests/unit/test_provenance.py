"""Every download says what it is: provenance lines in CSVs, JSON, and figure metadata."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime

import pandas as pd
import plotly.graph_objects as go
import pytest

from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.data import datasets
from alliance_core.handover import provenance
from alliance_core.handover.provenance import Provenance, neutralise_cells, settings_json
from alliance_core.handover.results_table import results_csv, results_frame
from tests.unit.reproduce_states import STATES, UPLOAD_NAME, analysis_of, upload_bytes

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def upload_analysis():
    return analysis_of(next(s for s in STATES if s.name == "upload-awkward-names"))


@pytest.fixture(scope="module")
def default_analysis():
    return analysis_of(STATES[0])


def test_provenance_names_data_hash_and_every_setting(upload_analysis):
    run, mapping, _, _ = upload_analysis
    prov = Provenance.of(
        run, mapping, dataset=UPLOAD_NAME, content=upload_bytes(), uploaded=True, now=NOW
    )
    items = dict(prov.items())
    assert items["dataset"] == UPLOAD_NAME
    assert items["sha256"] == hashlib.sha256(upload_bytes()).hexdigest()
    assert items["source"] == "uploaded file"
    assert items["estimator"] == "REML"
    assert items["model"].startswith("Three-level (effect sizes nested in studies)")
    assert "rma.mv" in items["model"]
    if run.result.rho is not None:  # the CHE working model names its sampling correlation
        assert f"ρ = {run.result.rho:g}" in items["model"] and "vcalc" in items["model"]
    assert items["inference"] == "model-based"
    assert 'Rater; "type" (reference level: thérapeute)' in items["moderators"]
    assert "log PTR" in items["moderators"]
    assert items["filter"] == "=Design in {RCT, quasi#1}"
    assert items["PTR scale"] == "log"
    assert items["created"] == "2026-11-29 12:00:00 UTC"
    assert items["engine"].startswith("alliance_core ")
    assert items["rows analysed"] == str(run.result.k)


def test_bundled_hash_is_the_shipped_file():
    info = datasets.dataset_info("crede2010")
    expected = hashlib.sha256((datasets.DATA_DIR / info.filename).read_bytes()).hexdigest()
    assert provenance.bundled_sha256("crede2010") == expected


def test_results_csv_reads_back_with_comment_lines(upload_analysis):
    run, _, prov, on_r = upload_analysis
    content = results_csv(run.result, on_r, prov).decode("utf-8")
    assert content.startswith("# dataset: '=awkward sheet, v2.csv")
    table = pd.read_csv(io.StringIO(content), comment="#")
    expected = results_frame(run.result, on_r)
    assert list(table.columns) == list(expected.columns)
    assert list(table["name"]) == list(expected["name"])
    pd.testing.assert_series_equal(table["estimate"], expected["estimate"], check_names=False)


def test_analysed_rows_csv_keeps_values_with_hash_signs(upload_analysis):
    """'#' inside a value is quoted, so comment='#' does not cut the row."""
    from pages._ui import tables

    run, _, prov, _ = upload_analysis
    content = tables.data_csv(run, prov).decode("utf-8")
    rows = pd.read_csv(io.StringIO(content), comment="#")
    assert len(rows) == run.result.k
    # The column named "=Design" comes back neutralised against formula injection.
    assert "quasi#1" in set(rows["'=Design"])
    assert 'Rater; "type"' in rows.columns


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# dataset: a,=HYPERLINK(1)", "# dataset: a,'=HYPERLINK(1)"),
        ('# x: a; "+1"', '# x: a; "\'+1"'),
        ("# x: a\t@SUM(1)", "# x: a\t'@SUM(1)"),
        ("# x: well-being, -1", "# x: well-being, '-1"),
        ("# x: plain, text", "# x: plain, text"),
    ],
)
def test_no_cell_of_a_comment_line_starts_a_formula(text, expected):
    assert neutralise_cells(text) == expected


def test_file_name_with_formula_and_newline_is_one_safe_line(default_analysis):
    run, mapping, _, _ = default_analysis
    prov = Provenance.of(run, mapping, dataset="=cmd|' /C calc'!A0\n# injected: yes", now=NOW)
    lines = prov.csv_comment_lines().splitlines()
    assert lines[0] == "# dataset: '=cmd|' /C calc'!A0 # injected: yes"
    assert all(line.startswith("# ") for line in lines)
    assert not any(line.startswith("# injected") for line in lines)


def test_settings_json_carries_provenance_and_loads_again(default_analysis):
    run, _, prov, _ = default_analysis
    text = settings_json(run.settings, prov)
    assert json.loads(text)["provenance"]["sha256"] == prov.sha256
    assert AnalysisSettings.from_json(text) == run.settings


def test_figure_gets_metadata_and_caption(default_analysis):
    _, _, prov, _ = default_analysis
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]), layout={"meta": {"kind": "test"}})
    out = prov.on_figure(fig)
    assert out.layout.meta["provenance"]["sha256"] == prov.sha256
    assert out.layout.meta["kind"] == "test"
    captions = [a for a in out.layout.annotations if a.name == "provenance"]
    assert len(captions) == 1 and "SIMULATED" in captions[0].text
    assert fig.layout.annotations == ()  # the page's figure itself is unchanged
    html = out.to_html(include_plotlyjs=False)
    assert prov.sha256 in html


def test_caption_escapes_markup_in_file_names(default_analysis):
    run, mapping, _, _ = default_analysis
    prov = Provenance.of(run, mapping, dataset="<b>x</b>.csv", now=NOW)
    fig = prov.on_figure(go.Figure())
    text = fig.layout.annotations[0].text
    assert "<b>" not in text and "&lt;b&gt;" in text
