"""Step-function selection models against metafor 3.8 ``selmodel(fit, type = "stepfun")``.

Fixtures: tests/fixtures/selection (scripts/make_selection_fixtures.R; see its README).
Tolerances of the issue: every reported number within 1e-5 relative, tau2 and the deltas
within 1e-4; an estimate near zero is compared on the scale of its standard error.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance_core as ac
from alliance_core.analyses import selection_likelihood
from alliance_core.errors import AnalysisError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "selection"
RTOL = 1e-5
VAR_RTOL = 1e-4


@functools.cache
def load(name: str) -> tuple[dict, ac.MetaResult]:
    case = json.loads((FIXTURES / f"{name}.json").read_text())
    s = case["settings"]
    res = ac.fit(
        pd.DataFrame(case["data"]),
        moderators=s["moderators"] or None,
        reference=s["reference"] or None,
        method=s["method"],
    )
    return case, res


def kind(entry: dict) -> str:
    """What metafor did: "error" (stopped), "empty first" (fitted with no p-value in the
    first interval), "bound" (warned that a weight is at its bound) or "fit"."""
    if entry.get("error") is not None:
        return "error"
    if 0 in entry["delta"]["k"]:
        return "empty first"
    if any("bound" in w for w in np.ravel(entry["warnings"])):
        return "bound"
    return "fit"


def entries(which: str) -> list[tuple[str, int]]:
    out = []
    for path in sorted(FIXTURES.glob("*.json")):
        for i, entry in enumerate(json.loads(path.read_text())["selmodel"]):
            if kind(entry) == which:
                out.append((path.stem, i))
    return out


def cuts(entry: dict) -> list[float]:
    return [s for s in entry["steps"] if s != 1]


def close(actual, expected, rtol=RTOL, atol=0.0, what=""):
    expected = np.asarray([np.nan if e is None else e for e in np.atleast_1d(expected)], float)
    np.testing.assert_allclose(
        np.asarray(actual, float), expected, rtol=rtol, atol=atol, err_msg=what, equal_nan=True
    )


def test_fixtures_cover_the_promised_cases():
    fits = [load(name)[0]["selmodel"][i] for name, i in entries("fit")]
    assert any(len(e["steps"]) == 2 for e in fits)  # the 3PSM
    assert any(len(e["steps"]) >= 4 for e in fits)  # several cuts
    assert any(len(e["coefficients"]["term"]) > 2 for e in fits)  # moderators
    assert any(e["tau2"] == 0 for e in fits)  # tau2 fixed at 0 (EE)
    assert any(0 < e["tau2"] < 1e-8 for e in fits)  # tau2 estimated at its bound
    assert entries("empty first")  # metafor's empty first interval
    assert len(entries("error")) >= 2  # metafor stops on an empty inner interval
    assert entries("bound")  # metafor warns of a weight at its bound


@pytest.mark.parametrize(("name", "index"), entries("fit"))
def test_selmodel_matches_metafor(name, index):
    case, res = load(name)
    expected = case["selmodel"][index]
    sel = ac.selmodel(res, steps=cuts(expected))
    what = f"{name} {cuts(expected)}"
    co, table = expected["coefficients"], sel.coefficients
    assert list(table.index) == co["term"]
    se = float(np.max(co["se"]))
    for column in ("estimate", "ci_lb", "ci_ub"):
        close(table[column], co[column], atol=RTOL * se, what=f"{what} {column}")
    close(table["se"], co["se"], what=f"{what} se")
    close(table["zval"], co["zval"], atol=RTOL, what=f"{what} zval")
    close(table["pval"], co["pval"], atol=1e-9, what=f"{what} pval")
    at_zero = expected["tau2"] < 1e-8
    close(sel.tau2, expected["tau2"], rtol=VAR_RTOL, atol=1e-8, what=f"{what} tau2")
    if expected["tau2"] == 0:  # fixed (EE): no standard error on either side
        assert sel.tau2_fixed and np.isnan(sel.se_tau2)
    elif at_zero:  # at the bound: the engine gives none, metafor a numerical artefact
        assert np.isnan(sel.se_tau2) and "bound 0" in " ".join(sel.notes)
    else:
        close(sel.se_tau2, expected["se_tau2"], rtol=VAR_RTOL, what=f"{what} se_tau2")
        close(sel.tau2_ci, [expected["ci_lb_tau2"], expected["ci_ub_tau2"]], rtol=VAR_RTOL)
    d, delta = expected["delta"], sel.delta
    close(delta["estimate"], d["estimate"], rtol=VAR_RTOL, what=f"{what} delta")
    close(delta["se"], d["se"], rtol=VAR_RTOL, what=f"{what} delta se")
    close(delta["ci_lb"], d["ci_lb"], rtol=VAR_RTOL, atol=1e-8, what=f"{what} delta ci_lb")
    close(delta["ci_ub"], d["ci_ub"], rtol=VAR_RTOL, what=f"{what} delta ci_ub")
    close(delta["pval"], d["pval"], rtol=VAR_RTOL, atol=1e-9, what=f"{what} delta pval")
    assert list(delta["k"]) == d["k"]
    close(sel.LRT, expected["LRT"], atol=1e-7, what=f"{what} LRT")
    assert sel.LRT_df == expected["LRT_df"]
    close(sel.LRT_pval, expected["LRT_pval"], atol=1e-7, what=f"{what} LRT p")
    close(sel.loglik, expected["loglik"], atol=1e-7, what=f"{what} loglik")
    close(sel.loglik0, expected["loglik0"], atol=1e-9, what=f"{what} loglik0")
    if expected["QM"] is not None and len(co["term"]) > 1:
        close(sel.QM, expected["QM"], what=f"{what} QM")
        close(sel.QM_pval, expected["QM_pval"], atol=1e-9, what=f"{what} QM p")
    assert sel.vcov_type == "model-based" and sel.cluster is None


@pytest.mark.parametrize(("name", "index"), entries("error"))
def test_an_interval_without_p_values_is_refused_as_metafor_does(name, index):
    case, res = load(name)
    expected = case["selmodel"][index]
    assert "do not contain any observed p-values" in expected["error"]
    with pytest.raises(AnalysisError, match="No effect size has a one-sided p-value in"):
        ac.selmodel(res, steps=[s for s in expected["steps"] if s != 1])


@pytest.mark.parametrize(("name", "index"), entries("empty first"))
def test_an_empty_first_interval_is_refused(name, index):
    # metafor fits it, and its weights run to the upper bound 100: they are not identified
    case, res = load(name)
    expected = case["selmodel"][index]
    assert expected["delta"]["k"][0] == 0 and max(expected["delta"]["estimate"]) > 99
    with pytest.raises(AnalysisError, match=r"0 < p <= 0\.025"):
        ac.selmodel(res, steps=cuts(expected))


@pytest.mark.parametrize(("name", "index"), entries("bound"))
def test_a_weight_at_its_bound_is_refused(name, index):
    case, res = load(name)
    expected = case["selmodel"][index]
    assert max(expected["delta"]["estimate"]) > 99.9
    with pytest.raises(AnalysisError, match="ran to its upper bound 100"):
        ac.selmodel(res, steps=cuts(expected))


def test_one_sided_p_values_and_intervals_match_metafor():
    for name, index in entries("fit"):
        case, res = load(name)
        expected = case["selmodel"][index]
        from_engine = selection_likelihood.step_data(
            res.inputs.y, res.inputs.v, res.inputs.X, cuts(expected)
        )
        close(
            selection_likelihood.one_sided_p(res.inputs.y, res.inputs.v), expected["pvals"], 1e-12
        )
        assert list(from_engine.group + 1) == expected["pgrp"], name


# -- fail-safe N ---------------------------------------------------------------------------
FSN_CASES = [p.stem for p in sorted(FIXTURES.glob("*.json")) if json.loads(p.read_text())["fsn"]]


@pytest.mark.parametrize("name", FSN_CASES)
def test_fail_safe_n_matches_metafor(name):
    case, res = load(name)
    data = pd.DataFrame(case["data"])
    expected = case["fsn"]
    runs = {
        "Rosenthal": dict(type="Rosenthal"),
        "Orwin": dict(type="Orwin"),
        "Rosenberg": dict(type="Rosenberg"),
        "Orwin_target": dict(type="Orwin", target=0.05),
        "Rosenberg_alpha10": dict(type="Rosenberg", alpha=0.1),
    }
    for key, kwargs in runs.items():
        for source in (data, res):  # a data frame, or a fit's analysed rows
            result = ac.fsn(source, **kwargs)
            want = expected[key]
            assert result.fsnum == want["fsnum"], (name, key)
            for field in ("pval", "meanes", "target"):
                if field in want:
                    close(getattr(result, field), want[field], rtol=1e-10, what=f"{key} {field}")


def test_fail_safe_n_fixtures_cover_each_type_with_a_positive_number():
    assert len(FSN_CASES) >= 5
    numbers = {
        k: [load(n)[0]["fsn"][k]["fsnum"] for n in FSN_CASES]
        for k in ("Rosenthal", "Orwin", "Rosenberg")
    }
    assert all(any(v > 0 for v in values) for values in numbers.values())
