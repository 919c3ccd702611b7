"""Live comparison with metafor for dependent effect sizes on randomly drawn datasets (seeded).

Each case draws a three-level dataset, fits it here with a within-study sampling correlation
(CHE) and/or a fixed variance component, and with
``Rscript scripts/metafor_dependent_reference.R`` (vcalc + rma.mv, the same R code as the
fixtures), and compares the numbers, the profile intervals and the likelihood-ratio test.
Skipped when Rscript with metafor is absent; CI installs both and refuses to count such a skip
as a pass.
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
SCRIPT = REPO / "scripts" / "metafor_dependent_reference.R"


pytestmark = needs_r("metafor", "jsonlite")

# (seed, method, test, studies, rho, fix_sigma2, with moderators, profile CI)
CASES = [
    (301, "REML", "z", 30, 0.6, None, True, False),
    (302, "ML", "t", 15, 0.8, None, True, False),
    (303, "REML", "t", 10, 0.3, None, False, True),
    (304, "REML", "z", 25, 0.9, {"es": 0}, True, False),
    (305, "ML", "z", 20, 0.5, {"study": 0}, False, False),
    (306, "REML", "z", 6, 0.7, None, True, False),  # few clusters
    (307, "ML", "z", 40, 0.0, None, True, False),
    (308, "REML", "z", 20, None, {"es": 0.01}, True, False),
    (309, "REML", "z", 15, None, None, False, True),  # independent errors: profile CIs
]


def draw(seed: int, studies: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return draw_fisher_z(rng, rng.integers(1, 7, studies), 0.12, 0.06)


@pytest.mark.parametrize(
    ("seed", "method", "test", "studies", "rho", "fixed", "mods", "with_ci"),
    CASES,
    ids=[str(c[0]) for c in CASES],
)
def test_random_dependent_dataset_agrees_with_metafor(
    tmp_path, seed, method, test, studies, rho, fixed, mods, with_ci
):
    data = draw(seed, studies)
    moderators = ["log_ptr", "rater"] if mods else []
    reference = {"rater": "patient"} if mods else {}
    newdata = [{"log_ptr": 0.5, "rater": "observer"}] if mods else []
    compare_to = [{"name": "no within-study heterogeneity", "fix_sigma2": {"es": 0}}]
    if fixed:
        compare_to = [{"name": "both estimated", "fix_sigma2": {}}]
    settings = {
        "method": method,
        "test": test,
        "rho": rho,
        "fix_sigma2": fixed or {},
        "moderators": moderators,
        "reference": reference,
        "newdata": newdata,
        "confint": with_ci,
        "compare": compare_to,
    }
    expected = run_on_data(SCRIPT, tmp_path, data, settings, timeout=600)
    kwargs = dict(
        moderators=moderators,
        reference=reference or None,
        method=method,
        test=test,
        cluster="study",
        rho=rho,
    )
    res = ac.fit(data, fix_sigma2=fixed, **kwargs)
    scale = check_coefficients(res, expected["coefficients"])
    np.testing.assert_allclose(res.sigma2, expected["sigma2"], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(res.QE, expected["QE"], rtol=1e-8)
    i2_atol = 1e-6 + 1e-6 / (res.total_heterogeneity + res.inputs.typical_variance)
    np.testing.assert_allclose(res.I2, expected["I2"], rtol=1e-6, atol=i2_atol)
    np.testing.assert_allclose(res.I2_levels, expected["I2_levels"], rtol=1e-6, atol=i2_atol)
    check_fit_statistics(res, expected)
    np.testing.assert_allclose(res.weights, expected["weights"], rtol=1e-6, atol=1e-9)
    if mods:
        np.testing.assert_allclose(res.QM, expected["QM"], rtol=1e-6)
        got = res.predict(pd.DataFrame(newdata))
        for column in ("pred", "ci_lb", "ci_ub", "pi_lb", "pi_ub"):
            np.testing.assert_allclose(
                got[column], expected["predict"][column], rtol=1e-6, atol=1e-7 * scale
            )
    if with_ci:
        table = res.variance_ci()
        ci = expected["variance_ci"]
        assert list(table.index) == ci["component"]
        np.testing.assert_allclose(table["ci_lb"], ci["ci_lb"], rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(table["ci_ub"], ci["ci_ub"], rtol=1e-5, atol=1e-9)
    lrt_expected = expected["compare"][0]
    other = ac.fit(data, fix_sigma2=lrt_expected["reduced_fix_sigma2"] or None, **kwargs)
    lrt = ac.compare(res, other)
    np.testing.assert_allclose(lrt.LRT, lrt_expected["LRT"], rtol=1e-6, atol=1e-7)
    assert lrt.df == lrt_expected["df"]
    np.testing.assert_allclose(lrt.pval, lrt_expected["pval"], rtol=0, atol=1e-7)
