"""Interactions (``moderators=["a", "b", "a:b"]``) agree with metafor's ``mods = ~ a * b``.

The fixtures under tests/fixtures/interactions were written by
scripts/make_interaction_fixtures.R (metafor 3.8.1 and clubSandwich 0.5.8; see that folder's
README): coefficient names in R's model.matrix order, estimates, standard errors, the
covariance of the coefficients and the Wald test of every term (``anova(fit, btt = ...)``).
Tolerances as the other metafor parity tests: coefficients to 1e-7 of the table's scale
(|estimate| + se), statistics to a relative 1e-6, p-values to 1e-7 absolute.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance_core as ac
from alliance_core.errors import AnalysisError

FIXTURES = sorted((Path(__file__).parents[1] / "fixtures" / "interactions").glob("*.json"))
P_ATOL = 1e-7


def load_case(path: Path) -> dict:
    return json.loads(path.read_text())


def fit_case(case: dict) -> ac.MetaResult:
    spec = case["spec"]
    options = {}
    if spec["model"] != "two-level":
        options = {"cluster": "study", "es_id": "es"}
    if spec["model"] == "che":
        options["rho"] = spec["rho"]
    return ac.fit(
        pd.DataFrame(case["data"]),
        moderators=spec["terms"],
        method=spec["method"],
        test=spec["test"],
        **options,
    )


@pytest.fixture(scope="module", params=FIXTURES, ids=[p.stem for p in FIXTURES])
def pair(request):
    case = load_case(request.param)
    return case, fit_case(case)


def test_fixtures_present():
    assert len(FIXTURES) >= 8


def test_coefficient_names_follow_model_matrix(pair):
    case, res = pair
    assert list(res.design.names) == case["result"]["coefficients"]["names"]
    assert list(res.design.term_labels) == case["spec"]["terms"]


def test_coefficients_and_covariance(pair):
    case, res = pair
    expected = case["result"]["coefficients"]
    table = res.coefficients
    scale = float(np.max(np.abs(expected["estimate"]) + np.asarray(expected["se"])))
    for column in ("estimate", "se", "ci_lb", "ci_ub"):
        np.testing.assert_allclose(
            table[column], expected[column], rtol=0, atol=1e-7 * scale, err_msg=column
        )
    np.testing.assert_allclose(table["statistic"], expected["statistic"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(table["pval"], expected["pval"], rtol=0, atol=P_ATOL)
    vb = np.asarray(case["result"]["vb"])
    np.testing.assert_allclose(res.vb, vb, rtol=0, atol=1e-6 * float(np.max(np.abs(vb))))
    np.testing.assert_allclose(res.QM, case["result"]["QM"], rtol=1e-6)


def test_wald_test_of_every_term(pair):
    case, res = pair
    for expected in case["result"]["wald"]:
        got = res.wald_test(expected["term"])
        wanted = expected["coefficients"]
        assert list(got.terms) == (wanted if isinstance(wanted, list) else [wanted])
        np.testing.assert_allclose(got.statistic, expected["statistic"], rtol=1e-6)
        assert got.df == expected["df"] and got.df2 == expected["df2"]
        np.testing.assert_allclose(got.pval, expected["pval"], rtol=0, atol=P_ATOL)


def _toy(seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    k = 60
    return pd.DataFrame(
        {
            "yi": rng.normal(0.3, 0.2, k),
            "vi": rng.uniform(0.01, 0.05, k),
            "x": rng.normal(size=k),
            "a": rng.choice(["p", "q", "r"], k),
            "b": rng.choice(["u", "v", "w"], k),
        }
    )


def test_interaction_columns_are_products_of_their_parts():
    """Closed form: each interaction column equals the product of one column of each part,
    the first part varying fastest (R's model.matrix)."""
    data = _toy()
    res = ac.fit(data, moderators=["a", "b", "a:b", "x", "x:a"])
    X = res.inputs.X
    names = list(res.design.names)
    assert names[names.index("x") + 1 :] == [
        "aq:bv",
        "ar:bv",
        "aq:bw",
        "ar:bw",
        "aq:x",  # parts in the order the moderators are listed: a before x
        "ar:x",
    ]
    for label in ("aq:bv", "ar:bv", "aq:bw", "ar:bw", "aq:x", "ar:x"):
        left, right = label.split(":")
        expected = X[:, names.index(left)] * X[:, names.index(right)]
        np.testing.assert_array_equal(X[:, names.index(label)], expected)


def test_interaction_named_in_either_order():
    data = _toy()
    res = ac.fit(data, moderators=["x", "a", "a:x"])
    assert res.design.term_labels == ("x", "a", "x:a")
    assert res.wald_test("a:x").terms == res.wald_test("x:a").terms == ("x:aq", "x:ar")
    assert res.moderators == ("x", "a")


def test_interaction_without_its_main_effect_is_refused():
    with pytest.raises(AnalysisError, match="list 'a' as a moderator too"):
        ac.fit(_toy(), moderators=["x", "x:a"])
    with pytest.raises(AnalysisError, match="lower-order term 'a:b'"):
        ac.fit(_toy(), moderators=["x", "a", "b", "x:a", "x:b", "x:a:b"])


def test_prediction_uses_the_interaction():
    """The predicted mean of level q at x equals b0 + b_aq + (b_x + b_x:aq) x."""
    data = _toy()
    res = ac.fit(data, moderators=["x", "a", "x:a"])
    b = res.coefficients["estimate"]
    got = res.predict({"x": [1.5], "a": ["q"]})["pred"].iloc[0]
    assert got == pytest.approx(b["intrcpt"] + b["aq"] + (b["x"] + b["x:aq"]) * 1.5, rel=1e-12)
