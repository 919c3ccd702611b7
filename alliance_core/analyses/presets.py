"""Published model specifications a user can set in one step (a "model of the paper").

A preset names the moderators (and the model) of a published analysis, so a class can start
from the published specification and then take parts away. It is applied to
``AnalysisSettings``; the resulting settings, like any others, travel in a link (as the
explicit moderators, plus ``preset=<key>`` while they still match the preset).
"""

from __future__ import annotations

from dataclasses import dataclass

from alliance_core.analyses.settings import PTR, AnalysisSettings


@dataclass(frozen=True)
class ModelPreset:
    """A published specification: its moderators and model, and the datasets coded for it."""

    key: str  # link code: preset=<key>
    label: str
    reference: str
    model: str
    moderators: tuple[str, ...]
    datasets: tuple[str, ...]

    def applies_to(self, dataset: str, moderators: tuple[str, ...]) -> bool:
        """Whether this dataset is coded for the preset and offers every one of its moderators."""
        return dataset in self.datasets and set(self.moderators) <= set(moderators)

    def apply(self, settings: AnalysisSettings) -> AnalysisSettings:
        reference = {c: v for c, v in settings.reference.items() if c in self.moderators}
        return settings.with_changes(
            model=self.model,
            method=settings.method if settings.method in ("REML", "ML") else "REML",
            moderators=self.moderators,
            reference=reference,
        )

    def matches(self, settings: AnalysisSettings) -> bool:
        """Whether the settings are this preset's specification (in any moderator order)."""
        return (
            settings.dataset in self.datasets
            and settings.model == self.model
            and sorted(settings.moderators) == sorted(self.moderators)
        )


DEL_RE_2021 = ModelPreset(
    key="delre2021",
    label="Model of the paper (Del Re et al. 2021)",
    reference=(
        "Del Re, Flückiger, Horvath & Wampold (2021), Journal of Consulting and Clinical "
        "Psychology, 89(5), 371–378: three-level meta-regression of the alliance–outcome "
        "correlation on PTR, controlling for alliance rater, outcome rater, alliance measure, "
        "research design and personality disorder."
    ),
    model="three-level",
    moderators=(PTR, "alliance_rater", "outcome_rater", "alliance_measure", "design", "pd"),
    datasets=("alliance_simulated",),
)

PRESETS = {preset.key: preset for preset in (DEL_RE_2021,)}


def presets_for(dataset: str, moderators: tuple[str, ...]) -> list[ModelPreset]:
    """The presets this dataset supports (its moderators include all of the preset's)."""
    return [p for p in PRESETS.values() if p.applies_to(dataset, tuple(moderators))]


def matching_preset(settings: AnalysisSettings) -> ModelPreset | None:
    return next((p for p in PRESETS.values() if p.matches(settings)), None)


def apply_preset_link(settings: AnalysisSettings, key: str) -> tuple[AnalysisSettings, str | None]:
    """Settings with the preset of link parameter ``preset=<key>`` applied, or a problem."""
    preset = PRESETS.get(key)
    if preset is None:
        return settings, (
            f"Link parameter preset={key}: no such preset (known: {', '.join(PRESETS)}); "
            "it was ignored."
        )
    if settings.dataset not in preset.datasets:
        return settings, (
            f"Link parameter preset={key}: the {preset.label} is coded for the "
            f"{', '.join(preset.datasets)} dataset only; it was ignored."
        )
    return preset.apply(settings), None
