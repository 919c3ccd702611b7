"""Likelihood-based inference on fitted models: variance-component intervals and model comparison.

* :func:`variance_ci` is metafor's ``confint(fit)`` for the variance components: the Q-profile
  interval for tau2 of a two-level model (Viechtbauer 2007; ``confint.rma.uni``) and the
  profile-likelihood interval for each estimated sigma2 of a three-level model
  (``confint.rma.mv``): the bounds are where -2 (ll(value) - ll_max) equals the chi-square
  quantile on 1 df, with the other component re-maximised at each value. When the profile
  does not reach that height between 0 and the estimate, the lower bound is 0; when it does not
  reach it between the estimate and metafor's search limit max(10, 100 sigma2), the upper
  bound is that limit.
* :func:`compare` is metafor's ``anova(full, reduced)``: the likelihood-ratio test of nested
  models, LRT = deviance(reduced) - deviance(full) on the difference in the number of estimated
  parameters (fixed variance components do not count).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special
from threadpoolctl import ThreadpoolController

from alliance_core.errors import AnalysisError
from alliance_core.formatting import format_p_console
from alliance_core.model.components import parameter_count
from alliance_core.model.results import MetaResult
from alliance_core.model.robust import RobustResult
from alliance_core.model.summary import likelihood_ratio_html

BLAS = ThreadpoolController()


# -- likelihood-ratio test of nested models --------------------------------------------------
@dataclass(frozen=True)
class ModelFit:
    """Fit statistics of one model in a comparison (metafor ``fitstats``)."""

    parameters: int
    loglik: float
    deviance: float
    aic: float
    bic: float
    aicc: float
    QE: float


@dataclass(frozen=True)
class LikelihoodRatioTest:
    """``compare(full, reduced)``: LRT on ``df`` degrees of freedom (metafor ``anova``)."""

    method: str
    full: ModelFit
    reduced: ModelFit
    LRT: float
    df: int
    pval: float

    def summary(self) -> str:
        header = f"{'':8s} {'df':>4s} {'AIC':>11s} {'BIC':>11s} {'AICc':>11s} {'logLik':>11s} {'LRT':>9s} {'pval':>8s} {'QE':>11s}"
        lines = [f"Likelihood-ratio test of nested models ({self.method} fits)", header]
        for name, fitted in (("Full", self.full), ("Reduced", self.reduced)):
            extra = (
                f"{self.LRT:9.4f} {format_p_console(self.pval):>8s}"
                if name == "Reduced"
                else " " * 18
            )
            lines.append(
                f"{name:8s} {fitted.parameters:4d} {fitted.aic:11.4f} {fitted.bic:11.4f} "
                f"{fitted.aicc:11.4f} {fitted.loglik:11.4f} {extra} {fitted.QE:11.4f}"
            )
        lines.append(f"LRT = {self.LRT:.4f} on {self.df} df, p = {format_p_console(self.pval)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        """Jupyter's rich display: the comparison table of metafor's anova(full, reduced)."""
        return likelihood_ratio_html(self)


def _model_fit(res) -> ModelFit:
    return ModelFit(
        parameters=parameter_count(res),
        loglik=float(res.loglik),
        deviance=float(res.deviance),
        aic=float(res.aic),
        bic=float(res.bic),
        aicc=float(res.aicc),
        QE=float(res.QE),
    )


def compare(full: MetaResult, reduced: MetaResult) -> LikelihoodRatioTest:
    """Likelihood-ratio test of two nested models fitted to the same data (metafor ``anova``).

    The model with more estimated parameters is taken as the full one, whichever order they
    are given in. Both must be of the same kind (two- or three-level), fitted by the same
    estimator (ML or REML; EE for two-level models), to the same effect sizes, sampling
    variances and (CHE) sampling correlation. REML likelihoods of models with different fixed
    effects are not comparable, so such a pair is refused: refit both by ML.
    """
    for res in (full, reduced):
        if not isinstance(res, MetaResult):
            raise AnalysisError("compare() takes two fitted models (results of fit()).")
    if full.model != reduced.model:
        raise AnalysisError(
            f"Cannot compare a {full.model} with a {reduced.model} model; fit both with the same "
            "model (both with or both without a study column)."
        )
    if full.method != reduced.method:
        raise AnalysisError(
            f"The models use different estimators ({full.method} and {reduced.method}); a "
            "likelihood-ratio test needs both fitted by the same one (ML or REML)."
        )
    if full.method not in ("ML", "REML", "EE"):
        raise AnalysisError(f"A likelihood-ratio test needs ML or REML fits, not {full.method}.")
    same_data = (
        full.k == reduced.k
        and np.array_equal(full.inputs.y, reduced.inputs.y)
        and np.array_equal(full.inputs.v, reduced.inputs.v)
    )
    if not same_data:
        raise AnalysisError(
            f"The models were fitted to different data (k = {full.k} and k = {reduced.k}, or "
            "different effect sizes or sampling variances); a likelihood-ratio test needs the "
            "same effect sizes in both."
        )
    if full.is_three_level:
        same_v = (
            full.rho == reduced.rho
            and np.array_equal(full.inputs.order, reduced.inputs.order)
            and np.array_equal(full.inputs.starts, reduced.inputs.starts)
        )
        if not same_v:
            raise AnalysisError(
                f"The models assume different sampling covariances (rho = {full.rho} and "
                f"{reduced.rho}, or different study columns); compare models with the same V."
            )
    if parameter_count(full) == parameter_count(reduced):
        raise AnalysisError(
            "The models have the same number of parameters; a likelihood-ratio test compares "
            "nested models that differ in moderators or in fixed variance components."
        )
    if parameter_count(full) < parameter_count(reduced):
        full, reduced = reduced, full
    if full.method == "REML":
        same_fixed = full.inputs.X.shape == reduced.inputs.X.shape and np.array_equal(
            full.inputs.X, reduced.inputs.X
        )
        if not same_fixed:
            raise AnalysisError(
                "REML likelihoods of models with different moderators are not comparable. "
                "Refit both models with method='ML' to test moderators by a likelihood-ratio test."
            )
    df = parameter_count(full) - parameter_count(reduced)
    lrt = max(0.0, float(reduced.deviance - full.deviance))
    return LikelihoodRatioTest(
        method=full.method,
        full=_model_fit(full),
        reduced=_model_fit(reduced),
        LRT=lrt,
        df=df,
        pval=float(special.chdtrc(df, lrt)),
    )


@dataclass(frozen=True, eq=False)
class BandInference:
    """Where a figure's intervals come from when not from the model: a cluster-robust result
    (e.g. CR2) whose ``predict`` gives every point its own df (clubSandwich
    ``linear_contrast``), with words for the caption."""

    robust: RobustResult
    label: str

    @property
    def vcov(self) -> np.ndarray:
        return self.robust.vcov


def predict_under(
    res: MetaResult,
    robust: RobustResult | None = None,
    newmods: pd.DataFrame | Mapping | Sequence[Mapping] | None = None,
    transform: str | None = None,
) -> pd.DataFrame:
    """Predictions under the chosen inference: the model's own (``res.predict``) when
    ``robust`` is None, else ``robust.predict`` with each row's own robust df. The one place
    that decides which covariance and which df a prediction uses."""
    if robust is None:
        return res.predict(newmods, transform=transform)
    return robust.predict(newmods, transform=transform)
