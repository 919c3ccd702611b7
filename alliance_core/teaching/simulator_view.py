"""The Simulator's choices as a link: preset, seed and every slider (``sim=therapists&seed=4&…``).

A student who opens the instructor's link sees the same simulated world. The Simulator's own
``sim=`` names its preset (``preset=`` already names a published model specification of the
analysis sidebar, so the two never collide). Parameters a link leaves out keep the preset's
values; a malformed or out-of-range value is dropped with a sentence saying so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from alliance_core.formatting import format_number
from alliance_core.teaching.promises import PANEL_PER_THERAPIST, PANEL_THERAPISTS
from alliance_core.teaching.simulate import SimulationParameters
from alliance_core.teaching.simulator import PRESETS, Preset

# Link code of each preset, in the page's order.
PRESET_CODES = {
    "therapists": "Only therapists matter",
    "patients": "Only patients matter",
    "equal": "Both equal",
}
DEFAULT_PRESET_CODE = "therapists"
# Link parameter → (attribute, low, high, step, integer): the page's sliders use the same ranges.
SLIDERS: dict[str, tuple[str, float, float, float, bool]] = {
    "icc": ("icc", 0.0, 0.9, 0.05, False),
    "between": ("slope_between", 0.0, 2.0, 0.05, False),
    "within": ("slope_within", 0.0, 2.0, 0.05, False),
    "studies": ("n_studies", 20, 500, 10, True),
    "ptrmed": ("ptr_median", 1.0, 30.0, 0.5, False),
    "seed": ("seed", 0, 10**6, 1, True),
    "therapists": ("therapists", 3, 80, 1, True),
    "perther": ("per_therapist", 2, 40, 1, True),
}
LINK_PARAMETERS = ("sim", *SLIDERS)


@dataclass(frozen=True)
class SimulatorView:
    """What the Simulator page shows: a preset and the values of its sliders."""

    preset: str = PRESET_CODES[DEFAULT_PRESET_CODE]
    icc: float = PRESETS[PRESET_CODES[DEFAULT_PRESET_CODE]].params.icc
    slope_between: float = PRESETS[PRESET_CODES[DEFAULT_PRESET_CODE]].params.slope_between
    slope_within: float = PRESETS[PRESET_CODES[DEFAULT_PRESET_CODE]].params.slope_within
    n_studies: int = PRESETS[PRESET_CODES[DEFAULT_PRESET_CODE]].params.n_studies
    ptr_median: float = PRESETS[PRESET_CODES[DEFAULT_PRESET_CODE]].params.ptr_median
    seed: int = PRESETS[PRESET_CODES[DEFAULT_PRESET_CODE]].params.seed
    therapists: int = PANEL_THERAPISTS
    per_therapist: int = PANEL_PER_THERAPIST

    @classmethod
    def for_preset(cls, name: str) -> SimulatorView:
        """The preset's own values (and the patient panel's default study)."""
        params = PRESETS[name].params
        return cls(
            preset=name,
            icc=params.icc,
            slope_between=params.slope_between,
            slope_within=params.slope_within,
            n_studies=params.n_studies,
            ptr_median=params.ptr_median,
            seed=params.seed,
        )

    @property
    def preset_object(self) -> Preset:
        return PRESETS[self.preset]

    @property
    def params(self) -> SimulationParameters:
        return replace(
            self.preset_object.params,
            icc=self.icc,
            slope_between=self.slope_between,
            slope_within=self.slope_within,
            n_studies=int(self.n_studies),
            ptr_median=self.ptr_median,
            seed=int(self.seed),
        )

    @property
    def is_preset(self) -> bool:
        """The literature is the preset's own world (any seed)."""
        return replace(self.params, seed=0) == replace(self.preset_object.params, seed=0)

    def to_query(self) -> dict[str, str]:
        """Link parameters: ``sim`` always, each slider only where it differs from the preset."""
        code = next(code for code, name in PRESET_CODES.items() if name == self.preset)
        query = {"sim": code}
        base = SimulatorView.for_preset(self.preset)
        for key, (attribute, *_rest, integer) in SLIDERS.items():
            value = getattr(self, attribute)
            if value != getattr(base, attribute):
                query[key] = str(int(value)) if integer else f"{value:g}"
        return query

    @classmethod
    def from_query(
        cls, query: Mapping[str, Sequence[str] | str]
    ) -> tuple[SimulatorView, list[str]]:
        """The view a link asks for, and a sentence for every parameter that was not used."""
        problems: list[str] = []

        def last(key: str) -> str | None:
            raw = query.get(key)
            if raw is None:
                return None
            values = [raw] if isinstance(raw, str) else list(raw)
            return str(values[-1]) if values else None

        code = last("sim")
        if code is not None and code not in PRESET_CODES:
            problems.append(
                f"Link parameter sim={code}: the Simulator's presets are "
                f"{', '.join(PRESET_CODES)}; the first is shown."
            )
            code = None
        view = cls.for_preset(PRESET_CODES[code or DEFAULT_PRESET_CODE])
        changes: dict[str, float | int] = {}
        for key, (attribute, low, high, _step, integer) in SLIDERS.items():
            text = last(key)
            if text is None:
                continue
            try:
                value = float(text)
            except ValueError:
                value = float("nan")
            if not low <= value <= high or (integer and not value.is_integer()):
                problems.append(
                    f"Link parameter {key}={text}: the Simulator takes "
                    f"{'a whole number' if integer else 'a number'} from "
                    f"{format_number(low, 0 if integer else 2)} to "
                    f"{format_number(high, 0 if integer else 2)}; the preset's value is used."
                )
                continue
            changes[attribute] = int(value) if integer else value
        return replace(view, **changes), problems
