"""Loading the cluster-robust and aggregation fixtures (tests/fixtures/robust, written by
scripts/make_robust_fixtures.R) and turning a case into the matching Python call."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

import alliance_core as ac
from alliance_core.design import build_design_matrix
from alliance_core.robust import RobustResult, marginal_blocks, robust_from_blocks

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
