"""Simulator (teaching): why PTR could moderate the alliance–outcome correlation.

Simulates patients inside studies, meta-analyses the studies' correlations with the model
chosen in the sidebar, and shows the fitted PTR curve next to the curve theory predicts.
A second part fits the patient-level model of Baldwin, Wampold & Imel (2007) to simulated or
uploaded patient data.
"""

from dataclasses import replace

import streamlit as st

from alliance_core.data import uploads
from alliance_core.formatting import escape_markdown, format_number, format_p
from alliance_core.teaching.patient_level import fit_patient_level
from alliance_core.teaching.patient_level_figure import therapist_means_figure
from alliance_core.teaching.simulate import SimulationParameters, simulate_patients
from alliance_core.teaching.simulator import PRESETS, run_simulation
from pages._ui import loading, render, sidebar


def interval_text(low: float, high: float) -> str:
    return f"[{format_number(low, 3)}, {format_number(high, 3)}]"


ctx = sidebar.context()
render.page_header("Simulator", ctx, needs_data=False)
st.markdown(
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
    result.icc_alliance, result.icc_outcome  # noqa: B018  (computed once, kept in the cache)
    return result


settings = ctx.settings
# The simulated literature is always analysed by the sidebar's family of model (two or three levels).
model = "two-level" if settings and settings.is_two_level else "three-level"
method = settings.method if settings else "REML"
ptr_scale = settings.ptr_scale if settings else "log"

st.header("A simulated literature")
st.markdown(
    "Each simulated study has patients and therapists. A patient's alliance is a therapist "
    "part (shared by a therapist's patients) plus a patient part; outcome follows each part "
    "with its own slope. The study reports the correlation of alliance and outcome, and the "
    f"studies are meta-analysed with the sidebar's model ({model}, {method}) and "
    f"{'log PTR' if ptr_scale == 'log' else 'PTR'} as the moderator."
)
preset_name = st.selectbox("Start from a preset", list(PRESETS), key="sim:preset")
preset = PRESETS[preset_name]
# Large enough to read from the back of a classroom: the one thing to check on the figure.
with st.container(border=True, key="sim-look-for"):
    st.subheader(f":material/visibility: What to look for: {preset.look_for}", anchor=False)
    st.markdown(preset.shows)
base = preset.params
with st.form("sim:form"):
    left, middle, right = st.columns(3)
    icc = left.slider(
        "Therapist share of alliance variance (ICC)",
        0.0,
        0.9,
        float(base.icc),
        0.05,
        help="How much of the alliance differs between therapists rather than between patients.",
    )
    between = middle.slider(
        "Between-therapist slope",
        0.0,
        2.0,
        float(base.slope_between),
        0.05,
        help="Outcome gain per unit of a therapist's typical alliance.",
    )
    within = right.slider(
        "Within-therapist slope",
        0.0,
        2.0,
        float(base.slope_within),
        0.05,
        help="Outcome gain per unit of a patient's alliance relative to the therapist's others.",
    )
    left, middle, right = st.columns(3)
    studies = left.slider("Number of studies", 20, 500, int(base.n_studies), 10)
    ptr_median = middle.slider(
        "Typical patients per therapist (median PTR)", 1.0, 30.0, float(base.ptr_median), 0.5
    )
    seed = right.number_input("Seed", 0, 10**6, int(base.seed), 1)
    st.form_submit_button("Run the simulation", type="primary")

params = replace(
    base,
    icc=icc,
    slope_between=between,
    slope_within=within,
    n_studies=int(studies),
    ptr_median=ptr_median,
    seed=int(seed),
)
with render.shown_errors("The simulation"), st.spinner("Simulating patients and studies…"):
    sim = simulated_run(params, model, method, ptr_scale)
    row = sim.slope
    cols = st.columns(4)
    cols[0].metric("Effect sizes (k)", f"{sim.result.k}")
    cols[1].metric("Studies", f"{sim.result.n_studies}")
    cols[2].metric("Fitted PTR slope", format_number(row["estimate"], 3), help="On Fisher's z.")
    cols[3].metric("Theory's slope", format_number(sim.theory_slope, 3))
    st.caption(
        f"Fitted slope {interval_text(row['ci_lb'], row['ci_ub'])} ({int(100 * sim.result.level)}% CI), "
        f"{format_p(row['pval'])}; simulated and fitted in {sim.seconds:.2f} s."
    )
    figure_col, note_col = st.columns([3, 1])
    with figure_col:
        render.plot(
            render.figure(
                ("simulation", repr(params), model, method, ptr_scale),
                lambda: sim.figure(log_x=True),
            ),
            key="sim:figure",
        )
    note_col.info(sim.why_lines_differ, icon=":material/info:")
    st.markdown(sim.describe())

st.header("Patient-level analysis")
st.markdown(
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
# What the patient-level figure depends on, when it can be shared (simulated patients only).
figure_key = None
if source == "Simulate one study":
    left, right = st.columns(2)
    n_therapists = left.slider("Therapists", 3, 80, 20, key="sim:n_therapists")
    per_therapist = right.slider("Patients per therapist", 2, 40, 8, key="sim:per_therapist")
    patients = simulated_patients(params, n_therapists, per_therapist, int(seed))
    figure_key = ("therapist_means", repr(params), n_therapists, per_therapist, int(seed))
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

if patients is not None:
    with render.shown_errors("The patient-level model"):
        result = patient_level_fit(patients, **columns)
        cols = st.columns(3)
        slopes = [
            ("Between-therapist slope", result.between),
            ("Within-therapist slope", result.within),
            ("Difference (between − within)", result.difference),
        ]
        for col, (label, slope) in zip(cols, slopes, strict=True):
            col.metric(label, format_number(slope.estimate, 3))
            col.caption(
                f"{interval_text(slope.ci_lb, slope.ci_ub)} "
                f"({int(100 * result.level)}% CI), {format_p(slope.pval)}"
            )
        cols = st.columns(3)
        cols[0].metric("Therapists", f"{result.n_therapists}")
        cols[1].metric("Therapist share of alliance (ICC)", format_number(result.icc_alliance, 2))
        cols[2].metric("Therapist share of outcome (ICC)", format_number(result.icc_outcome, 2))
        if figure_key is None:  # uploaded patients: a figure of their own
            means = therapist_means_figure(result)
        else:
            means = render.figure(figure_key, lambda: therapist_means_figure(result))
        render.plot(means, key="sim:patients_figure")
        st.markdown(escape_markdown(result.describe()))
        render.bullet_notes(result.notes)
