"""Every publication-bias test of a pooled model at once, as the dashboard and the report show
them: Egger, the rank correlation, trim and fill (on study aggregates for nested data) and
PET-PEESE, each with the reason when it cannot be run.

Egger's test and PET-PEESE refit the model of the analysis (for nested data the three-level
CHE model) and are tested under the analysis's inference (CR2 by study when it is CR2);
:func:`bias_tests_of` runs them for a dashboard state, with the state's own study count.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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
from alliance_core.analyses.state import AnalysisState
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
    inference: str = "model"  # of Egger's test and PET-PEESE: "model" or "CR2"
    nested: bool = False  # the pooled model is three-level (effect sizes nested in studies)
    n_studies: int | None = None  # the studies behind the tests (the state's count)

    def readings(self, transform: str | None, caveat: bool = False) -> list[tuple[str, str]]:
        """(test name, the result in words) for each test, then the missing ones' reasons.

        The caveat that asymmetry is not proof of bias is said once by the verdict
        (:func:`alliance_core.analyses.bias_verdict.bias_verdict`), so the readings leave it
        out unless ``caveat``."""
        out = []
        if self.egger is not None:
            out.append(
                ("Egger's regression test", self.egger.describe(transform=transform, caveat=caveat))
            )
        if self.rank is not None:
            out.append(("Begg and Mazumdar's rank correlation", self.rank.describe(caveat=caveat)))
        if self.trim_fill is not None:
            text = self.trim_fill.describe(transform=transform, caveat=caveat)
            out.append(
                ("Trim-and-fill", f"{self.trim_fill_note} {text}" if self.trim_fill_note else text)
            )
        if self.pet_peese is not None:
            out.append(("PET-PEESE", self.pet_peese.describe(transform=transform, caveat=caveat)))
        out.extend(self.problems)
        return out

    def inference_sentence(self) -> str | None:
        """How Egger's test and PET-PEESE respect the dependence, in one sentence (None for
        a two-level model under model-based inference)."""
        if self.inference == "CR2":
            model = "the three-level model of the analysis" if self.nested else "the model"
            return (
                f"Egger's test and PET-PEESE refit {model} with the standard error (or the "
                "sampling variance) as a moderator and use cluster-robust (CR2) tests by study "
                "with Satterthwaite df, as the analysis does; the rank test and trim-and-fill "
                "are not cluster-robust."
            )
        if self.nested:
            return (
                "Egger's test and PET-PEESE refit the three-level model of the analysis "
                "(effect sizes nested in studies) with the standard error (or the sampling "
                "variance) as a moderator, so they respect the dependence (model-based tests); "
                "the rank test ignores it and trim-and-fill runs on study aggregates."
            )
        return None


TEST_NAMES = {
    "egger": "Egger's regression test",
    "rank": "Begg and Mazumdar's rank correlation",
    "trim_fill": "Trim-and-fill",
    "pet_peese": "PET-PEESE",
}


def trim_and_fill_of(pooled: MetaResult, n_studies: int | None = None) -> TrimAndFill:
    """Trim-and-fill of a pooled model; a three-level model's on one aggregated effect per
    study (REML or ML as the model, REML for the other estimators). ``n_studies`` is the
    study count behind the few-studies caution (default: the model's)."""
    n_studies = pooled.n_studies if n_studies is None else n_studies
    if not pooled.is_three_level:
        return trim_and_fill(pooled, n_studies=n_studies)
    method = pooled.method if pooled.method in ("REML", "ML") else "REML"
    aggregates = fit(aggregate_by_study(pooled), method=method)
    # Each point it counts and imputes is then a study, which its words must say.
    return replace(trim_and_fill(aggregates, n_studies=n_studies), aggregated=True)


def run_bias_tests(
    pooled: MetaResult,
    inference: str = "model",
    cluster: str | None = None,
    n_studies: int | None = None,
) -> BiasTests:
    """Egger's test, the rank correlation test, trim-and-fill and PET-PEESE of ``pooled``.

    ``inference="CR2"`` tests Egger's slope and the PET-PEESE intercepts cluster-robustly by
    ``cluster`` (default: the model's study column); ``n_studies`` is the study count behind
    the few-studies cautions (default: the model's)."""
    robust = {"inference": inference, "cluster": cluster, "n_studies": n_studies}
    steps = {
        "egger": lambda: egger_test(pooled, **robust),
        "rank": lambda: rank_correlation_test(pooled, n_studies=n_studies),
        "trim_fill": lambda: trim_and_fill_of(pooled, n_studies),
        "pet_peese": lambda: pet_peese(pooled, **robust),
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
    return BiasTests(
        problems=tuple(problems),
        trim_fill_note=note,
        inference=inference,
        nested=pooled.is_three_level,
        n_studies=int(pooled.n_studies if n_studies is None else n_studies),
        **results,
    )


def bias_tests_of(state: AnalysisState) -> BiasTests:
    """The bias tests of a state's pooled model under the state's inference: CR2 clustered as
    the pooled model's robust inference (by study) when the state is CR2, model-based
    otherwise; the few-studies cautions count the state's studies (its flags)."""
    run = state.pooled
    robust = run.robust
    return run_bias_tests(
        run.result,
        inference="model" if robust is None else "CR2",
        cluster=None if robust is None else robust.cluster,
        n_studies=state.pooled_flags.n_studies,
    )


def selection_cluster(state: AnalysisState) -> str | None:
    """The cluster of a state's selection model: under CR2 the state's robust cluster (so a
    two-level model of nested rows is cluster-robust too), otherwise the pooled model's own
    (the studies of a three-level model; None for independent effect sizes). The Publication
    bias page and every hand-over fit it with this cluster."""
    robust = state.pooled.robust
    if robust is not None and robust.cluster:
        return robust.cluster
    return state.pooled.result.cluster
