"""Lessons as data: the bundled lesson loads, and every mistake in a lesson file is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from alliance_core.teaching.lesson import (
    FIGURE_KINDS,
    MIN_STEPS,
    PAGES,
    LessonError,
    available_lessons,
    lesson_from_link,
    load_lesson,
    parse_lesson,
)
from alliance_core.teaching.lesson_figures import step_figure
from alliance_core.wording.ptr_slope import PTR_SLOPE_MEANING

STEP = """
[[step]]
title = "A step"
view = {{ page = "simulator", sim = "equal" }}
figure = {{ kind = "{kind}", preset = "equal" }}
look_for = "Something"
question = "Why?"
answer = "{answer}"
notes = "For the instructor"
"""
HEAD = 'title = "T"\nminutes = 5\nsummary = "S"\n'


def lesson_text(steps: int = MIN_STEPS, kind: str = "simulation", answer: str = "Because") -> str:
    return HEAD + "".join(STEP.format(kind=kind, answer=answer) for _ in range(steps))


def test_the_ptr_lesson_loads_with_its_steps():
    lesson = load_lesson("ptr")
    assert "ptr" in available_lessons()
    assert len(lesson.steps) >= MIN_STEPS
    assert [s.number for s in lesson.steps] == list(range(1, len(lesson.steps) + 1))
    assert lesson.heading(3) == f"Step 3 of {len(lesson.steps)}"
    for step in lesson.steps:
        assert step.page in PAGES and step.figure.kind in FIGURE_KINDS
        assert step.query()["page"] == [step.page]
    # The lesson quotes the one statement on the PTR slope instead of its own words.
    assert any(PTR_SLOPE_MEANING in step.answer for step in lesson.steps)


def test_a_minimal_lesson_parses():
    lesson = parse_lesson(lesson_text(answer="See {ptr_slope_meaning}"))
    assert lesson.steps[0].answer == f"See {PTR_SLOPE_MEANING}"
    assert lesson.step(99).number == MIN_STEPS and lesson.step(0).number == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (lesson_text(steps=MIN_STEPS - 1), f"at least {MIN_STEPS} [[step]]"),
        (lesson_text(kind="pie"), "step 1, 'figure': needs kind"),
        (lesson_text(answer="{nonsense}"), "step 1, 'answer': unknown placeholder {nonsense}"),
        (lesson_text().replace('question = "Why?"\n', "", 1), "step 1, 'question': missing"),
        (lesson_text().replace('sim = "equal"', 'sim = "all"', 1), "sim must be one of"),
        (lesson_text().replace('page = "simulator"', 'page = "nowhere"', 1), "needs page ="),
        (lesson_text().replace('notes = "For', 'remarks = "x"\nnotes = "For', 1), "'remarks'"),
        (lesson_text().replace("minutes = 5", "minutes = 'five'"), "'minutes'"),
        ("title = ", "not valid TOML"),
    ],
)
def test_a_broken_lesson_names_the_place(text, message):
    with pytest.raises(LessonError) as error:
        parse_lesson(text, file="mine.toml")
    assert message in str(error.value)
    assert str(error.value).startswith("mine.toml")


def test_an_unknown_lesson_is_named():
    with pytest.raises(LessonError, match="No lesson called 'nope'"):
        load_lesson("nope")


@pytest.mark.parametrize(
    ("query", "expected", "problems"),
    [
        ({}, ("ptr", 1), 0),
        ({"lesson": ["ptr"], "step": ["3"]}, ("ptr", 3), 0),
        ({"lesson": ["other"], "step": ["x"]}, ("ptr", 1), 2),
        ({"step": ["0"]}, ("ptr", 1), 1),
    ],
)
def test_the_lesson_and_step_from_a_link(query, expected, problems):
    name, number, found = lesson_from_link(query)
    assert (name, number) == expected and len(found) == problems


@pytest.mark.parametrize("number", range(1, len(load_lesson("ptr").steps) + 1))
def test_every_step_has_a_figure_and_a_computed_sentence(number):
    shown = step_figure(load_lesson("ptr").step(number).figure)
    assert shown.figure.data and shown.sentence.endswith(".")


def test_the_teaching_guide_lists_every_step_of_the_lesson():
    guide = (Path(__file__).resolve().parents[2] / "docs" / "teaching.md").read_text("utf-8")
    for step in load_lesson("ptr").steps:
        assert f"{step.number}. **{step.title}**" in guide
