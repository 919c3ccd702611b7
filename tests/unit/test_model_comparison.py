"""The model-comparison table agrees with metafor's fitstats() and anova().

Fixtures: tests/fixtures/model_comparison (scripts/make_model_comparison_fixtures.R; see that
folder's README): for a model and each neighbour (moderators dropped or a PTR interaction
added, refitted by ML; a variance component held at 0 or a scale part added, by REML), the
log-likelihood, AIC, BIC, AICc, parameter count and the likelihood-ratio test against the
model fitted by the same method. Log-likelihoods and criteria to 1e-6 absolute (three-level
fits: metafor's optimiser reaches the maximum to about 1e-8), LRT to 1e-5 absolute,
p-values to 1e-6.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance_core as ac
from alliance_core.analyses.model_comparison import FIXED, RANDOM, model_comparison
from alliance_core.errors import AnalysisError

FIXTURES = sorted((Path(__file__).parents[1] / "fixtures" / "model_comparison").glob("*.json"))


def fit_case(case: dict) -> ac.MetaResult:
    spec = case["spec"]
    options = {}
    if spec["model"] == "three-level":
        options = {"cluster": "study", "es_id": "es", "rho": spec.get("rho")}
    return ac.fit(
        pd.DataFrame(case["data"]), moderators=spec["terms"], method=spec["method"], **options
    )


@pytest.fixture(scope="module", params=FIXTURES, ids=[p.stem for p in FIXTURES])
def pair(request):
    case = json.loads(request.param.read_text())
    return case, model_comparison(fit_case(case)).table


def test_fixtures_present():
    assert len(FIXTURES) >= 3


def test_rows_are_the_neighbours(pair):
    case, table = pair
    assert list(table["model"]) == [row["model"] for row in case["rows"]]
    assert list(table["method"]) == [row["method"] for row in case["rows"]]
    expected_terms = [" + ".join(np.atleast_1d(row["terms"])) for row in case["rows"]]
    assert list(table["terms"]) == expected_terms
    comparison = [RANDOM if row["fix"] or row["scale"] else FIXED for row in case["rows"]]
    comparison = [
        RANDOM if row["method"] == "REML" and row["model"] == "analysed model" else c
        for row, c in zip(case["rows"], comparison, strict=True)
    ]
    assert list(table["comparison"]) == comparison


def test_fit_statistics_and_tests(pair):
    case, table = pair
    for (_, got), want in zip(table.iterrows(), case["rows"], strict=True):
        what = f"{want['model']} ({want['method']})"
        assert got["k"] == want["k"] and got["parameters"] == want["parameters"], what
        for column in ("loglik", "aic", "bic", "aicc"):
            np.testing.assert_allclose(got[column], want[column], rtol=0, atol=1e-6, err_msg=what)
        if "LRT" not in want:
            assert np.isnan(got["LRT"]), what
            continue
        np.testing.assert_allclose(got["LRT"], want["LRT"], rtol=0, atol=1e-5, err_msg=what)
        assert got["df"] == want["df"], what
        np.testing.assert_allclose(got["pval"], want["pval"], rtol=0, atol=1e-6, err_msg=what)


def test_default_dataset_table_is_quick():
    """The issue's target is 0.5 s for the default CHE model; asserted loosely (2 s) so that a
    busy shared machine does not fail it, and reported by the benchmark script."""
    data = ac.escalc(ac.load_dataset(ac.DEFAULT_DATASET))
    data["log_ptr"] = np.log(data["ptr"])
    res = ac.fit(data, moderators=["log_ptr", "alliance_rater"], cluster="study", rho=0.6)
    start = time.perf_counter()
    table = model_comparison(res).table
    assert time.perf_counter() - start < 2.0
    assert "with log_ptr:alliance_rater" in set(table["model"])


def test_neighbour_that_cannot_be_fitted_is_listed_in_the_note():
    rng = np.random.default_rng(3)
    k = 30
    data = pd.DataFrame(
        {
            "yi": rng.normal(0.3, 0.2, k),
            "vi": rng.uniform(0.01, 0.04, k),
            "ptr": rng.uniform(1, 10, k),
            "g": ["a"] * 29 + ["b"],
        }
    )
    res = ac.fit(data, moderators=["ptr", "g"])
    comparison = model_comparison(res)
    assert "with ptr:g" not in set(comparison.table["model"])
    assert "Not fitted: with ptr:g" in comparison.note


def test_equal_effects_fit_is_refused():
    data = pd.DataFrame({"yi": [0.1, 0.3, 0.2, 0.5], "vi": [0.01] * 4, "x": [1.0, 2, 3, 4]})
    with pytest.raises(AnalysisError, match="equal-effects"):
        model_comparison(ac.fit(data, moderators=["x"], method="EE"))
