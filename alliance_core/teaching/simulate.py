"""Simulated alliance–outcome studies with a known therapist effect.

The generative model is the worked model of the project's science notes. In a study with
T therapists and N patients, patient i of therapist t has

    alliance  a_i = u_t + e_i,                      u_t ~ N(0, σ²_u),  e_i ~ N(0, σ²_e)
    outcome   y_i = γ_b·u_t + γ_w·e_i + ε_i,        ε_i ~ N(0, σ²_ε)

with the total alliance variance fixed at σ²_u + σ²_e = 1, so σ²_u = ICC and σ²_e = 1 − ICC.
γ_b (``slope_between``) is the outcome slope on the therapist part of the alliance, γ_w
(``slope_within``) the slope on the patient part. A study's effect size is the sample Pearson
correlation of alliance and outcome over its patients; because a study with few therapists
contains little therapist variance, its correlation leans towards γ_w, a study with many
therapists mixes γ_b and γ_w. That is the Patient–Therapist Ratio (PTR) mechanism.

A meta-analysis adds three things on top of that patient-level model:

* study heterogeneity: each study's two slopes are shifted by a common δ_s ~ N(0, sd²_study);
* several effect sizes per study, each with its own alliance rater and outcome rater (drawn
  independently, so a pairing can recur, as with two outcome measures). Each is a
  re-measurement of the same patients: alliance and outcome get independent measurement error
  (variances ``alliance_error_var`` and ``outcome_error_var``), the outcome's slope on the
  alliance is shifted by ν_j ~ N(0, sd²_es) (a measure's own validity), and when the same rater
  judges both alliance and outcome a shared rating tendency h ~ N(0, ``same_rater_var``) enters
  both (common-method variance). Effect sizes within a study are therefore correlated (same
  patients) but not identical;
* a literature design: patients per study, PTR, number of effect sizes, raters, measure,
  research design, share of patients with a personality-disorder diagnosis and year, drawn
  from the distributions documented on :class:`SimulationParameters`.

Patients are spread over therapists as evenly as possible (caseloads differ by at most one,
round-robin): the PTR then describes every caseload, and the closed forms
:func:`expected_correlation` and :func:`mean_sample_correlation` need no average over random
caseloads.

Everything is vectorised across studies and effect sizes (flat arrays indexed by study and
effect size, sums by ``np.bincount``); no Python loop runs over patients or studies.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
from scipy import stats

from alliance_core.errors import AnalysisError

RATERS = ("patient", "therapist", "observer", "other")
ALLIANCE_MEASURES = ("WAI", "CALPAS", "HAq", "other")

# Output columns of simulate_meta_analysis, in file order.
STUDY_TABLE_COLUMNS = (
    "study",
    "es_id",
    "label",
    "year",
    "r",
    "n",
    "n_therapists",
    "ptr",
    "alliance_rater",
    "outcome_rater",
    "alliance_measure",
    "design",
    "pd_share",
    "pd",
)


@dataclass(frozen=True)
class SimulationParameters:
    """Everything that defines a simulated alliance meta-analysis.

    The defaults are the calibrated values behind the bundled ``alliance_simulated`` dataset:
    about 150 studies and 800 effect sizes, a pooled correlation near the published r ≈ .28
    (Flückiger et al., 2018) and a modest negative PTR slope (Del Re et al., 2012, 2021).

    Patient-level model (see the module docstring):
        icc: σ²_u / (σ²_u + σ²_e), the therapists' share of alliance variance.
        slope_between: γ_b, outcome slope on the therapist part of the alliance.
        slope_within: γ_w, outcome slope on the patient part of the alliance.
        residual_var: σ²_ε, outcome variance not explained by the alliance.

    Heterogeneity and measurement:
        study_slope_sd: SD of the study shift δ_s added to both slopes.
        effect_size_slope_sd: SD of the effect-size shift ν_j of the outcome's alliance slope.
        alliance_error_var, outcome_error_var: measurement-error variance of each rating
            (alliance reliability = 1 / (1 + alliance_error_var)).
        same_rater_var: shared rating tendency when alliance and outcome have the same rater.

    Literature design:
        n_studies: number of studies.
        patients_median, patients_log_sd: patients per study ~ log-normal (median, SD of the
            log), rounded and clipped to [patients_min, patients_max].
        ptr_median, ptr_log_sd: intended PTR ~ log-normal; therapists = round(N / PTR) clipped
            to [1, N]. Draws below 1 give one therapist per patient, draws above N one
            therapist for all patients, so both extremes occur.
        effect_sizes_mean, effect_sizes_max: effect sizes per study ~ geometric on 1, 2, …
            with that mean, truncated at the maximum.
        alliance_rater_probs, outcome_rater_probs: rater of each effect size.
        alliance_measure_probs: one alliance measure per study.
        rct_share: share of studies that are randomised controlled trials.
        pd_study_share: share of studies whose sample includes patients with a personality
            disorder; their share of such patients ~ Beta(pd_share_a, pd_share_b).
        first_year, last_year: publication years, uniform.
        seed: seed of numpy's default generator (PCG64); same seed, same data.
    """

    icc: float = 0.25
    slope_between: float = 1.2
    slope_within: float = 0.2
    residual_var: float = 1.0

    study_slope_sd: float = 0.05
    effect_size_slope_sd: float = 0.12
    alliance_error_var: float = 0.4
    outcome_error_var: float = 0.4
    same_rater_var: float = 0.08

    n_studies: int = 152
    patients_median: float = 90.0
    patients_log_sd: float = 0.6
    patients_min: int = 20
    patients_max: int = 1500
    ptr_median: float = 5.0
    ptr_log_sd: float = 1.3
    effect_sizes_mean: float = 5.4
    effect_sizes_max: int = 30
    alliance_rater_probs: tuple[float, float, float, float] = (0.60, 0.20, 0.15, 0.05)
    outcome_rater_probs: tuple[float, float, float, float] = (0.55, 0.15, 0.25, 0.05)
    alliance_measure_probs: tuple[float, float, float, float] = (0.50, 0.15, 0.15, 0.20)
    rct_share: float = 0.4
    pd_study_share: float = 0.35
    pd_share_a: float = 2.0
    pd_share_b: float = 4.0
    first_year: int = 1980
    last_year: int = 2019

    seed: int = 2021

    def __post_init__(self) -> None:
        _check_parameters(self)

    @property
    def therapist_var(self) -> float:
        """σ²_u = ICC (total alliance variance is 1)."""
        return self.icc

    @property
    def patient_var(self) -> float:
        """σ²_e = 1 − ICC."""
        return 1.0 - self.icc

    def as_dict(self) -> dict[str, object]:
        """Field name → value, in declaration order (for data cards and logs)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _check_parameters(p: SimulationParameters) -> None:
    """Reject values that would make the model undefined, naming the parameter."""
    problems = []
    if not 0.0 <= p.icc < 1.0:
        problems.append(f"icc must be in [0, 1) (got {p.icc}); with 1 no patient varies.")
    if p.residual_var <= 0:
        problems.append(f"residual_var must be positive (got {p.residual_var}).")
    for name in (
        "study_slope_sd",
        "effect_size_slope_sd",
        "alliance_error_var",
        "outcome_error_var",
        "same_rater_var",
        "patients_log_sd",
        "ptr_log_sd",
    ):
        if getattr(p, name) < 0:
            problems.append(f"{name} must not be negative (got {getattr(p, name)}).")
    if p.n_studies < 1:
        problems.append(f"n_studies must be at least 1 (got {p.n_studies}).")
    # Fisher's z needs n > 3; four patients is the least a study may have.
    if not 4 <= p.patients_min <= p.patients_max:
        problems.append("patients_min must be at least 4 and not above patients_max.")
    if p.patients_median <= 0 or p.ptr_median <= 0:
        problems.append("patients_median and ptr_median must be positive.")
    if not 1 <= p.effect_sizes_mean <= p.effect_sizes_max:
        problems.append("effect_sizes_mean must be between 1 and effect_sizes_max.")
    for name in ("alliance_rater_probs", "outcome_rater_probs", "alliance_measure_probs"):
        probs = np.asarray(getattr(p, name), dtype=float)
        if probs.shape != (4,) or np.any(probs < 0) or not np.isclose(probs.sum(), 1.0):
            problems.append(f"{name} must be four non-negative probabilities summing to 1.")
    for name in ("rct_share", "pd_study_share"):
        if not 0.0 <= getattr(p, name) <= 1.0:
            problems.append(f"{name} must be a share between 0 and 1.")
    if p.pd_share_a <= 0 or p.pd_share_b <= 0:
        problems.append("pd_share_a and pd_share_b must be positive (Beta shape parameters).")
    if p.first_year > p.last_year:
        problems.append("first_year must not be after last_year.")
    if problems:
        raise AnalysisError("Invalid simulation parameters: " + " ".join(problems))


# --------------------------------------------------------------------------------------------
# Closed form
# --------------------------------------------------------------------------------------------


def _moment_correlation(
    n, therapist_var_in_sample, icc, slope_between, slope_within, residual_var, errors
):
    """cov/√(var·var) of the rated alliance and outcome, given the sample's therapist variance.

    ``errors`` = (alliance_error_var, outcome_error_var, same_rater_var); every patient-level
    term carries the factor f = 1 − 1/N of a sample variance with divisor N.
    """
    alliance_error_var, outcome_error_var, same_rater_var = errors
    f = 1.0 - 1.0 / n
    v_u = therapist_var_in_sample
    v_e = (1.0 - icc) * f
    shared = same_rater_var * f
    covariance = slope_between * v_u + slope_within * v_e + shared
    var_alliance = v_u + v_e + alliance_error_var * f + shared
    var_outcome = (
        slope_between**2 * v_u
        + slope_within**2 * v_e
        + (residual_var + outcome_error_var) * f
        + shared
    )
    return covariance / np.sqrt(var_alliance * var_outcome)


def _check_study_shape(n, t) -> None:
    if np.any(n < 4) or np.any(t < 1) or np.any(t > n):
        raise AnalysisError(
            "expected correlations need at least 4 patients and between 1 and N therapists."
        )


def _scalar_or_array(values):
    return float(values) if np.ndim(values) == 0 else values


def expected_correlation(
    n_patients,
    n_therapists,
    icc: float,
    slope_between: float,
    slope_within: float,
    residual_var: float,
    *,
    alliance_error_var: float = 0.0,
    outcome_error_var: float = 0.0,
    same_rater_var: float = 0.0,
):
    """Large-sample correlation of alliance and outcome in a study with T therapists, N patients.

    Derivation (equal caseloads N/T, moments with divisor N). The sample covariance of
    a = u + e and y = γ_b·u + γ_w·e + ε splits into sample (co)variances of the components;
    the cross terms (u with e, u or e with ε) have expectation 0. What remains:

    * therapist part: every patient of therapist t carries the same u_t, so
      (1/N)·Σ_i (u_t(i) − ū)² = (1/T)·Σ_t (u_t − ū)², whose expectation is
      v_u = σ²_u·(1 − 1/T). One therapist (T = 1) leaves no therapist variance at all.
    * patient part: e is independent across patients, E[(1/N)·Σ (e_i − ē)²] =
      v_e = σ²_e·(1 − 1/N); likewise ε and any patient-level measurement error get
      f = 1 − 1/N.

    Hence, with σ²_u = ICC and σ²_e = 1 − ICC,

        cov(a, y) = γ_b·v_u + γ_w·v_e + f·s·σ²_h
        var(a)    = v_u + v_e + f·(σ²_δa + s·σ²_h)
        var(y)    = γ_b²·v_u + γ_w²·v_e + f·(σ²_ε + σ²_δy + s·σ²_h)
        ρ(N, T)   = cov / √(var(a)·var(y))

    where σ²_δa, σ²_δy are the optional measurement-error variances of the alliance and outcome
    ratings and s·σ²_h the shared rating tendency when one rater judges both (pass
    ``same_rater_var`` only for such effect sizes).

    Reading it: T moves ρ in two ways. The mix of γ_b and γ_w follows the therapist and
    patient variance the sample contains (the PTR mechanism: with γ_w = 0, ρ rises with T).
    And fewer therapists also mean less alliance variance in total (range restriction), so
    even with γ_b = γ_w a one-therapist study shows a slightly smaller ρ, although then the
    regression slope of y on a is γ for every T.

    Approximation: ρ is the ratio of expected moments, the limit of the sample correlation
    when both the realised therapist variance and the patient moments sit at their means.
    With few therapists the realised therapist variance is σ²_u·χ²_{T−1}/T, far from its mean,
    and because ρ is curved in it the average sample r is noticeably lower (about .05 for
    T = 2 in the project's checks); :func:`mean_sample_correlation` accounts for that.
    Unequal caseloads make the therapist factor slightly smaller than 1 − 1/T.

    Accepts scalars or numpy arrays for ``n_patients`` and ``n_therapists`` (broadcast).
    """
    n = np.asarray(n_patients, dtype=float)
    t = np.asarray(n_therapists, dtype=float)
    _check_study_shape(n, t)
    errors = (alliance_error_var, outcome_error_var, same_rater_var)
    v_u = icc * (1.0 - 1.0 / t)
    rho = _moment_correlation(n, v_u, icc, slope_between, slope_within, residual_var, errors)
    return _scalar_or_array(rho)


# Quantile grid for averaging over the realised therapist variance; the midpoint rule on
# quantiles integrates a bounded smooth function of a χ² variable to well below 1e-3.
_CHI2_GRID_SIZE = 400


def mean_sample_correlation(
    n_patients,
    n_therapists,
    icc: float,
    slope_between: float,
    slope_within: float,
    residual_var: float,
    *,
    alliance_error_var: float = 0.0,
    outcome_error_var: float = 0.0,
    same_rater_var: float = 0.0,
):
    """Expected sample correlation r in a study with T therapists and N patients.

    Refines :func:`expected_correlation` in two steps:

    1. The therapist variance a study actually contains is W = σ²_u·X/T with
       X ~ χ²_{T−1} (equal caseloads), not its mean σ²_u·(1 − 1/T). ρ(W) is averaged over
       that distribution (midpoint rule on quantiles); this matters most for T ≤ 10.
    2. The patient-level sampling bias of a correlation, E[r] ≈ ρ·(1 − (1 − ρ²)/(2(N − 1)))
       (Fisher, 1915; Olkin & Pratt, 1958), is applied to ρ(W).

    The remainder is O(1/N) (cross terms of therapist and patient effects are ignored); in
    the project's simulation checks (20,000 studies per setting) it stayed within .007 in r
    for N = 20 and within .002 for N = 200. Arguments as for :func:`expected_correlation`.
    """
    n, t = np.broadcast_arrays(
        np.asarray(n_patients, dtype=float), np.asarray(n_therapists, dtype=float)
    )
    _check_study_shape(n, t)
    quantiles = (np.arange(_CHI2_GRID_SIZE) + 0.5) / _CHI2_GRID_SIZE
    df = np.maximum(t - 1.0, 1.0)[..., np.newaxis]
    chi2_draws = np.where(t[..., np.newaxis] > 1, stats.chi2.ppf(quantiles, df), 0.0)
    therapist_var = icc * chi2_draws / t[..., np.newaxis]
    rho = _moment_correlation(
        n[..., np.newaxis],
        therapist_var,
        icc,
        slope_between,
        slope_within,
        residual_var,
        (alliance_error_var, outcome_error_var, same_rater_var),
    )
    sampled = rho * (1.0 - (1.0 - rho**2) / (2.0 * (n[..., np.newaxis] - 1.0)))
    return _scalar_or_array(sampled.mean(axis=-1))


# --------------------------------------------------------------------------------------------
# Patient level
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Patients:
    """Flat patient arrays for many studies, ordered by study."""

    study: np.ndarray  # study index 0..S-1
    therapist: np.ndarray  # therapist number within study, 1..T
    alliance: np.ndarray
    outcome: np.ndarray
    start: np.ndarray  # first row of each study


def _as_generator(rng, seed: int) -> np.random.Generator:
    if rng is None:
        return np.random.default_rng(seed)
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _draw_patients(
    params: SimulationParameters,
    n_patients: np.ndarray,
    n_therapists: np.ndarray,
    study_shift: np.ndarray,
    rng: np.random.Generator,
) -> _Patients:
    """True alliance and outcome of every patient in every study (one flat array each)."""
    n_patients = np.asarray(n_patients, dtype=np.int64)
    n_therapists = np.asarray(n_therapists, dtype=np.int64)
    study = np.repeat(np.arange(n_patients.size), n_patients)
    start = np.concatenate(([0], np.cumsum(n_patients)[:-1]))
    position = np.arange(study.size) - start[study]
    # Round-robin allocation: caseloads as even as possible.
    therapist = position % n_therapists[study]
    therapist_start = np.concatenate(([0], np.cumsum(n_therapists)[:-1]))

    therapist_effects = rng.normal(0.0, np.sqrt(params.therapist_var), n_therapists.sum())
    u = therapist_effects[therapist_start[study] + therapist]
    e = rng.normal(0.0, np.sqrt(params.patient_var), study.size)
    residual = rng.normal(0.0, np.sqrt(params.residual_var), study.size)

    shift = study_shift[study]
    alliance = u + e
    outcome = (params.slope_between + shift) * u + (params.slope_within + shift) * e + residual
    return _Patients(study, therapist + 1, alliance, outcome, start)


def simulate_patients(
    params: SimulationParameters,
    n_patients: int,
    n_therapists: int,
    rng: np.random.Generator | int | None = None,
) -> pd.DataFrame:
    """Patient-level data of one study: columns ``therapist`` (1..T), ``alliance``, ``outcome``.

    Uses the patient-level part of ``params`` (icc, slopes, residual_var) with no study shift,
    measurement error or rater effects: the true alliance and outcome of the worked model.
    ``rng`` is a numpy Generator, a seed, or None for ``params.seed``.
    """
    if not 1 <= n_therapists <= n_patients:
        raise AnalysisError(
            f"A study needs between 1 and {n_patients} therapists for {n_patients} patients "
            f"(got {n_therapists})."
        )
    generator = _as_generator(rng, params.seed)
    patients = _draw_patients(
        params, np.array([n_patients]), np.array([n_therapists]), np.zeros(1), generator
    )
    return pd.DataFrame(
        {
            "therapist": patients.therapist,
            "alliance": patients.alliance,
            "outcome": patients.outcome,
        }
    )


# --------------------------------------------------------------------------------------------
# Study level
# --------------------------------------------------------------------------------------------


def _grouped_correlation(group: np.ndarray, x: np.ndarray, y: np.ndarray, n_groups: int):
    """Pearson r of x and y within each group (centred sums, so no cancellation)."""
    count = np.bincount(group, minlength=n_groups)
    dx = x - (np.bincount(group, x, n_groups) / count)[group]
    dy = y - (np.bincount(group, y, n_groups) / count)[group]
    sxy = np.bincount(group, dx * dy, n_groups)
    sxx = np.bincount(group, dx * dx, n_groups)
    syy = np.bincount(group, dy * dy, n_groups)
    return sxy / np.sqrt(sxx * syy)


def _draw_studies(params: SimulationParameters, rng: np.random.Generator) -> pd.DataFrame:
    """One row per study: size, therapists, effect-size count and study-level moderators."""
    s = params.n_studies
    n = np.rint(rng.lognormal(np.log(params.patients_median), params.patients_log_sd, s))
    n = np.clip(n, params.patients_min, params.patients_max).astype(np.int64)
    intended_ptr = rng.lognormal(np.log(params.ptr_median), params.ptr_log_sd, s)
    n_therapists = np.clip(np.rint(n / intended_ptr), 1, n).astype(np.int64)
    n_es = np.minimum(rng.geometric(1.0 / params.effect_sizes_mean, s), params.effect_sizes_max)

    measure = rng.choice(ALLIANCE_MEASURES, size=s, p=params.alliance_measure_probs)
    design = np.where(rng.random(s) < params.rct_share, "RCT", "other")
    has_pd = rng.random(s) < params.pd_study_share
    pd_share = np.where(has_pd, rng.beta(params.pd_share_a, params.pd_share_b, s), 0.0)
    year = rng.integers(params.first_year, params.last_year + 1, s)
    return pd.DataFrame(
        {
            "n": n,
            "n_therapists": n_therapists,
            "n_es": n_es,
            "year": year,
            "alliance_measure": measure,
            "design": design,
            "pd_share": pd_share,
            "study_shift": rng.normal(0.0, params.study_slope_sd, s),
        }
    )


def _effect_size_correlations(
    params: SimulationParameters,
    patients: _Patients,
    n_patients: np.ndarray,
    es_study: np.ndarray,
    same_rater: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Observed r of every effect size: the study's patients re-measured by its raters."""
    n_es = es_study.size
    rows_per_es = n_patients[es_study]
    es = np.repeat(np.arange(n_es), rows_per_es)
    es_start = np.concatenate(([0], np.cumsum(rows_per_es)[:-1]))
    patient = patients.start[es_study][es] + (np.arange(es.size) - es_start[es])

    true_alliance = patients.alliance[patient]
    validity_shift = rng.normal(0.0, params.effect_size_slope_sd, n_es)[es]
    shared = rng.normal(0.0, np.sqrt(params.same_rater_var), es.size) * same_rater[es]
    alliance = true_alliance + rng.normal(0.0, np.sqrt(params.alliance_error_var), es.size)
    outcome = (
        patients.outcome[patient]
        + validity_shift * true_alliance
        + rng.normal(0.0, np.sqrt(params.outcome_error_var), es.size)
    )
    return _grouped_correlation(es, alliance + shared, outcome + shared, n_es)


def _study_labels(study_ids: np.ndarray, years: np.ndarray, n_studies: int) -> list[str]:
    # Numbered, never author-like, so no row can be mistaken for a real citation.
    width = max(3, len(str(n_studies)))
    return [f"Study {s:0{width}d} ({y})" for s, y in zip(study_ids, years, strict=True)]


def simulate_meta_analysis(params: SimulationParameters | None = None) -> pd.DataFrame:
    """A simulated coding sheet: one row per effect size, columns ``STUDY_TABLE_COLUMNS``.

    ``r`` is the sample correlation of the rated alliance and outcome over the study's
    ``n`` patients; ``ptr`` = n / n_therapists; ``pd`` is "yes" when ``pd_share`` > 0.
    Values are unrounded; the bundled file rounds them like a published table.
    """
    params = params or SimulationParameters()
    rng = np.random.default_rng(params.seed)
    studies = _draw_studies(params, rng)
    n_patients = studies["n"].to_numpy()

    es_study = np.repeat(np.arange(params.n_studies), studies["n_es"].to_numpy())
    alliance_rater = rng.choice(RATERS, size=es_study.size, p=params.alliance_rater_probs)
    outcome_rater = rng.choice(RATERS, size=es_study.size, p=params.outcome_rater_probs)
    same_rater = (alliance_rater == outcome_rater).astype(float)

    patients = _draw_patients(
        params,
        n_patients,
        studies["n_therapists"].to_numpy(),
        studies["study_shift"].to_numpy(),
        rng,
    )
    r = _effect_size_correlations(params, patients, n_patients, es_study, same_rater, rng)

    per_es = studies.iloc[es_study].reset_index(drop=True)
    study_id = es_study + 1
    table = pd.DataFrame(
        {
            "study": study_id,
            "es_id": np.arange(1, es_study.size + 1),
            "label": _study_labels(study_id, per_es["year"].to_numpy(), params.n_studies),
            "year": per_es["year"],
            "r": r,
            "n": per_es["n"],
            "n_therapists": per_es["n_therapists"],
            "ptr": per_es["n"] / per_es["n_therapists"],
            "alliance_rater": alliance_rater,
            "outcome_rater": outcome_rater,
            "alliance_measure": per_es["alliance_measure"],
            "design": per_es["design"],
            "pd_share": per_es["pd_share"],
            "pd": np.where(per_es["pd_share"] > 0, "yes", "no"),
        }
    )
    return table[list(STUDY_TABLE_COLUMNS)]
