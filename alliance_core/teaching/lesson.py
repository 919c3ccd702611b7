"""Lessons as data: one TOML file per lesson under ``alliance_core/teaching/lessons/``.

A lesson is a title, a length in minutes, a summary and at least :data:`MIN_STEPS` steps. Each
step has a ``title``; a ``view`` (the dashboard page it opens, ``page = "simulator"``, plus any
link parameters that page's link can hold, e.g. ``sim = "equal"`` or ``mod = "PTR"``); a
``figure`` (``kind`` one of :data:`FIGURE_KINDS`, with ``preset`` and ``per_therapist`` where
the kind takes them); ``look_for`` (what to check on the figure); a ``question`` for students
with its ``answer``; and ``notes`` for the instructor. Text may quote the project's one
statement on the PTR slope as ``{ptr_slope_meaning}``.

:func:`load_lesson` checks every field and raises :class:`LessonError` naming the file, the
step and the field, so an instructor who writes a lesson sees what to fix.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

from alliance_core.errors import AnalysisError
from alliance_core.teaching.simulator_view import PRESET_CODES
from alliance_core.wording.ptr_slope import PTR_SLOPE_MEANING

LESSON_FOLDER = "lessons"
MIN_STEPS = 8
FIGURE_KINDS = ("pooled", "patients", "simulation", "ptr_curve")
# Pages a step may open (the dashboard's page keys).
PAGES = (
    "overview",
    "data",
    "forest",
    "funnel",
    "moderators",
    "sensitivity",
    "simulator",
    "methods",
)
SIMULATOR_PRESETS = tuple(PRESET_CODES)
STEP_FIELDS = ("title", "view", "figure", "look_for", "question", "answer", "notes")
PLACEHOLDERS = {"ptr_slope_meaning": PTR_SLOPE_MEANING}
_PLACEHOLDER = re.compile(r"\{(\w*)\}")


class LessonError(AnalysisError):
    """A lesson file that cannot be shown, with where and why."""


@dataclass(frozen=True)
class Figure:
    kind: str
    preset: str | None = None  # Simulator preset code, for "patients" and "simulation"
    per_therapist: int = 8  # patients per therapist, for "patients"


@dataclass(frozen=True)
class LessonStep:
    number: int
    title: str
    page: str
    link: Mapping[str, str]  # link parameters of the view besides the page
    figure: Figure
    look_for: str
    question: str
    answer: str
    notes: str

    def query(self) -> dict[str, list[str]]:
        """The step's view as link parameters (``page`` included)."""
        return {"page": [self.page], **{key: [value] for key, value in self.link.items()}}


@dataclass(frozen=True)
class Lesson:
    name: str
    title: str
    minutes: int
    summary: str
    steps: tuple[LessonStep, ...]

    def step(self, number: int) -> LessonStep:
        """Step ``number`` (1-based), clipped to the lesson."""
        return self.steps[min(max(int(number), 1), len(self.steps)) - 1]

    def heading(self, number: int) -> str:
        return f"Step {self.step(number).number} of {len(self.steps)}"


def available_lessons() -> tuple[str, ...]:
    """Names of the lesson files (``ptr`` for ``lessons/ptr.toml``), sorted."""
    folder = resources.files(__package__).joinpath(LESSON_FOLDER)
    return tuple(
        sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))
    )


def load_lesson(name: str) -> Lesson:
    """Read and check ``lessons/<name>.toml``."""
    if name not in available_lessons():
        raise LessonError(f"No lesson called '{name}' (lessons: {', '.join(available_lessons())}).")
    file = f"{name}.toml"
    text = resources.files(__package__).joinpath(LESSON_FOLDER, file).read_text(encoding="utf-8")
    return parse_lesson(text, name=name, file=file)


def parse_lesson(text: str, name: str = "lesson", file: str = "the lesson file") -> Lesson:
    """A lesson from TOML text; every problem raises :class:`LessonError` naming its place."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise LessonError(f"{file} is not valid TOML: {error}.") from None
    for key, kind in (("title", str), ("summary", str), ("minutes", int)):
        if not isinstance(data.get(key), kind):
            raise LessonError(f"{file}: '{key}' is missing or not a {kind.__name__}.")
    raw_steps = data.get("step")
    if not isinstance(raw_steps, list) or len(raw_steps) < MIN_STEPS:
        count = len(raw_steps) if isinstance(raw_steps, list) else 0
        raise LessonError(
            f"{file}: a lesson needs at least {MIN_STEPS} [[step]] tables (found {count})."
        )
    steps = tuple(_step(raw, number, file) for number, raw in enumerate(raw_steps, start=1))
    return Lesson(
        name=name,
        title=_text(data["title"], file, 0, "title"),
        minutes=data["minutes"],
        summary=_text(data["summary"], file, 0, "summary"),
        steps=steps,
    )


def _where(file: str, number: int, field: str) -> str:
    return f"{file}, step {number}, '{field}'" if number else f"{file}, '{field}'"


def _text(value: object, file: str, number: int, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise LessonError(f"{_where(file, number, field)}: needs some text.")
    unknown = [m for m in _PLACEHOLDER.findall(value) if m not in PLACEHOLDERS]
    if unknown:
        raise LessonError(
            f"{_where(file, number, field)}: unknown placeholder {{{unknown[0]}}} (known: "
            + ", ".join("{" + key + "}" for key in PLACEHOLDERS)
            + ")."
        )
    return _PLACEHOLDER.sub(lambda m: PLACEHOLDERS[m.group(1)], " ".join(value.split()))


def _step(raw: object, number: int, file: str) -> LessonStep:
    if not isinstance(raw, dict):
        raise LessonError(f"{file}, step {number}: not a table of fields.")
    missing = [field for field in STEP_FIELDS if field not in raw]
    if missing:
        raise LessonError(f"{_where(file, number, missing[0])}: missing.")
    extra = sorted(set(raw) - set(STEP_FIELDS))
    if extra:
        raise LessonError(
            f"{_where(file, number, extra[0])}: not a step field (fields: {', '.join(STEP_FIELDS)})."
        )
    view = raw["view"]
    if not isinstance(view, dict) or view.get("page") not in PAGES:
        raise LessonError(
            f"{_where(file, number, 'view')}: needs page = one of {', '.join(PAGES)}."
        )
    link = {str(key): str(value) for key, value in view.items() if key != "page"}
    if "sim" in link and link["sim"] not in SIMULATOR_PRESETS:
        raise LessonError(
            f"{_where(file, number, 'view')}: sim must be one of {', '.join(SIMULATOR_PRESETS)}."
        )
    return LessonStep(
        number=number,
        title=_text(raw["title"], file, number, "title"),
        page=view["page"],
        link=link,
        figure=_figure(raw["figure"], file, number),
        look_for=_text(raw["look_for"], file, number, "look_for"),
        question=_text(raw["question"], file, number, "question"),
        answer=_text(raw["answer"], file, number, "answer"),
        notes=_text(raw["notes"], file, number, "notes"),
    )


def _figure(raw: object, file: str, number: int) -> Figure:
    where = _where(file, number, "figure")
    if not isinstance(raw, dict) or raw.get("kind") not in FIGURE_KINDS:
        raise LessonError(f"{where}: needs kind = one of {', '.join(FIGURE_KINDS)}.")
    kind = raw["kind"]
    preset = raw.get("preset")
    if kind in ("patients", "simulation") and preset not in SIMULATOR_PRESETS:
        raise LessonError(
            f"{where}: a {kind} figure needs preset = one of {', '.join(SIMULATOR_PRESETS)}."
        )
    per_therapist = raw.get("per_therapist", 8)
    if not isinstance(per_therapist, int) or not 2 <= per_therapist <= 40:
        raise LessonError(f"{where}: per_therapist must be a whole number from 2 to 40.")
    return Figure(kind=kind, preset=preset, per_therapist=per_therapist)


DEFAULT_LESSON = "ptr"
LINK_PARAMETERS = ("lesson", "step")


def lesson_from_link(query: Mapping[str, object]) -> tuple[str, int, list[str]]:
    """The lesson and step a link asks for (``lesson=ptr&step=3``), and a sentence for each
    parameter not used; a step beyond the lesson opens its last step."""
    problems: list[str] = []

    def last(key: str) -> str | None:
        raw = query.get(key)
        values = [raw] if isinstance(raw, str) else list(raw or [])  # type: ignore[arg-type]
        return str(values[-1]) if values else None

    name = last("lesson") or DEFAULT_LESSON
    if name not in available_lessons():
        problems.append(
            f"Link parameter lesson={name}: no such lesson (lessons: "
            f"{', '.join(available_lessons())}); the first lesson is shown."
        )
        name = DEFAULT_LESSON
    text = last("step")
    number = 1
    if text is not None:
        if text.isdigit() and int(text) >= 1:
            number = int(text)
        else:
            problems.append(
                f"Link parameter step={text}: steps are numbered 1, 2, …; step 1 is shown."
            )
    return name, number, problems
