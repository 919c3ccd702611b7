"""The Moderators page's cluster wild bootstrap travels: results file, report, both scripts.

One story: the rows of the results file and the report's sentences carry the numbers of the
``WildBootstrapResult`` itself; the Python script reruns the test (same seed, so the same F
and p); the R script recomputes the observed F with clubSandwich (``Wald_test``, Naive-F) and
says the bootstrap p is skipped. A small seeded case (99 replicates, CR2) keeps it fast.
"""

from __future__ import annotations

import io
from dataclasses import replace

import pandas as pd
import pytest

from alliance_core.errors import AnalysisError
from alliance_core.formatting import format_number, format_p
from alliance_core.handover import reproduce
from alliance_core.handover.report import build_report
from alliance_core.handover.results_table import results_frame
from alliance_core.handover.results_wild import WILD_SECTION, f_name, p_name, replicates_name
from tests.r_reference import apply, needs_r
from tests.unit.reproduce_runs import (
    R_BATCH,
    assert_all_agree,
    run_batch,
    state_lines,
    write_bundle,
)
from tests.unit.reproduce_states import STATES, prepare

NAME = "simulated-3L-CHE-rho06-CR2"  # CHE model, CR2 by study, a categorical moderator
REPLICATES = 99


@pytest.fixture(scope="module")
def case():
    p = prepare(next(state for state in STATES if state.name == NAME))
    res = p.run.result
    options = {"R": REPLICATES, "seed": 1, "type": "CR2", "cluster": p.robust.cluster}
    wild = {
        "all moderators": res.wild_bootstrap(list(res.design.term_labels), **options),
        "alliance rater": res.wild_bootstrap(["alliance_rater"], **options),
    }
    return p, wild


def test_rows_are_the_results_numbers(case):
    p, wild = case
    frame = results_frame(p.run.result, p.on_r_scale, p.robust, wild_bootstrap=wild)
    rows = frame[frame["section"] == WILD_SECTION].set_index("name")
    assert len(rows) == 3 * len(wild)
    for label, cwb in wild.items():
        f_row = rows.loc[f_name(label, cwb)]
        assert f_row["statistic"] == cwb.statistic
        assert f_row["df"] == len(cwb.terms)
        p_row = rows.loc[p_name(label, cwb)]
        assert p_row["pval"] == cwb.pval
        assert f"{cwb.auxiliary} weights" in p_name(label, cwb) and "seed 1" in p_name(label, cwb)
        assert "(CR2)" in f_name(label, cwb)
        assert rows.loc[replicates_name(label), "estimate"] == cwb.R == REPLICATES
    without = results_frame(p.run.result, p.on_r_scale, p.robust)
    assert (without["section"] != WILD_SECTION).all()


def _bundle(root, case, language):
    p, wild = case
    write_bundle(root / NAME, p, language, wild_bootstrap=wild)


def test_python_script_reruns_the_bootstrap(tmp_path, case):
    _bundle(tmp_path, case, "Python")
    script = (tmp_path / NAME / "analysis.py").read_text()
    assert "res.wild_bootstrap(" in script and f"R={REPLICATES}" in script
    assert_all_agree(run_batch(tmp_path, "Python", [NAME], timeout=900), [NAME])
    frame = pd.read_csv(tmp_path / NAME / "dashboard_results.csv", comment="#")
    wild_numbers = frame.loc[
        frame["section"] == WILD_SECTION, ["statistic", "df", "pval", "estimate"]
    ]
    assert wild_numbers.notna().sum().sum() == 4 * len(case[1])  # F, df, p, R per test: compared


@apply(needs_r("metafor", "clubSandwich"))
def test_r_script_checks_f_and_skips_p(tmp_path, case):
    _bundle(tmp_path, case, "R")
    script = (tmp_path / NAME / "analysis.R").read_text()
    assert "# wildmeta::Wald_test_cwb(res" in script
    # the script says what it skips: those lines join its STATE line
    r_batch = R_BATCH.replace("^(agreement", "^(SKIPPED|not compared|agreement")
    stdout = run_batch(tmp_path, "R", [NAME], timeout=900, r_batch=r_batch)
    assert_all_agree(stdout, [NAME])
    line = state_lines(stdout)[NAME]
    assert line.count("SKIPPED: the wild bootstrap p of") == len(case[1])
    # each test's p and replicates (2 numbers, 2 rows) are left out of the count
    assert f"not compared: {2 * len(case[1])} numbers of {2 * len(case[1])} rows" in line


def test_report_states_each_test_with_its_numbers(case):
    p, wild = case
    report = build_report(p.run, p.run, p.provenance, on_r_scale=True, figures={}, robust=p.robust)
    assert "wild bootstrap" not in " ".join(report.methods + report.results)
    report = build_report(
        p.run,
        p.run,
        p.provenance,
        on_r_scale=True,
        figures={},
        robust=p.robust,
        wild_bootstrap=wild,
    )
    methods = " ".join(report.methods)
    assert "cluster wild bootstrap (Joshi, Pustejovsky & Beretvas, 2022)" in methods
    assert any(r.startswith("Joshi, M., Pustejovsky") for r in report.references)
    assert any("Research Synthesis Methods" in r for r in report.references)
    results = " ".join(report.results)
    for label, cwb in wild.items():
        sentence = (
            f"Cluster wild bootstrap test of {label}: F = {format_number(cwb.statistic, 2)}, "
            f"{format_p(cwb.pval)} ({REPLICATES} replicates, {cwb.auxiliary} weights, "
            f"CR2 working covariance, {cwb.n_clusters} clusters, seed 1)."
        )
        assert sentence in results
    paragraph = next(r for r in report.results if r.startswith("Cluster wild bootstrap"))
    assert "significant" not in paragraph


def test_two_model_zip_carries_the_tests_with_the_moderator_model(case):
    p, wild = case
    other = prepare(next(s for s in STATES if s.name == "simulated-3L-CHE-rho06-logPTR"))
    run = replace(p.run, robust=p.robust)  # the page's run carries its CR2 inference
    models = [("other", other.run, other.provenance), ("moderators", run, p.provenance)]
    files = reproduce.models_files(
        models, p.mapping, on_r_scale=True, language="R", table=p.table, wild_bootstrap=wild
    )
    sections = {
        part: set(
            pd.read_csv(io.BytesIO(files[f"{part}/dashboard_results.csv"]), comment="#")["section"]
        )
        for part in ("other", "moderators")
    }
    assert WILD_SECTION in sections["moderators"] and WILD_SECTION not in sections["other"]
    script = files["moderators/analysis.R"]
    cwb = wild["alliance rater"]
    assert (
        f'#   auxiliary_dist = "{cwb.auxiliary}", adjust = "CR0",\n'
        '#   type = "CR2", test = "Naive-F", seed = 1)'
    ) in script


def test_tests_of_another_model_are_refused(case):
    p, wild = case
    other = prepare(next(s for s in STATES if s.name == "simulated-3L-CHE-rho06-logPTR"))
    with pytest.raises(AnalysisError, match="not a test of it"):
        reproduce.bundle_files(
            other.run,
            other.mapping,
            other.provenance,
            on_r_scale=True,
            language="Python",
            wild_bootstrap=wild,
            **{k: v for k, v in other.bundle_options().items() if k != "on_r_scale"},
        )
