"""Comparing a fit with a metafor fixture (shared by the parity tests).

A fixture is a JSON file written by one of scripts/make_*_fixtures.R: the data, the settings
and metafor's numbers. Tolerances: estimates, standard errors, intervals, variance components
and fit statistics to a relative 1e-6 (with an absolute floor for quantities that sit at or
near zero), p-values to 1e-7 absolute.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

import alliance_core as ac

RTOL = 1e-6
P_ATOL = 1e-7
# Variance components on the boundary: metafor's optimiser (log-scale for rma.mv) stops a
# hair above zero where the exact maximiser is 0.
VAR_ATOL = 1e-8


def load_case(path: Path) -> dict:
    return json.loads(path.read_text())


def close(actual, expected, rtol=RTOL, atol=0.0, what=""):
    np.testing.assert_allclose(
        np.asarray(actual, dtype=float),
        np.asarray(expected, dtype=float),
        rtol=rtol,
        atol=atol,
        err_msg=what,
    )


def check_coefficients(res: ac.MetaResult, expected: dict) -> None:
    """The coefficient table against metafor's (``case["result"]["coefficients"]``)."""
    assert list(res.coefficients.index) == expected["term"]
    table = res.coefficients
    scale = np.abs(np.asarray(expected["estimate"])) + np.asarray(expected["se"])
    # Values that are near zero only by cancellation are compared on the scale of the
    # coefficient table (|estimate| + se), still to a relative 1e-7 of it.
    for column in ("estimate", "ci_lb", "ci_ub"):
        close(table[column], expected[column], atol=1e-7 * scale.max(), what=column)
    close(table["se"], expected["se"], what="se")
    close(table["statistic"], expected["statistic"], atol=1e-7, what="statistic")
    close(table["pval"], expected["pval"], rtol=0, atol=P_ATOL, what="pval")


def check_residual_heterogeneity(res: ac.MetaResult, expected: dict) -> None:
    """QE, its df and its p against metafor's (``case["result"]``)."""
    close(res.QE, expected["QE"], what="QE")
    assert res.QE_df == expected["QE_df"]
    close(res.QE_pval, expected["QE_pval"], rtol=0, atol=P_ATOL)


def check_fit_statistics(res: ac.MetaResult, expected: dict) -> None:
    """logLik, deviance, AIC, BIC and AICc against metafor's (``case["result"]``)."""
    for name in ("loglik", "deviance", "aic", "bic", "aicc"):
        close(getattr(res, name), expected[name], atol=1e-8, what=name)


def check_predictions(res: ac.MetaResult, case: dict) -> None:
    """``predict`` at the fixture's new data (or the typical values), on the model's scale
    and as r, against metafor's ``predict`` (an interval metafor gives as NA is missing)."""
    newdata = case["settings"].get("newdata")
    frame = pd.DataFrame(newdata) if newdata else None
    for transform, key in ((None, "predict"), ("r", "predict_r")):
        expected = case["result"][key]
        got = res.predict(frame, transform=transform)
        scale = float(np.max(np.abs(got["pred"]))) + float(
            np.max(np.atleast_1d(case["result"]["predict"]["se"]))
        )
        for column in ("pred", "ci_lb", "ci_ub", "pi_lb", "pi_ub"):
            if expected[column] is None:  # metafor gives NA (no prediction interval for EE)
                assert got[column].isna().all(), f"{key} {column} should be missing"
                continue
            want = np.atleast_1d(np.asarray(expected[column], dtype=float))
            close(got[column], want, atol=1e-7 * scale, what=f"{key} {column}")
        if transform is None:
            close(got["se"], np.atleast_1d(expected["se"]), what="prediction se")
