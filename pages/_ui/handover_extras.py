"""What the pages computed beyond the state's two models, for the downloads and the report.

The Publication bias page's cut choice, the Moderators page's comparison table and
heterogeneity (location-scale) model when the reader opened them, and the cluster wild
bootstrap tests the reader ran for this state: the results file, both reproduction zips and
the report then hold the same numbers the pages showed. The choices and the bootstrap
results are read once, when the page runs (downloads are made later, on a click, without
the session).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import streamlit as st

from alliance_core.analyses.model_comparison import ModelComparison, model_comparison, refit_with
from alliance_core.analyses.run import AnalysisRun
from alliance_core.analyses.selection import THREE_PSM, TWO_CUTS
from alliance_core.errors import AnalysisError
from alliance_core.handover.bias_results import PublicationBias, state_publication_bias
from alliance_core.model.location_scale import LocationScaleResult
from alliance_core.model.wild_bootstrap import WildBootstrapResult
from pages._ui import loading

CUT_CHOICES = ("3PSM (.025)", "Two cuts (.025 and .5)")
# Cut choice -> its name in a link (cuts=...); the 3PSM, the default, stays out of the link.
CUT_LINK_NAMES = {CUT_CHOICES[0]: "3psm", CUT_CHOICES[1]: "two"}
CUTS_KEY = "funnel:cuts"
COMPARE_KEY = "means:compare"
SCALE_KEY = "tau2:on"
# The Moderators page's wild bootstrap results: (data key, analysis key, test label) -> result.
WILD_KEY = "cwb:results"


def chosen_steps() -> tuple[float, ...]:
    """The Publication bias page's cuts (the 3PSM until the reader chooses two cuts)."""
    return (
        THREE_PSM if st.session_state.get(CUTS_KEY, CUT_CHOICES[0]) == CUT_CHOICES[0] else TWO_CUTS
    )


def heterogeneity_eligible(run: AnalysisRun) -> bool:
    """The location-scale model needs a two-level model fitted by ML or REML, and PTR."""
    res = run.result
    return run.ptr_column is not None and not res.is_three_level and res.method in ("ML", "REML")


def heterogeneity_model(run: AnalysisRun) -> LocationScaleResult:
    """τ² as exp(α0 + α1 PTR) beside the sidebar model's moderators (the Moderators page's)."""
    res = run.result
    return refit_with(res, list(res.design.term_labels), res.method, scale=[run.ptr_column])


@dataclass(frozen=True)
class Extras:
    """The page choices the hand-over follows: cuts, whether the comparison table and the
    heterogeneity model were opened, and the state's wild bootstrap results (label -> result,
    in the order they were run)."""

    steps: tuple[float, ...]
    comparison: bool
    heterogeneity: bool
    wild_bootstrap: Mapping[str, WildBootstrapResult] = field(default_factory=dict)

    @property
    def key(self) -> str:
        wild = tuple(
            (label, cwb.R, cwb.seed, cwb.type, cwb.statistic, cwb.pval)
            for label, cwb in self.wild_bootstrap.items()
        )
        return f"{self.steps}:{self.comparison}:{self.heterogeneity}:{wild}"


def state_wild_bootstrap(ctx: loading.Context) -> dict[str, WildBootstrapResult]:
    """The wild bootstrap tests run for the current state (data and analysis), by label."""
    state_key = (ctx.data.key, loading.analysis_key(ctx.settings))
    store = st.session_state.get(WILD_KEY) or {}
    return {key[2]: cwb for key, cwb in store.items() if tuple(key[:2]) == state_key}


def requested(ctx: loading.Context) -> Extras:
    ss = st.session_state
    return Extras(
        chosen_steps(),
        bool(ss.get(COMPARE_KEY)),
        bool(ss.get(SCALE_KEY)),
        state_wild_bootstrap(ctx),
    )


def publication_bias(ctx: loading.Context, steps: tuple[float, ...]) -> PublicationBias:
    """The state's publication-bias results with the page's cached tests and selection model."""
    current = loading.state(ctx)
    selection, _ = loading.selection_model(ctx, current.pooled.result, steps)
    return state_publication_bias(
        current, steps, selection=selection, tests=loading.bias_tests(ctx)
    )


def comparison(run: AnalysisRun, extras: Extras) -> ModelComparison | None:
    if not extras.comparison or run.result.p < 2:
        return None
    try:
        return model_comparison(run.result)
    except AnalysisError:
        return None  # the page shows why; the hand-over leaves the table out


def heterogeneity(run: AnalysisRun, extras: Extras) -> LocationScaleResult | None:
    if not extras.heterogeneity or not heterogeneity_eligible(run):
        return None
    try:
        return heterogeneity_model(run)
    except AnalysisError:
        return None


def wild_bootstrap(run: AnalysisRun, extras: Extras) -> Mapping[str, WildBootstrapResult] | None:
    """The state's wild bootstrap tests of ``run`` (a model with moderators), None without."""
    if not extras.wild_bootstrap or run.result.p < 2:
        return None
    return extras.wild_bootstrap
