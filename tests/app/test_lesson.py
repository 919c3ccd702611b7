"""The Lesson page: every step from its link, moving between steps, and each step's view."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from alliance_core.teaching.lesson import load_lesson
from alliance_core.teaching.simulator_view import PRESET_CODES
from tests.app.conftest import assert_ran_cleanly, new_app, unescaped

LESSON = load_lesson("ptr")
STEPS = range(1, len(LESSON.steps) + 1)
PAGE_TITLES = {"overview": "Overview", "simulator": "Simulator", "moderators": "Moderators & PTR"}


def link(at: AppTest, key: str) -> str | None:
    value = at.query_params.get(key)
    return value[-1] if isinstance(value, list) else value


def opened(query: dict[str, str]) -> AppTest:
    at = new_app()
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert_ran_cleanly(at)
    return at


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label.startswith(label))


@pytest.mark.parametrize("number", STEPS)
def test_every_step_opens_from_its_link(number):
    at = opened({"page": "lesson", "lesson": "ptr", "step": str(number)})
    step = LESSON.step(number)
    assert [t.value for t in at.title] == ["Lesson"]
    assert [h.value for h in at.subheader] == [f"Step {number} of {len(STEPS)}: {step.title}"]
    texts = [unescaped(m.value) for m in at.markdown]
    assert any(step.look_for in t for t in texts)
    assert any(step.question in t for t in texts)
    assert any(step.answer == t for t in texts) and any(step.notes == t for t in texts)
    labels = [e.label for e in at.main.expander]
    assert labels[:2] == ["Reveal the answer", "Notes for the instructor"]
    assert link(at, "lesson") == "ptr" and link(at, "step") == str(number)
    assert link(at, "page") == "lesson"
    assert button(at, "Previous").disabled == (number == 1)
    assert button(at, "Next").disabled == (number == len(STEPS))


def test_the_step_buttons_move_and_the_link_follows():
    at = opened({"page": "lesson"})
    assert link(at, "step") == "1"
    button(at, "Next").click().run()
    button(at, "Next").click().run()
    assert link(at, "step") == "3"
    assert at.subheader[0].value.startswith("Step 3 of")
    button(at, "Previous").click().run()
    assert link(at, "step") == "2"


def test_a_bad_step_is_named_and_a_step_beyond_the_end_opens_the_last():
    at = opened({"page": "lesson", "step": "two"})
    assert any("step=two" in w.value for w in at.warning)
    assert link(at, "step") == "1"
    at = opened({"page": "lesson", "step": "99"})
    assert link(at, "step") == str(len(STEPS))


@pytest.mark.parametrize("number", STEPS)
def test_each_step_opens_its_view(number):
    step = LESSON.step(number)
    at = opened({"page": "lesson", "step": str(number)})
    button(at, "Open this view").click().run()
    assert_ran_cleanly(at)
    assert [t.value for t in at.title] == [PAGE_TITLES[step.page]]
    assert link(at, "page") == step.page
    for key, value in step.link.items():
        assert link(at, key) == value, key
    if "sim" in step.link:
        assert at.selectbox(key="sim:preset").value == PRESET_CODES[step.link["sim"]]
    if "perther" in step.link:
        assert at.slider(key="sim:perther").value == int(step.link["perther"])
