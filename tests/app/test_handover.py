"""The Methods page shows the current analysis as R and Python code."""

from __future__ import annotations

from dataclasses import replace

from alliance_core.handover import reproduce
from alliance_core.handover.bias_results import state_publication_bias
from tests.app.conftest import assert_ran_cleanly, new_app, run_page
from tests.app.one_story_states import built

# Provenance lines the page writes from its session (the share link, the time) and the
# hand-over API here does not know; the rest of each script must be the same.
SESSION_PROVENANCE = ("link:", "created:")


def without_stamp(script: str) -> list[str]:
    return [line for line in script.splitlines() if not any(k in line for k in SESSION_PROVENANCE)]


def test_methods_page_shows_the_scripts_of_the_analysis_on_screen():
    at = run_page("pages/methods.py")
    assert_ran_cleanly(at)
    code = [block.value for block in at.code]
    # The model with moderators (the pooled model's script comes first).
    r_code = next(c for c in code if "library(metafor)" in c and "mods =" in c)
    python_code = next(c for c in code if "import alliance_core as ac" in c and "log_PTR" in c)
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


def test_methods_page_previews_the_overviews_zip_file_for_file():
    """The preview is the Overview's "Reproduce in R / Python (zip)": each model's script
    (the pooled model and the model with moderators) with the publication-bias results of
    the pooled model, built here from the state through the hand-over API."""
    at = run_page("pages/methods.py")
    assert_ran_cleanly(at)
    shown = built("default")
    state = shown.state
    models = [
        (label, run, replace(shown.provenance(run), simulated=True))  # the default is simulated
        for label, run, _ in state.models()
    ]
    assert [label for label, _, _ in models] == ["pooled", "moderators"]
    previewed = [block.value for block in at.code]
    expected = []
    for language, script in (("R", "analysis.R"), ("Python", "analysis.py")):
        files = reproduce.models_files(
            models,
            shown.mapping,
            on_r_scale=state.on_r_scale,
            language=language,
            table=shown.data,
            bias=state_publication_bias(state),
        )
        expected += [files[f"{label}/{script}"] for label, _, _ in models]
    assert len(previewed) == 4
    for got, want in zip(previewed, expected, strict=True):
        assert without_stamp(got) == without_stamp(want)
    # The pooled model's script carries the publication-bias part (the fail-safe N).
    assert "fsn(" in previewed[0] and "mods =" not in previewed[0]
