"""The selection model and the fail-safe N travel: results file, report and both scripts.

One story: every number the results file and the report give is the number of the engine
object (``publication_bias``: ``selmodel`` as the Publication bias page calls it, ``fsn``),
and the report's reading of the selection model is the page's verdict. The scripts are proven
by running them: one Rscript call runs every R script (metafor's ``selmodel``/``fsn`` and
metaselection's composite-likelihood model; one with metaselection hidden, which must say
that it skipped it and leave its numbers out of the count; one with a changed dashboard
number, which must fail), one Python process every Python script.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from alliance_core.analyses.bias_verdict import bias_verdict
from alliance_core.analyses.selection import THREE_PSM, TWO_CUTS, selmodel
from alliance_core.analyses.state import ModelFlags
from alliance_core.data.effect_sizes import transf
from alliance_core.formatting import format_number, format_p
from alliance_core.handover import reproduce
from alliance_core.handover.bias_results import (
    FAIL_SAFE_SECTION,
    ROBUST_SELECTION_SECTION,
    SELECTION_SECTION,
    publication_bias,
)
from alliance_core.handover.report import build_report
from alliance_core.handover.report_bias import bias_paragraph, selection_sentence
from alliance_core.handover.report_tables import r_text
from alliance_core.handover.reproduce import parse_agreement
from alliance_core.handover.results_table import results_frame
from tests.r_reference import apply, needs_r
from tests.unit.reproduce_runs import assert_all_agree, run_batch, state_lines, write_bundles
from tests.unit.reproduce_states import State, prepare

# Pooled states (no moderators): two-level (metafor selmodel) with each cut choice, an
# effect-size dataset that is not the alliance one, and three-level models (clustered:
# metaselection), one the CHE working model with CR2.
CASES = {
    "twolevel-3psm": (
        State("twolevel-3psm", "alliance_simulated", {"model": "two-level", "moderators": ()}),
        THREE_PSM,
    ),
    "twolevel-twocuts-knha": (
        State(
            "twolevel-twocuts-knha",
            "alliance_simulated",
            {"model": "two-level", "moderators": (), "test": "t"},
        ),
        TWO_CUTS,
    ),
    "molloy-3psm": (State("molloy-3psm", "molloy2014", {"moderators": ()}), THREE_PSM),
    "che-cr2-clustered": (
        State("che-cr2-clustered", "konstantopoulos2011", {"moderators": ()}, 0.6, robust=True),
        THREE_PSM,
    ),
    "small-three-level": (
        State("small-three-level", "konstantopoulos2011", {"moderators": ()}),
        THREE_PSM,
    ),
}


@pytest.fixture(scope="module")
def prepared():
    out = {}
    for name, (state, steps) in CASES.items():
        p = prepare(state)
        out[name] = (p, publication_bias(p.run, steps))
    return out


def _section(frame: pd.DataFrame, section: str) -> pd.DataFrame:
    return frame[frame["section"] == section].set_index("name")


def test_the_results_rows_are_the_engine_objects_numbers(prepared):
    for name, (p, bias) in prepared.items():
        res = p.run.result
        # the object is what the Publication bias page fits: selmodel(pooled, steps, cluster)
        page = selmodel(res, steps=bias.steps, cluster=res.cluster)
        assert bias.selection is not None, (name, bias.selection_problem)
        np.testing.assert_array_equal(page.beta, bias.selection.beta)
        frame = results_frame(res, p.on_r_scale, p.robust, bias=bias)
        section = ROBUST_SELECTION_SECTION if res.is_three_level else SELECTION_SECTION
        assert bias.clustered == res.is_three_level
        rows = _section(frame, section)
        sel = bias.selection
        coef = sel.coefficients.loc["intrcpt"]
        row = rows.loc["adjusted intrcpt"]
        for column, engine in (("estimate", "estimate"), ("se", "se"), ("statistic", "zval")):
            assert row[column] == coef[engine], (name, column)
        assert (row["ci_lb"], row["ci_ub"]) == (coef["ci_lb"], coef["ci_ub"])
        if p.on_r_scale:
            r_row = rows.loc["adjusted r"]
            assert r_row["estimate"] == transf(np.asarray([coef["estimate"]]), "r")[0]
        else:
            assert "adjusted r" not in rows.index
        assert (rows.loc["tau2", "estimate"], rows.loc["tau2", "se"]) == (sel.tau2, sel.se_tau2)
        deltas = rows[rows.index.str.startswith("delta ")]
        assert len(deltas) == len(bias.steps) == len(sel.delta) - 1
        np.testing.assert_array_equal(deltas["estimate"], sel.delta["estimate"].iloc[1:])
        np.testing.assert_array_equal(deltas["ci_ub"], sel.delta["ci_ub"].iloc[1:])
        if res.is_three_level:
            assert "LRT" not in rows.index  # no likelihood to compare for the composite one
        else:
            assert rows.loc["LRT", "statistic"] == sel.LRT
            assert rows.loc["LRT", "pval"] == sel.LRT_pval
        fail_safe = _section(frame, FAIL_SAFE_SECTION)
        assert list(fail_safe.index) == ["Rosenthal", "Orwin", "Rosenberg"]
        for item in bias.fail_safe:
            assert fail_safe.loc[item.type, "estimate"] == item.fsnum
        assert pd.isna(fail_safe.loc["Orwin", "pval"])
        # without bias results the results file is what it was
        plain = results_frame(res, p.on_r_scale, p.robust)
        assert len(frame) == len(plain) + len(rows) + 3


def test_the_report_gives_the_objects_numbers_and_the_pages_verdict(prepared):
    p, bias = prepared["molloy-3psm"]
    report = build_report(
        p.run, p.run, p.provenance, on_r_scale=p.on_r_scale, figures={}, bias=bias
    )
    text = " ".join(report.results)
    sel = bias.selection
    coef = sel.coefficients.iloc[0]
    for value in (coef["estimate"], coef["ci_lb"], coef["ci_ub"]):
        assert r_text(np.tanh(value)) in text
    assert f"δ = {format_number(sel.delta['estimate'].iloc[1], 2)}" in text
    assert f"χ²(1) = {format_number(sel.LRT, 2)}, {format_p(sel.LRT_pval)}" in text
    assert f"Rosenthal's N = {int(bias.fail_safe[0].fsnum):,}" in text
    verdict = bias_verdict(bias.tests, bias.pooled, sel, transform="r")
    assert "Taken together: " + verdict in text
    methods = " ".join(report.methods)
    assert "Vevea & Hedges, 1995" in methods and "Rosenberg (2005)" in methods
    assert any(ref.startswith("Orwin, R. G. (1983)") for ref in report.references)
    # the clustered model cites its method
    p3, bias3 = prepared["che-cr2-clustered"]
    report3 = build_report(
        p3.run, p3.run, p3.provenance, on_r_scale=True, figures={}, robust=p3.robust, bias=bias3
    )
    assert "Pustejovsky, Citkowicz & Joshi, 2025" in " ".join(report3.methods)
    assert "no likelihood-ratio test" in " ".join(report3.results)


def test_the_selection_reading_follows_the_page_and_the_flags(prepared):
    _, bias = prepared["molloy-3psm"]
    # The page reads p = .084 as no clear selection at alpha = .05.
    assert bias.selection.LRT_pval > 0.05
    assert "The model finds no clear selection." in selection_sentence(bias, True)
    few = ModelFlags(n_studies=6, robust=False, has_moderators=False)
    flagged = bias_paragraph(bias, True, few)
    assert "finds selection" not in flagged and "finds no clear selection" not in flagged
    assert "significant" not in selection_sentence(bias, True, few)
    assert "neither shows nor rules out selection" in flagged


def test_a_selection_model_that_cannot_be_fitted_is_said_and_leaves_no_rows(prepared):
    p, _ = prepared["molloy-3psm"]
    # A cut above every one-sided p-value leaves the last interval empty: the engine
    # refuses, the handover says why.
    inputs = p.run.result.inputs
    largest = float(np.max(stats.norm.sf(inputs.y / np.sqrt(inputs.v))))
    bias = publication_bias(p.run, (0.025, (largest + 1) / 2))
    assert bias.selection is None and "No effect size" in bias.selection_problem
    frame = results_frame(p.run.result, True, bias=bias)
    assert not frame["section"].str.startswith("selection model").any()
    assert "could not be fitted" in selection_sentence(bias, True)


def test_bias_results_go_with_the_pooled_model_only(prepared):
    p, bias = prepared["twolevel-3psm"]
    moderated = prepare(
        State("m", "alliance_simulated", {"model": "two-level", "moderators": ("design",)})
    )
    files = reproduce.models_files(
        [("pooled", p.run, p.provenance), ("moderators", moderated.run, moderated.provenance)],
        p.mapping,
        on_r_scale=True,
        language="R",
        table=p.table,
        bias=bias,
    )
    assert "selmodel(" in files["pooled/analysis.R"]
    assert "selmodel(" not in files["moderators/analysis.R"]
    assert b"selection model" in files["pooled/dashboard_results.csv"]
    assert b"selection model" not in files["moderators/dashboard_results.csv"]


def _write(root: Path, prepared, language: str) -> list[str]:
    bundles = ((name, p, {"bias": bias}) for name, (p, bias) in prepared.items())
    return write_bundles(root, language, bundles)


@apply(needs_r("metafor", "metaselection"))
def test_the_r_scripts_reproduce_the_selection_model_and_fail_safe_n(tmp_path, prepared):
    names = _write(tmp_path, prepared, "R")
    # A clustered script once more, with metaselection out of reach: it must skip.
    hidden = tmp_path / "no-metaselection"
    hidden.mkdir()
    for path in (tmp_path / "small-three-level").iterdir():
        text = path.read_text(encoding="utf-8")
        if path.name == "analysis.R":
            text = text.replace('requireNamespace("metaselection"', 'requireNamespace("absentpkg"')
        (hidden / path.name).write_text(text, encoding="utf-8")
    # The two-level script once more with one selection number changed: it must fail.
    changed = tmp_path / "changed-number"
    changed.mkdir()
    for path in (tmp_path / "twolevel-3psm").iterdir():
        (changed / path.name).write_bytes(path.read_bytes())
    results = changed / "dashboard_results.csv"
    lines = results.read_text(encoding="utf-8").splitlines(keepends=True)
    comments = "".join(line for line in lines if line.startswith("#"))
    table = pd.read_csv(results, comment="#")
    at = table.index[(table["section"] == SELECTION_SECTION) & (table["name"] == "tau2")][0]
    table.loc[at, "estimate"] *= 1.001
    results.write_text(comments + table.to_csv(index=False), encoding="utf-8")
    stdout = run_batch(tmp_path, "R", [*names, changed.name], timeout=900)
    outcomes = state_lines(stdout)
    counts = {}
    for name in names:
        line = outcomes[name]
        counts[name] = parse_agreement(line)
        agree, given = counts[name]
        assert agree == given > 0 and "status=0" in line, line
        assert "(selection model: 0.0001)" in line
    # every selection and fail-safe number was compared: the dashboard's non-empty cells
    for name in names:
        frame = pd.read_csv(tmp_path / name / "dashboard_results.csv", comment="#")
        numbers = frame[list(reproduce.common.COMPARED_COLUMNS)].notna().to_numpy().sum()
        assert counts[name][1] == numbers, name
    # metaselection hidden: said, and its numbers left out of the count (never agreeing)
    skipped = subprocess.run(
        ["Rscript", "analysis.R"], cwd=hidden, capture_output=True, text=True, timeout=300
    )
    assert "SKIPPED: the cluster-robust selection model needs the R package metaselection" in (
        skipped.stdout
    )
    assert "not compared:" in skipped.stdout
    frame = pd.read_csv(hidden / "dashboard_results.csv", comment="#")
    selection = frame["section"] == ROBUST_SELECTION_SECTION
    left_out = (
        frame.loc[selection, list(reproduce.common.COMPARED_COLUMNS)].notna().to_numpy().sum()
    )
    agree, given = parse_agreement(skipped.stdout)
    assert skipped.returncode == 0
    assert left_out > 0 and given == counts["small-three-level"][1] - left_out == agree
    # a changed selection number fails the script
    agree, given = parse_agreement(outcomes[changed.name])
    assert agree == given - 1 and "status=1" in outcomes[changed.name]
    assert "differs: selection model tau2 estimate" in outcomes[changed.name]


def test_the_python_scripts_reproduce_the_selection_model_and_fail_safe_n(tmp_path, prepared):
    names = _write(tmp_path, prepared, "Python")
    assert_all_agree(run_batch(tmp_path, "Python", names, timeout=900), names)
    for name in names:
        frame = pd.read_csv(tmp_path / name / "dashboard_results.csv", comment="#")
        assert frame["section"].str.startswith("selection model").sum() >= 3
