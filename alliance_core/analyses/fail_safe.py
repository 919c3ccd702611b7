"""Fail-safe N: how many unpublished null results would overturn a finding (metafor ``fsn``).

* Rosenthal (1979): the number of additional effect sizes with z = 0 that would bring
  Stouffer's combined one-sided z = sum(z_i) / sqrt(k) down to z_(1-alpha):
  N = k (z_avg / z_(1-alpha))^2 - k, with z_i = y_i / sqrt(v_i) and z_avg = |sum z_i| / sqrt(k).
* Orwin (1983): the number of effect sizes of size 0 that would bring the unweighted mean
  effect m down to a ``target`` (default m / 2): N = k (m - target) / target.
* Rosenberg (2005): the number of effect sizes of size 0, with the average weight, that would
  make the inverse-variance weighted mean non-significant in a two-sided z test at
  ``alpha``: N = k [(sum w_i y_i / z_(1-alpha/2))^2 - sum w_i] / sum w_i, w_i = 1 / v_i.

N is rounded up to a whole number (metafor's rule: up, unless within sqrt(eps) of an integer),
and never below 0.

Caveats, said in ``describe()``: a fail-safe N assumes the missing studies average exactly
zero (or the target), ignores heterogeneity (every version treats the effect sizes as one
homogeneous, independent set, so dependent effect sizes inflate it), and answers a question
about statistical significance, not about the size of the effect; Rosenthal's and Rosenberg's
grow with k whatever the bias. It is no test of publication bias and no correction for it:
a selection model or the small-study tests say more (Becker, 2005; Borenstein et al., 2009).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from alliance_core.data.effect_sizes import transf
from alliance_core.errors import AnalysisError
from alliance_core.formatting import format_number
from alliance_core.model.results import MetaResult

TYPES = ("Rosenthal", "Orwin", "Rosenberg")
CAVEAT = (
    "A fail-safe N assumes the missing results average exactly zero, ignores heterogeneity and "
    "dependence among effect sizes, and grows with the number of effect sizes whatever the "
    "bias: it is neither a test of publication bias nor a correction for it."
)


@dataclass(frozen=True)
class FailSafeN:
    """A fail-safe N (metafor ``fsn``): ``fsnum`` and what it was computed from.

    ``pval``: the one-sided Stouffer p-value (Rosenthal) or the two-sided p-value of the
    weighted mean (Rosenberg); ``meanes``: the mean effect (unweighted for Orwin, weighted for
    Rosenberg); ``target``: Orwin's target mean; NaN where a field does not apply.
    ``target_given``: Orwin's target was chosen by the caller (False: half the mean).
    """

    type: str
    fsnum: float
    alpha: float
    pval: float
    meanes: float
    target: float
    k: int
    target_given: bool = False

    def describe(self, transform: str | None = None, caveat: bool = True) -> str:
        """The number in words, with what it cannot tell (:data:`CAVEAT`, unless ``caveat`` is
        False because it is said once elsewhere); ``transform="r"`` shows Orwin's means as r."""
        n = "infinitely many" if np.isinf(self.fsnum) else f"{int(self.fsnum):,}"
        if self.type == "Orwin":
            chosen = (
                "the target chosen" if self.target_given else "the default target, half the average"
            )
            what = (
                f"{n} unpublished effect sizes of zero would bring the unweighted average effect "
                f"({_mean(self.meanes, transform)}) down to {_mean(self.target, transform)} "
                f"(Orwin's fail-safe N; {chosen})."
            )
        elif self.type == "Rosenthal":
            what = (
                f"{n} unpublished effect sizes averaging zero would make the combined "
                f"result non-significant at one-sided alpha = {self.alpha:g} "
                "(Rosenthal's fail-safe N)."
            )
        else:
            what = (
                f"{n} unpublished effect sizes of zero would make the weighted average "
                f"effect non-significant at alpha = {self.alpha:g} (Rosenberg's fail-safe N)."
            )
        return f"{what} {CAVEAT}" if caveat else what


def _mean(value: float, transform: str | None) -> str:
    shown = format_number(float(transf(np.asarray(value), transform)), 3)
    # A correlation as r is written without its leading zero, as everywhere on the pages.
    return "r = " + shown.replace("0.", ".", 1) if transform == "r" else shown


def fsn(
    data: MetaResult | pd.DataFrame,
    type: str = "Rosenthal",  # noqa: A002 - metafor's argument name
    alpha: float = 0.05,
    target: float | None = None,
    yi: str = "yi",
    vi: str = "vi",
    weighted: bool = False,
) -> FailSafeN:
    """Fail-safe N of the effect sizes of a fit (its analysed rows) or of a data frame with
    ``yi`` and ``vi`` columns, as metafor's ``fsn(yi, vi, type = ..., alpha = ...,
    target = ...)``. ``weighted`` (Orwin only) uses the inverse-variance weighted mean."""
    if type not in TYPES:
        raise AnalysisError(f"Unknown fail-safe N '{type}'; choose one of {', '.join(TYPES)}.")
    if not 0 < alpha < 1:
        raise AnalysisError("alpha must lie strictly between 0 and 1.")
    if isinstance(data, MetaResult):
        y = data.inputs.y
        v = data.inputs.v
    else:
        missing = [c for c in (yi, vi) if c not in data.columns]
        if missing:
            raise AnalysisError(f"Column(s) {', '.join(missing)} not in the data.")
        frame = data[[yi, vi]].apply(pd.to_numeric, errors="coerce").dropna()
        y, v = frame[yi].to_numpy(float), frame[vi].to_numpy(float)
    k = len(y)
    if k == 0:
        raise AnalysisError("A fail-safe N needs at least one effect size.")
    needs_v = type != "Orwin" or weighted
    if needs_v and np.any(v <= 0):
        raise AnalysisError("Every sampling variance must be positive for this fail-safe N.")
    nan = float("nan")
    if type == "Rosenthal":
        z_avg = abs(np.sum(y / np.sqrt(v))) / np.sqrt(k)
        pval = float(special.ndtr(-z_avg))
        number = max(0.0, k * (z_avg / special.ndtri(1 - alpha)) ** 2 - k)
        return FailSafeN(type, _round_up(number), alpha, pval, nan, nan, k)
    if type == "Orwin":
        meanes = float(np.average(y, weights=1 / v) if weighted else np.mean(y))
        goal = meanes / 2 if target is None else float(target)
        if goal == 0:
            number = float("inf")
        else:
            if np.sign(goal) != np.sign(meanes):
                goal = -goal  # metafor: the target lies on the side of the mean
            number = max(0.0, k * (meanes - goal) / goal)
        return FailSafeN(type, _round_up(number), alpha, nan, meanes, goal, k, target is not None)
    w = 1 / v
    meanes = float(np.sum(w * y) / np.sum(w))
    z = meanes * np.sqrt(np.sum(w))
    pval = float(2 * special.ndtr(-abs(z)))
    extra = (np.sum(w * y) / special.ndtri(1 - alpha / 2)) ** 2 - np.sum(w)
    number = max(0.0, k * extra / np.sum(w))
    return FailSafeN(type, _round_up(number), alpha, pval, meanes, nan, k)


def fail_safe_numbers(
    res: MetaResult, target: float | None = None, alpha: float = 0.05
) -> tuple[FailSafeN, ...]:
    """Rosenthal's, Orwin's (with ``target``; default half the mean) and Rosenberg's fail-safe
    N of a fit's analysed effect sizes, as the Publication bias page shows them."""
    return tuple(
        fsn(res, type=kind, alpha=alpha, target=target if kind == "Orwin" else None)
        for kind in TYPES
    )


def _round_up(number: float) -> float:
    """Up to the next whole effect size, unless the number is an integer up to rounding."""
    if np.isinf(number):
        return number
    nearest = round(number)
    return float(
        nearest if abs(number - nearest) < np.sqrt(np.finfo(float).eps) else np.ceil(number)
    )
