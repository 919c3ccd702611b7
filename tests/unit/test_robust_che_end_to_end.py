"""End-to-end CHE robust test, to be renamed test_robust_che_end_to_end.py once
``fit(..., rho=...)`` (the CHE working model) is part of the package.

Not collected by pytest while its name does not start with ``test_``: on a branch without
``fit(rho=...)`` it would fail. It fits each CHE fixture here (metafor: ``vcalc(vi, cluster =
study, obs = es, rho)`` then ``rma.mv(yi, V, random = ~ 1 | study/es)``), then compares
``res.robust()`` (CR2 and CR1) with clubSandwich/metafor at the end-to-end tolerances of
tests/unit/test_robust.py, and checks that the fit records its rho.
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
