"""The Moderators page's model comparison travels: results file, report table, both scripts.

One story: every comparison row of the results file and cell of the report's table is the
number of ``model_comparison(res)``. The scripts are run: one Rscript call refits each
neighbour as the table does (``update(res, mods = ..., method = "ML")``, ``sigma2 = c(0, NA)``,
the location-scale model) and compares logLik, AIC, BIC, AICc and each likelihood-ratio test
(``anova``); one Python process does the same through alliance_core.
"""

from __future__ import annotations

import pandas as pd
import pytest

from alliance_core.analyses.model_comparison import model_comparison
from alliance_core.formatting import format_number
from alliance_core.handover.report import build_report
from alliance_core.handover.results_moderators import COMPARISON_SECTION
from alliance_core.handover.results_table import results_frame
from tests.r_reference import apply, needs_r
from tests.unit.reproduce_runs import assert_all_agree, run_batch, write_bundles
from tests.unit.reproduce_states import prepare_named

# two-level with PTR (an interaction added, the location-scale neighbour), two-level with
# t tests and no PTR, three-level (variance components held at 0)
NAMES = ("simulated-2L-aggregated-rho06", "molloy2014-knha-ref", "konstantopoulos2011-default")


@pytest.fixture(scope="module")
def cases():
    return {name: (p, model_comparison(p.run.result)) for name, p in prepare_named(NAMES).items()}


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


def _write(root, cases, language) -> list[str]:
    bundles = ((name, p, {"comparison": comparison}) for name, (p, comparison) in cases.items())
    return write_bundles(root, language, bundles)


@apply(needs_r("metafor"))
def test_r_scripts_reproduce_the_comparison(tmp_path, cases):
    names = _write(tmp_path, cases, "R")
    assert_all_agree(run_batch(tmp_path, "R", names, timeout=900), names)
    for name in names:  # every comparison number was among those compared
        frame = pd.read_csv(tmp_path / name / "dashboard_results.csv", comment="#")
        assert (frame["section"] == COMPARISON_SECTION).sum() == 4 * len(cases[name][1].table)


def test_python_scripts_reproduce_the_comparison(tmp_path, cases):
    names = _write(tmp_path, cases, "Python")
    assert_all_agree(run_batch(tmp_path, "Python", names, timeout=900), names)
