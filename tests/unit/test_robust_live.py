"""Live comparison of robust() with R's clubSandwich and metafor on random datasets (seeded).

Each case draws nested data (effect sizes in studies, a numeric and a categorical moderator,
studies grouped into coarser clusters), fits the model here and with
``Rscript scripts/robust_reference.R`` (one R start-up for all cases) and compares CR2
(clubSandwich coef_test / conf_int / Wald_test HTZ) and CR1 (metafor robust, adjust = TRUE)
with the tolerances of tests/unit/test_robust.py. The CHE case (rho = 0.7) runs the core on
metafor's estimates. Skipped when Rscript with metafor and clubSandwich is absent; CI
installs them and refuses to count such a skip as a pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from robust_cases import CORE_RTOL, DF_RTOL, P_ATOL, RTOL, check_cr1, check_cr2

import alliance_core as ac
from alliance_core.model.design import build_design_matrix
from alliance_core.model.robust import robust_from_blocks
from alliance_core.model.robust_variance import marginal_blocks
from tests.r_reference import needs_r
from tests.unit.live_r import draw_clustered, run_r_reference

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "robust_reference.R"


pytestmark = needs_r("metafor", "clubSandwich", "jsonlite")

# (seed, model, method, studies, moderators, robust cluster, rho)
CASES = [
    (301, "three-level", "REML", 30, True, "study", None),
    (302, "three-level", "ML", 15, False, "study", None),
    (303, "two-level", "REML", 25, True, "study", None),
    (304, "three-level", "REML", 36, True, "group", None),  # coarser clusters
    (305, "three-level", "REML", 6, True, "study", None),  # few clusters: df < 4
    (306, "che", "REML", 25, True, "study", 0.7),
]


def draw(seed: int, studies: int) -> pd.DataFrame:
    return draw_clustered(seed, studies, lambda rng, m: rng.normal(1.2, 0.9, m))


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("robust_live")
    cases = []
    for seed, model, method, studies, mods, cluster, rho in CASES:
        draw(seed, studies).to_csv(tmp / f"data{seed}.csv", index=False)
        spec = {
            "model": model,
            "method": method,
            "moderators": ["log_ptr", "rater"] if mods else [],
            "cluster": cluster,
            "wald_terms": [["raterpatient", "ratertherapist"]] if mods else [],
        }
        if rho is not None:
            spec["rho"] = rho
        cases.append({"data_csv": f"data{seed}.csv", "spec": spec})
    result = run_r_reference(SCRIPT, tmp / "cases.json", cases, timeout=600)
    return {case[0]: expected for case, expected in zip(CASES, result, strict=True)}


@pytest.mark.parametrize(
    ("seed", "model", "method", "studies", "mods", "cluster", "rho"),
    CASES,
    ids=[str(c[0]) for c in CASES],
)
def test_random_dataset_agrees_with_clubsandwich(
    references, seed, model, method, studies, mods, cluster, rho
):
    expected = references[seed]
    data = draw(seed, studies)
    moderators = ["log_ptr", "rater"] if mods else []
    if model == "che":
        # fit(rho=...) is not part of this package yet: the core on metafor's estimates
        _, X = build_design_matrix(data, moderators)
        sigma2 = expected["sigma2"]
        blocks = marginal_blocks(
            data[cluster], data["vi"], data["study"], sigma2[0], sigma2[1], rho
        )
        for method_name, check in (("CR2", "cr2"), ("CR1", "cr1")):
            rob = robust_from_blocks(
                X,
                data["yi"].to_numpy(),
                np.asarray(expected["beta"]),
                blocks,
                expected["coef_names"],
                method=method_name,
            )
            if check == "cr2":
                check_cr2(rob, expected, CORE_RTOL, CORE_RTOL, 1e-8)
            else:
                check_cr1(rob, expected, CORE_RTOL, 1e-8)
        return
    res = ac.fit(
        data,
        moderators=moderators,
        method=method,
        cluster="study" if model == "three-level" else None,
    )
    check_cr2(res.robust(cluster=cluster), expected, RTOL, DF_RTOL, P_ATOL)
    check_cr1(res.robust(cluster=cluster, method="CR1"), expected, RTOL, P_ATOL)
