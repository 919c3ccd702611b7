"""The Methods page shows the current analysis as R and Python code."""

from __future__ import annotations

from tests.app.conftest import assert_ran_cleanly, new_app, run_page


def test_methods_page_shows_the_scripts_of_the_analysis_on_screen():
    at = run_page("pages/methods.py")
    assert_ran_cleanly(at)
    code = [block.value for block in at.code]
    r_code = next(c for c in code if "library(metafor)" in c)
    python_code = next(c for c in code if "import alliance_core as ac" in c)
    # The default model is CHE: a sampling covariance V from vcalc with rho = 0.6.
    assert "rma.mv(yi, V, mods = ~ log_PTR" in r_code
    assert "vcalc(" in r_code and "rho = 0.6" in r_code
    assert "NOTE: the data are SIMULATED" in r_code
    assert "moderators=['log_PTR']" in python_code
    assert "rho=0.6" in python_code
    assert python_code.startswith('"""NOTE: the data are SIMULATED')


def test_methods_scripts_follow_the_sidebar():
    at = new_app()
    at.query_params["model"] = "2L"
    at.query_params["est"] = "DL"
    at.query_params["test"] = "t"
    at = run_page("pages/methods.py", at)
    assert_ran_cleanly(at)
    r_code = next(b.value for b in at.code if "library(metafor)" in b.value)
    assert 'method = "DL", test = "knha"' in r_code
    # Two-level on nested data is the aggregated model: the scripts aggregate first.
    assert "agg <- aggregate(dat, cluster = study, rho = 0.6)" in r_code
    assert "data = agg," in r_code
    python_code = next(b.value for b in at.code if "import alliance_core as ac" in b.value)
    assert "dat = ac.aggregate(dat, cluster='study', rho=0.6)" in python_code
