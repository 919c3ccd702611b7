"""The Moderators page's heterogeneity model (location-scale, scale = ~ PTR) travels.

One story: the results rows are the numbers of the page's refit
(``refit_with(res, terms, res.method, scale=[ptr])``); the R script fits metafor's
``rma(yi, vi, mods, scale = ~ log_PTR)`` and its test against one tau2 (``anova``), the Python
script the same refit through alliance_core, and both agree with the results file.
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile

import pytest

from alliance_core.analyses.model_comparison import refit_with
from alliance_core.handover import reproduce
from alliance_core.handover.reproduce import parse_agreement
from alliance_core.handover.results_scale import SCALE_SECTION
from alliance_core.handover.results_table import results_frame
from tests.r_reference import apply, needs_r
from tests.unit.reproduce_states import STATES, prepare
from tests.unit.test_reproduce import PY_BATCH, R_BATCH

NAMES = ("simulated-2L-aggregated-rho06", "simulated-2L-REML", "simulated-2L-ML")


@pytest.fixture(scope="module")
def cases():
    out = {}
    for state in STATES:
        if state.name in NAMES:
            p = prepare(state)
            res = p.run.result
            out[state.name] = (
                p,
                refit_with(res, list(res.design.term_labels), res.method, scale=[p.run.ptr_column]),
            )
    return out


def test_scale_rows_are_the_refits_numbers(cases):
    for name, (p, ls) in cases.items():
        frame = results_frame(p.run.result, True, p.robust, heterogeneity=ls)
        rows = frame[frame["section"] == SCALE_SECTION].set_index("name")
        for term, row in ls.scale_coefficients.iterrows():
            got = rows.loc[f"scale {term}"]
            for column in ("estimate", "se", "statistic", "pval", "ci_lb", "ci_ub"):
                assert got[column] == row[column], (name, term, column)
        test = rows.loc["LRT (one tau2 for all)"]
        assert (test["statistic"], test["df"], test["pval"]) == (ls.LRT, ls.LRT_df, ls.LRT_pval)
        assert rows.loc["logLik", "estimate"] == ls.loglik


def _run(tmp_path, cases, language):
    for name, (p, ls) in cases.items():
        make = reproduce.r_bundle if language == "R" else reproduce.python_bundle
        content = make(p.run, p.mapping, p.provenance, heterogeneity=ls, **p.bundle_options())
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            archive.extractall(tmp_path / name)
    if language == "R":
        (tmp_path / "batch.R").write_text(R_BATCH)
        command = ["Rscript", "batch.R", *cases]
    else:
        (tmp_path / "batch.py").write_text(PY_BATCH)
        command = [sys.executable, "batch.py", *cases]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(proc.stdout)
    lines = {
        line.split()[1]: line for line in proc.stdout.splitlines() if line.startswith("STATE ")
    }
    for name in cases:
        counts = parse_agreement(lines.get(name, ""))
        assert counts is not None and counts[0] == counts[1] > 0, lines.get(name)
        assert "status=0" in lines[name]


@apply(needs_r("metafor"))
def test_r_scripts_reproduce_the_location_scale_model(tmp_path, cases):
    _run(tmp_path, cases, "R")


def test_python_scripts_reproduce_the_location_scale_model(tmp_path, cases):
    _run(tmp_path, cases, "Python")


def test_data_columns_named_like_the_scripts_arguments_are_renamed():
    # metafor looks up mods and scale in the data first: a column of that name is renamed
    names = reproduce.r_names(["scale", "mods", "x"])
    assert names == {"scale": "scale_2", "mods": "mods_2", "x": "x"}
