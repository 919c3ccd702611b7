"""Every publication-bias test of a pooled model at once, as the dashboard and the report show
them: Egger, the rank correlation, trim and fill (on study aggregates for nested data) and
PET-PEESE, each with the reason when it cannot be run.
"""

from __future__ import annotations

from dataclasses import dataclass

from alliance_core.analyses.bias import (
    EggerTest,
    PetPeese,
    RankCorrelationTest,
    TrimAndFill,
    aggregate_by_study,
    egger_test,
    pet_peese,
    rank_correlation_test,
    trim_and_fill,
)
from alliance_core.errors import AnalysisError
from alliance_core.model.fitting import fit
from alliance_core.model.results import MetaResult


# -- every test of a pooled model at once --------------------------------------------------------
@dataclass(frozen=True, eq=False)
class BiasTests:
    """The small-study / publication-bias tests of one pooled model, and why any is missing.

    The dashboard's Publication bias page and the report read the same object, so both show
    the numbers of one set of fits. A test that cannot run on these data (too few studies, a
    singular design, ...) is None and its reason is in ``problems`` as (test name, message).
    """

    egger: EggerTest | None
    rank: RankCorrelationTest | None
    trim_fill: TrimAndFill | None
    pet_peese: PetPeese | None
    problems: tuple[tuple[str, str], ...]
    # Three-level models: trim-and-fill ran on one aggregated effect per study (it assumes
    # independent effects); this says how they were aggregated.
    trim_fill_note: str | None

    def readings(self, transform: str | None) -> list[tuple[str, str]]:
        """(test name, the result in words) for each test, then the missing ones' reasons."""
        out = []
        if self.egger is not None:
            out.append(("Egger's regression test", self.egger.describe(transform=transform)))
        if self.rank is not None:
            out.append(("Begg and Mazumdar's rank correlation", self.rank.describe()))
        if self.trim_fill is not None:
            text = self.trim_fill.describe(transform=transform)
            out.append(
                ("Trim-and-fill", f"{self.trim_fill_note} {text}" if self.trim_fill_note else text)
            )
        if self.pet_peese is not None:
            out.append(("PET-PEESE", self.pet_peese.describe(transform=transform)))
        out.extend(self.problems)
        return out


TEST_NAMES = {
    "egger": "Egger's regression test",
    "rank": "Begg and Mazumdar's rank correlation",
    "trim_fill": "Trim-and-fill",
    "pet_peese": "PET-PEESE",
}


def trim_and_fill_of(pooled: MetaResult) -> TrimAndFill:
    """Trim-and-fill of a pooled model; a three-level model's on one aggregated effect per
    study (REML or ML as the model, REML for the other estimators)."""
    if not pooled.is_three_level:
        return trim_and_fill(pooled)
    method = pooled.method if pooled.method in ("REML", "ML") else "REML"
    return trim_and_fill(fit(aggregate_by_study(pooled), method=method))


def run_bias_tests(pooled: MetaResult) -> BiasTests:
    """Egger's test, the rank correlation test, trim-and-fill and PET-PEESE of ``pooled``."""
    steps = {
        "egger": lambda: egger_test(pooled),
        "rank": lambda: rank_correlation_test(pooled),
        "trim_fill": lambda: trim_and_fill_of(pooled),
        "pet_peese": lambda: pet_peese(pooled),
    }
    results: dict[str, object | None] = dict.fromkeys(steps)
    problems = []
    for key, compute in steps.items():
        try:
            results[key] = compute()
        except AnalysisError as error:
            problems.append((TEST_NAMES[key], f"Not available here: {error}"))
    note = None
    if pooled.is_three_level and results["trim_fill"] is not None:
        within = (
            f"compound symmetry with the model's ρ = {pooled.rho:g}"
            if pooled.rho
            else "inverse-variance mean of its effect sizes"
        )
        note = (
            "Trim-and-fill assumes independent effects, so it was run on one aggregated effect "
            f"per study ({within}, two-level model)."
        )
    return BiasTests(problems=tuple(problems), trim_fill_note=note, **results)
