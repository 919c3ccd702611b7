"""Live comparison with R's metafor on randomly drawn datasets (seeded, so reproducible).

Each case draws a dataset (two- or three-level, numeric and categorical moderators, small k
and heterogeneity near zero among them), fits it here and with
``Rscript scripts/metafor_reference.R``, and compares the numbers. Skipped when Rscript with
metafor is absent; CI installs both and refuses to count such a skip as a pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance_core as ac
from tests.r_reference import needs_r
from tests.unit.live_r import check_coefficients, check_fit_statistics, draw_fisher_z, run_on_data

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "metafor_reference.R"


pytestmark = needs_r("metafor", "jsonlite")

# (seed, model, method, test, k studies, tau scale, with moderators)
CASES = [
    (101, "two-level", "REML", "z", 40, 0.15, True),
    (102, "two-level", "DL", "knha", 12, 0.10, True),
    (103, "two-level", "PM", "z", 25, 0.20, False),
    (104, "two-level", "ML", "knha", 8, 0.0, True),  # no true heterogeneity, small k
    (105, "two-level", "SJ", "z", 30, 0.05, True),
    (106, "two-level", "HE", "knha", 20, 0.12, True),
    (107, "two-level", "EE", "z", 15, 0.0, True),
    (201, "three-level", "REML", "z", 30, 0.15, True),
    (202, "three-level", "ML", "t", 12, 0.10, True),
    (203, "three-level", "REML", "t", 20, 0.0, True),  # study-level variance truly zero
    (204, "three-level", "REML", "z", 60, 0.20, False),
]


def draw(seed: int, model: str, studies: int, tau: float) -> pd.DataFrame:
    """Fisher-z correlations with a PTR-like numeric moderator and a rater factor."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 6, studies) if model == "three-level" else np.ones(studies, int)
    return draw_fisher_z(rng, sizes, tau, tau / 2)


@pytest.mark.parametrize(
    ("seed", "model", "method", "test", "studies", "tau", "mods"),
    CASES,
    ids=[str(c[0]) for c in CASES],
)
def test_random_dataset_agrees_with_metafor(
    tmp_path, seed, model, method, test, studies, tau, mods
):
    data = draw(seed, model, studies, tau)
    moderators = ["log_ptr", "rater"] if mods else []
    reference = {"rater": "patient"} if mods else {}
    newdata = (
        [{"log_ptr": 0.0, "rater": "observer"}, {"log_ptr": 2.3, "rater": "patient"}]
        if mods
        else []
    )
    settings = {
        "model": model,
        "method": method,
        "test": test,
        "moderators": moderators,
        "reference": reference,
        "newdata": newdata,
        "wald_terms": ["raterobserver", "ratertherapist"] if mods else [],
    }
    expected = run_on_data(SCRIPT, tmp_path, data, settings, timeout=300)
    res = ac.fit(
        data,
        moderators=moderators,
        reference=reference or None,
        method=method,
        test=test,
        cluster="study" if model == "three-level" else None,
    )
    scale = check_coefficients(res, expected["coefficients"])
    if model == "three-level":
        np.testing.assert_allclose(res.sigma2, expected["sigma2"], rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(res.I2_levels, expected["I2_levels"], rtol=1e-6, atol=1e-6)
    else:
        np.testing.assert_allclose(res.tau2, expected["tau2"], rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(res.H2, expected["H2"], rtol=1e-6)
    np.testing.assert_allclose(res.QE, expected["QE"], rtol=1e-8)
    np.testing.assert_allclose(res.I2, expected["I2"], rtol=1e-6, atol=1e-6)
    check_fit_statistics(res, expected)
    if mods:
        np.testing.assert_allclose(res.QM, expected["QM"], rtol=1e-6)
        np.testing.assert_allclose(res.QM_pval, expected["QM_pval"], rtol=0, atol=1e-7)
        wald = res.wald_test(["rater"])
        np.testing.assert_allclose(wald.statistic, expected["wald"]["QM"], rtol=1e-6)
        got = res.predict(pd.DataFrame(newdata))
        for column in ("pred", "ci_lb", "ci_ub"):
            np.testing.assert_allclose(
                got[column], expected["predict"][column], rtol=1e-6, atol=1e-7 * scale
            )
