"""The figure of a lesson step and the computed sentence beside it.

Every figure is one the dashboard draws elsewhere, built from the same engine calls, so a step
and the page it opens never disagree:

* ``pooled``: the bundled dataset's effect sizes (histogram of r) with the pooled r of the model
  without moderators (three-level REML), and the r in common language (BESD, r²);
* ``patients``: the Simulator's patient-level panel (20 therapists) at the default seed, with the
  shrinkage sentence (:class:`~alliance_core.teaching.promises.PatientExpectation`);
* ``simulation``: the Simulator's literature for a preset at the default seed, with the promise
  shares and this draw's place among them;
* ``ptr_curve``: the bundled dataset's PTR curve (three-level REML, log PTR), with the readout
  from PTR 1 to 10 and both predicted r's in common language.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from alliance_core.analyses.run import AnalysisRun, run_analysis
from alliance_core.analyses.settings import PTR, AnalysisSettings
from alliance_core.data.datasets import DEFAULT_DATASET, dataset_info, load_dataset
from alliance_core.figures import OKABE_ITO, ptr_curve_figure, ptr_slope_readout
from alliance_core.formatting import format_number
from alliance_core.teaching.lesson import Figure
from alliance_core.teaching.patient_level import fit_patient_level
from alliance_core.teaching.patient_level_figure import therapist_means_figure
from alliance_core.teaching.promises import (
    PANEL_THERAPISTS,
    outcome_of,
    patient_expectation,
    stored_shares,
)
from alliance_core.teaching.simulate import simulate_patients
from alliance_core.teaching.simulator import PRESETS, run_simulation
from alliance_core.teaching.simulator_view import PRESET_CODES
from alliance_core.wording.common_language import r_in_brief, r_in_words

READOUT_FROM, READOUT_TO = 1.0, 10.0


@dataclass(frozen=True, eq=False)
class StepFigure:
    """A step's figure and the sentence computed from the same numbers."""

    figure: go.Figure
    sentence: str


def bundled_run(moderators: tuple[str, ...] = ()) -> AnalysisRun:
    """The bundled dataset under the dashboard's default model (three-level, REML)."""
    info = dataset_info(DEFAULT_DATASET)
    settings = AnalysisSettings(dataset=DEFAULT_DATASET, moderators=moderators)
    return run_analysis(load_dataset(DEFAULT_DATASET), info.mapping, settings)


def step_figure(figure: Figure) -> StepFigure:
    """Build the figure a step names (module docstring)."""
    builders = {
        "pooled": _pooled,
        "patients": _patients,
        "simulation": _simulation,
        "ptr_curve": _ptr_curve,
    }
    return builders[figure.kind](figure)


def _pooled(_figure: Figure) -> StepFigure:
    run = bundled_run()
    pred = run.result.predict(transform="r").iloc[0]
    r = np.tanh(run.result.data["yi"].to_numpy())
    # Bars of counted bins rather than a histogram trace: the dashboard's charts are drawn by
    # Plotly's basic bundle, which has no histogram (pages/_ui/chart.py).
    counts, edges = np.histogram(r, bins=40)
    fig = go.Figure(
        go.Bar(
            x=(edges[:-1] + edges[1:]) / 2,
            y=counts,
            width=np.diff(edges),
            customdata=np.column_stack([edges[:-1], edges[1:]]),
            hovertemplate="r from %{customdata[0]:.3f} to %{customdata[1]:.3f}: "
            "%{y} effect sizes<extra></extra>",
            marker_color=OKABE_ITO[4],
            name="Effect sizes (r)",
        )
    )
    fig.add_vline(x=float(pred["pred"]), line_width=3, line_color=OKABE_ITO[5])
    fig.add_vrect(
        x0=float(pred["ci_lb"]), x1=float(pred["ci_ub"]), fillcolor=OKABE_ITO[5], opacity=0.2
    )
    fig.update_layout(
        xaxis_title="Alliance–outcome correlation r of one effect size",
        yaxis_title="Effect sizes",
        showlegend=False,
        margin={"t": 20},
    )
    level = f"{run.result.level:.0%}"
    sentence = (
        f"Pooled r = {format_number(pred['pred'])} ({level} CI {format_number(pred['ci_lb'])} "
        f"to {format_number(pred['ci_ub'])}; line and band) over {run.result.k} simulated "
        f"effect sizes. {r_in_words(float(pred['pred']))}"
    )
    return StepFigure(fig, sentence)


def _patients(figure: Figure) -> StepFigure:
    params = PRESETS[PRESET_CODES[figure.preset]].params
    patients = simulate_patients(
        params,
        n_patients=PANEL_THERAPISTS * figure.per_therapist,
        n_therapists=PANEL_THERAPISTS,
        rng=params.seed,
    )
    result = fit_patient_level(patients)
    expected = patient_expectation(params, figure.per_therapist)
    sentence = (
        f"Between-therapist slope {format_number(result.between.estimate)}, within-therapist "
        f"slope {format_number(result.within.estimate)} in this simulated study. "
        + expected.sentence()
    )
    return StepFigure(therapist_means_figure(result), sentence)


def _simulation(figure: Figure) -> StepFigure:
    preset = PRESETS[PRESET_CODES[figure.preset]]
    run = run_simulation(preset.params)
    share = stored_shares()[preset.name]
    return StepFigure(
        run.figure(), f"{share.sentence()} {share.this_draw(outcome_of(preset, run))}"
    )


def _ptr_curve(_figure: Figure) -> StepFigure:
    run = bundled_run((PTR,))
    fig = ptr_curve_figure(run.result, ptr_column=PTR, scale="log")
    readout = ptr_slope_readout(
        run.result, ptr_column=PTR, from_ptr=READOUT_FROM, to_ptr=READOUT_TO
    )
    sentence = (
        f"{readout.sentence} At PTR {format_number(READOUT_FROM, 0)}: "
        f"{r_in_brief(readout.r_from)}. At PTR {format_number(READOUT_TO, 0)}: "
        f"{r_in_brief(readout.r_to)}."
    )
    return StepFigure(fig, sentence)
