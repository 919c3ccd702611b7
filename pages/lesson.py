"""Lesson: a guided class in steps, each with its view, figure, question and instructor notes.

The lesson's text is data (alliance_core/teaching/lessons/<name>.toml); the step travels in the
link (lesson=ptr&step=3), so students follow on their own devices; arrow keys move between steps.
"""

import plotly.graph_objects as go
import streamlit as st

from alliance_core.data.datasets import DEFAULT_DATASET, dataset_info
from alliance_core.formatting import escape_markdown
from alliance_core.teaching.lesson import (
    available_lessons,
    lesson_from_link,
    load_lesson,
)
from alliance_core.teaching.lesson_figures import step_figure
from pages._ui import loading, projector, render, session, sidebar, state, view_link

LESSON_KEY = "_lesson:name"  # plain keys: they survive a visit to the page a step opens
STEP_KEY = "_lesson:step"
OPEN_KEY = "_lesson:open"  # set by the button's callback: switching pages happens in the script
PREVIOUS, NEXT = "Previous", "Next"  # short: never cut in the projector view
FIGURE_HEIGHT = 380  # px: with the heading above, figure and "what to look for" fit 720 px
# Arrow keys press the step buttons (by their labels), except while typing in a field.
ARROW_KEYS = f"""
<script>
const doc = window.parent.document;
if (!doc.__lessonArrowKeys) {{
  doc.__lessonArrowKeys = true;
  doc.addEventListener("keydown", (event) => {{
    const target = event.target;
    const tag = (target.tagName || "").toLowerCase();
    if (["input", "textarea", "select"].includes(tag) || target.isContentEditable) return;
    const label = {{ArrowRight: "{NEXT}", ArrowLeft: "{PREVIOUS}"}}[event.key];
    if (!label) return;
    const button = Array.from(doc.querySelectorAll("button")).find(
      (b) => b.innerText.trim().endsWith(label)
    );
    if (button && !button.disabled) {{
      event.preventDefault();
      button.click();
    }}
  }});
}}
</script>
"""


@st.cache_resource(show_spinner=False)
def lesson(name: str):
    return load_lesson(name)


@st.cache_data(max_entries=32, show_spinner="Drawing the step's figure…", ttl=loading.CACHE_TTL)
def figure_of(name: str, number: int):
    # A pure function of the lesson file and the step: every student's session shares it.
    return step_figure(lesson(name).step(number).figure)


def move(by: int) -> None:
    ss = st.session_state
    ss[STEP_KEY] = min(max(ss[STEP_KEY] + by, 1), len(lesson(ss[LESSON_KEY]).steps))


def open_view(step) -> None:
    """Open the page of the step with its view, as the step's link would."""
    ss = st.session_state
    query = {"ds": [DEFAULT_DATASET], **step.query()}
    settings, problems = state.settings_from_link(query, loading.defaults_for)
    view, view_problems = view_link.view_from_link(query)
    ss[session.PENDING] = settings
    ss[session.NOTICES] = [*problems, *view_problems]
    ss[session.LINK_VIEW] = view
    ss[session.VIEW_QUERY] = {
        key: values for key, values in query.items() if key in view_link.VIEW_PARAMETERS
    }
    for key in [key for key in ss if str(key).startswith("sim:")]:
        del ss[key]  # the Simulator reads its view from the link again
    st.switch_page(ctx.pages[step.page])


def lesson_header(ctx: loading.Context) -> None:
    """The lesson's own data and model. Its figures always use the bundled simulated data
    under the dashboard's default analysis (or the Simulator's simulated worlds), whatever the
    sidebar shows, so every student sees the same numbers; the header names them rather than
    the sidebar's state (``sidebar_notice`` names that when it differs)."""
    st.title("Lesson")
    info = dataset_info(DEFAULT_DATASET)
    lesson_settings = loading.defaults_for(DEFAULT_DATASET)
    badge = ":orange-badge[:material/science: SIMULATED] " if info.simulated else ""
    described = render.describe_settings(lesson_settings)
    # Two lines, as every page's header: the figure and what to look for must still share
    # one projector screen below it (the rest is said in the caption at the end).
    render.markdown(f"{badge}**{escape_markdown(info.title)}**  \n{described}")


def sidebar_notice(ctx: loading.Context) -> None:
    """When the sidebar shows another state than the lesson's, name it (below the step, so
    that the figure keeps its place on a projector screen)."""
    lesson_settings = loading.defaults_for(DEFAULT_DATASET)
    shown = ctx.settings.with_changes(
        moderators=lesson_settings.moderators, ptr_scale=lesson_settings.ptr_scale, page=None
    )
    if ctx.data is not None and (
        ctx.data.upload is not None
        or loading.analysis_key(shown) != loading.analysis_key(lesson_settings)
    ):
        sidebar_state = (
            f"**{escape_markdown(ctx.data.title)}** · {render.describe_settings(ctx.settings)}"
        )
        st.info(
            f"The sidebar now shows {sidebar_state}. The lesson keeps to its own data and "
            "model (named under the title), so a class sees the same numbers; **Open this "
            "view** opens a step's page on the lesson's data.",
            icon=":material/school:",
        )


ctx = sidebar.context()
lesson_header(ctx)
ss = st.session_state
if STEP_KEY not in ss:
    name, number, problems = lesson_from_link(ss.get(session.VIEW_QUERY, {}))
    ss[LESSON_KEY], ss[STEP_KEY] = name, number
    for problem in problems:
        st.warning(problem, icon=":material/link_off:")
if len(available_lessons()) > 1:
    st.selectbox(
        "Lesson",
        available_lessons(),
        format_func=lambda name: lesson(name).title,
        key=LESSON_KEY,
        on_change=lambda: ss.__setitem__(STEP_KEY, 1),
    )
current = lesson(ss[LESSON_KEY])
ss[STEP_KEY] = current.step(ss[STEP_KEY]).number  # a link's step beyond the end: the last
step = current.step(ss[STEP_KEY])
sidebar.write_view({"lesson": [current.name], "step": [str(step.number)]})

# The step's heading and buttons share one row, so the figure and what to look for start high
# enough to fit one 1280×720 projector screen together.
heading, back, forward = st.columns([6, 2, 2], vertical_alignment="center")
heading.subheader(f"{current.heading(step.number)}: {step.title}", anchor=False)
back.button(
    PREVIOUS,
    icon=":material/arrow_back:",
    on_click=move,
    args=(-1,),
    disabled=step.number == 1,
    width="stretch",
)
forward.button(
    NEXT,
    icon=":material/arrow_forward:",
    on_click=move,
    args=(1,),
    disabled=step.number == len(current.steps),
    width="stretch",
    type="primary",
)

with render.shown_errors("The step's figure"):
    shown = figure_of(current.name, step.number)
    # On a projector what to look for gets half the width, so it stays short beside the figure;
    # half the width is too narrow for a legend at the plot's right, so the legend stays above
    # the plot, where the figure puts it.
    figure_col, look_col = st.columns([1, 1] if projector.on() else [3, 2])
    with figure_col, projector.figure_box():
        render.plot(
            go.Figure(shown.figure).update_layout(height=FIGURE_HEIGHT),
            key=f"lesson:figure:{step.number}",
            projector_height=render.FILL,
            legend="own",
        )
    with look_col.container(border=True, key="lesson-look-for"):
        st.markdown(f"**:material/visibility: What to look for:** {step.look_for}")
    st.markdown(shown.sentence)

st.markdown(f"**Question for the class:** {step.question}")
with st.expander("Reveal the answer", icon=":material/lightbulb:"):
    st.markdown(step.answer)
with st.expander("Notes for the instructor", icon=":material/co_present:"):
    st.markdown(step.notes)
st.button(
    f"Open this view: {ctx.pages[step.page].title}",
    icon=":material/open_in_new:",
    on_click=ss.__setitem__,
    args=(OPEN_KEY, True),
)
if ss.pop(OPEN_KEY, False):
    open_view(step)
sidebar_notice(ctx)
st.caption(
    f"**{current.title}** (about {current.minutes} minutes). "
    "The address bar holds the lesson and the step: share it and students open this step "
    "on their own devices. The arrow keys (← →) move between steps. The steps' figures use "
    "the data and model named under the title (the pooled steps without moderators) or the "
    "Simulator's simulated worlds, whatever the sidebar shows."
)
st.iframe(ARROW_KEYS, height=1)  # our own script, no user text in it
