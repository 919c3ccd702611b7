"""Simulator (teaching): why PTR could moderate the alliance–outcome correlation.

Simulates patients inside studies, meta-analyses the studies' correlations with the model
chosen in the sidebar, and shows the fitted PTR curve next to the curve theory predicts.
A second part fits the patient-level model of Baldwin, Wampold & Imel (2007) to simulated or
uploaded patient data.
"""

import streamlit as st

from alliance_core.data import uploads
from alliance_core.formatting import escape_markdown, format_number, format_p
from alliance_core.teaching.patient_level import fit_patient_level
from alliance_core.teaching.patient_level_figure import therapist_means_figure
from alliance_core.teaching.promises import (
    PROMISE_MODEL,
    outcome_of,
    patient_expectation,
    stored_shares,
)
from alliance_core.teaching.simulate import SimulationParameters, simulate_patients
from alliance_core.teaching.simulator import PRESETS, run_simulation
from alliance_core.teaching.simulator_view import LINK_PARAMETERS, SLIDERS, SimulatorView
from alliance_core.wording.glossary import GLOSSARY, define
from pages._ui import loading, render, session, sidebar


def interval_text(low: float, high: float) -> str:
    return f"[{format_number(low, 3)}, {format_number(high, 3)}]"


PRESET_KEY = "sim:preset"
PROJECTOR_HEIGHT = 360  # px: the figure and what to look for on one 1280×720 screen


def widget_key(link_key: str) -> str:
    return f"sim:{link_key}"


def write_widgets(view: SimulatorView) -> None:
    """Put a view's preset and values into the widgets' session state."""
    ss = st.session_state
    ss[PRESET_KEY] = view.preset
    for link_key, (attribute, *_rest, integer) in SLIDERS.items():
        value = getattr(view, attribute)
        ss[widget_key(link_key)] = int(value) if integer else float(value)


def apply_preset() -> None:
    # A new preset brings its own world: every slider (and the seed) back to its values.
    write_widgets(SimulatorView.for_preset(st.session_state[PRESET_KEY]))


def slider(column, label: str, link_key: str, *, number: bool = False, help: str | None = None):
    _attribute, low, high, step, integer = SLIDERS[link_key]
    kind = column.number_input if number else column.slider
    cast = int if integer else float
    return kind(label, cast(low), cast(high), step=cast(step), key=widget_key(link_key), help=help)


def current_view() -> SimulatorView:
    ss = st.session_state
    # The patient panel's sliders are not drawn while patients are uploaded: their last values.
    fallback = SimulatorView()
    values = {
        attribute: ss.get(widget_key(link_key), getattr(fallback, attribute))
        for link_key, (attribute, *_) in SLIDERS.items()
    }
    return SimulatorView(preset=ss[PRESET_KEY], **values)


def view_query(view: SimulatorView) -> dict[str, list[str] | None]:
    """Every Simulator link parameter: the view's, and None for those it leaves out."""
    query = view.to_query()
    return {key: [query[key]] if key in query else None for key in LINK_PARAMETERS}


ctx = sidebar.context()
render.page_header("Simulator", ctx, needs_data=False)
render.markdown(
    ":orange-badge[:material/science: SIMULATED] Everything on this page is simulated for "
    "teaching: no real studies or patients."
)


@st.cache_data(max_entries=16, show_spinner=False, ttl=loading.CACHE_TTL)
def simulated_run(params: SimulationParameters, model: str, method: str, ptr_scale: str):
    # The run is a pure function of its inputs (the seed is a parameter), so it is cached.
    return run_simulation(params, model=model, method=method, ptr_scale=ptr_scale)


@st.cache_data(max_entries=16, show_spinner=False, ttl=loading.CACHE_TTL)
def simulated_patients(params: SimulationParameters, n_therapists: int, per_therapist: int, seed):
    return simulate_patients(
        params, n_patients=n_therapists * per_therapist, n_therapists=n_therapists, rng=seed
    )


@st.cache_data(max_entries=16, show_spinner=False, ttl=loading.CACHE_TTL)
def patient_level_fit(patients, therapist: str, alliance: str, outcome: str):
    # A mixed model and two ICC fits: cached on the patients' table, like the literature above.
    result = fit_patient_level(patients, therapist=therapist, alliance=alliance, outcome=outcome)
    # Computed once and kept in the cache. An assignment, not a bare expression: Streamlit's
    # "magic" would write a bare tuple onto the page (the raw floats seen under every preset).
    _derived = (result.icc_alliance, result.icc_outcome)
    return result


settings = ctx.settings
# The simulated literature is always analysed by the sidebar's family of model (two or three levels).
model = "two-level" if settings and settings.is_two_level else "three-level"
method = settings.method if settings else "REML"
ptr_scale = settings.ptr_scale if settings else "log"

ss = st.session_state
# On a projector the figure and what to look for share the first screen: the introduction and
# the preset's explanation move below them.
projector_on = bool(ss.get(session.PROJECTOR))
intro_slot = st.container()
if PRESET_KEY not in ss:
    # First run on this page (or back from another one): the link's view, which the page
    # keeps in the address bar, sets the preset, the seed and every slider.
    view, problems = SimulatorView.from_query(ss.get(session.VIEW_QUERY, {}))
    write_widgets(view)
    for problem in problems:
        st.warning(escape_markdown(problem), icon=":material/link_off:")
st.selectbox("Start from a preset", list(PRESETS), key=PRESET_KEY, on_change=apply_preset)
preset = PRESETS[ss[PRESET_KEY]]
# Large enough to read from the back of a classroom: the one thing to check on the figure.
if projector_on:
    figure_col, look_col = st.columns([3, 2])
    figure_slot, look_for = (
        figure_col.container(),
        look_col.container(border=True, key="sim-look-for"),
    )
    promise_slot, intro_slot = st.container(), st.container()
else:
    figure_slot, look_for = None, st.container(border=True, key="sim-look-for")
    promise_slot = look_for
with look_for:
    st.subheader(f":material/visibility: What to look for: {preset.look_for}", anchor=False)
with promise_slot:
    render.markdown(preset.shows)
with intro_slot:
    st.header("A simulated literature")
    render.markdown(
        "Each simulated study has patients and therapists. A patient's alliance is a therapist "
        "part (shared by a therapist's patients) plus a patient part; outcome follows each part "
        "with its own slope. The study reports the correlation of alliance and outcome, and the "
        f"studies are meta-analysed with the sidebar's model ({model}, {method}) and "
        f"{'log PTR' if ptr_scale == 'log' else 'PTR'} as the moderator."
    )
with st.form("sim:form"):
    left, middle, right = st.columns(3)
    slider(
        left,
        "Therapist share of alliance variance (ICC)",
        "icc",
        help="How much of the alliance differs between therapists rather than between patients.",
    )
    slider(
        middle,
        "Between-therapist slope",
        "between",
        help="Outcome gain per unit of a therapist's typical alliance.",
    )
    slider(
        right,
        "Within-therapist slope",
        "within",
        help="Outcome gain per unit of a patient's alliance relative to the therapist's others.",
    )
    left, middle, right = st.columns(3)
    slider(left, "Number of studies", "studies")
    slider(middle, "Typical patients per therapist (median PTR)", "ptrmed")
    slider(right, "Seed", "seed", number=True)
    st.form_submit_button("Run the simulation", type="primary")

view = current_view()
params = view.params
sidebar.write_view(view_query(view))
with render.shown_errors("The simulation"), st.spinner("Simulating patients and studies…"):
    sim = simulated_run(params, model, method, ptr_scale)
    row = sim.slope
    # The slope, its interval and the sentence below read one state, in one format.
    estimate, low, high = sim.slope_shown()
    cols = st.columns(4)
    cols[0].metric("Effect sizes (k)", f"{sim.result.k}")
    cols[1].metric("Studies", f"{sim.result.n_studies}")
    cols[2].metric("Fitted PTR slope", estimate, help="On Fisher's z.")
    cols[3].metric("Theory's slope", format_number(sim.theory_slope, 3))
    st.caption(
        f"Fitted slope [{low}, {high}] ({int(100 * sim.result.level)}% CI), "
        f"{format_p(row['pval'])}; simulated and fitted in {format_number(sim.seconds, 2)} s."
    )
    with promise_slot:
        promise = stored_shares()[preset.name]
        render.markdown(f"**{promise.sentence()}** {promise.this_draw(outcome_of(preset, sim))}")
        analysed = {"model": model, "method": method, "ptr_scale": ptr_scale}
        if not view.is_preset:
            st.caption(
                "You changed the preset's settings: the shares are for the preset's own world, "
                "not for this one."
            )
        elif analysed != PROMISE_MODEL:
            st.caption(
                "The shares are for the default analysis (three-level, REML, log PTR); the "
                "sidebar now asks for another, so this draw is judged by that one."
            )
    figure = render.figure(
        ("simulation", repr(params), model, method, ptr_scale),
        lambda: sim.figure(log_x=True),
    )
    if figure_slot is not None:
        with figure_slot:
            render.plot(figure, key="sim:figure", projector_height=PROJECTOR_HEIGHT)
        st.info(sim.why_lines_differ, icon=":material/info:")
    else:
        figure_col, note_col = st.columns([3, 1])
        with figure_col:
            render.plot(figure, key="sim:figure")
        note_col.info(sim.why_lines_differ, icon=":material/info:")
    render.markdown(sim.describe())

st.header("Patient-level analysis")
render.markdown(
    "With patient-level data the alliance can be split directly into a therapist part (the "
    "therapist's mean alliance over their patients) and a patient part (the patient's "
    "deviation from that mean), as in Baldwin, Wampold & Imel (2007). A mixed model with a "
    "random intercept for therapists estimates the outcome's slope on each part."
)
source = st.radio(
    "Patient data",
    ["Simulate one study", "Upload patient-level data"],
    horizontal=True,
    key="sim:patients_source",
)
patients = None
columns = {"therapist": "therapist", "alliance": "alliance", "outcome": "outcome"}
expected = None  # the closed-form expectation, for simulated patients only
# What the patient-level figure depends on, when it can be shared (simulated patients only).
figure_key = None
if source == "Simulate one study":
    left, right = st.columns(2)
    n_therapists = slider(left, "Therapists", "therapists")
    per_therapist = slider(right, "Patients per therapist", "perther")
    sidebar.write_view(view_query(current_view()))
    patients = simulated_patients(params, n_therapists, per_therapist, params.seed)
    figure_key = ("therapist_means", repr(params), n_therapists, per_therapist, params.seed)
    expected = patient_expectation(params, per_therapist)
    st.caption(
        f"{len(patients)} simulated patients of {n_therapists} therapists, from the slopes and "
        "ICC chosen above."
    )
else:
    upload = st.file_uploader(
        "Patient-level CSV, TSV or Excel file (one row per patient)",
        type=["csv", "tsv", "txt", "xlsx"],
        key="sim:patient_upload",
    )
    if upload is not None:
        with render.shown_errors("Reading the file"):
            table = uploads.read_table(upload.getvalue(), upload.name)
            st.caption(escape_markdown(table.report.describe()))
            patients = table.frame
            names = list(patients.columns)
            left, middle, right = st.columns(3)
            columns = {
                "therapist": left.selectbox("Therapist id column", names, key="sim:col_t"),
                "alliance": middle.selectbox(
                    "Alliance column", names, index=min(1, len(names) - 1), key="sim:col_a"
                ),
                "outcome": right.selectbox(
                    "Outcome column", names, index=min(2, len(names) - 1), key="sim:col_o"
                ),
            }
            if columns["therapist"] not in (columns["alliance"], columns["outcome"]):
                # Therapist ids as typed: read as numbers, "1.10" would be therapist 1.1.
                patients = table.with_typed_text([columns["therapist"]])

if patients is not None:
    with render.shown_errors("The patient-level model"):
        result = patient_level_fit(patients, **columns)
        cols = st.columns(3)
        slopes = [
            ("Between-therapist slope", result.between),
            ("Within-therapist slope", result.within),
            ("Difference (between − within)", result.difference),
        ]
        expectations = (
            [None, None, None]
            if expected is None
            else [expected.between, expected.within, expected.between - expected.within]
        )
        for col, (label, slope), mean in zip(cols, slopes, expectations, strict=True):
            col.metric(label, format_number(slope.estimate, 3), help=GLOSSARY.get(label))
            if mean is not None:
                col.caption(f"Expected on average: {format_number(mean, 3)}")
            col.caption(
                f"{interval_text(slope.ci_lb, slope.ci_ub)} "
                f"({int(100 * result.level)}% CI), {format_p(slope.pval)}"
            )
        cols = st.columns(3)
        cols[0].metric("Therapists", f"{result.n_therapists}")
        cols[1].metric(
            "Therapist share of alliance (ICC)",
            format_number(result.icc_alliance, 2),
            help=define("ICC"),
        )
        cols[2].metric("Therapist share of outcome (ICC)", format_number(result.icc_outcome, 2))
        if figure_key is None:  # uploaded patients: a figure of their own
            means = therapist_means_figure(result)
        else:
            means = render.figure(figure_key, lambda: therapist_means_figure(result))
        render.plot(means, key="sim:patients_figure")
        if expected is not None:
            st.info(expected.sentence(), icon=":material/compress:")
        render.markdown(escape_markdown(result.describe()))
        render.bullet_notes(result.notes)
