"""Step-function selection models for publication bias (Vevea & Hedges, 1995).

Effect size i is observed with a probability that depends only on its one-sided p-value
p_i = 1 - Phi(y_i / sqrt(v_i)) (the "greater" side: selection favours positive, significant
effects). Cuts 0 < a_1 < ... < a_{N-1} < a_N = 1 split the p-values into N intervals with
relative selection weights delta_1 = 1 (the most significant interval, the reference),
delta_2, ..., delta_N. Under the random-effects model y_i ~ N(x_i'beta, v_i + tau2) the density
of an observed effect size is

    f(y_i) = delta_{g(i)} phi(y_i; mu_i, eta_i^2) / A_i,
    A_i = sum_j delta_j P_ij,   mu_i = x_i'beta,   eta_i^2 = v_i + tau2,

where g(i) is the interval of p_i and P_ij the probability, under the model without
selection, that effect size i falls in interval j: with c_ij = sqrt(v_i) Phi^-1(1 - a_j) (the
effect size at which p = a_j) and b_ij = (c_ij - mu_i) / eta_i, P_i1 = 1 - Phi(b_i1),
P_ij = Phi(b_i,j-1) - Phi(b_ij), P_iN = Phi(b_i,N-1). The 3PSM is one cut at a_1 = .025.

* Effect sizes treated as independent (``cluster=None``): maximum likelihood as metafor's
  ``selmodel(fit, type = "stepfun", steps = ...)`` (Viechtbauer 2010; metafor 3.8), with
  standard errors from the inverse Hessian of the log-likelihood in (beta, tau2, delta),
  z tests, Wald intervals (delta's bounded below at 0), and the likelihood-ratio test of
  delta_2 = ... = delta_N = 1 against the ML fit without selection.
* Dependent effect sizes (``cluster="study"``): the same likelihood summed over every effect
  size is a composite marginal likelihood (one tau2); its maximiser is consistent and its
  cluster-robust sandwich H^-1 (sum_c s_c s_c') H^-1, with s_c a cluster's summed scores,
  gives the standard errors (Pustejovsky, Citkowicz & Joshi, 2025; metaselection's
  ``selection_model(..., estimator = "CML", vcov_type = "robust")``). As there, tau2 and the
  deltas are inferred on the log scale: SE(log tau2) from the sandwich, the interval
  exp(log tau2 +/- z SE), and SE(tau2) = tau2 SE(log tau2) by the delta method.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special

from alliance_core.analyses.selection_bootstrap import SelectionBootstrap, cluster_bootstrap
from alliance_core.analyses.selection_likelihood import (
    AT_LOWER,
    AT_UPPER,
    DELTA_MAX,
    Maximum,
    Parameters,
    StepData,
    hessian,
    loglik_terms,
    maximise,
    step_data,
)
from alliance_core.data.effect_sizes import transf
from alliance_core.errors import AnalysisError
from alliance_core.formatting import format_number, format_p
from alliance_core.model.results import MetaResult

# the 3PSM and the two-cut model offered by the dashboard
THREE_PSM = (0.025,)
TWO_CUTS = (0.025, 0.5)

MODEL_BASED = "model-based"
ROBUST = "robust"


# -- the result ----------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SelectionResult:
    """A fitted step-function selection model.

    ``coefficients``: the adjusted mean (meta-regression) coefficients, columns estimate, se,
    zval, pval, ci_lb, ci_ub. ``delta``: one row per p-value interval (the first, the most
    significant, fixed at 1): estimate, se, zval and pval (of delta = 1), ci_lb, ci_ub, k
    (effect sizes) and, with a cluster, clusters (clusters with an effect size there).
    ``LRT``: likelihood-ratio test of no selection (all deltas 1) on ``LRT_df`` df
    (independent effect sizes only; NaN for the composite likelihood, which is no likelihood
    to compare). ``vcov_type``: "model-based" (inverse Hessian) or "robust" (sandwich by
    ``cluster``).
    """

    steps: tuple[float, ...]
    k: int
    level: float
    coefficients: pd.DataFrame
    beta: np.ndarray
    vb: np.ndarray
    tau2: float
    se_tau2: float
    tau2_ci: tuple[float, float]
    tau2_fixed: bool
    delta: pd.DataFrame
    vcov: np.ndarray  # of all free parameters, natural scale (beta, tau2, delta_2..N)
    LRT: float
    LRT_df: int
    LRT_pval: float
    loglik: float
    loglik0: float
    QM: float | None
    QM_df: int | None
    QM_pval: float | None
    vcov_type: str
    cluster: str | None
    n_clusters: int | None
    unadjusted: MetaResult = field(repr=False)
    bootstrap: SelectionBootstrap | None = None
    notes: tuple[str, ...] = ()

    @property
    def estimate(self) -> float:
        """The adjusted average effect (intercept) in the model's metric."""
        return float(self.beta[0])

    def summary(self) -> str:
        return format_selection_summary(self)

    def describe(
        self,
        transform: str | None = None,
        unadjusted_interval: tuple[float, float] | None = None,
        interval_words: str | None = None,
    ) -> str:
        """The adjusted average effect beside the unadjusted one, the estimated weights and
        the test of selection, in words (``transform="r"``: estimates as correlations).
        Only for a model without moderators, whose intercept is the average effect.

        ``unadjusted_interval`` (on the model's scale) replaces the unadjusted fit's own,
        model-based, interval by the one the analysis reports (e.g. its CR2 interval), and
        ``interval_words`` says which inference it uses: a page shows one interval for the
        unadjusted average, not two."""
        unadjusted = self.unadjusted.coefficients.iloc[0].copy()
        if unadjusted_interval is not None:
            unadjusted["ci_lb"], unadjusted["ci_ub"] = unadjusted_interval
        adjusted = self.coefficients.iloc[0]
        symbol = "r" if transform == "r" else "the estimate"

        def show(row) -> str:
            values = [row["estimate"], row["ci_lb"], row["ci_ub"]]
            if transform == "r":
                values = transf(np.asarray(values, float), "r")
            e, lo, hi = (format_number(v, 2) for v in values)
            if transform == "r":
                e, lo, hi = (v.replace("0.", ".", 1) for v in (e, lo, hi))
            return f"{e}, {percent(self.level)} CI [{lo}, {hi}]"

        cuts = ", ".join(f"{s:g}" for s in self.steps[:-1])
        kind = "3PSM" if self.steps[:-1] == THREE_PSM else "step-function selection model"
        text = (
            f"Adjusted for selection ({kind}; cut{'s' if len(self.steps) > 2 else ''} at "
            f"one-sided p = {cuts}), the average effect is {symbol} = {show(adjusted)}, "
            f"against {show(unadjusted)} without adjustment"
            + (f" ({interval_words})." if interval_words else ".")
        )
        weights = []
        for label, row in self.delta.iloc[1:].iterrows():
            weights.append(
                f"effect sizes with {label} are published {format_number(row['estimate'], 2)} "
                f"times as often as those with p <= {self.steps[0]:g} "
                f"({percent(self.level)} CI [{format_number(row['ci_lb'], 2)}, "
                f"{format_number(row['ci_ub'], 2)}])"
            )
        text += " Estimated selection: " + "; ".join(weights) + "."
        if self.vcov_type == ROBUST:
            text += (
                f" Standard errors are cluster-robust over {self.n_clusters} clusters "
                "(composite likelihood of all effect sizes), so there is no "
                "likelihood-ratio test of selection."
            )
        else:
            text += (
                f" Test of selection: chi-square({self.LRT_df}) = "
                f"{format_number(self.LRT, 2)}, {format_p(self.LRT_pval)}."
            )
        return text

    def _repr_html_(self) -> str:
        head = html.escape(_title(self))
        parts = [f"<p><b>{head}</b></p>", self.coefficients.to_html(float_format=_fmt)]
        parts.append(
            f"<p>tau&sup2; = {self.tau2:.4f} (SE = {_fmt(self.se_tau2)})</p>"
            + self.delta.to_html(float_format=_fmt)
        )
        if np.isfinite(self.LRT):
            parts.append(
                f"<p>Test for selection: LRT(df = {self.LRT_df}) = {self.LRT:.4f}, "
                f"p = {html.escape(_p(self.LRT_pval))}</p>"
            )
        for note in self.notes:
            parts.append(f"<p>{html.escape(note)}</p>")
        return "\n".join(parts)

    def __repr__(self) -> str:
        return (
            f"<SelectionResult steps={list(self.steps)} k={self.k} "
            f"estimate={self.estimate:.4g} tau2={self.tau2:.4g} vcov={self.vcov_type}>"
        )


def percent(level: float) -> str:
    return f"{100 * level:g}%"


def _fmt(value) -> str:
    return "NA" if value is None or not np.isfinite(value) else f"{value:.4f}"


def _p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "NA"
    return "<.0001" if p < 1e-4 else f"{p:.4f}"


def _title(sel: SelectionResult) -> str:
    cuts = ", ".join(f"{s:g}" for s in sel.steps[:-1])
    kind = "3PSM" if len(sel.steps) == 2 and sel.steps[0] == 0.025 else "step-function model"
    base = f"Selection model ({kind}; one-sided p-value cuts: {cuts}; k = {sel.k}"
    if sel.cluster is not None:
        base += f", {sel.n_clusters} clusters, cluster-robust SEs"
    return base + ")"


def interval_labels(steps: Sequence[float]) -> list[str]:
    """ "0 < p <= .025", ".025 < p <= 1", ... for the p-value intervals of ``steps``."""
    lows = [0.0, *steps[:-1]]
    return [f"{lo:g} < p <= {hi:g}" for lo, hi in zip(lows, steps, strict=True)]


def format_selection_summary(sel: SelectionResult) -> str:
    lines = [_title(sel), ""]
    if sel.tau2_fixed:
        lines.append("  tau^2 fixed at 0 (equal-effects model)")
    else:
        lines.append(
            f"  tau^2 (estimated amount of heterogeneity) = {sel.tau2:.6f} (SE = {_fmt(sel.se_tau2)})"
        )
    if np.isfinite(sel.LRT):
        lines.append(
            f"  Test for selection: LRT(df = {sel.LRT_df}) = {sel.LRT:.4f}, p = {_p(sel.LRT_pval)}"
        )
    if sel.QM is not None:
        lines.append(
            f"  Test of moderators: QM(df = {sel.QM_df}) = {sel.QM:.4f}, p = {_p(sel.QM_pval)}"
        )
    lines.append(f"  logLik = {sel.loglik:.4f}")
    lines.append("")
    lines.append("Model results:")
    lines.append(sel.coefficients.to_string(float_format=_fmt))
    lines.append("")
    lines.append("Selection weights (relative likelihood of selection by p-value interval):")
    lines.append(sel.delta.to_string(float_format=_fmt))
    for note in sel.notes:
        lines.append(note)
    return "\n".join(lines)


# -- the verb ------------------------------------------------------------------------------
def selmodel(
    res: MetaResult,
    steps: Sequence[float] = THREE_PSM,
    cluster: str | None = None,
    bootstrap: str | None = None,
    R: int = 1999,
    seed: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SelectionResult:
    """Fit a step-function selection model (Vevea & Hedges 1995) to the data and mean model
    (moderators) of ``res``.

    ``steps``: cuts on the one-sided p-value scale (the 3PSM: ``[0.025]``; two cuts:
    ``[0.025, 0.5]``). ``cluster=None``: effect sizes treated as independent, maximum
    likelihood with model-based SEs, as metafor's ``selmodel(fit, type = "stepfun")``; ``res``
    must then be a two-level fit (an equal-effects ``res`` holds tau2 at 0). ``cluster="study"``
    (any fit, including the three-level CHE model: its effect sizes and moderators are used):
    composite marginal likelihood over all effect sizes with cluster-robust sandwich SEs, as
    metaselection's ``selection_model(..., estimator = "CML", vcov_type = "robust")``;
    ``bootstrap="multinomial"`` then adds cluster-bootstrap percentile intervals from ``R``
    resamples of the clusters, reproducible by ``seed``, calling ``progress(done, R)``.

    Raises AnalysisError when an interval holds no effect size, a weight runs to its bound,
    or there are fewer effect sizes than parameters.
    """
    cuts = _check_steps(steps)
    if cluster is None and res.is_three_level:
        raise AnalysisError(
            "This is a three-level model: its effect sizes are not independent. Fit the "
            "selection model with cluster='study' (cluster-robust standard errors), or to a "
            "two-level model of one effect per study."
        )
    if res.method not in ("EE", "ML", "REML", "DL", "HE", "PM", "SJ"):
        raise AnalysisError(f"A selection model cannot start from a '{res.method}' fit.")
    inputs = res.inputs
    y, v, X = inputs.y, inputs.v, inputs.X
    if np.any(v <= 0):
        raise AnalysisError(
            "A selection model needs every sampling variance to be positive; "
            f"{int(np.sum(v <= 0))} are not."
        )
    clusters = None
    if cluster is not None:
        if cluster not in res.data.columns:
            raise AnalysisError(f"The cluster column '{cluster}' is not in the analysed data.")
        clusters = pd.factorize(res.data[cluster])[0]
        if len(np.unique(clusters)) < 3:
            raise AnalysisError(
                "Cluster-robust standard errors need at least three clusters; "
                f"the data have {len(np.unique(clusters))}."
            )
    elif bootstrap is not None:
        raise AnalysisError("A cluster bootstrap needs a cluster: pass cluster='study'.")
    tau2_fixed = 0.0 if res.method == "EE" else None
    intervals = len(cuts) + 1
    spec = Parameters(X.shape[1], intervals, tau2_fixed)
    if res.k < spec.size:
        raise AnalysisError(
            f"{res.k} effect sizes are too few to estimate a selection model with "
            f"{spec.size} parameters ({X.shape[1]} coefficients, "
            f"{'' if tau2_fixed is not None else 'tau2, '}{intervals - 1} weights)."
        )
    data = step_data(y, v, X, cuts)
    counts = np.bincount(data.group, minlength=data.intervals)
    labels = interval_labels(list(data.steps))
    empty = [labels[j] for j in range(data.intervals) if counts[j] == 0]
    if empty:
        raise AnalysisError(
            "No effect size has a one-sided p-value in "
            + ", ".join(empty)
            + f", so {'its selection weight' if len(empty) == 1 else 'their selection weights'} "
            "cannot be estimated. Choose fewer or other cuts "
            "(for example the 3PSM's single cut at .025)."
        )
    start0 = np.concatenate([res.beta, [] if tau2_fixed is not None else [res.total_heterogeneity]])
    null = maximise(data, Parameters(spec.p, data.intervals, tau2_fixed, selection=False), start0)
    best = maximise(data, spec, np.concatenate([null.theta, np.ones(data.intervals - 1)]))
    _, tau2, delta = spec.unpack(best.theta)
    _check_bounds(delta, labels)
    inv_info = _inverse_information(best, data, spec)
    if clusters is None:
        vcov = inv_info
        vcov_type = MODEL_BASED
    else:
        _, scores = loglik_terms(best.theta, data, spec)
        per_cluster = np.zeros((clusters.max() + 1, spec.size))
        np.add.at(per_cluster, clusters, scores)
        # tau2 at its bound: the sandwich of the other parameters (NaN rows drop out)
        kept = np.isfinite(np.diag(inv_info))
        vcov = np.full_like(inv_info, np.nan)
        bread = inv_info[np.ix_(kept, kept)]
        meat = per_cluster[:, kept].T @ per_cluster[:, kept]
        vcov[np.ix_(kept, kept)] = bread @ meat @ bread
        vcov_type = ROBUST
    boot = None
    if bootstrap is not None:
        if bootstrap != "multinomial":
            raise AnalysisError(
                f"Unknown bootstrap '{bootstrap}'; the cluster bootstrap is 'multinomial'."
            )
        if int(R) < 1:
            raise AnalysisError("The cluster bootstrap needs R >= 1 replicates.")
        names = [*res.design.names] + (["tau2"] if tau2_fixed is None else []) + labels[1:]
        boot = cluster_bootstrap(
            data, spec, best.theta, clusters, names, res.level, int(R), seed, progress
        )
    return _result(
        res, data, spec, best, null, vcov, vcov_type, counts, labels, cluster, clusters, boot
    )


def _inverse_information(best: Maximum, data: StepData, spec: Parameters) -> np.ndarray:
    """(-H)^-1 at the maximum. With tau2 at its bound 0 the likelihood is not flat there, so
    its row is left out: the other parameters' covariance is conditional on tau2 = 0, and
    tau2's is NaN (metafor's numerical Hessian at log tau2 near -23 gives the same
    conditional values for the others and an unstable number for tau2)."""
    H = hessian(best.theta, data, spec, best.tau2_at_zero)
    kept = np.ones(spec.size, bool)
    if best.tau2_at_zero:
        kept[spec.p] = False
    out = np.full_like(H, np.nan)
    try:
        out[np.ix_(kept, kept)] = np.linalg.inv(-H[np.ix_(kept, kept)])
    except np.linalg.LinAlgError as error:
        raise AnalysisError(
            "The selection model's information matrix is singular: its parameters are not "
            "identified by these data. Choose fewer cuts."
        ) from error
    if np.any(np.diag(out)[kept] <= 0):
        raise AnalysisError(
            "The selection model's likelihood is not curved at its maximum in every "
            "direction, so no standard errors can be given. Choose fewer cuts."
        )
    return out


def _check_steps(steps) -> np.ndarray:
    try:
        cuts = np.unique(np.asarray(list(steps), float))
    except (TypeError, ValueError) as error:
        raise AnalysisError("The cuts (steps) must be numbers between 0 and 1.") from error
    cuts = cuts[cuts != 1.0]
    if len(cuts) == 0 or not np.all((cuts > 0) & (cuts < 1)):
        raise AnalysisError(
            "The cuts (steps) must be one or more one-sided p-values strictly between 0 and 1, "
            "such as 0.025."
        )
    return cuts


def _check_bounds(delta: np.ndarray, labels: list[str]) -> None:
    low = [labels[j] for j in range(1, len(delta)) if delta[j] <= AT_LOWER]
    high = [labels[j] for j in range(1, len(delta)) if delta[j] >= DELTA_MAX - AT_UPPER]
    if low or high:
        where = ", ".join(low + high)
        bound = (
            "0 (no such effect size would ever be published)"
            if low
            else f"its upper bound {DELTA_MAX:g}"
        )
        raise AnalysisError(
            f"The selection weight of {where} ran to {bound}: the data cannot estimate it. "
            "Choose other cuts (or fewer), or report the model without a selection "
            "adjustment."
        )


def _result(res, data, spec, best, null, vcov, vcov_type, counts, labels, cluster, clusters, boot):
    beta, tau2, delta = spec.unpack(best.theta)
    p = spec.p
    crit = float(special.ndtri(1.0 - (1.0 - res.level) / 2.0))
    se = np.sqrt(np.diag(vcov)[:p])
    z = beta / se
    coefficients = pd.DataFrame(
        {
            "estimate": beta,
            "se": se,
            "zval": z,
            "pval": 2 * special.ndtr(-np.abs(z)),
            "ci_lb": beta - crit * se,
            "ci_ub": beta + crit * se,
        },
        index=pd.Index(res.design.names, name="term"),
    )
    diag = np.diag(vcov)
    at = p
    if spec.tau2_fixed is None:
        se_tau2 = float(np.sqrt(diag[at]))
        at += 1
    else:
        se_tau2 = float("nan")
    se_delta = np.concatenate([[np.nan], np.sqrt(diag[at:])])
    robust = vcov_type == ROBUST
    if robust:
        # metaselection infers tau2 and the deltas on the log scale
        with np.errstate(divide="ignore", invalid="ignore"):
            # tau2 at its bound 0 has no log scale (and no standard error)
            log_se_tau2 = se_tau2 / tau2 if tau2 > 0 else float("nan")
            log_se = se_delta / delta
        tau2_ci = (tau2 * np.exp(-crit * log_se_tau2), tau2 * np.exp(crit * log_se_tau2))
        ci_lb = delta * np.exp(-crit * log_se)
        ci_ub = delta * np.exp(crit * log_se)
        zval = np.log(delta) / log_se
    else:
        tau2_ci = (max(0.0, tau2 - crit * se_tau2), tau2 + crit * se_tau2)
        ci_lb = np.maximum(delta - crit * se_delta, 0.0)
        ci_ub = delta + crit * se_delta
        zval = (delta - 1.0) / se_delta
    delta_table = pd.DataFrame(
        {
            "estimate": delta,
            "se": se_delta,
            "zval": zval,
            "pval": 2 * special.ndtr(-np.abs(zval)),
            "ci_lb": ci_lb,
            "ci_ub": ci_ub,
            "k": counts,
        },
        index=pd.Index(labels, name="interval"),
    )
    if clusters is not None:
        # how many clusters contribute a p-value to each interval (metaselection's m)
        delta_table["clusters"] = [
            len(np.unique(clusters[data.group == j])) for j in range(data.intervals)
        ]
    if boot is not None:
        # percentile intervals beside the large-sample ones
        coefficients["boot_lb"] = boot.intervals["ci_lb"].to_numpy()[:p]
        coefficients["boot_ub"] = boot.intervals["ci_ub"].to_numpy()[:p]
        delta_table["boot_lb"] = [np.nan, *boot.intervals["ci_lb"].to_numpy()[-(len(delta) - 1) :]]
        delta_table["boot_ub"] = [np.nan, *boot.intervals["ci_ub"].to_numpy()[-(len(delta) - 1) :]]
    if robust:
        lrt, lrt_df, lrt_p = float("nan"), data.intervals - 1, float("nan")
    else:
        lrt = max(0.0, 2.0 * (best.loglik - null.loglik))
        lrt_df = data.intervals - 1
        lrt_p = float(special.chdtrc(lrt_df, lrt))
    slopes = [i for i, name in enumerate(res.design.names) if name != "intrcpt"]
    QM = QM_df = QM_p = None
    if p > 1 and slopes:
        b = beta[slopes]
        try:
            QM = float(b @ np.linalg.solve(vcov[np.ix_(slopes, slopes)], b))
            QM_df = len(slopes)
            QM_p = float(special.chdtrc(QM_df, QM))
        except np.linalg.LinAlgError:
            QM = None
    notes = []
    if not best.converged:
        notes.append("The optimiser did not fully converge; treat the estimates with caution.")
    if best.tau2_at_zero:
        notes.append(
            "tau^2 is estimated at its bound 0: it has no standard error, and the other "
            "standard errors are conditional on tau^2 = 0."
        )
    return SelectionResult(
        steps=tuple(float(s) for s in data.steps),
        k=len(data.y),
        level=res.level,
        coefficients=coefficients,
        beta=beta.copy(),
        vb=vcov[:p, :p].copy(),
        tau2=float(tau2),
        se_tau2=se_tau2,
        tau2_ci=tuple(float(x) for x in tau2_ci),
        tau2_fixed=spec.tau2_fixed is not None,
        delta=delta_table,
        vcov=vcov,
        LRT=lrt,
        LRT_df=lrt_df,
        LRT_pval=lrt_p,
        loglik=best.loglik,
        loglik0=null.loglik,
        QM=QM,
        QM_df=QM_df,
        QM_pval=QM_p,
        vcov_type=vcov_type,
        cluster=cluster,
        n_clusters=None if clusters is None else int(clusters.max() + 1),
        unadjusted=res,
        bootstrap=boot,
        notes=tuple(notes),
    )
