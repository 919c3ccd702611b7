"""The "Reproduce in R / Python" downloads: the scripts rerun the analysis and agree with it.

Every state of ``reproduce_states.STATES`` is written out as the dashboard's zip would hold
it; one Rscript call runs all R scripts (metafor loads once) and one Python process runs all
Python scripts, and every script's agreement line must report every number agreeing.
"""

from __future__ import annotations

import ast
import io
import subprocess
import sys

import pandas as pd
import pytest

from alliance_core.errors import AnalysisError
from alliance_core.handover import reproduce
from alliance_core.handover.csv_export import restore_formula
from alliance_core.handover.reproduce import parse_agreement, py_string, r_names, r_string
from tests.r_reference import apply, needs_r
from tests.unit.reproduce_runs import assert_all_agree, run_batch, write_bundle, write_bundles
from tests.unit.reproduce_states import STATES, analysis_of, prepare


@apply(needs_r("metafor"))
def test_r_scripts_agree_with_the_dashboard(tmp_path):
    names = write_bundles(tmp_path, "R", ((s.name, prepare(s), {}) for s in STATES))
    assert_all_agree(run_batch(tmp_path, "R", names, timeout=1800), names)


def test_python_scripts_agree_with_the_dashboard(tmp_path):
    names = write_bundles(tmp_path, "Python", ((s.name, prepare(s), {}) for s in STATES))
    assert_all_agree(run_batch(tmp_path, "Python", names, timeout=1800), names)


def test_a_differing_number_fails_the_python_script(tmp_path):
    """The comparison can fail: change one dashboard number and the script exits non-zero."""
    write_bundle(tmp_path, prepare(STATES[2]), "Python")
    path = tmp_path / "dashboard_results.csv"
    text = path.read_text()
    comments = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    table = pd.read_csv(path, comment="#")
    table.loc[0, "estimate"] *= 1.0001
    path.write_text(comments + table.to_csv(index=False))
    proc = subprocess.run(
        [sys.executable, "analysis.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 1
    counts = parse_agreement(proc.stdout)
    assert counts is not None and counts[0] == counts[1] - 1
    assert "differs: coefficient" in proc.stdout


def test_data_csv_holds_exactly_the_model_rows_and_columns():
    state = next(s for s in STATES if s.name == "upload-awkward-names")
    run, mapping, provenance, on_r = analysis_of(state)
    files = reproduce.bundle_files(run, mapping, provenance, on_r_scale=on_r, language="R")
    data = pd.read_csv(io.StringIO(files["data.csv"]), keep_default_na=False, na_values=[""])
    assert "'=Design" in data.columns  # neutralised for a spreadsheet...
    data = data.rename(columns=restore_formula)  # ...and given back as the scripts do
    assert len(data) == run.result.k
    assert list(data.columns) == [
        "Study ID",
        "r (alliance–outcome)",
        "N patients",
        "n thérapeutes",
        'Rater; "type"',
        "=Design",
    ]
    assert set(data["=Design"]) <= {"RCT", "quasi#1"}  # the filter's levels only
    assert "other #2" in set(data['Rater; "type"'])  # a "#" inside a value is kept


def test_user_text_cannot_escape_r_or_python_code():
    hostile = 'x"); system("touch pwned"); #\nquit()'
    literal = r_string(hostile)
    assert "\n" not in literal and literal.count('"') - literal.count('\\"') == 2
    assert r_string("é") == '"\\u{00e9}"'
    names = r_names(["ok_name", "two words", "1st", "if", "yi", "two_words"])
    assert names == {
        "ok_name": "ok_name",
        "two words": "two_words",
        "1st": "x_1st",
        "if": "if_2",
        "yi": "yi_2",
        "two_words": "two_words_2",
    }
    for name in names.values():
        assert name.replace("_", "").isalnum()
    # Column names reach the scripts only as escaped literals or syntactic names.
    state = next(s for s in STATES if s.name == "upload-awkward-names")
    run, mapping, provenance, on_r = analysis_of(state)
    for language in ("R", "Python"):
        files = reproduce.bundle_files(run, mapping, provenance, on_r_scale=on_r, language=language)
        if language == "R":
            script = files["analysis.R"]
            assert 'Rater; "type"' not in script  # never raw
            assert r_string('Rater; "type"') in script
        else:
            script = files["analysis.py"]
            compile(script, "analysis.py", "exec")  # still valid Python
            assert py_string('Rater; "type"') in script
        assert "=awkward sheet" in script  # the file name, inside a literal


def test_python_literals_round_trip_hostile_text():
    hostile = "x'); import os; os.system('true') #\n\u2028é"
    literal = py_string(hostile)
    assert "\n" not in literal and literal.isascii()
    assert ast.literal_eval(literal) == hostile


def _state(name: str):
    return prepare(next(s for s in STATES if s.name == name))


def test_aggregated_data_csv_holds_the_effect_sizes_that_were_aggregated():
    prepared = _state("assink2016-2L-aggregated-rho06")
    files = reproduce.bundle_files(
        prepared.run, prepared.mapping, prepared.provenance, language="R",
        **prepared.bundle_options(),
    )  # fmt: skip
    data = pd.read_csv(io.StringIO(files["data.csv"]))
    assert data["study"].nunique() == prepared.run.result.k < len(data)
    assert len(data) == len(prepared.table)  # every row of the used studies
    script = files["analysis.R"]
    assert "agg <- aggregate(dat, cluster = study, rho = 0.6)" in script
    assert 'Left out (they differ within a study): "deltype", "year".' in script
    assert "mods = ~ pubstatus, data = agg" in script
    with pytest.raises(AnalysisError, match="effect-size rows"):
        reproduce.bundle_files(
            prepared.run, prepared.mapping, prepared.provenance, on_r_scale=False, language="R"
        )


def test_independent_and_che_scripts_say_what_they_assume():
    independent = _state("simulated-2L-independent")
    script = reproduce.bundle_files(
        independent.run, independent.mapping, independent.provenance, language="R",
        **independent.bundle_options(),
    )["analysis.R"]  # fmt: skip
    assert "treats them as independent" in script and "aggregate(" not in script
    che = _state("simulated-3L-CHE-rho06-CR2")
    files = {
        language: reproduce.bundle_files(
            che.run, che.mapping, che.provenance, language=language, **che.bundle_options()
        )
        for language in ("R", "Python")
    }
    r_code, py_code = files["R"]["analysis.R"], files["Python"]["analysis.py"]
    assert "V <- vcalc(vi, cluster = study, obs = es, rho = 0.6, data = dat)" in r_code
    assert "rma.mv(yi, V, mods = ~ log_PTR + alliance_rater" in r_code
    assert "rob <- robust(res, cluster = dat$study, clubSandwich = TRUE)" in r_code
    assert "rho=0.6," in py_code and "rob = res.robust(cluster='study', method=\"CR2\")" in py_code
    results = pd.read_csv(io.BytesIO(files["R"]["dashboard_results.csv"]), comment="#")
    # the robust coefficients, prediction and tests (the robust marginal means follow them)
    robust = results[
        results["section"].isin(["robust coefficient", "robust prediction", "robust test"])
    ]
    assert list(robust["name"]) == [
        *che.robust.coefficients.index,
        "r at typical moderator values, CR2 (own Satterthwaite df)",
        "QM",
        "wald_alliance_rater",
    ]
    # Satterthwaite df keep their fraction; the model-based df stay whole numbers.
    assert robust["df"].iloc[0] == pytest.approx(che.robust.coefficients["df"].iloc[0])
    assert "CR2" in dict(che.provenance.items())["inference"]


def test_only_cr2_robust_inference_is_written_out():
    prepared = _state("simulated-3L-CHE-rho06-logPTR")
    cr1 = prepared.run.result.robust(method="CR1")
    with pytest.raises(AnalysisError, match="CR2"):
        reproduce.bundle_files(
            prepared.run,
            prepared.mapping,
            prepared.provenance,
            on_r_scale=True,
            language="R",
            robust=cr1,
        )
