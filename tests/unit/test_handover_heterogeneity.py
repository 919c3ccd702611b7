"""The Moderators page's heterogeneity model (location-scale, scale = ~ PTR) travels.

One story: the results rows are the numbers of the page's refit
(``refit_with(res, terms, res.method, scale=[ptr])``); the R script fits metafor's
``rma(yi, vi, mods, scale = ~ log_PTR)`` and its test against one tau2 (``anova``), the Python
script the same refit through alliance_core, and both agree with the results file.
"""

from __future__ import annotations

import pytest

from alliance_core.analyses.model_comparison import refit_with
from alliance_core.handover import reproduce
from alliance_core.handover.results_scale import SCALE_SECTION
from alliance_core.handover.results_table import results_frame
from tests.r_reference import apply, needs_r
from tests.unit.reproduce_runs import assert_all_agree, run_batch, write_bundles
from tests.unit.reproduce_states import prepare_named

NAMES = ("simulated-2L-aggregated-rho06", "simulated-2L-REML", "simulated-2L-ML")


@pytest.fixture(scope="module")
def cases():
    out = {}
    for name, p in prepare_named(NAMES).items():
        res = p.run.result
        out[name] = (
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
    bundles = ((name, p, {"heterogeneity": ls}) for name, (p, ls) in cases.items())
    names = write_bundles(tmp_path, language, bundles)
    assert_all_agree(run_batch(tmp_path, language, names, timeout=900), names)


@apply(needs_r("metafor"))
def test_r_scripts_reproduce_the_location_scale_model(tmp_path, cases):
    _run(tmp_path, cases, "R")


def test_python_scripts_reproduce_the_location_scale_model(tmp_path, cases):
    _run(tmp_path, cases, "Python")


def test_data_columns_named_like_the_scripts_arguments_are_renamed():
    # metafor looks up mods and scale in the data first: a column of that name is renamed
    names = reproduce.r_names(["scale", "mods", "x"])
    assert names == {"scale": "scale_2", "mods": "mods_2", "x": "x"}
