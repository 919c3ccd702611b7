"""The fitted-model object: immutable, cheap to cache, and the input of every later step.

Like metafor's ``rma`` object, one ``MetaResult`` flows into predictions, Wald tests, figures
and sensitivity analyses; the dashboard renders it and never recomputes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import special

from alliance_core.data.effect_sizes import transf
from alliance_core.formatting import format_p_console
from alliance_core.model.components import (
    parameter_count,
    pseudo_r2,
    tau2_confidence_interval,
    variance_ci,
)
from alliance_core.model.design import ModelDesign, prediction_frame
from alliance_core.model.marginal import MarginalMeans, marginal_means
from alliance_core.model.robust import robust
from alliance_core.model.summary import meta_result_html
from alliance_core.model.wald import WaldTest, wald_test
from alliance_core.model.wild_bootstrap import WildBootstrapResult, wild_bootstrap

MODEL_TWO_LEVEL = "two-level"
MODEL_THREE_LEVEL = "three-level"


@dataclass(frozen=True, eq=False)
class ModelInputs:
    """What a fit was computed from, kept so that derived statistics can be computed later.

    Arrays are in the row order of ``MetaResult.data``; ``order``/``starts`` group the rows
    by study for the three-level model.
    """

    y: np.ndarray
    v: np.ndarray
    X: np.ndarray
    typical_variance: float  # metafor's vt = (k - p) / tr(P) at the fixed-effects weights
    order: np.ndarray | None = None
    starts: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class MetaResult:
    """A fitted two-level (``rma.uni``) or three-level (``rma.mv``, ~ 1 | study/es) model.

    Numbers mirror metafor's names: ``tau2`` (two-level) or ``sigma2`` (three-level: study and
    es), ``QE``/``QM`` tests, ``I2``, ``H2``, ``R2`` (pseudo-R^2 in percent against the model
    without moderators), fit statistics of the estimation method (REML values for REML fits).
    """

    model: str
    method: str
    test: str
    level: float
    k: int
    p: int
    n_studies: int
    design: ModelDesign
    coefficients: pd.DataFrame
    beta: np.ndarray
    vb: np.ndarray
    ddf: int | None
    tau2: float | None
    tau2_se: float | None
    sigma2: pd.Series | None
    QE: float
    QE_df: int
    QE_pval: float
    QM: float | None
    QM_df: int | None
    QM_df2: int | None
    QM_pval: float | None
    I2: float
    I2_levels: pd.Series | None
    H2: float
    loglik: float
    deviance: float
    aic: float
    bic: float
    aicc: float
    weights: pd.Series  # percent, indexed by the rows of ``data``
    data: pd.DataFrame  # the analysed rows (original index), with yi and vi
    dropped: pd.DataFrame  # rows left out: index of the original data, column 'reason'
    yi_column: str
    vi_column: str
    cluster: str | None
    iterations: int
    inputs: ModelInputs = field(repr=False)
    notes: tuple[str, ...] = field(default_factory=tuple)
    # Correlation of the sampling errors of one study's effect sizes (the CHE working model,
    # metafor ``vcalc(vi, cluster, obs, rho)``); None: independent sampling errors.
    rho: float | None = None
    # Variance components held at given values ({"es": 0.0}); None: all estimated.
    fix_sigma2: Mapping[str, float] | None = None

    # -- derived statistics that need more fitting, computed on first use -----------------
    # (cached_property writes to the instance __dict__, which a frozen dataclass allows)
    @cached_property
    def R2(self) -> float | None:
        """Pseudo-R^2 (percent): the share of heterogeneity the moderators account for,
        against the same model without moderators (metafor's ``R2``; three-level: on the sum
        of the variance components). None without moderators."""
        return pseudo_r2(self)

    @cached_property
    def tau2_ci(self) -> tuple[float, float] | None:
        """Q-profile confidence interval for tau2 (metafor ``confint``); two-level
        random-effects models only."""
        return tau2_confidence_interval(self)

    def variance_ci(self) -> pd.DataFrame:
        """Confidence intervals for the variance components (metafor ``confint``): Q-profile
        for tau2, profile likelihood for sigma2.study and sigma2.es; see
        :func:`alliance_core.model.inference.variance_ci`."""
        return variance_ci(self)

    @property
    def parameters(self) -> int:
        """Number of estimated parameters (coefficients and free variance components)."""
        return parameter_count(self)

    @property
    def I2_ci(self) -> tuple[float, float] | None:
        if self.tau2_ci is None:
            return None
        vt = self.inputs.typical_variance
        return tuple(100.0 * t / (vt + t) for t in self.tau2_ci)

    @property
    def H2_ci(self) -> tuple[float, float] | None:
        if self.tau2_ci is None:
            return None
        vt = self.inputs.typical_variance
        return tuple(t / vt + 1.0 for t in self.tau2_ci)

    # -- convenience --------------------------------------------------------------------
    @property
    def is_three_level(self) -> bool:
        return self.model == MODEL_THREE_LEVEL

    @property
    def total_heterogeneity(self) -> float:
        """tau2, or sigma2_study + sigma2_es: the variance of true effects around the model."""
        return float(self.sigma2.sum()) if self.is_three_level else float(self.tau2)

    @property
    def critical_value(self) -> float:
        upper = 1.0 - (1.0 - self.level) / 2.0
        if self.ddf is None:
            return float(special.ndtri(upper))
        return float(special.stdtrit(self.ddf, upper))

    @property
    def moderators(self) -> tuple[str, ...]:
        return self.design.moderators

    # -- predictions --------------------------------------------------------------------
    def predict(
        self,
        newdata: pd.DataFrame | Mapping | Sequence[Mapping] | None = None,
        transform: str | None = None,
        fill_typical: bool = True,
        vcov: np.ndarray | None = None,
        df: float | None = None,
    ) -> pd.DataFrame:
        """Predicted average effect at given moderator values (metafor ``predict(fit, newmods=)``).

        ``vcov`` replaces the model's covariance of the coefficients (e.g. a RobustResult's CR2
        ``vcov``, as clubSandwich ``linear_contrast``) and ``df`` the reference distribution
        (t on ``df``; e.g. a coefficient's Satterthwaite df); both default to the model's own.

        Columns: pred, se, ci_lb, ci_ub (confidence interval of the average effect) and pi_lb,
        pi_ub (prediction interval for a new effect size: se^2 plus tau2, or plus
        sigma2_study + sigma2_es in the three-level model; NaN for equal-effects models, which
        assume no heterogeneity). ``transform="r"`` back-transforms
        Fisher z to r (se is then NaN, as metafor gives NA). Moderators missing from
        ``newdata`` are held at the mean (numeric) or reference level (categorical) when
        ``fill_typical`` is true; the values used are returned alongside.
        """
        frame = self._newdata_frame(newdata, fill_typical)
        X_new = self.design.matrix(frame, what="Prediction")
        pred = X_new @ self.beta
        vb = self.vb if vcov is None else np.asarray(vcov, dtype=float)
        se = np.sqrt(np.einsum("ij,jk,ik->i", X_new, vb, X_new))
        if vcov is None and df is None:
            crit = self.critical_value
        elif df is None:
            crit = float(special.ndtri(1.0 - (1.0 - self.level) / 2.0))
        else:
            crit = float(special.stdtrit(df, 1.0 - (1.0 - self.level) / 2.0))
        # An equal-effects model assumes no true heterogeneity, so it has no prediction
        # interval (metafor reports NA for it).
        pi_se = np.sqrt(se**2 + self.total_heterogeneity) if self.method != "EE" else np.nan
        out = pd.DataFrame(
            {
                "pred": pred,
                "se": se,
                "ci_lb": pred - crit * se,
                "ci_ub": pred + crit * se,
                "pi_lb": pred - crit * pi_se,
                "pi_ub": pred + crit * pi_se,
            },
            index=frame.index,
        )
        if transform not in (None, "none", "z"):
            for column in ("pred", "ci_lb", "ci_ub", "pi_lb", "pi_ub"):
                out[column] = transf(out[column].to_numpy(), transform)
            out["se"] = np.nan
        for column in self.design.moderators:
            out[column] = frame[column].to_numpy()
        return out

    def _newdata_frame(self, newdata, fill_typical: bool) -> pd.DataFrame:
        return prediction_frame(self.design, newdata, fill_typical)

    def marginal_means(self, focal: str, robust=None) -> MarginalMeans:
        """Mean effect per level of the categorical moderator ``focal``, other moderators at
        their means (numeric) or averaged over their observed proportions (categorical), as
        emmeans ``weights = "proportional"``; ``robust`` (``res.robust()``) for CR2/CR1
        inference. See :mod:`alliance_core.model.marginal`."""
        return marginal_means(self, focal, robust=robust)

    # -- tests ---------------------------------------------------------------------------
    def wald_test(self, terms: Sequence[str]) -> WaldTest:
        """Test that the named coefficients are all zero; a moderator name means all its dummies."""
        if isinstance(terms, str):
            terms = [terms]
        indices = self.design.coefficient_indices(terms)
        return wald_test(self.beta, self.vb, indices, self.design.names, self.ddf)

    def wild_bootstrap(
        self,
        terms: Sequence[str],
        R: int = 1999,
        seed: int | None = 1,
        auxiliary: str | None = None,
        adjust: str = "CR0",
        type: str = "CR0",  # noqa: A002 (wildmeta's argument name)
        test: str = "Naive-F",
        cluster=None,
        weights: np.ndarray | None = None,
        progress=None,
    ) -> WildBootstrapResult:
        """Cluster wild bootstrap test that ``terms`` are zero (Joshi, Pustejovsky & Beretvas
        2022; wildmeta ``Wald_test_cwb``); see :mod:`alliance_core.model.wild_bootstrap`."""
        return wild_bootstrap(
            self,
            terms,
            R=R,
            seed=seed,
            auxiliary=auxiliary,
            adjust=adjust,
            type=type,
            test=test,
            cluster=cluster,
            weights=weights,
            progress=progress,
        )

    # -- weights and display -------------------------------------------------------------
    def summary(self) -> str:
        return format_summary(self)

    def _repr_html_(self) -> str:
        """Jupyter's rich display: a compact table like metafor's print."""
        return meta_result_html(self)

    def __repr__(self) -> str:
        het = (
            f"tau2={self.tau2:.4g}"
            if not self.is_three_level
            else f"sigma2=({self.sigma2.iloc[0]:.4g}, {self.sigma2.iloc[1]:.4g})"
        )
        if self.rho is not None:
            het += f" rho={self.rho:g}"
        return (
            f"<MetaResult {self.model} {self.method} k={self.k} p={self.p} {het} "
            f"QE={self.QE:.4g} I2={self.I2:.1f}%>"
        )

    # -- cluster-robust inference --------------------------------------------------------
    def robust(self, cluster=None, method: str = "CR2"):
        """Cluster-robust (CR2 or CR1) inference on this fit; see ``alliance_core.model.robust``."""
        return robust(self, cluster=cluster, method=method)


def format_summary(res: MetaResult) -> str:
    """A console summary laid out like metafor's print method."""
    lines = []
    kind = (
        "Multilevel (three-level) meta-analytic model: effect sizes nested in studies"
        if res.is_three_level
        else ("Equal-effects model" if res.method == "EE" else "Random-effects model")
    )
    if res.p > 1:
        kind = (
            kind.replace("model", "meta-regression")
            if res.method != "EE"
            else "Equal-effects meta-regression"
        )
    lines.append(
        f"{kind} (k = {res.k}{f', studies = {res.n_studies}' if res.is_three_level else ''}; method: {res.method})"
    )
    lines.append("")
    lines.append(
        f"  logLik = {res.loglik:.4f}   deviance = {res.deviance:.4f}   AIC = {res.aic:.4f}   "
        f"BIC = {res.bic:.4f}   AICc = {res.aicc:.4f}"
    )
    lines.append("")
    if res.is_three_level:
        if res.rho is not None:
            lines.append(
                f"  Sampling errors of a study's effect sizes correlated: rho = {res.rho:g} "
                "(CHE working model)"
            )
        fixed = res.fix_sigma2 or {}
        for name, value in res.sigma2.items():
            mark = "   (fixed)" if name in fixed else ""
            lines.append(
                f"  sigma^2 ({name:5s}) = {value:.6f}   (sqrt = {np.sqrt(value):.4f}){mark}"
            )
        lines.append(
            f"  I^2 (total) = {res.I2:.2f}%   "
            + "   ".join(f"I^2 ({name}) = {value:.2f}%" for name, value in res.I2_levels.items())
        )
    elif res.method != "EE":
        ci = f"  [{res.tau2_ci[0]:.4f}, {res.tau2_ci[1]:.4f}]" if res.tau2_ci else ""
        lines.append(f"  tau^2 = {res.tau2:.6f}{ci}   tau = {np.sqrt(res.tau2):.4f}")
        lines.append(f"  I^2 = {res.I2:.2f}%   H^2 = {res.H2:.4f}")
    else:
        lines.append(f"  I^2 = {res.I2:.2f}%   H^2 = {res.H2:.4f}")
    if res.R2 is not None:
        lines.append(f"  R^2 (amount of heterogeneity accounted for) = {res.R2:.2f}%")
    lines.append("")
    lines.append(
        f"Test for {'residual ' if res.p > 1 else ''}heterogeneity: QE(df = {res.QE_df}) = {res.QE:.4f}, p = {format_p_console(res.QE_pval)}"
    )
    if res.QM is not None:
        if res.QM_df2 is not None:
            lines.append(
                f"Test of moderators: F(df1 = {res.QM_df}, df2 = {res.QM_df2}) = {res.QM:.4f}, p = {format_p_console(res.QM_pval)}"
            )
        else:
            lines.append(
                f"Test of moderators: QM(df = {res.QM_df}) = {res.QM:.4f}, p = {format_p_console(res.QM_pval)}"
            )
    lines.append("")
    table = res.coefficients.copy()
    stat_name = "zval" if res.ddf is None else "tval"
    table = table.rename(columns={"statistic": stat_name})
    lines.append(table.to_string(float_format=lambda v: f"{v:.4f}"))
    if not res.dropped.empty:
        lines.append("")
        lines.append(f"{len(res.dropped)} row(s) left out because of missing values.")
    for note in res.notes:
        lines.append(note)
    return "\n".join(lines)
