"""What each Simulator preset promises, and how often a simulated world keeps it.

A preset's caption describes the world it sets up; one drawn literature may or may not show it.
This module turns the caption into numbers a class can trust:

* **Promise shares.** Over many literatures simulated with the preset's settings (seeds 1, 2,
  …, analysed like the page's default: three-level model, REML, log PTR), the share whose
  fitted PTR slope points the promised way, the share whose confidence interval excludes zero
  on that side, and the share that keeps the whole promise (:meth:`Preset.promise_kept`). They
  take minutes to compute, so ``scripts/make_simulator_promises.py`` writes them, seed by
  seed, to ``promises.json`` beside this module and the page reads that file.
* **The patient-level panel's expectation** (closed form). With m patients per therapist a
  therapist's mean alliance is ā_t = u_t + ē_t, Var(u_t) = ICC, Var(ē_t) = (1 − ICC)/m, so it
  is the therapist part with reliability λ = ICC / (ICC + (1 − ICC)/m) (Spearman–Brown). The
  between-therapist slope of the model of Baldwin, Wampold & Imel (2007) regresses therapist
  mean outcomes on ā_t and so estimates Cov(ȳ_t, ā_t)/Var(ā_t) = λ·γ_b + (1 − λ)·γ_w, while
  the within-therapist slope estimates γ_w. Few patients per therapist pull the between slope
  towards the within slope.
* **The default seed rule.** The Simulator opens at :data:`~alliance_core.teaching.simulator.DEFAULT_SEED`,
  the first seed from 1 upward whose draw is *typical* for every preset: the literature keeps
  the preset's promise, and on the patient-level panel's default study (20 therapists × 8
  patients) the between- and within-therapist slopes each lie within one standard error of
  their closed-form expectation. A test recomputes the rule.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from importlib import resources

import numpy as np

from alliance_core.errors import AnalysisError
from alliance_core.formatting import format_number
from alliance_core.teaching.patient_level import PatientLevelResult, fit_patient_level
from alliance_core.teaching.simulate import SimulationParameters, simulate_patients
from alliance_core.teaching.simulator import PRESETS, Preset, SimulationRun, run_simulation

PROMISE_FILE = "promises.json"
# How the stored shares were analysed: the Simulator's default sidebar choices.
PROMISE_MODEL = {"model": "three-level", "method": "REML", "ptr_scale": "log"}
PROMISE_LITERATURES = 200
# The patient-level panel's default study: 20 therapists with 8 patients each.
PANEL_THERAPISTS = 20
PANEL_PER_THERAPIST = 8


# ---------------------------------------------------------------------------------------------
# The patient-level expectation (closed form, module docstring)
# ---------------------------------------------------------------------------------------------


def mean_alliance_reliability(icc: float, per_therapist: float) -> float:
    """λ = ICC / (ICC + (1 − ICC)/m): the therapist part's share of a therapist's mean alliance."""
    if per_therapist < 1:
        raise AnalysisError("A therapist needs at least one patient.")
    if icc <= 0:
        return 0.0
    return float(icc / (icc + (1.0 - icc) / per_therapist))


@dataclass(frozen=True)
class PatientExpectation:
    """What the patient-level model estimates on average: between = λ·γ_b + (1 − λ)·γ_w,
    within = γ_w, for ``per_therapist`` patients per therapist (module docstring)."""

    slope_between: float  # γ_b set on the page
    slope_within: float  # γ_w set on the page
    reliability: float  # λ
    per_therapist: int

    @property
    def between(self) -> float:
        lam = self.reliability
        return lam * self.slope_between + (1.0 - lam) * self.slope_within

    @property
    def within(self) -> float:
        return self.slope_within

    def sentence(self) -> str:
        """The shrinkage of the between-therapist slope, with its size, in one sentence."""
        lam = self.reliability
        lead = (
            f"With {self.per_therapist} patients per therapist, a therapist's mean alliance is "
            f"{format_number(100 * lam, 0)} % therapist part and "
            f"{format_number(100 * (1 - lam), 0)} % the patients' own alliance, so the "
            f"between-therapist slope estimates {format_number(lam)} × "
            f"{format_number(self.slope_between)} + {format_number(1 - lam)} × "
            f"{format_number(self.slope_within)} = {format_number(self.between)}"
        )
        if format_number(self.between) == format_number(self.slope_between):
            return f"{lead}: the slope set above, because both parts have the same slope."
        return (
            f"{lead}, not the {format_number(self.slope_between)} set above: few patients per "
            "therapist pull it towards the within-therapist slope (more patients per therapist "
            "bring it closer)."
        )


def patient_expectation(params: SimulationParameters, per_therapist: int) -> PatientExpectation:
    return PatientExpectation(
        slope_between=params.slope_between,
        slope_within=params.slope_within,
        reliability=mean_alliance_reliability(params.icc, per_therapist),
        per_therapist=int(per_therapist),
    )


def patient_draw_is_typical(result: PatientLevelResult, expected: PatientExpectation) -> bool:
    """Both slopes within one standard error of their expectation."""
    return bool(
        abs(result.between.estimate - expected.between) <= result.between.se
        and abs(result.within.estimate - expected.within) <= result.within.se
    )


def panel_fit(params: SimulationParameters, seed: int) -> PatientLevelResult:
    """The patient-level panel's default study drawn at ``seed``, fitted."""
    patients = simulate_patients(
        params,
        n_patients=PANEL_THERAPISTS * PANEL_PER_THERAPIST,
        n_therapists=PANEL_THERAPISTS,
        rng=seed,
    )
    return fit_patient_level(patients)


def draw_is_typical(preset: Preset, seed: int) -> bool:
    """The default seed rule for one preset (module docstring)."""
    params = replace(preset.params, seed=seed)
    if not preset.promise_kept(run_simulation(params, **PROMISE_MODEL)):
        return False
    expected = patient_expectation(params, PANEL_PER_THERAPIST)
    return patient_draw_is_typical(panel_fit(params, seed), expected)


def first_typical_seed(presets: Iterable[Preset] | None = None, limit: int = 200) -> int:
    """The first seed from 1 upward that is typical for every preset."""
    presets = list(PRESETS.values() if presets is None else presets)
    for seed in range(1, limit + 1):
        if all(draw_is_typical(preset, seed) for preset in presets):
            return seed
    raise AnalysisError(f"No seed up to {limit} is typical for every preset.")


# ---------------------------------------------------------------------------------------------
# Promise shares over many literatures
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiteratureOutcome:
    """What one simulated literature showed: slope the promised way, interval clear of zero
    on that side, whole promise kept."""

    seed: int
    fell: bool  # the fitted slope has the promised sign ("fell" for a negative promise)
    clear: bool
    kept: bool


def literature_outcome(preset: Preset, seed: int, **analysis: str) -> LiteratureOutcome:
    """Simulate the preset's world at ``seed``, analyse it (default: :data:`PROMISE_MODEL`)."""
    run = run_simulation(replace(preset.params, seed=seed), **(PROMISE_MODEL | analysis))
    return outcome_of(preset, run)


def outcome_of(preset: Preset, run: SimulationRun) -> LiteratureOutcome:
    """What ``run`` shows in the light of ``preset``'s promise."""
    row = run.slope
    direction = preset.direction
    near = min(row["ci_lb"] * direction, row["ci_ub"] * direction)
    return LiteratureOutcome(
        seed=run.params.seed,
        fell=bool(np.sign(row["estimate"]) == direction),
        clear=bool(near > 0),
        kept=preset.promise_kept(run),
    )


@dataclass(frozen=True)
class PromiseShare:
    """How often literatures simulated with a preset's settings show its promise."""

    preset: str
    direction: int
    outcomes: tuple[LiteratureOutcome, ...]

    @property
    def literatures(self) -> int:
        return len(self.outcomes)

    def share(self, what: str) -> float:
        """Share of literatures with ``what`` ("fell", "clear" or "kept") true."""
        return float(np.mean([getattr(o, what) for o in self.outcomes]))

    def sentence(self) -> str:
        """The promise as computed shares, for the preset's caption."""
        way = "fell" if self.direction < 0 else "rose"
        side = "below" if self.direction < 0 else "above"
        return (
            f"In {self.literatures} literatures simulated with this preset's settings and "
            f"analysed like the default here ({PROMISE_MODEL['model']}, "
            f"{PROMISE_MODEL['method']}, log PTR), the fitted PTR slope {way} in "
            f"{_percent(self.share('fell'))} and its 95 % interval lay wholly {side} zero in "
            f"{_percent(self.share('clear'))}; the whole promise (fitted slope, theory and "
            f"interval as described) held in {_percent(self.share('kept'))}."
        )

    def this_draw(self, outcome: LiteratureOutcome) -> str:
        """The drawn literature in the light of the shares."""
        way = "falls" if self.direction < 0 else "rises"
        if not outcome.fell:
            return (
                f"This draw (seed {outcome.seed}) is one of the "
                f"{_percent(1 - self.share('fell'))} whose slope does not {way[:-1]}."
            )
        if outcome.clear:
            return (
                f"This draw (seed {outcome.seed}) is one of the "
                f"{_percent(self.share('clear'))} whose slope {way} clearly."
            )
        return (
            f"This draw (seed {outcome.seed}): the slope {way}, but its interval includes "
            f"zero, as in {_percent(self.share('fell') - self.share('clear'))} of literatures."
        )


def _percent(share: float) -> str:
    return f"{format_number(100 * share, 0)} %"


def promise_share(
    preset: Preset, literatures: int = PROMISE_LITERATURES, first_seed: int = 1
) -> PromiseShare:
    """Compute the shares (minutes for 200 literatures; the page reads :func:`stored_shares`)."""
    outcomes = tuple(
        literature_outcome(preset, seed) for seed in range(first_seed, first_seed + literatures)
    )
    return PromiseShare(preset.name, preset.direction, outcomes)


def shares_to_json(shares: Iterable[PromiseShare]) -> str:
    payload = {
        "analysis": PROMISE_MODEL,
        "presets": {
            share.preset: {
                "seeds": [o.seed for o in share.outcomes],
                "fell": [o.fell for o in share.outcomes],
                "clear": [o.clear for o in share.outcomes],
                "kept": [o.kept for o in share.outcomes],
            }
            for share in shares
        },
    }
    return json.dumps(payload, indent=1) + "\n"


def stored_shares() -> dict[str, PromiseShare]:
    """The shares ``scripts/make_simulator_promises.py`` wrote, by preset name."""
    text = resources.files(__package__).joinpath(PROMISE_FILE).read_text(encoding="utf-8")
    payload = json.loads(text)
    shares = {}
    for name, stored in payload["presets"].items():
        if name not in PRESETS:
            raise AnalysisError(f"{PROMISE_FILE} names an unknown preset '{name}'; regenerate it.")
        outcomes = tuple(
            LiteratureOutcome(int(s), bool(f), bool(c), bool(k))
            for s, f, c, k in zip(
                stored["seeds"], stored["fell"], stored["clear"], stored["kept"], strict=True
            )
        )
        shares[name] = PromiseShare(name, PRESETS[name].direction, outcomes)
    return shares
