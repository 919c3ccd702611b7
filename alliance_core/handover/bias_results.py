"""The publication-bias results a state hands over: its selection model and fail-safe N.

:func:`publication_bias` fits them once from the state's pooled model, as the Publication bias
page does (the step-function selection model with the page's cuts, the 3PSM by default,
cluster-robust by study for a three-level model; the three fail-safe Ns), together with the
small-study tests the page's verdict reads. :func:`bias_rows` writes them as rows of the
results file; the report and the reproduction scripts read the same object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alliance_core.analyses.bias_tests import (
    BiasTests,
    bias_tests_of,
    run_bias_tests,
    selection_cluster,
)
from alliance_core.analyses.fail_safe import TYPES, FailSafeN, fsn
from alliance_core.analyses.run import AnalysisRun
from alliance_core.analyses.selection import (
    ROBUST,
    THREE_PSM,
    SelectionResult,
    selmodel,
)
from alliance_core.analyses.state import AnalysisState
from alliance_core.data.effect_sizes import transf
from alliance_core.errors import AnalysisError
from alliance_core.model.results import MetaResult

SELECTION_SECTION = "selection model"
ROBUST_SELECTION_SECTION = "selection model (cluster-robust)"
FAIL_SAFE_SECTION = "fail-safe N"
BIAS_SECTIONS = (SELECTION_SECTION, ROBUST_SELECTION_SECTION, FAIL_SAFE_SECTION)
# publication_bias(cluster=OWN_CLUSTER): the pooled model's own cluster (None means none).
OWN_CLUSTER = object()


@dataclass(frozen=True, eq=False)
class PublicationBias:
    """The selection model (or why it could not be fitted), the fail-safe Ns and the
    small-study tests of one pooled model."""

    pooled: MetaResult
    steps: tuple[float, ...]  # the cuts asked for (without the final 1)
    selection: SelectionResult | None
    selection_problem: str | None
    fail_safe: tuple[FailSafeN, ...]
    fail_safe_problem: str | None
    tests: BiasTests

    @property
    def clustered(self) -> bool:
        """The selection model is the composite-likelihood one with cluster-robust SEs."""
        return self.selection is not None and self.selection.vcov_type == ROBUST


def publication_bias(
    pooled: AnalysisRun | MetaResult,
    steps=THREE_PSM,
    *,
    selection: SelectionResult | None = None,
    tests: BiasTests | None = None,
    cluster: str | None | object = OWN_CLUSTER,
) -> PublicationBias:
    """The selection model with cuts ``steps`` and the fail-safe Ns of the pooled model, as
    the Publication bias page fits them (``selmodel(pooled, steps, cluster=pooled.cluster)``).
    ``selection`` and ``tests``: the page's own objects, when it has them; ``cluster``: the
    selection model's cluster when it is fitted here (``OWN_CLUSTER``: the pooled model's)."""
    res = pooled.result if isinstance(pooled, AnalysisRun) else pooled
    if res.p != 1:
        raise AnalysisError("Publication-bias results are of the model without moderators.")
    steps = tuple(float(s) for s in steps if float(s) != 1.0)
    problem = None
    if selection is None:
        try:
            selection = selmodel(
                res, steps=steps, cluster=res.cluster if cluster is OWN_CLUSTER else cluster
            )
        except AnalysisError as error:
            problem = str(error)
    fail_safe: tuple[FailSafeN, ...] = ()
    fail_safe_problem = None
    try:
        fail_safe = tuple(fsn(res, type=kind) for kind in TYPES)
    except AnalysisError as error:
        fail_safe_problem = str(error)
    return PublicationBias(
        pooled=res,
        steps=steps,
        selection=selection,
        selection_problem=problem,
        fail_safe=fail_safe,
        fail_safe_problem=fail_safe_problem,
        tests=tests if tests is not None else run_bias_tests(res),
    )


def state_publication_bias(
    state: AnalysisState,
    steps=THREE_PSM,
    *,
    selection: SelectionResult | None = None,
    tests: BiasTests | None = None,
) -> PublicationBias:
    """The publication-bias results of a state, as its Publication bias page shows them: the
    small-study tests under the state's inference with its cautions (``bias_tests_of``), the
    selection model with cuts ``steps`` clustered as the page clusters it
    (``selection_cluster``), and the fail-safe Ns. ``selection`` and ``tests``: the page's
    own objects, when it has them (then nothing is refitted)."""
    return publication_bias(
        state.pooled,
        steps,
        selection=selection,
        tests=tests if tests is not None else bias_tests_of(state),
        cluster=selection_cluster(state),
    )


def delta_name(label: str) -> str:
    return f"delta {label}"


def bias_rows(bias: PublicationBias, on_r_scale: bool = True) -> list[dict]:
    """The selection model and the fail-safe Ns as results rows.

    Selection model (section "selection model", or "selection model (cluster-robust)" for the
    composite likelihood with sandwich SEs): the adjusted intercept on the model scale with
    its z test and CI, the adjusted average as r (correlations), tau2 with SE and CI, each
    interval's weight delta with SE, z (of delta = 1; cluster-robust: of log delta = 0), p and
    CI, and the likelihood-ratio test of no selection (independent effect sizes only).
    Fail-safe N: Rosenthal's and Rosenberg's with the p-value they start from, Orwin's.
    """
    rows: list[dict] = []
    sel = bias.selection
    if sel is not None:
        section = ROBUST_SELECTION_SECTION if bias.clustered else SELECTION_SECTION
        for term, row in sel.coefficients.iterrows():
            rows.append(
                {
                    "section": section,
                    "name": f"adjusted {term}",
                    "estimate": row["estimate"],
                    "se": row["se"],
                    "statistic": row["zval"],
                    "pval": row["pval"],
                    "ci_lb": row["ci_lb"],
                    "ci_ub": row["ci_ub"],
                }
            )
        if on_r_scale:
            row = sel.coefficients.iloc[0]
            values = transf(np.asarray([row["estimate"], row["ci_lb"], row["ci_ub"]]), "r")
            rows.append(
                {
                    "section": section,
                    "name": "adjusted r",
                    "estimate": values[0],
                    "ci_lb": values[1],
                    "ci_ub": values[2],
                }
            )
        if not sel.tau2_fixed:
            rows.append(
                {
                    "section": section,
                    "name": "tau2",
                    "estimate": sel.tau2,
                    "se": sel.se_tau2,
                    "ci_lb": sel.tau2_ci[0],
                    "ci_ub": sel.tau2_ci[1],
                }
            )
        for label, row in sel.delta.iloc[1:].iterrows():
            rows.append(
                {
                    "section": section,
                    "name": delta_name(label),
                    "estimate": row["estimate"],
                    "se": row["se"],
                    "statistic": row["zval"],
                    "pval": row["pval"],
                    "ci_lb": row["ci_lb"],
                    "ci_ub": row["ci_ub"],
                }
            )
        if np.isfinite(sel.LRT):
            rows.append(
                {
                    "section": section,
                    "name": "LRT",
                    "statistic": sel.LRT,
                    "df": sel.LRT_df,
                    "pval": sel.LRT_pval,
                }
            )
    for result in bias.fail_safe:
        rows.append(
            {
                "section": FAIL_SAFE_SECTION,
                "name": result.type,
                "estimate": result.fsnum,
                "pval": result.pval if np.isfinite(result.pval) else None,
            }
        )
    return rows
