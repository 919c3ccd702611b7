"""The Lesson page: every step from its link, moving between steps, and each step's view."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from alliance_core.data.datasets import DEFAULT_DATASET, dataset_info
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


def test_the_lesson_names_its_own_data_and_the_sidebars_when_they_differ():
    """The lesson's figures use the bundled simulated data under the default analysis; under
    another sidebar state the header still names the lesson's data, and a notice names the
    sidebar's, so a PTR result is never shown under another dataset's name."""
    last = len(STEPS)  # the PTR curve step
    at = opened({"page": "lesson", "lesson": "ptr", "step": str(last)})
    header = " ".join(unescaped(m.value) for m in at.markdown[:2])
    default_title = dataset_info(DEFAULT_DATASET).title
    assert "SIMULATED" in header and default_title in header
    assert not at.info  # the sidebar shows the lesson's own state
    sentence = next(m.value for m in at.markdown if "At PTR 1" in unescaped(m.value))
    for query in (
        {"ds": "crede2010"},
        {"keep": ["alliance_measure:CALPAS", "design:RCT"], "inf": "CR2"},
    ):
        other = opened({"page": "lesson", "lesson": "ptr", "step": str(last), **query})
        header = " ".join(unescaped(m.value) for m in other.markdown[:2])
        assert "SIMULATED" in header and default_title in header
        notice = unescaped(other.info[0].value)
        assert "The sidebar now shows" in notice and "keeps to its own data" in notice
        if "ds" in query:
            assert dataset_info("crede2010").title in notice
            assert dataset_info("crede2010").title not in header
        else:
            assert "CALPAS" in notice
        # The step's numbers are the lesson's, the same as in its own state.
        assert sentence in [m.value for m in other.markdown]
