"""Loading the cluster-robust and aggregation fixtures (tests/fixtures/robust, written by
scripts/make_robust_fixtures.R) and turning a case into the matching Python call."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

import alliance_core as ac
from alliance_core.model.design import build_design_matrix
from alliance_core.model.robust import RobustResult, robust_from_blocks
from alliance_core.model.robust_variance import marginal_blocks
from tests.unit.parity_checks import close

FIXTURE_DIR = Path(__file__).parents[1] / "fixtures" / "robust"


def load(kind: str) -> list[dict]:
    cases = [json.loads(path.read_text()) for path in sorted(FIXTURE_DIR.glob("*.json"))]
    return [case for case in cases if case["kind"] == kind]


def frame(case: dict) -> pd.DataFrame:
    return pd.DataFrame(case["data"])


def fit_case(case: dict) -> ac.MetaResult:
    """The same model fitted here (two- and three-level; CHE needs fit(rho=...))."""
    spec = case["spec"]
    return ac.fit(
        frame(case),
        moderators=spec["moderators"] or None,
        method=spec["method"],
        cluster="study" if spec["model"] == "three-level" else None,
    )


def robust_case(case: dict, method: str = "CR2") -> RobustResult:
    """End to end for two- and three-level cases: fit here, then ``res.robust``."""
    spec = case["spec"]
    res = fit_case(case)
    cluster = spec.get("cluster", "study")
    if spec["model"] == "three-level" and cluster == "study":
        cluster = None  # the default: the model's own study column
    return res.robust(cluster=cluster, method=method)


def robust_from_reference_fit(case: dict, method: str = "CR2") -> RobustResult:
    """The array-level core on R's own estimates: blocks built from metafor's sigma2 (and
    rho for CHE), residuals from metafor's beta."""
    spec = case["spec"]
    data = frame(case)
    result = case["result"]
    _, X = build_design_matrix(data, spec["moderators"])
    v = data["vi"].to_numpy(float)
    cluster = data[spec.get("cluster", "study")].to_numpy()
    if spec["model"] == "two-level":
        blocks = marginal_blocks(cluster, v, sigma2_es=result["tau2"])
    else:
        sigma2 = result["sigma2"]
        blocks = marginal_blocks(
            cluster,
            v,
            study=data["study"].to_numpy(),
            sigma2_study=sigma2[0],
            sigma2_es=sigma2[1],
            rho=spec.get("rho"),
        )
    return robust_from_blocks(
        X,
        data["yi"].to_numpy(float),
        np.asarray(result["beta"]),
        blocks,
        result["coef_names"],
        method=method,
    )


# Tolerances (see tests/unit/test_robust.py for why these values).
RTOL = 1e-6
DF_RTOL = 2e-6
P_ATOL = 1e-6
CORE_RTOL = 1e-8


def check_cr2(rob: ac.RobustResult, reference: dict, rtol: float, df_rtol: float, p_atol: float):
    expected = reference["cr2"]
    table = rob.coefficients
    assert list(table.index) == reference["coef_names"]
    close(table["estimate"], reference["beta"], rtol, what="beta")
    close(table["se"], expected["se"], rtol, what="se")
    close(table["statistic"], expected["tstat"], rtol, atol=1e-12, what="t")
    close(table["df"], expected["df"], df_rtol, what="Satterthwaite df")
    close(table["pval"], expected["pval"], 0.0, atol=p_atol, what="p")
    close(table["ci_lb"], expected["ci_lb"], rtol, atol=1e-12, what="ci_lb")
    close(table["ci_ub"], expected["ci_ub"], rtol, atol=1e-12, what="ci_ub")
    close(rob.vcov, expected["vcov"], rtol, atol=1e-14, what="vcov")
    assert rob.n_clusters == reference["n_clusters"]
    if expected.get("QM") is None:
        assert rob.QM is None
    else:
        qm = expected["QM"]
        close(rob.QM, qm["Fstat"], rtol, what="HTZ F")
        assert rob.QM_df[0] == qm["df_num"]
        close(rob.QM_df[1], qm["df_denom"], df_rtol, what="HTZ df2")
        close(rob.QM_pval, qm["p_val"], 0.0, atol=p_atol, what="HTZ p")
    for wald in expected.get("wald") or []:
        test = rob.wald_test(wald["terms"])
        assert test.terms == tuple(wald["terms"])
        close(test.statistic, wald["Fstat"], rtol, what=f"HTZ F {wald['terms']}")
        close(test.df2, wald["df_denom"], df_rtol, what=f"HTZ df2 {wald['terms']}")
        close(test.pval, wald["p_val"], 0.0, atol=p_atol, what=f"HTZ p {wald['terms']}")


def check_cr1(rob: ac.RobustResult, reference: dict, rtol: float, p_atol: float):
    expected = reference["cr1"]
    table = rob.coefficients
    close(table["se"], expected["se"], rtol, what="CR1 se")
    close(table["statistic"], expected["tstat"], rtol, atol=1e-12, what="CR1 t")
    assert np.all(table["df"] == expected["df"])
    close(table["pval"], expected["pval"], 0.0, atol=p_atol, what="CR1 p")
    close(table["ci_lb"], expected["ci_lb"], rtol, atol=1e-12, what="CR1 ci_lb")
    close(table["ci_ub"], expected["ci_ub"], rtol, atol=1e-12, what="CR1 ci_ub")
    if expected["QM"] is not None:
        close(rob.QM, expected["QM"], rtol, what="CR1 F")
        assert rob.QM_df == tuple(expected["QM_df"])
        close(rob.QM_pval, expected["QM_pval"], 0.0, atol=p_atol, what="CR1 p(F)")
