"""The patient-level model drawn: therapist means and patient deviations with their two slopes.

The figure behind the between/within split of the alliance (Baldwin, Wampold & Imel 2007): each
therapist's mean alliance against the mean outcome of their patients (the between-therapist
slope), and each patient's deviation from their therapist's mean (the within-therapist slope).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from alliance_core.figures import OKABE_ITO, rgba, style_figure
from alliance_core.teaching.patient_level import (
    BETWEEN,
    INTERCEPT,
    PatientLevelResult,
    slope_number,
)

BETWEEN_COLOUR = OKABE_ITO[0]  # blue
WITHIN_COLOUR = OKABE_ITO[1]  # orange: the pair stays distinct for every common colour vision


def therapist_means_figure(result: PatientLevelResult) -> go.Figure:
    """Two panels: therapist means with the between slope, patient deviations with the within slope.

    Left: each therapist's mean alliance against mean outcome, bubble area proportional to the
    caseload, and the fitted between-therapist line (covariates at their means). Right: each
    patient's alliance and outcome as deviations from their therapist's means, with the fitted
    within-therapist line through the origin. Traces carry ``meta={"role": ...}`` tags
    ("therapist means", "between line", "patient deviations", "within line").
    """
    data = result.data
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            # Short lines: each title must fit half of a phone-wide figure.
            "Between therapists:<br>each therapist's mean",
            "Within therapists:<br>patients around<br>their therapist's mean",
        ),
        horizontal_spacing=0.1,
    )
    fig.update_annotations(font_size=13)  # the subplot titles
    _add_therapist_means(fig, result, data)
    _add_patient_deviations(fig, result, data)
    fig.update_xaxes(title_text="Therapist's mean alliance", row=1, col=1)
    fig.update_yaxes(title_text="Therapist's mean outcome", row=1, col=1)
    fig.update_xaxes(
        title_text="Patient's alliance minus their therapist's mean", row=1, col=2, zeroline=True
    )
    fig.update_yaxes(
        title_text="Patient's outcome minus their therapist's mean", row=1, col=2, zeroline=True
    )
    fig.update_layout(
        # Above the subplot titles (up to three lines).
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.24, "x": 0, "xanchor": "left"},
        margin={"l": 70, "r": 20, "t": 150, "b": 70},
        hovermode="closest",
    )
    return style_figure(fig, height=520)


def _add_therapist_means(fig: go.Figure, result: PatientLevelResult, data: pd.DataFrame) -> None:
    means = data.groupby(result.therapist, sort=False).agg(
        alliance=("alliance_mean", "first"),
        outcome=("outcome_mean", "first"),
        patients=("alliance_mean", "size"),
    )
    # Bubble area proportional to caseload; the largest bubble is 28 px across.
    sizeref = 2.0 * means["patients"].max() / 28.0**2
    hover = [
        f"<b>Therapist {label}</b><br>{row.patients} patients<br>"
        f"mean alliance {row.alliance:.2f}<br>mean outcome {row.outcome:.2f}"
        for label, row in means.iterrows()
    ]
    fig.add_trace(
        go.Scatter(
            x=means["alliance"],
            y=means["outcome"],
            mode="markers",
            marker={
                "size": means["patients"],
                "sizemode": "area",
                "sizeref": sizeref,
                "sizemin": 3,
                "color": rgba(BETWEEN_COLOUR, 0.45),
                "line": {"width": 0.8, "color": BETWEEN_COLOUR},
            },
            name="Therapists (bubble area = patients)",
            hovertext=hover,
            hovertemplate="%{hovertext}<extra></extra>",
            meta={"role": "therapist means"},
        ),
        row=1,
        col=1,
    )
    x = np.linspace(means["alliance"].min(), means["alliance"].max(), 50)
    fig.add_trace(
        go.Scatter(
            x=x,
            y=_between_line(result, x),
            mode="lines",
            line={"color": BETWEEN_COLOUR, "width": 3},
            name=f"Between-therapist slope {slope_number(result.between.estimate)}",
            hoverinfo="skip",
            meta={"role": "between line"},
        ),
        row=1,
        col=1,
    )


def _between_line(result: PatientLevelResult, x: np.ndarray) -> np.ndarray:
    """b0 + b_between·x, with the within part at 0 and covariates at their means."""
    beta = result.coefficients["estimate"]
    covariate_part = sum(beta[c] * result.data[c].mean() for c in result.covariates)
    return beta[INTERCEPT] + beta[BETWEEN] * x + covariate_part


def _add_patient_deviations(fig: go.Figure, result: PatientLevelResult, data: pd.DataFrame) -> None:
    deviation = data[result.outcome] - data["outcome_mean"]
    fig.add_trace(
        go.Scatter(
            x=data["alliance_within"],
            y=deviation,
            mode="markers",
            marker={
                "size": 6,
                "color": rgba(WITHIN_COLOUR, 0.4),
                "line": {"width": 0.5, "color": WITHIN_COLOUR},
            },
            name="Patients (relative to their therapist)",
            hovertemplate=(
                "alliance %{x:+.2f} vs therapist's mean<br>outcome %{y:+.2f} vs therapist's "
                "mean<extra></extra>"
            ),
            meta={"role": "patient deviations"},
        ),
        row=1,
        col=2,
    )
    x = np.linspace(data["alliance_within"].min(), data["alliance_within"].max(), 50)
    fig.add_trace(
        go.Scatter(
            x=x,
            y=result.within.estimate * x,
            mode="lines",
            line={"color": WITHIN_COLOUR, "width": 3},
            name=f"Within-therapist slope {slope_number(result.within.estimate)}",
            hoverinfo="skip",
            meta={"role": "within line"},
        ),
        row=1,
        col=2,
    )
