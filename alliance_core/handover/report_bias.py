"""What the report says about publication bias: the small-study tests, the selection model,
the fail-safe N and the Publication bias page's verdict over them.

The sentences read one :class:`~alliance_core.handover.bias_results.PublicationBias` (the
objects the results file and the scripts hand over); whether the selection model "found"
selection is the page's own reading (:func:`alliance_core.analyses.bias_verdict.selection_found`),
and the closing paragraph is the page's verdict (``bias_verdict``), never a second one. A
pooled model the state flags for too few studies gets no reading of any test.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from alliance_core.analyses import bias, bias_tests
from alliance_core.analyses.bias_verdict import CAVEAT, bias_verdict, selection_found
from alliance_core.analyses.selection import THREE_PSM
from alliance_core.analyses.state import ModelFlags
from alliance_core.formatting import format_number, format_p
from alliance_core.handover.bias_results import PublicationBias
from alliance_core.handover.report_tables import r3_text, r_text
from alliance_core.model.results import MetaResult

BIAS_REFERENCES = {
    "vevea": "Vevea, J. L., & Hedges, L. V. (1995). A general linear model for estimating "
    "effect size in the presence of publication bias. Psychometrika, 60(3), 419–435.",
    "cml": "Pustejovsky, J. E., Citkowicz, M., & Joshi, M. (2025). Estimation and inference "
    "for step-function selection models in meta-analysis with dependent effects.",
    "rosenthal": "Rosenthal, R. (1979). The file drawer problem and tolerance for null "
    "results. Psychological Bulletin, 86(3), 638–641.",
    "orwin": "Orwin, R. G. (1983). A fail-safe N for effect size in meta-analysis. Journal of "
    "Educational Statistics, 8(2), 157–159.",
    "rosenberg": "Rosenberg, M. S. (2005). The file-drawer problem revisited: A general "
    "weighted method for calculating fail-safe numbers in meta-analysis. Evolution, 59(2), "
    "464–468.",
}


def _p_text(value: float) -> str:
    """A cut or alpha in APA style: no leading zero (.025, .5)."""
    return f"{value:g}".removeprefix("0")


def selection_kind(steps: tuple[float, ...]) -> str:
    """The model's name with its citation and cuts, for a sentence."""
    cuts = ", ".join(_p_text(s) for s in steps)
    if tuple(steps) == THREE_PSM:
        return (
            "three-parameter selection model (3PSM; Vevea & Hedges, 1995) with one cut at "
            "one-sided p = .025"
        )
    return f"step-function selection model (Vevea & Hedges, 1995) with cuts at one-sided p = {cuts}"


def interval_words(steps: tuple[float, ...]) -> list[str]:
    """ ".025 < p ≤ .5", ... for the p-value intervals after the first."""
    bounds = [*steps, 1.0]
    return [
        f"{_p_text(lo)} < p ≤ {_p_text(hi)}" for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def bias_methods(result: PublicationBias, cited: list[str]) -> str:
    """The Methods sentences of the selection model and the fail-safe N."""
    text = (
        f"Selection for statistical significance was modelled with a {selection_kind(result.steps)}"
    )
    cited.append("vevea")
    if result.clustered:
        text += (
            "; as effect sizes of one study are dependent, it was fitted by the composite "
            "marginal likelihood of all effect sizes with cluster-robust (sandwich) standard "
            f"errors by study (Pustejovsky, Citkowicz & Joshi, 2025; "
            f"{result.selection.n_clusters} studies)"
        )
        cited.append("cml")
    text += (
        ". Fail-safe numbers after Rosenthal (1979), Orwin (1983; target: half the unweighted "
        "mean effect) and Rosenberg (2005) are given for comparison with earlier "
        "meta-analyses; they are no test of publication bias."
    )
    cited += ["rosenthal", "orwin", "rosenberg"]
    return text


def _value(z: float, on_r: bool) -> str:
    return r_text(math.tanh(z)) if on_r else format_number(z, 3)


def selection_sentence(result: PublicationBias, on_r: bool, flags: ModelFlags | None = None) -> str:
    """The selection model in APA style: the adjusted average beside the unadjusted one, each
    weight with its CI, the test of selection, and the page's reading of it (none when the
    ``flags`` of the pooled model say its tests cannot be trusted)."""
    sel = result.selection
    if sel is None:
        return f"The {selection_kind(result.steps)} could not be fitted: {result.selection_problem}"
    kind = "3PSM" if tuple(result.steps) == THREE_PSM else "selection model"
    name = "r" if on_r else "the estimate"
    level = f"{sel.level:.0%}"
    row = sel.coefficients.iloc[0]
    text = (
        f"The {kind} estimated the average effect adjusted for selection at {name} = "
        f"{_value(row['estimate'], on_r)}, {level} CI [{_value(row['ci_lb'], on_r)}, "
        f"{_value(row['ci_ub'], on_r)}], against {name} = "
        f"{_value(sel.unadjusted.beta[0], on_r)} without adjustment"
    )
    weights = [
        f"effect sizes with {label} were published with a relative weight "
        f"of δ = {format_number(w['estimate'], 2)}, {level} CI [{format_number(w['ci_lb'], 2)}, "
        f"{format_number(w['ci_ub'], 2)}]"
        for label, (_, w) in zip(
            interval_words(sel.steps[:-1]), sel.delta.iloc[1:].iterrows(), strict=True
        )
    ]
    text += "; " + "; ".join(weights)
    if math.isfinite(sel.LRT):
        text += (
            f" (likelihood-ratio test of selection: χ²({sel.LRT_df}) = "
            f"{format_number(sel.LRT, 2)}, {format_p(sel.LRT_pval)})."
        )
    else:
        text += (
            " (cluster-robust intervals; the composite likelihood gives no likelihood-ratio test)."
        )
    if flags is not None and flags.few_studies:
        text += (
            f" With only {flags.n_studies} studies this selection model neither shows nor rules "
            "out selection."
        )
    else:
        text += (
            " The model finds selection."
            if selection_found(sel)
            else " The model finds no clear selection."
        )
    return text


def fail_safe_sentence(result: PublicationBias, on_r: bool = False) -> str:
    """The three fail-safe Ns in one sentence, with what they cannot tell."""
    if not result.fail_safe:
        return f"No fail-safe N could be computed: {result.fail_safe_problem}"
    parts = []
    for item in result.fail_safe:
        n = "infinitely many" if math.isinf(item.fsnum) else f"{int(item.fsnum):,}"
        if item.type == "Rosenthal":
            parts.append(f"Rosenthal's N = {n} (one-sided α = {_p_text(item.alpha)})")
        elif item.type == "Orwin":
            parts.append(
                f"Orwin's N = {n} (to bring the unweighted mean effect of "
                f"{format_number(item.meanes, 3)} down to {format_number(item.target, 3)}"
                + (", Fisher's z)" if on_r else ")")
            )
        else:
            parts.append(f"Rosenberg's N = {n} (α = {_p_text(item.alpha)})")
    return (
        "Fail-safe numbers of unpublished null results: "
        + "; ".join(parts)
        + ". They assume the missing results average exactly zero, ignore heterogeneity and "
        "dependence, and grow with the number of effect sizes whatever the bias."
    )


def bias_paragraph(result: PublicationBias, on_r: bool, flags: ModelFlags | None = None) -> str:
    """The report's publication-bias paragraph: each test, the selection model, the fail-safe
    N, and the page's verdict over them (with too few studies, the caveat only)."""
    pooled = result.pooled
    sentences = [text for _, text in bias_readings(pooled, on_r, result.tests)]
    sentences.append(selection_sentence(result, on_r, flags))
    sentences.append(fail_safe_sentence(result, on_r))
    if flags is not None and flags.few_studies:
        sentences.append(
            f"With only {flags.n_studies} studies none of these tests can show or rule out "
            f"publication bias. {CAVEAT}"
        )
    else:
        sentences.append(
            "Taken together: "
            + bias_verdict(result.tests, pooled, result.selection, transform="r" if on_r else None)
        )
    return " ".join(sentences)


def _df_text(df: float) -> str:
    """Degrees of freedom as printed: whole numbers as such, a Satterthwaite df to one decimal."""
    return str(int(df)) if float(df).is_integer() else format_number(df, 1)


def bias_readings(
    pooled: MetaResult, on_r: bool, tests: bias_tests.BiasTests | None = None
) -> list[tuple[str, str]]:
    """The publication-bias tests of the pooled model, each as (name, APA-style result).

    The tests are the dashboard's (:func:`alliance_core.analyses.bias_tests.run_bias_tests`): trim-and-fill
    assumes independent effects, so for a three-level model it runs on one aggregated effect
    per study (two-level model). ``tests``: the page's tests of ``pooled``, when at hand.
    """
    if tests is None:
        tests = bias_tests.run_bias_tests(pooled)
    level = f"{pooled.level:.0%}"

    def value(z: float) -> str:
        if on_r:
            return r_text(math.tanh(z))
        return format_number(z, 3)

    def interval(ci) -> str:
        return f"{level} CI [{value(ci[0])}, {value(ci[1])}]"

    def egger(test: bias.EggerTest) -> str:
        stat = "z" if test.ddf is None else f"t({_df_text(test.ddf)})"
        name = "Egger's regression test" + (
            " (cluster-robust, CR2)" if test.inference == "CR2" else ""
        )
        numbers = f"{stat} = {format_number(test.statistic, 2)}, {format_p(test.pval)}"
        if test.caution:
            # Words follow flags: a test the page cannot read is called neither way here either.
            text = f"{name} cannot be read here ({test.caution}): {numbers}"
        else:
            indicated = "indicated" if test.pval < 0.05 else "did not indicate"
            text = f"{name} {indicated} funnel asymmetry, {numbers}"
        if test.limit_estimate is not None:
            text += (
                f"; the effect expected at a standard error of 0 was "
                f"{value(test.limit_estimate)}, {interval(test.limit_ci)}"
            )
        return text + "."

    def rank(test: bias.RankCorrelationTest) -> str:
        return f"The rank correlation test gave Kendall's τ = {r3_text(test.tau)}, {format_p(test.pval)}."

    def trim_fill(result: bias.TrimAndFill) -> str:
        basis = (
            " (run on one aggregated effect per study, as it assumes independent effects)"
            if pooled.is_three_level
            else ""
        )
        ci = (
            result.adjusted.coefficients["ci_lb"].iloc[0],
            result.adjusted.coefficients["ci_ub"].iloc[0],
        )
        z_refit = (
            " (with z tests for the filled data, as metafor's trimfill)"
            if result.k0 > 0 and result.adjusted.test != result.original.test
            else ""
        )
        return (
            f"Trim-and-fill{basis} estimated {result.k0} missing effect size(s) on the "
            f"{result.side} side; the adjusted estimate was {value(result.estimate)}, "
            f"{interval(ci)}{z_refit}."
        )

    def pet_peese(result: bias.PetPeese) -> str:
        caution = f" (a choice its test cannot support: {result.caution})" if result.caution else ""
        return (
            f"PET-PEESE ({result.chosen} estimate) gave {value(result.estimate)}, "
            f"{interval(result.ci)}{caution}."
        )

    steps: list[tuple[str, str, object | None, Callable]] = [
        ("Egger's regression test", "egger", tests.egger, egger),
        ("Rank correlation test", "rank", tests.rank, rank),
        ("Trim-and-fill", "trim_fill", tests.trim_fill, trim_fill),
        ("PET-PEESE", "pet_peese", tests.pet_peese, pet_peese),
    ]
    missing = dict(tests.problems)
    out = []
    for name, key, result, words in steps:
        if result is not None:
            out.append((name, words(result)))
        else:
            reason = missing[bias_tests.TEST_NAMES[key]].removeprefix("Not available here: ")
            out.append((name, f"{name} was not available for these data: {reason}"))
    return out
