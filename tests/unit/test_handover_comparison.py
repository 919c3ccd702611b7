"""The Moderators page's model comparison travels: results file, report table, both scripts.

One story: every comparison row of the results file and cell of the report's table is the
number of ``model_comparison(res)``. The scripts are run: one Rscript call refits each
neighbour as the table does (``update(res, mods = ..., method = "ML")``, ``sigma2 = c(0, NA)``,
the location-scale model) and compares logLik, AIC, BIC, AICc and each likelihood-ratio test
(``anova``); one Python process does the same through alliance_core.
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile

import pandas as pd
import pytest

from alliance_core.analyses.model_comparison import model_comparison
from alliance_core.formatting import format_number
from alliance_core.handover import reproduce
from alliance_core.handover.report import build_report
from alliance_core.handover.reproduce import parse_agreement
from alliance_core.handover.results_moderators import COMPARISON_SECTION
from alliance_core.handover.results_table import results_frame
from tests.r_reference import apply, needs_r
from tests.unit.reproduce_states import STATES, prepare
from tests.unit.test_reproduce import PY_BATCH, R_BATCH

# two-level with PTR (an interaction added, the location-scale neighbour), two-level with
# t tests and no PTR, three-level (variance components held at 0)
NAMES = ("simulated-2L-aggregated-rho06", "molloy2014-knha-ref", "konstantopoulos2011-default")


@pytest.fixture(scope="module")
def cases():
    out = {}
    for state in STATES:
        if state.name in NAMES:
            p = prepare(state)
            out[state.name] = (p, model_comparison(p.run.result))
    return out


def test_comparison_rows_are_the_tables_numbers(cases):
    for name, (p, comparison) in cases.items():
        frame = results_frame(p.run.result, p.on_r_scale, p.robust, comparison=comparison)
        rows = frame[frame["section"] == COMPARISON_SECTION]
        table = comparison.table
        assert len(rows) == 4 * len(table), name
        loglik = rows[rows["name"].str.endswith(": logLik")]
        assert list(loglik["estimate"]) == list(table["loglik"])
        tested = table["LRT"].notna().to_numpy()
        assert list(loglik["statistic"][tested]) == list(table["LRT"][tested])
        assert list(loglik["pval"][tested]) == list(table["pval"][tested])
        assert loglik["statistic"][~tested].isna().all()
        aic = rows[rows["name"].str.endswith(": AIC")]
        assert list(aic["estimate"]) == list(table["aic"])
    kinds = " ".join(" ".join(c.table["model"]) for _, c in cases.values())
    assert "location-scale" in kinds and "sigma2.study = 0" in kinds and "with " in kinds


def test_the_report_table_is_the_comparison(cases):
    p, comparison = cases["simulated-2L-aggregated-rho06"]
    report = build_report(
        p.run, p.run, p.provenance, on_r_scale=True, figures={}, comparison=comparison
    )
    table = next(t for t in report.tables if t.title == "Model comparison")
    assert [row[0] for row in table.rows] == list(comparison.table["model"])
    assert [row[3] for row in table.rows] == [
        format_number(v, 2) for v in comparison.table["loglik"]
    ]


def _bundles(root, cases, language):
    for name, (p, comparison) in cases.items():
        make = reproduce.r_bundle if language == "R" else reproduce.python_bundle
        content = make(p.run, p.mapping, p.provenance, comparison=comparison, **p.bundle_options())
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            archive.extractall(root / name)
    return list(cases)


def _agree(stdout: str, names) -> None:
    lines = {line.split()[1]: line for line in stdout.splitlines() if line.startswith("STATE ")}
    for name in names:
        counts = parse_agreement(lines.get(name, ""))
        assert counts is not None and counts[0] == counts[1] > 0, lines.get(name)
        assert "status=0" in lines[name]


@apply(needs_r("metafor"))
def test_r_scripts_reproduce_the_comparison(tmp_path, cases):
    names = _bundles(tmp_path, cases, "R")
    (tmp_path / "batch.R").write_text(R_BATCH)
    proc = subprocess.run(
        ["Rscript", "batch.R", *names], cwd=tmp_path, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(proc.stdout)
    _agree(proc.stdout, names)
    for name in names:  # every comparison number was among those compared
        frame = pd.read_csv(tmp_path / name / "dashboard_results.csv", comment="#")
        assert (frame["section"] == COMPARISON_SECTION).sum() == 4 * len(cases[name][1].table)


def test_python_scripts_reproduce_the_comparison(tmp_path, cases):
    names = _bundles(tmp_path, cases, "Python")
    (tmp_path / "batch.py").write_text(PY_BATCH)
    proc = subprocess.run(
        [sys.executable, "batch.py", *names],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    _agree(proc.stdout, names)
