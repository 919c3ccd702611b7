"""The Simulator page's engine: simulate a literature, fit the PTR meta-regression, set theory beside it.

A run draws a meta-analysis from the project's worked model (:mod:`alliance_core.teaching.simulate`),
analyses it as the dashboard analyses a coding sheet (``analysis_state``: Fisher z, log PTR or
PTR as moderator, the state's flags; the page's slope and its sentence read that one state) and
computes what the model itself says the answer should be:

* the theory curve: the expected sample correlation
  (:func:`~alliance_core.teaching.simulate.mean_sample_correlation`) of a study with the median number of
  patients N of the simulated studies, at PTR = N / T for whole numbers T of therapists. Rated
  effect sizes carry the simulation's measurement error; a share
  P(same) = Σ_k P(alliance rater k)·P(outcome rater k) of them has one rater for both, whose shared
  rating tendency enters ``same_rater_var``, so the curve is the mixture
  (1 − P(same))·r(N, T) + P(same)·r_same(N, T).
* the theory slope: the PTR coefficient the fitted model would report if every effect size sat
  at its own expected value (its study's N and T, its rater pairing), i.e. the generalised
  least-squares fit with the fitted model's own weights applied to atanh(E r_ij). The estimator
  is linear in the effect sizes, so this is what it estimates on average; a fitted slope far
  outside its interval from this value would mean the meta-regression is biased for the
  mechanism, not unlucky.

Both ignore the random study and measure shifts of the slopes (mean zero) and use atanh(E r) for
E[z], an O(1/N) approximation; they are the model's expectations, not fitted quantities.

:data:`PRESETS` are three worlds an instructor can switch between: only therapists matter, only
patients matter, both equally. What each shows follows from ``expected_correlation``'s docstring.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from alliance_core.analyses.run import LOG_PTR_COLUMN, PTR_COLUMN, effect_size_table
from alliance_core.analyses.settings import PTR, AnalysisSettings
from alliance_core.analyses.state import AnalysisState, analysis_state
from alliance_core.data.mapping import ColumnMapping
from alliance_core.errors import AnalysisError
from alliance_core.figures import OKABE_ITO, ptr_curve_figure
from alliance_core.formatting import format_coefficient, format_number
from alliance_core.model.results import MetaResult
from alliance_core.teaching.simulate import (
    SimulationParameters,
    mean_sample_correlation,
    simulate_meta_analysis,
)

MODELS = ("two-level", "three-level")
PTR_SCALES = ("log", "raw")
THEORY_GRID_POINTS = 120
THEORY_COLOUR = OKABE_ITO[5]  # vermillion, apart from the fitted curve's blue
FITTED_CURVE_NAME = "Fitted meta-regression"
PROGRESS_STEPS = ("simulate", "effect sizes", "fit", "theory")
# The Simulator opens at this seed: the first seed from 1 upward whose draw is typical for every
# preset (rule and test in alliance_core.teaching.promises), never one picked by eye.
DEFAULT_SEED = 4
# One y-axis for every preset, so a class compares the worlds by eye; widened only when a
# simulated study falls outside it.
R_AXIS_RANGE = (-0.6, 1.0)

Progress = Callable[[int, int], None]


# ---------------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """A named world for the simulator and the promise its default run keeps.

    ``look_for`` is the one sentence a class should check on the figure; ``shows`` explains it.
    ``direction`` is the sign of the PTR slope the default run shows (-1 correlations fall with
    PTR, +1 they rise); ``clear`` says its confidence interval excludes zero on that side
    (otherwise it only must not be significant the other way). :meth:`promise_kept` checks a run.
    """

    name: str
    look_for: str
    shows: str
    params: SimulationParameters
    direction: int
    clear: bool

    def promise_kept(self, run: SimulationRun) -> bool:
        """Does ``run`` show what the caption promises? Fitted slope, its interval, the theory
        slope and the theory curve (first vs last PTR) all point in ``direction``."""
        row = run.slope
        theory = run.theory["r_theory"].to_numpy()
        signs = (
            np.sign(row["estimate"]),
            np.sign(run.theory_slope),
            np.sign(theory[-1] - theory[0]),
        )
        if any(sign != self.direction for sign in signs):
            return False
        near, far = sorted((row["ci_lb"], row["ci_ub"]), key=lambda b: b * self.direction)
        if self.clear:
            return bool(near * self.direction > 0)
        return bool(far * self.direction > 0)  # never significant the other way


def _preset(
    name: str, look_for: str, shows: str, direction: int, clear: bool, **changes: float
) -> Preset:
    # Everything not named stays at the calibrated defaults (ICC .25, ~150 studies), so the
    # presets differ in what they are about.
    params = replace(SimulationParameters(), seed=DEFAULT_SEED, **changes)
    return Preset(name, look_for, shows, params, direction, clear)


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        _preset(
            "Only therapists matter",
            "The fitted curve falls: few patients per therapist, stronger correlation.",
            "Only the therapist part of the alliance predicts outcome (within-therapist slope "
            "0). Studies with few patients per therapist contain many therapists, hence "
            "therapist differences, and show a clear alliance–outcome correlation; with one "
            "therapist for everyone it vanishes, so the PTR slope is negative.",
            direction=-1,
            clear=True,
            slope_between=1.8,
            slope_within=0.0,
        ),
        _preset(
            "Only patients matter",
            "The fitted curve does not fall: if anything it rises a little with PTR.",
            "Only the patient part of the alliance predicts outcome (between-therapist slope "
            "0). Therapist differences then add alliance variance that outcome does not "
            "follow, so studies with many therapists show slightly weaker correlations: the "
            "PTR slope is small and positive, not negative.",
            direction=1,
            clear=False,
            slope_between=0.0,
            slope_within=0.55,
        ),
        _preset(
            "Both equal",
            "The curve still falls a little, though therapists' and patients' parts count alike.",
            "Therapist and patient parts predict outcome equally, so the outcome's slope on "
            "the alliance is the same in every study. Correlations still fall a little at high "
            "PTR, because few therapists leave less alliance variance (range restriction). The "
            "fall is small, so "
            "this preset makes it visible with a larger therapist share of alliance variance "
            "(ICC 0.6) and a larger literature (400 studies).",
            direction=-1,
            clear=True,
            slope_between=0.45,
            slope_within=0.45,
            icc=0.6,
            n_studies=400,
        ),
    )
}


# ---------------------------------------------------------------------------------------------
# A run
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SimulationRun:
    """One simulated meta-analysis, its PTR meta-regression and the theory beside it.

    ``state`` is the simulated literature analysed as the dashboard analyses a coding sheet
    (``analysis_state``: the pooled and the PTR model, with their flags); ``data`` the rows
    of its PTR model (the simulated sheet with ``yi``, ``vi`` on Fisher's z, ``PTR`` and
    ``log_PTR``); ``result`` that model's fit (moderator ``ptr_term``), the one the page's
    slope and sentence both read; ``theory`` a table with columns
    ``ptr``, ``n_therapists`` and ``r_theory`` for a study of ``typical_n`` patients;
    ``theory_slope`` the coefficient the model would report at the expected effect sizes
    (module docstring); ``seconds`` the time from simulation to theory.
    """

    params: SimulationParameters
    model: str
    method: str
    ptr_scale: str
    state: AnalysisState
    theory: pd.DataFrame
    typical_n: int
    theory_slope: float
    seconds: float

    @property
    def ptr_term(self) -> str:
        return LOG_PTR_COLUMN if self.ptr_scale == "log" else PTR_COLUMN

    @property
    def result(self) -> MetaResult:
        """The PTR model's fit: the state's model."""
        return self.state.model.result

    @property
    def data(self) -> pd.DataFrame:
        return self.state.model.data

    @property
    def slope(self) -> pd.Series:
        """The PTR row of the state's coefficient table under its inference (estimate, se,
        statistic, df, pval, ci_lb, ci_ub): the number the page shows."""
        return self.state.model.inference_table.loc[self.ptr_term]

    def figure(self, log_x: bool = True, grid_points: int = THEORY_GRID_POINTS) -> go.Figure:
        """Simulated effect sizes against PTR, the fitted curve with its CI band, and theory.

        Built on :func:`~alliance_core.figures.ptr_curve_figure` (bubbles ∝ model weight, curve
        = ``result.predict(..., transform="r")`` over the PTR range), without the prediction
        band, plus the theory curve as a dashed line (trace role "theory").
        """
        fig = ptr_curve_figure(
            self.result,
            ptr_column=PTR_COLUMN,
            scale="log" if log_x else "raw",
            profiles=[{"name": FITTED_CURVE_NAME, "values": {}}],
            grid_points=grid_points,
            show_prediction_band=False,
        )
        fig.add_trace(
            go.Scatter(
                x=self.theory["ptr"],
                y=self.theory["r_theory"],
                mode="lines",
                line={"color": THEORY_COLOUR, "width": 3, "dash": "dash"},
                name=f"Theory: expected r in a study of {self.typical_n} patients",
                hovertemplate=("Theory<br>PTR %{x:.1f}: expected r = %{y:.3f}<extra></extra>"),
                meta={"role": "theory"},
            )
        )
        low, high = R_AXIS_RANGE
        observed = np.tanh(self.data["yi"].to_numpy())
        fig.update_yaxes(
            range=[min(low, float(observed.min()) - 0.05), max(high, float(observed.max()) + 0.05)]
        )
        return fig

    @property
    def why_lines_differ(self) -> str:
        """One sentence on why the theory and the fitted line need not coincide."""
        return (
            f"The theory line is one study of {self.typical_n} patients; the fitted line is a "
            f"straight line in {'log ' if self.ptr_scale == 'log' else ''}PTR through studies "
            "of every size, so it cannot follow the theory's curve at the ends."
        )

    def slope_shown(self) -> tuple[str, str, str]:
        """The PTR slope and its CI limits as text, with the decimals its SE needs (at least
        three): as the page's metric shows them and as :meth:`ptr_sentence` states them."""
        row = self.slope
        return tuple(
            format_coefficient(row[name], row["se"], minimum=3)[0]
            for name in ("estimate", "ci_lb", "ci_ub")
        )

    def ptr_sentence(self) -> str:
        """The PTR slope in words: the state's own reading of the slope shown (a test the
        state flags, e.g. with fewer than 10 studies, is stated without a verdict)."""
        return self.state.reading("ptr").text

    def describe(self) -> str:
        """What the run shows: the fitted PTR slope, the theory's slope, and the two curves."""
        return " ".join([self.ptr_sentence(), self._theory_sentence(), self._curve_sentence()])

    def _theory_sentence(self) -> str:
        row = self.slope
        inside = row["ci_lb"] <= self.theory_slope <= row["ci_ub"]
        lead = (
            "If every simulated effect size sat exactly at the correlation the simulation's "
            f"model expects for its study, this meta-regression would find {format_number(self.theory_slope, 3)}"
        )
        if inside:
            return (
                f"{lead}, inside the interval: the fit recovers the mechanism built into the data."
            )
        return (
            f"{lead}, outside the interval: chance, or a part of the simulation the theory leaves "
            "out (random study and measure shifts), moved this estimate."
        )

    def _curve_sentence(self) -> str:
        low, high = self.theory["ptr"].iloc[0], self.theory["ptr"].iloc[-1]
        theory_low, theory_high = self.theory["r_theory"].iloc[[0, -1]]
        fitted = self.result.predict(_moderator_values(self.ptr_scale, [low, high]), "r")
        # At one PTR a larger study has more therapists; the fitted curve averages over study
        # sizes and is a straight line in (log) PTR, so it need not follow the theory curve.
        return (
            f"For a study of {self.typical_n} patients the theory expects r = {format_number(theory_low)} "
            f"with {_patients(low)} per therapist and r = {format_number(theory_high)} with "
            f"{_patients(high)} per therapist; the fitted curve, a straight line in "
            f"{'log ' if self.ptr_scale == 'log' else ''}PTR averaged over studies of every "
            f"size, gives {format_number(fitted['pred'].iloc[0])} and "
            f"{format_number(fitted['pred'].iloc[1])}."
        )


def _patients(ptr: float) -> str:
    if np.isclose(ptr, 1.0):
        return "one patient"
    return f"{format_number(ptr, 0 if ptr >= 10 else 1)} patients"


def _moderator_values(ptr_scale: str, ptr) -> dict[str, np.ndarray]:
    ptr = np.asarray(ptr, dtype=float)
    if ptr_scale == "log":
        return {LOG_PTR_COLUMN: np.log(ptr)}
    return {PTR_COLUMN: ptr}


def run_simulation(
    params: SimulationParameters | None = None,
    model: str = "three-level",
    method: str = "REML",
    ptr_scale: str = "log",
    progress: Progress | None = None,
) -> SimulationRun:
    """Simulate a meta-analysis, fit its PTR meta-regression and compute the theory.

    ``model`` "three-level" (effect sizes nested in studies) or "two-level"; ``method`` any
    estimator :func:`alliance_core.fit` offers for that model; ``ptr_scale`` "log" (moderator
    log PTR) or "raw" (PTR). ``progress(done, total)``, if given, is called after each of the
    steps simulate, effect sizes, fit, theory. Same parameters (seed included), same run.
    """
    params = params or SimulationParameters()
    _check_choices(params, model, ptr_scale)
    report = _progress_reporter(progress)
    started = time.perf_counter()

    sheet = simulate_meta_analysis(params)
    report()
    # The dashboard's own path from a coding sheet to its state: effect sizes, PTR, the fit.
    table = effect_size_table(sheet, SIMULATED_MAPPING)
    report()
    settings = simulation_settings(model, method, ptr_scale)
    state = analysis_state(sheet, SIMULATED_MAPPING, settings, table=table)
    moderator = LOG_PTR_COLUMN if ptr_scale == "log" else PTR_COLUMN
    result = state.model.result
    report()
    typical_n = int(np.median(sheet.drop_duplicates("study")["n"]))
    theory = theory_curve(params, typical_n, sheet["ptr"])
    slope = theory_slope(result, params, moderator)
    report()
    return SimulationRun(
        params=params,
        model=model,
        method=str(method).upper(),
        ptr_scale=ptr_scale,
        state=state,
        theory=theory,
        typical_n=typical_n,
        theory_slope=slope,
        seconds=time.perf_counter() - started,
    )


# The simulated coding sheet's columns (those of the bundled simulated dataset).
SIMULATED_MAPPING = ColumnMapping(
    study="study",
    es_id="es_id",
    r="r",
    n="n",
    n_therapists="n_therapists",
    label="label",
    year="year",
    measure="correlation",
)
# The Simulator's models as dashboard settings: its three-level model has independent sampling
# errors (rho = 0), its two-level model takes every effect size as its own study.
SETTINGS_MODELS = {"three-level": "three-level", "two-level": "two-level-independent"}


def simulation_settings(model: str, method: str, ptr_scale: str) -> AnalysisSettings:
    """The settings that analyse a simulated literature as the Simulator does."""
    return AnalysisSettings(
        dataset="simulated literature",
        model=SETTINGS_MODELS[model],
        method=str(method).upper(),
        moderators=(PTR,),
        ptr_scale=ptr_scale,
        rho=0.0,
    )


def _check_choices(params, model: str, ptr_scale: str) -> None:
    if not isinstance(params, SimulationParameters):
        raise AnalysisError("run_simulation needs SimulationParameters (or None for the defaults).")
    if model not in MODELS:
        raise AnalysisError(f"Unknown model '{model}'; choose two-level or three-level.")
    if ptr_scale not in PTR_SCALES:
        raise AnalysisError(f"Unknown PTR scale '{ptr_scale}'; choose log or raw.")


def _progress_reporter(progress: Progress | None) -> Callable[[], None]:
    done = 0

    def report() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, len(PROGRESS_STEPS))

    return report


# ---------------------------------------------------------------------------------------------
# Theory
# ---------------------------------------------------------------------------------------------


def same_rater_share(params: SimulationParameters) -> float:
    """P(same rater) = Σ_k P(alliance rater k)·P(outcome rater k): raters are drawn independently."""
    return float(np.dot(params.alliance_rater_probs, params.outcome_rater_probs))


def _expected_r(params: SimulationParameters, n, n_therapists, same_rater: bool) -> np.ndarray:
    """mean_sample_correlation with the simulation's measurement error, for one rater pairing."""
    return mean_sample_correlation(
        n,
        n_therapists,
        params.icc,
        params.slope_between,
        params.slope_within,
        params.residual_var,
        alliance_error_var=params.alliance_error_var,
        outcome_error_var=params.outcome_error_var,
        same_rater_var=params.same_rater_var if same_rater else 0.0,
    )


def theory_curve(
    params: SimulationParameters,
    n_patients: int,
    ptr_values,
    grid_points: int = THEORY_GRID_POINTS,
) -> pd.DataFrame:
    """Expected r of a study with ``n_patients`` patients over the range of ``ptr_values``.

    A study of N patients can only have PTR = N/T for a whole number T of therapists (the
    closed form's therapist variance ICC·χ²_{T−1}/T is defined for whole T), so the curve is
    evaluated at up to ``grid_points`` whole T, spread evenly on a log scale, from the fewest to
    the most therapists the simulated PTRs allow (1 ≤ T ≤ N). Columns ptr (ascending),
    n_therapists, r_theory (the rater-pairing mixture of the module docstring).
    """
    ptr_values = np.asarray(ptr_values, dtype=float)
    fewest = int(np.clip(np.rint(n_patients / np.max(ptr_values)), 1, n_patients))
    most = int(np.clip(np.rint(n_patients / max(1.0, np.min(ptr_values))), fewest, n_patients))
    therapists = np.unique(np.rint(np.geomspace(fewest, most, grid_points)))[::-1]
    ptr = n_patients / therapists
    share = same_rater_share(params)
    r = (1.0 - share) * _expected_r(params, n_patients, therapists, False) + share * _expected_r(
        params, n_patients, therapists, True
    )
    return pd.DataFrame(
        {"ptr": ptr, "n_therapists": therapists, "r_theory": np.atleast_1d(r).astype(float)}
    )


def expected_effect_sizes(data: pd.DataFrame, params: SimulationParameters) -> np.ndarray:
    """atanh(E r) for every row of a simulated coding sheet (its N, T and rater pairing)."""
    same = (data["alliance_rater"] == data["outcome_rater"]).to_numpy()
    designs = np.column_stack([data["n"].to_numpy(float), data["n_therapists"].to_numpy(float)])
    # Studies repeat across their effect sizes: evaluate each design once per rater pairing.
    unique, position = np.unique(designs, axis=0, return_inverse=True)
    position = position.ravel()
    different_raters = np.asarray(_expected_r(params, unique[:, 0], unique[:, 1], False))
    one_rater = np.asarray(_expected_r(params, unique[:, 0], unique[:, 1], True))
    r = np.where(same, one_rater[position], different_raters[position])
    return np.arctanh(r)


def theory_slope(result: MetaResult, params: SimulationParameters, ptr_term: str) -> float:
    """The fitted model's coefficient for ``ptr_term`` at the expected effect sizes.

    Generalised least squares b = (X'WX)⁻¹ X'W z with z = atanh(E r) per effect size and W
    the inverse of the fitted marginal covariance: diag(1/(v + τ²)) for the two-level model,
    and per study V = σ²_study·J + diag(σ²_es + v) for the three-level model (inverted with
    the Sherman–Morrison formula, study by study).
    """
    z = expected_effect_sizes(result.data, params)
    X, v = result.inputs.X, result.inputs.v
    if result.is_three_level:
        xtwx, xtwz = _three_level_products(result, X, v, z)
    else:
        weights = 1.0 / (v + (result.tau2 or 0.0))
        xtwx = X.T @ (weights[:, None] * X)
        xtwz = X.T @ (weights * z)
    beta = np.linalg.solve(xtwx, xtwz)
    return float(beta[result.design.names.index(ptr_term)])


def _three_level_products(result: MetaResult, X, v, z) -> tuple[np.ndarray, np.ndarray]:
    """X'V⁻¹X and X'V⁻¹z with V⁻¹ = D − c·(D1)(D1)' per study, D = diag(1/(σ²_es + v)),
    c = σ²_study / (1 + σ²_study·Σd)."""
    sigma2_study, sigma2_es = (float(s) for s in result.sigma2.iloc[:2])
    study = pd.factorize(result.data[result.cluster])[0]
    d = 1.0 / (sigma2_es + v)
    sum_d = np.bincount(study, d)
    c = sigma2_study / (1.0 + sigma2_study * sum_d)
    dx = np.stack([np.bincount(study, d * X[:, j]) for j in range(X.shape[1])], axis=1)
    dz = np.bincount(study, d * z)
    xtwx = X.T @ (d[:, None] * X) - dx.T @ (c[:, None] * dx)
    xtwz = X.T @ (d * z) - dx.T @ (c * dz)
    return xtwx, xtwz
