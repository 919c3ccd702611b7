"""The patient-level mixed model fitted by statsmodels, quietly.

A random-intercept model (patients nested in therapists) fitted with statsmodels' ``MixedLM``
from moment-based starting values; statsmodels' warnings are captured and turned into notes.
The fixed effects' covariance is lme4's ``vcov`` (and HLM's): (X′V̂⁻¹X)⁻¹ at the estimated
variances, not the inverse of statsmodels' full observed Hessian.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from statsmodels.regression.mixed_linear_model import MixedLM, MixedLMParams
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from alliance_core.errors import AnalysisError


@dataclass(frozen=True)
class MixedFit:
    fe_params: np.ndarray
    cov_fe: np.ndarray
    therapist_var: float
    residual_var: float
    converged: bool
    notes: tuple[str, ...]


def start_values(y: np.ndarray, X: np.ndarray, groups: np.ndarray) -> MixedLMParams:
    """Least-squares coefficients and the ANOVA (moment) estimate of τ²/σ² as start values.

    Near the answer BFGS needs few steps; the ANOVA estimate for unbalanced groups uses the
    effective group size n₀ = (N − Σn_j²/N)/(T − 1) (Searle, Casella & McCulloch, 1992).
    """
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    residual = y - X @ beta
    counts = np.bincount(groups)
    n, n_groups = len(y), len(counts)
    group_mean = np.bincount(groups, residual) / counts
    within = residual - group_mean[groups]
    ms_within = float(within @ within) / max(n - n_groups, 1)
    ms_between = float(counts @ group_mean**2) / (n_groups - 1)
    n0 = (n - float(counts @ counts) / n) / (n_groups - 1)
    ms_within = max(ms_within, 1e-12 * max(float(residual @ residual), 1.0))
    ratio = max((ms_between - ms_within) / n0, 0.01 * ms_within) / ms_within
    return MixedLMParams.from_components(beta, np.array([[ratio]]))


def fit_mixed(y: np.ndarray, X: np.ndarray, groups: np.ndarray, reml: bool, what: str) -> MixedFit:
    """A random-intercept MixedLM fit with warnings turned into notes, errors into AnalysisError.

    The first attempt starts from moment estimates with statsmodels' default optimisers (BFGS,
    then L-BFGS, then CG); if that fails, Powell and Nelder–Mead are tried from the same start.
    """
    start = start_values(y, X, groups)
    fitted, messages, failure = None, [], None
    for options in ({}, {"method": ["powell", "nm"]}):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                attempt = MixedLM(y, X, groups=groups).fit(reml=reml, start_params=start, **options)
                usable = _finite_fit(attempt, X.shape[1])
            except (np.linalg.LinAlgError, ValueError, ArithmeticError) as error:
                failure, usable = error, False
        if usable:
            fitted = attempt
            messages = [
                str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)
            ]
            if fitted.converged:
                break
    if fitted is None:
        detail = f" ({failure})" if failure else ""
        raise AnalysisError(
            f"The mixed model could not be estimated for {what}{detail}. Check that alliance and "
            "outcome vary within and between therapists, and that covariates are not redundant."
        )
    notes = _convergence_notes(messages, fitted.converged, what)
    therapist_var = float(np.asarray(fitted.cov_re)[0, 0])
    residual_var = float(fitted.scale)
    return MixedFit(
        fe_params=np.asarray(fitted.fe_params, dtype=float),
        cov_fe=fixed_effects_covariance(X, groups, therapist_var, residual_var),
        therapist_var=therapist_var,
        residual_var=residual_var,
        converged=bool(fitted.converged),
        notes=notes,
    )


def fixed_effects_covariance(
    X: np.ndarray, groups: np.ndarray, therapist_var: float, residual_var: float
) -> np.ndarray:
    """(X'V⁻¹X)⁻¹ of the random-intercept model, V_j = σ²I + τ²11' per therapist j.

    V_j⁻¹ = (I − c_j 11') / σ² with c_j = τ² / (σ² + n_j τ²) (Sherman–Morrison), so
    X'V⁻¹X = (X'X − Σ_j c_j s_j s_j') / σ² with s_j the column sums of therapist j's rows;
    no N × N matrix is formed. This is lme4's ``vcov`` of a ``lmer`` fit (and HLM's).
    """
    X = np.asarray(X, dtype=float)
    counts = np.bincount(groups)
    sums = np.stack([np.bincount(groups, X[:, j]) for j in range(X.shape[1])], axis=1)
    shrink = therapist_var / (residual_var + counts * therapist_var)
    information = (X.T @ X - (sums * shrink[:, None]).T @ sums) / residual_var
    return np.linalg.inv(information)


def _finite_fit(fitted, p: int) -> bool:
    cov = np.asarray(fitted.cov_params(), dtype=float)[:p, :p]
    return bool(np.all(np.isfinite(fitted.fe_params)) and np.all(np.isfinite(np.diag(cov))))


def _convergence_notes(messages: list[str], converged: bool, what: str) -> tuple[str, ...]:
    """Plain-language notes for statsmodels' ConvergenceWarnings (other warnings are dropped:
    they restate what these notes say, in numerical terms)."""
    notes = []
    if any("boundary" in m for m in messages):
        notes.append(
            f"In {what} the therapist variance is estimated at (or near) zero: the therapists "
            "differ no more than their patients' scatter explains."
        )
    if any("Hessian" in m for m in messages):
        notes.append(
            f"In {what} the uncertainty of the variance estimates could not be fully computed; "
            "the slopes' standard errors do not depend on it."
        )
    if not converged:
        notes.append(
            f"The estimation of {what} did not fully converge; treat its results with caution."
        )
    return tuple(notes)
