"""One verdict over the publication-bias evidence: what the tests agree on, where they part,
in which direction each points, and the caveat once.

Publication bias that favours significant results in the direction of the pooled effect
makes less precise effect sizes *larger* in that direction (a positive Egger slope or
Kendall tau for a positive average; missing effects on the side opposite to it). A test that
finds the reverse points the other way, which such selection does not produce (Sterne et al.,
2011; Egger et al., 1997). The selection model (Vevea & Hedges, 1995) estimates the selection
itself and adjusts the average.

A test whose result cannot be read (``caution``: fewer than 10 studies, or a cluster-robust
test on fewer than 4 df) is called neither significant nor non-significant: the verdict
names it among the tests that cannot be read, with the reason. Under CR2 the verdict says that
Egger's test and PET-PEESE are cluster-robust (:meth:`BiasTests.inference_sentence`).
"""

from __future__ import annotations

import numpy as np

from alliance_core.analyses.bias_tests import BiasTests
from alliance_core.analyses.selection import SelectionResult
from alliance_core.analyses.small_study import few_studies_reason
from alliance_core.data.effect_sizes import transf
from alliance_core.formatting import format_number, format_p
from alliance_core.model.results import MetaResult

BIAS = "bias"
OTHER_WAY = "other way"
NONE = "none"
UNREADABLE = "cannot be read"
CAVEAT = (
    "Funnel asymmetry and small-study effects are not proof of publication bias: true "
    "differences between small and large studies, chance and choices of analysis produce "
    "them too, and every test has little power with few studies."
)


def _value(estimate: float, transform: str | None, digits: int = 2) -> str:
    if transform == "r":
        text = format_number(float(transf(np.asarray([estimate]), "r")[0]), digits)
        return "r = " + text.replace("0.", ".", 1)
    return format_number(estimate, digits)


def _pair(first: float, second: float, transform: str | None) -> tuple[str, str, bool]:
    """Two averages as the verdict prints them, and whether they are the same at two
    decimals: then with three, so that a sentence never says one value moved to itself."""
    a, b = _value(first, transform), _value(second, transform)
    if a != b:
        return a, b, False
    return _value(first, transform, 3), _value(second, transform, 3), True


def classify(tests: BiasTests, sign: float = 1.0, alpha: float = 0.05) -> dict[str, str]:
    """Each available test's direction: "bias" (as publication bias favouring effects of
    ``sign``, the pooled effect's, would make it), "other way" (the reverse), "none" (no
    evidence at ``alpha``) or "cannot be read" (the test carries a caution)."""
    out = {}
    if tests.egger is not None:
        e = tests.egger
        out["Egger's test"] = (
            UNREADABLE
            if e.caution
            else NONE
            if e.pval >= alpha
            else (BIAS if sign * e.slope > 0 else OTHER_WAY)
        )
    if tests.rank is not None:
        r = tests.rank
        out["Begg's rank test"] = (
            UNREADABLE
            if r.caution
            else NONE
            if r.pval >= alpha
            else (BIAS if sign * r.tau > 0 else OTHER_WAY)
        )
    if tests.trim_fill is not None:
        t = tests.trim_fill
        missing_side = "left" if sign > 0 else "right"
        out["trim-and-fill"] = (
            UNREADABLE
            if t.caution
            else NONE
            if t.k0 == 0
            else (BIAS if t.side == missing_side else OTHER_WAY)
        )
    return out


def bias_verdict(
    tests: BiasTests,
    pooled: MetaResult,
    selection: SelectionResult | None = None,
    transform: str | None = None,
    alpha: float = 0.05,
) -> str:
    """The verdict paragraph over the tests of the ``pooled`` model: agreement, disagreement
    with each test's direction, the selection model's adjusted average beside the unadjusted
    one, and the caveat once."""
    classified = classify(tests, float(np.sign(pooled.beta[0]) or 1.0), alpha)
    unreadable = [name for name, d in classified.items() if d == UNREADABLE]
    directions = {name: d for name, d in classified.items() if d != UNREADABLE}
    groups = {
        kind: [name for name, d in directions.items() if d == kind]
        for kind in (BIAS, NONE, OTHER_WAY)
    }
    parts = []
    sentence = tests.inference_sentence()
    if sentence:
        parts.append(sentence)
    if unreadable:
        parts.append(_unreadable_sentence(tests, unreadable))
    if len(directions) > 1 and len(groups[BIAS]) == len(directions):
        parts.append(
            f"All {len(directions)} small-study tests point to the pattern publication bias "
            f"produces ({', '.join(groups[BIAS])}): less precise effect sizes are larger."
        )
    elif len(directions) > 1 and len(groups[NONE]) == len(directions):
        parts.append(
            f"None of the {len(directions)} small-study tests ({', '.join(groups[NONE])}) finds "
            "funnel asymmetry."
        )
    else:
        if groups[BIAS]:
            parts.append(
                f"{_names(groups[BIAS])} point{'s' if len(groups[BIAS]) == 1 else ''} to the "
                "pattern publication bias produces: less precise effect sizes are larger."
            )
        if groups[NONE]:
            parts.append(
                f"{_names(groups[NONE])} find{'s' if len(groups[NONE]) == 1 else ''} no asymmetry."
            )
        if groups[OTHER_WAY]:
            parts.append(
                f"{_names(groups[OTHER_WAY])} point{'s' if len(groups[OTHER_WAY]) == 1 else ''} "
                "the other way: less precise effect sizes show smaller effects, which "
                "publication bias does not produce."
            )
        if groups[BIAS] and (groups[NONE] or groups[OTHER_WAY]):
            parts.append(
                "The tests disagree because they read different features of the funnel "
                "(a regression slope, a rank correlation, missing points on one side) with "
                "different power."
            )
    if tests.trim_fill is not None and tests.trim_fill.k0 > 0:
        t = tests.trim_fill
        before, after, barely = _pair(t.original.beta[0], t.estimate, transform)
        what = f"{t.k0} {t.units(t.k0)}" + (" (aggregated effects)" if t.aggregated else "")
        moves = (
            f"barely moves the average (from {before} to {after})"
            if barely
            else f"moves the average from {before} to {after}"
        )
        parts.append(
            f"Trim-and-fill adds {what} on the {t.side} and {moves}"
            + (", a count that cannot be relied on here." if t.caution else ".")
        )
    if tests.pet_peese is not None:
        pp = tests.pet_peese
        parts.append(
            f"PET-PEESE ({pp.chosen}) estimates {_value(pp.estimate, transform)}"
            + (f", a choice its test cannot support: {pp.caution}." if pp.caution else ".")
        )
    if selection is not None:
        weights = selection.delta["estimate"].iloc[1:]
        found = selection_found(selection, alpha)
        test = (
            f" (test of selection {format_p(selection.LRT_pval)})"
            if np.isfinite(selection.LRT_pval)
            else " (cluster-robust intervals)"
        )
        evidence = ("finds selection" if found else "finds no clear selection") + test
        fewer = bool(np.all(weights < 1))
        adjusted, unadjusted, _ = _pair(selection.estimate, selection.unadjusted.beta[0], transform)
        average = f"puts the average at {adjusted} against {unadjusted} without adjustment"
        few = few_studies_reason(tests.n_studies) if tests.n_studies is not None else None
        if few:
            # Few studies: its evidence of selection is called neither way, like the tests'.
            parts.append(
                f"The selection model {average}; whether it finds selection cannot be read "
                f"here: {few}."
            )
        else:
            parts.append(
                f"The selection model {evidence}"
                + (", with non-significant results published less often" if found and fewer else "")
                + f"; it {average}."
            )
    parts.append(CAVEAT)
    return " ".join(parts)


def _unreadable_sentence(tests: BiasTests, names: list[str]) -> str:
    """The tests that cannot be read, with their reasons (each said once), called neither
    way."""
    reasons = []
    for label, test in (
        ("Egger's", tests.egger),
        ("the rank test's", tests.rank),
        ("trim-and-fill's", tests.trim_fill),
    ):
        if test is not None and test.caution:
            reasons += [
                part.replace("its cluster-robust test", f"{label} cluster-robust test")
                for part in test.caution.split("; ")
            ]
    one = len(names) == 1
    return (
        f"{_names(names)} cannot be read here: {'; '.join(dict.fromkeys(reasons))}. "
        f"{'Its result is' if one else 'Their results are'} shown below, but neither "
        f"asymmetry nor its absence can be concluded from {'it' if one else 'them'}."
    )


def selection_found(selection: SelectionResult, alpha: float = 0.05) -> bool:
    """Whether the selection model finds selection: its likelihood-ratio test at ``alpha``
    (independent effect sizes), or, without one (cluster-robust composite likelihood), a
    weight whose interval excludes 1. The verdict and the report's sentence both read this."""
    if np.isfinite(selection.LRT_pval):
        return bool(selection.LRT_pval < alpha)
    upper = selection.delta["ci_ub"].iloc[1:]
    lower = selection.delta["ci_lb"].iloc[1:]
    return bool(np.any((upper < 1) | (lower > 1)))


def _names(names: list[str]) -> str:
    text = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return text[0].upper() + text[1:]
