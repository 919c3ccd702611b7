"""CR2 and CR1 of CHE fits end to end: fit each CHE fixture here (metafor: ``vcalc(vi, cluster =
study, obs = es, rho)`` then ``rma.mv(yi, V, random = ~ 1 | study/es)``), then compare
``res.robust()`` with clubSandwich/metafor at the end-to-end tolerances of
tests/unit/test_robust.py, and check that the fit records its rho.
"""

from __future__ import annotations

import pytest
from robust_cases import DF_RTOL, P_ATOL, RTOL, check_cr1, check_cr2, frame, load

import alliance_core as ac

CHE = [case for case in load("robust") if case["spec"]["model"] == "che"]


@pytest.mark.parametrize("case", CHE, ids=[c["name"] for c in CHE])
def test_che_fit_then_robust_agrees_with_clubsandwich(case):
    spec = case["spec"]
    res = ac.fit(
        frame(case),
        moderators=spec["moderators"] or None,
        method=spec["method"],
        cluster="study",
        rho=spec["rho"],
    )
    assert res.rho == spec["rho"]
    check_cr2(res.robust(), case["result"], RTOL, DF_RTOL, P_ATOL)
    check_cr1(res.robust(method="CR1"), case["result"], RTOL, P_ATOL)
