"""Marginal means of a categorical moderator (estimated marginal means, emmeans' EMMs).

For each level of the focal moderator the mean effect is predicted on a reference grid and
averaged, as emmeans ``emmeans(fit, "rater", weights = "proportional")`` does: numeric
moderators are held at their means over the fitted rows (emmeans' default ``cov.reduce =
mean``), and the predictions are averaged over the level combinations of the other categorical
moderators with weights proportional to how often each combination occurs in the fitted rows
(emmeans: "weight in proportion to the frequencies (in the original data) of the factor
combinations that are averaged over"). Averaging the prediction rows over those combinations
with those weights is the same as averaging, over every fitted row, the model-matrix row with
the focal moderator set to the level and each numeric moderator set to its mean; that is how
the contrast row L is built here. Interactions enter through the model matrix, so with a
PTR x rater interaction the mean of each rater is its prediction at the mean PTR.

The estimate is L b with variance L V L' (V model-based, or the cluster-robust CR2/CR1
covariance), as metafor ``predict(fit, newmods = L[-1])`` and clubSandwich
``linear_contrast(fit, vcov = "CR2", contrasts = L)``. Degrees of freedom: infinite for z
tests (emmeans reports Inf), k - p for t and Knapp-Hartung tests, and for CR2 the Satterthwaite
df of the contrast (Tipton & Pustejovsky 2015; clubSandwich ``linear_contrast``), J - p for CR1.
The prediction interval adds the heterogeneity (tau2, or sigma2_study + sigma2_es) to L V L'
on the same reference distribution, as metafor's ``pi.lb``/``pi.ub``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from alliance_core.data.effect_sizes import z_to_r
from alliance_core.errors import AnalysisError
from alliance_core.model.robust import RobustResult
from alliance_core.model.robust_contrasts import contrast_df

COLUMNS = ("estimate", "r", "se", "df", "ci_lb", "ci_ub", "pi_lb", "pi_ub")


@dataclass(frozen=True, eq=False)
class MarginalMeans:
    """Marginal means of ``focal``, one row per level (reference level first).

    ``table``: estimate (model scale, Fisher z), r = tanh(estimate), se, df (inf for z tests),
    ci_lb/ci_ub and pi_lb/pi_ub on the model scale, the same bounds on the r scale (r_ci_lb,
    ...), and k, the number of effect sizes at the level. ``contrasts`` holds the rows L
    (intercept first) whose products with the coefficients are the estimates.
    """

    focal: str
    inference: str  # "model", "CR2" or "CR1"
    level: float
    table: pd.DataFrame
    contrasts: pd.DataFrame

    def summary(self) -> str:
        shown = self.table[[*COLUMNS, "k"]]
        return (
            f"Marginal means of {self.focal} ({self.inference} inference; numeric moderators at "
            "their means, other categorical moderators averaged over their observed "
            "proportions)\n" + shown.to_string(float_format=lambda v: f"{v:.4f}")
        )

    def __str__(self) -> str:
        return self.summary()


def reference_rows(res, focal: str) -> pd.DataFrame:
    """The contrast rows L of the marginal means of ``focal`` (see the module docstring)."""
    design = res.design
    if focal not in design.term_labels:
        raise AnalysisError(
            f"'{focal}' is not a moderator of this model "
            f"(moderators: {', '.join(design.moderators) or 'none'})."
        )
    term = design.term(focal)
    if term.kind != "categorical":
        raise AnalysisError(
            f"Marginal means are means per level of a categorical moderator; '{focal}' is "
            f"{'an interaction' if term.kind == 'interaction' else 'numeric'}. Use predict() at "
            "chosen values instead."
        )
    frame = res.data[list(design.moderators)].copy()
    for other in design.terms:
        if other.kind == "numeric":
            frame[other.column] = other.mean
    rows = []
    for level in term.levels:
        frame[focal] = level
        rows.append(design.matrix(frame, what="Marginal means").mean(axis=0))
    return pd.DataFrame(
        np.vstack(rows), index=pd.Index(term.levels, name=focal), columns=list(design.names)
    )


def marginal_means(res, focal: str, robust: RobustResult | None = None) -> MarginalMeans:
    """Marginal means of the categorical moderator ``focal`` of the fit ``res``.

    ``robust`` (a :class:`RobustResult` of the same fit) switches the covariance and df to the
    cluster-robust ones; see the module docstring for the grid, the weights and the df.
    """
    L = reference_rows(res, focal)
    C = L.to_numpy()
    estimate = C @ res.beta
    if robust is None:
        vb = res.vb
        df = np.full(len(C), np.inf if res.ddf is None else float(res.ddf))
        inference = "model"
    else:
        if robust.beta.shape != res.beta.shape or not np.allclose(robust.beta, res.beta):
            raise AnalysisError("The robust result belongs to another fit than this one.")
        vb = robust.vcov
        df = contrast_df(robust.core, C)  # each mean's own Satterthwaite df
        inference = robust.method
    se = np.sqrt(np.einsum("ij,jk,ik->i", C, vb, C))
    upper = 1.0 - (1.0 - res.level) / 2.0
    crit = np.where(np.isinf(df), special.ndtri(upper), special.stdtrit(df, upper))
    # An equal-effects model assumes no heterogeneity: no prediction interval (metafor: NA).
    pi_se = np.sqrt(se**2 + res.total_heterogeneity) if res.method != "EE" else np.nan
    table = pd.DataFrame(
        {
            "estimate": estimate,
            "r": z_to_r(estimate),
            "se": se,
            "df": df,
            "ci_lb": estimate - crit * se,
            "ci_ub": estimate + crit * se,
            "pi_lb": estimate - crit * pi_se,
            "pi_ub": estimate + crit * pi_se,
        },
        index=L.index,
    )
    for bound in ("ci_lb", "ci_ub", "pi_lb", "pi_ub"):
        table[f"r_{bound}"] = z_to_r(table[bound].to_numpy())
    levels = res.data[focal].map(str)
    if pd.api.types.is_bool_dtype(res.data[focal]):
        levels = res.data[focal].map({True: "TRUE", False: "FALSE"})
    table["k"] = [int((levels == level).sum()) for level in L.index]
    return MarginalMeans(focal, inference, res.level, table, L)
