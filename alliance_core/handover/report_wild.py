"""The report's cluster wild bootstrap sentences: one in Methods, one per test in Results.

The tests are the Moderators page's (``res.wild_bootstrap``, run on request and handed over
per state as a mapping test label -> ``WildBootstrapResult``); every number is the result's
own. The sentences state F and p with the replicates, weights and working covariance and
give no verdict.
"""

from __future__ import annotations

from collections.abc import Mapping

from alliance_core.formatting import format_number, format_p
from alliance_core.model.wild_bootstrap import WildBootstrapResult

WILD_REFERENCES = {
    "cwb": "Joshi, M., Pustejovsky, J. E., & Beretvas, S. N. (2022). Cluster wild "
    "bootstrapping to handle dependent effect sizes in meta-analysis with a small number of "
    "studies. Research Synthesis Methods, 13(4), 457–477. https://doi.org/10.1002/jrsm.1554",
}
ADJUSTMENT_WORDS = {
    "CR0": "",
    "CR1": " (multiplied by √(J / (J − 1)))",
    "CR2": " (multiplied by the null model's CR2 adjustment matrices)",
}


def wild_methods(results: Mapping[str, WildBootstrapResult], cited: list[str]) -> str:
    """The Methods sentence: what the cluster wild bootstrap does, with its citation."""
    cited.append("cwb")
    adjust = {cwb.adjust for cwb in results.values()}
    residuals = ADJUSTMENT_WORDS.get(next(iter(adjust)), "") if len(adjust) == 1 else ""
    return (
        "Moderators were also tested with the cluster wild bootstrap (Joshi, Pustejovsky & "
        "Beretvas, 2022): the model without the tested coefficients gave fitted values and "
        f"residuals{residuals}; in each replicate the residuals of every cluster were multiplied "
        "by one random weight, the full model was refitted to the resulting outcomes, and the "
        "p value is the share of replicates whose Naive-F statistic exceeds the observed one."
    )


def wild_sentences(results: Mapping[str, WildBootstrapResult]) -> str:
    """One Results sentence per test: F, p, replicates, weights, working covariance."""
    sentences = []
    for label, cwb in results.items():
        failed = f", {cwb.failed} of them failed and left out" if cwb.failed else ""
        seed = "" if cwb.seed is None else f", seed {cwb.seed}"
        sentences.append(
            f"Cluster wild bootstrap test of {label}: F = {format_number(cwb.statistic, 2)}, "
            f"{format_p(cwb.pval)} ({cwb.R} replicates{failed}, {cwb.auxiliary} weights, "
            f"{cwb.type} working covariance, {cwb.n_clusters} clusters{seed})."
        )
    return " ".join(sentences)
