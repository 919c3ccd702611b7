"""Live comparisons with R on randomly drawn datasets (shared by the ``*_live`` unit tests).

The data are drawn from seeded generators (so every run draws the same); a reference script
under scripts/ reads a JSON spec, fits the same model in R and writes its numbers as JSON.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

import alliance_core as ac

RATERS = ("observer", "patient", "therapist")


def run_r_reference(script: Path, spec: Path, payload: dict | list, *, timeout: float):
    """``Rscript script spec out.json`` with ``payload`` written to ``spec`` as JSON; the
    numbers R wrote to out.json (beside ``spec``)."""
    out = spec.parent / "out.json"
    spec.write_text(json.dumps(payload))
    proc = subprocess.run(
        ["Rscript", str(script), str(spec), str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    result = json.loads(out.read_text())
    assert proc.returncode == 0, result.get("error", proc.stderr)
    return result


def run_on_data(
    script: Path, folder: Path, data: pd.DataFrame, settings: dict, *, timeout: float
) -> dict:
    """One model in R: ``data`` as ``folder/data.csv`` and ``settings`` in
    ``folder/spec.json`` given to the reference ``script``; the numbers R wrote."""
    data.to_csv(folder / "data.csv", index=False)
    payload = {"data_csv": "data.csv", "settings": settings}
    return run_r_reference(script, folder / "spec.json", payload, timeout=timeout)


def draw_fisher_z(
    rng: np.random.Generator, sizes: np.ndarray, tau_study: float, tau_es: float
) -> pd.DataFrame:
    """Fisher-z correlations of ``len(sizes)`` studies (``sizes[i]`` effect sizes in study i)
    with a PTR-like numeric moderator and a rater factor; true effects vary between studies
    (SD ``tau_study``) and between effect sizes within a study (SD ``tau_es``)."""
    studies = len(sizes)
    study = np.repeat(np.arange(studies), sizes)
    k = len(study)
    n = rng.integers(15, 250, studies)[study]
    log_ptr = rng.normal(1.2, 0.9, studies)[study]
    rater = rng.choice(["patient", "observer", "therapist"], k)
    truth = 0.3 - 0.04 * log_ptr + 0.05 * (rater == "observer")
    truth = truth + rng.normal(0, tau_study, studies)[study] + rng.normal(0, tau_es, k)
    vi = 1.0 / (n - 3.0)
    yi = truth + rng.normal(0, np.sqrt(vi))
    return pd.DataFrame(
        {
            "yi": yi,
            "vi": vi,
            "study": [f"s{i}" for i in study],
            "es": [f"e{j}" for j in range(k)],
            "log_ptr": log_ptr,
            "rater": rater,
        }
    )


def draw_clustered(
    seed: int,
    studies: int,
    log_ptr: Callable[[np.random.Generator, int], np.ndarray],
    every_rater: bool = False,
) -> pd.DataFrame:
    """Nested data for the cluster-robust comparisons: 1 to 6 effect sizes a study, studies
    grouped by three into coarser clusters (``group``), a study-level ``log_ptr`` drawn by
    ``log_ptr(rng, studies)``, a rater factor (``every_rater``: its first three rows hold each
    level) and heavy-tailed study effects (the working model is wrong, which is when RVE
    matters)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 7, studies)
    study = np.repeat(np.arange(studies), sizes)
    k = len(study)
    n = rng.integers(20, 300, studies)[study]
    ptr = log_ptr(rng, studies)[study]
    rater = rng.choice(RATERS, k)
    if every_rater:
        rater[:3] = RATERS
    vi = 1.0 / (n - 3.0)
    truth = 0.3 - 0.04 * ptr + 0.05 * (rater == "observer")
    truth = truth + 0.12 * rng.standard_t(4, studies)[study] + rng.normal(0, 0.06, k)
    return pd.DataFrame(
        {
            "yi": truth + rng.normal(0, np.sqrt(vi)),
            "vi": vi,
            "study": [f"s{i}" for i in study],
            "es": [f"e{j}" for j in range(k)],
            "group": [f"g{i // 3}" for i in study],
            "log_ptr": ptr,
            "rater": rater,
        }
    )


def check_coefficients(res: ac.MetaResult, coef: dict) -> float:
    """Estimates, SEs and p-values against R's ``coefficients``; the scale of the table
    (max |estimate| + se), against which values near zero are compared."""
    assert list(res.coefficients.index) == coef["term"]
    scale = float(np.max(np.abs(coef["estimate"]) + np.asarray(coef["se"])))
    np.testing.assert_allclose(
        res.coefficients["estimate"], coef["estimate"], rtol=1e-6, atol=1e-7 * scale
    )
    np.testing.assert_allclose(res.coefficients["se"], coef["se"], rtol=1e-6)
    np.testing.assert_allclose(res.coefficients["pval"], coef["pval"], rtol=0, atol=1e-7)
    return scale


def check_fit_statistics(res: ac.MetaResult, expected: dict) -> None:
    """logLik, deviance, AIC, BIC and AICc against R's."""
    for name in ("loglik", "deviance", "aic", "bic", "aicc"):
        np.testing.assert_allclose(
            getattr(res, name), expected[name], rtol=1e-7, atol=1e-8, err_msg=name
        )
