"""One dashboard state, built once: the pooled model and the moderator model, with their flags.

A state is what the sidebar describes (data, filters, model, rho, inference, moderators,
estimator, test). ``analysis_state`` fits it once and returns an immutable ``AnalysisState``
holding

* ``pooled``: the model without moderators (the pooled estimate a meta-analysis reports first),
* ``moderated``: the model with the chosen moderators (None without moderators, or when it
  cannot be fitted; then ``moderator_problem`` says why and the pooled model still stands),

each an ``AnalysisRun`` under the chosen inference (model-based or CR2), with its row set, and
each with ``ModelFlags``: the reasons a test of that model cannot be trusted (fewer than 10
studies for moderator tests or for any cluster-robust test, Satterthwaite df below 4, a
moderator level observed in one study only, a variance component estimated at its boundary of
0, fewer than 3 studies for a statement about heterogeneity). Pages, captions, the report, the
results file and the reproduction scripts read this object; none refits a model.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

import numpy as np
import pandas as pd

from alliance_core.analyses.run import AnalysisRun, run_analysis
from alliance_core.analyses.settings import AnalysisSettings
from alliance_core.data.mapping import ColumnMapping
from alliance_core.errors import AnalysisError
from alliance_core.model.design import INTERACTION, INTERCEPT
from alliance_core.model.nesting import display_name
from alliance_core.model.robust import FEW_CLUSTERS, MIN_RELIABLE_DF
from alliance_core.wording import reading

# A heterogeneity statement ("about 80% is true heterogeneity") needs studies that can differ:
# with two studies the between-study variance rests on one contrast.
MIN_STUDIES_FOR_HETEROGENEITY = 3
# A variance component at or below this is on the boundary of its parameter space (metafor
# reports such estimates as 0).
BOUNDARY = 1e-8


@dataclass(frozen=True)
class ModelFlags:
    """Why tests of one fitted model may not be trusted, term by term.

    ``small_df``: coefficients whose (CR2 Satterthwaite) df is below 4 (Pustejovsky & Tipton
    2022; clubSandwich flags p-values on df < 4); ``one_study_levels``: coefficient labels of a
    categorical level observed in a single study, so the contrast rests on that study alone;
    ``boundary``: variance components estimated at 0.
    """

    n_studies: int
    robust: bool
    has_moderators: bool
    small_df: tuple[tuple[str, float], ...] = ()
    omnibus_df2: float | None = None  # the HTZ test's denominator df when below 4
    one_study_levels: tuple[tuple[str, str, str], ...] = ()  # (label, column, level)
    boundary: tuple[str, ...] = ()

    @property
    def few_studies(self) -> bool:
        """Fewer than 10 studies (the rule of thumb for moderator tests; CR2 needs as many)."""
        return self.n_studies < FEW_CLUSTERS

    @property
    def heterogeneity_ok(self) -> bool:
        return self.n_studies >= MIN_STUDIES_FOR_HETEROGENEITY

    def heterogeneity_caution(self) -> str | None:
        """Why no sentence may say how much of the variation is heterogeneity, or None."""
        if self.heterogeneity_ok:
            return None
        return (
            f"with only {self.n_studies} {_studies(self.n_studies)}, how much true effects differ "
            f"between studies cannot be estimated with any confidence (at least "
            f"{MIN_STUDIES_FOR_HETEROGENEITY} are needed)"
        )

    def _study_reason(self, moderator_test: bool) -> str | None:
        if not self.few_studies:
            return None
        if self.robust:
            return (
                f"only {self.n_studies} {_studies(self.n_studies)} inform the cluster-robust "
                f"standard errors (fewer than {FEW_CLUSTERS})"
            )
        if moderator_test:
            return (
                f"only {self.n_studies} {_studies(self.n_studies)} inform the moderator test "
                f"(fewer than {FEW_CLUSTERS})"
            )
        return None

    def coefficient_caution(self, term: str) -> str | None:
        """Why the test of one coefficient cannot be trusted (None: it can be read)."""
        reasons = []
        study = self._study_reason(moderator_test=term != INTERCEPT)
        if study:
            reasons.append(study)
        for label, df in self.small_df:
            if label == term:
                reasons.append(f"its robust test rests on {df:.1f} degrees of freedom (below 4)")
        for label, column, level in self.one_study_levels:
            if label == term:
                reasons.append(
                    f"the level '{level}' of {display_name(column)} comes from a single study"
                )
        return "; ".join(reasons) or None

    def omnibus_caution(self, terms=None) -> str | None:
        """Why the test of all moderators (or of the coefficients ``terms``) cannot be trusted."""
        if not self.has_moderators:
            return None
        reasons = []
        study = self._study_reason(moderator_test=True)
        if study:
            reasons.append(study)
        if self.omnibus_df2 is not None and terms is None:
            reasons.append(
                f"the robust test has only {self.omnibus_df2:.1f} denominator degrees of freedom "
                "(below 4)"
            )
        chosen = set(terms) if terms is not None else None
        for label, df in self.small_df:
            if chosen is not None and label in chosen:
                reasons.append(f"{display_name(label)} rests on {df:.1f} degrees of freedom")
        for label, column, level in self.one_study_levels:
            if chosen is None or label in chosen:
                reasons.append(
                    f"the level '{level}' of {display_name(column)} comes from a single study"
                )
        return "; ".join(dict.fromkeys(reasons)) or None

    def flagged_terms(self, terms) -> dict[str, str]:
        """Term → reason for every flagged coefficient among ``terms`` (for table marks)."""
        out = {}
        for term in terms:
            caution = self.coefficient_caution(term)
            if caution:
                out[term] = caution
        return out


def _studies(n: int) -> str:
    return "study" if n == 1 else "studies"


def model_flags(run: AnalysisRun) -> ModelFlags:
    """The flags of one fitted run (see :class:`ModelFlags`)."""
    res = run.result
    study = run.mapping.study if run.mapping is not None else None
    rows = res.data
    if study and study in rows.columns:
        n_studies = int(rows[study].nunique())
        study_of = rows[study]
    else:
        n_studies = int(res.k)
        study_of = pd.Series(np.arange(len(rows)), index=rows.index)
    small_df: tuple[tuple[str, float], ...] = ()
    omnibus_df2 = None
    if run.robust is not None:
        df = run.robust.coefficients["df"]
        small_df = tuple(
            (str(term), float(df[term])) for term in df.index if not df[term] >= MIN_RELIABLE_DF
        )
        if run.robust.QM_df is not None and not run.robust.QM_df[1] >= MIN_RELIABLE_DF:
            omnibus_df2 = float(run.robust.QM_df[1])
    one_level = []
    for term in res.design.terms:
        if term.kind != "categorical" or term.column not in rows.columns:
            continue
        values = rows[term.column].astype("string")
        for level, label in zip(term.levels, (None, *term.labels), strict=False):
            studies = study_of[values == str(level)].nunique()
            if studies == 1:
                # The reference level from one study makes every contrast of this moderator
                # rest on it; another level makes its own contrast rest on it.
                for flagged in term.labels if label is None else (label,):
                    one_level.append((flagged, term.column, str(level)))
    # An interaction coefficient of a one-study level rests on that study as well.
    flagged_levels = {label: (column, level) for label, column, level in one_level}
    for term in res.design.interactions:
        for label in term.labels:
            pieces = [p for p in label.split(INTERACTION) if p in flagged_levels]
            if pieces:
                one_level.append((label, *flagged_levels[pieces[0]]))
    boundary = []
    if res.tau2 is not None and res.tau2 <= BOUNDARY and res.method != "EE":
        boundary.append("tau2")
    if res.sigma2 is not None:
        fixed = res.fix_sigma2 or {}
        boundary += [
            f"sigma2 {name}"
            for name, value in res.sigma2.items()
            if name not in fixed and value <= BOUNDARY
        ]
    return ModelFlags(
        n_studies=n_studies,
        robust=run.robust is not None,
        has_moderators=res.p > 1,
        small_df=small_df,
        omnibus_df2=omnibus_df2,
        one_study_levels=tuple(dict.fromkeys(one_level)),
        boundary=tuple(boundary),
    )


@dataclass(frozen=True)
class Reading:
    """One test of a state in words (see ``AnalysisState.readings``)."""

    what: str  # "heterogeneity", "moderators" or "ptr"
    text: str
    flagged: bool  # the test cannot be trusted: the text says why and gives no verdict


@dataclass(frozen=True, eq=False)
class AnalysisState:
    """Every model one dashboard state shows, fitted once (see the module docstring)."""

    settings: AnalysisSettings
    pooled: AnalysisRun
    pooled_flags: ModelFlags
    moderated: AnalysisRun | None = None
    moderated_flags: ModelFlags | None = None
    moderator_problem: str | None = None  # why the moderator model could not be fitted
    on_r_scale: bool = True  # correlations: analysed as Fisher's z, shown as r

    @property
    def has_moderators(self) -> bool:
        """The sidebar chose moderators (whether or not their model could be fitted)."""
        return bool(self.settings.moderators)

    @property
    def model(self) -> AnalysisRun:
        """The sidebar's model: the moderator model when moderators are chosen, else the pooled
        one. AnalysisError (naming the cause) when the moderator model could not be fitted."""
        if not self.has_moderators:
            return self.pooled
        if self.moderated is None:
            raise AnalysisError(self.moderator_problem or "The moderator model was not fitted.")
        return self.moderated

    @property
    def flags(self) -> ModelFlags:
        """The flags of the sidebar's model."""
        if not self.has_moderators:
            return self.pooled_flags
        if self.moderated_flags is None:
            raise AnalysisError(self.moderator_problem or "The moderator model was not fitted.")
        return self.moderated_flags

    def models(self) -> tuple[tuple[str, AnalysisRun, ModelFlags], ...]:
        """(label, run, flags) of every fitted model, the pooled one first."""
        out = [("pooled", self.pooled, self.pooled_flags)]
        if self.moderated is not None:
            out.append(("moderators", self.moderated, self.moderated_flags))
        return tuple(out)

    def flags_of(self, run: AnalysisRun) -> ModelFlags:
        """The flags of one of this state's runs (the pooled or the moderator model), told
        apart by their moderators (a cached state may hand out copies of its runs)."""
        for _, candidate, flags in self.models():
            if candidate is run or candidate.settings.moderators == run.settings.moderators:
                return flags
        raise AnalysisError("This run is not one of the state's models.")

    @property
    def transform(self) -> str | None:
        """The display scale of predictions: "r" for correlations, None (the measure) otherwise."""
        return "r" if self.on_r_scale else None

    def pooled_prediction(self) -> pd.Series:
        """The pooled estimate with CI and PI under the chosen inference, on the display scale
        (CR2: robust se, t on the prediction's own Satterthwaite df)."""
        return self.pooled.predict(transform=self.transform).iloc[0]

    def headline(self) -> dict[str, float]:
        """The headline numbers a state reports, by name, on the scale shown (r for
        correlations; coefficients on the analysis scale), keyed "<model>.<number>" for the
        models "pooled" and "moderators": each model's prediction (the pooled estimate; with
        moderators, the effect at typical moderator values) with CI and PI, k, I², the variance
        components, the moderator test and every coefficient with its test."""
        out: dict[str, float] = {}
        for label, run, _ in self.models():
            pred = run.predict(transform=self.transform).iloc[0]
            for name in ("pred", "ci_lb", "ci_ub", "pi_lb", "pi_ub"):
                out[f"{label}.prediction.{name}"] = float(pred[name])
            res = run.result
            out[f"{label}.k"] = float(res.k)
            out[f"{label}.I2"] = float(res.I2)
            if res.tau2 is not None:
                out[f"{label}.tau2"] = float(res.tau2)
            if res.sigma2 is not None:
                for name, value in res.sigma2.items():
                    out[f"{label}.sigma2.{name}"] = float(value)
            omnibus = run.omnibus
            if omnibus is not None:
                out[f"{label}.omnibus.statistic"] = float(omnibus[0])
                out[f"{label}.omnibus.pval"] = float(omnibus[3])
            for term, row in run.inference_table.iterrows():
                for name in ("estimate", "se", "pval", "ci_lb", "ci_ub"):
                    out[f"{label}.{term}.{name}"] = float(row[name])
        return out

    def readings(self) -> tuple[Reading, ...]:
        """The state's tests in words, as the Overview states them: the pooled model's
        heterogeneity, the test of all moderators and the PTR slope of the sidebar's model
        (under its chosen inference). Each reading follows the state's flags: a flagged test
        is stated with why it cannot be trusted and without a verdict (never "significant" or
        "not significant"), and ``flagged`` says so, for pages that show only the cautions."""
        pooled = self.pooled.result
        caution = self.pooled_flags.heterogeneity_caution()
        out = [
            Reading("heterogeneity", reading.heterogeneity(pooled, caution=caution), bool(caution))
        ]
        run = self.moderated
        if run is None or run.result.p < 2:
            return tuple(out)
        flags = self.moderated_flags
        caution = flags.omnibus_caution()
        out.append(
            Reading(
                "moderators",
                reading.moderator_test(run.result, omnibus=run.omnibus, caution=caution),
                bool(caution),
            )
        )
        if run.ptr_column:
            caution = flags.coefficient_caution(run.ptr_column)
            text = reading.ptr_effect(
                run.result, run.ptr_column, coefficients=run.inference_table, caution=caution
            )
            out.append(Reading("ptr", text, bool(caution)))
        return tuple(out)

    def reading(self, what: str) -> Reading | None:
        """The reading ``what`` ("heterogeneity", "moderators", "ptr") or None."""
        return next((r for r in self.readings() if r.what == what), None)

    def summary(self) -> str:
        """The models of this state and their flags, as text."""
        lines = []
        for label, run, flags in self.models():
            res = run.result
            lines.append(
                f"{label}: {res.model}, k = {res.k}, studies = {flags.n_studies}, "
                f"inference: {run.inference_name}"
            )
            for term in run.inference_table.index:
                caution = flags.coefficient_caution(term)
                if caution:
                    lines.append(f"  {term}: not to be trusted ({caution})")
            caution = flags.omnibus_caution()
            if caution:
                lines.append(f"  test of all moderators: not to be trusted ({caution})")
            if flags.boundary:
                lines.append(f"  estimated at 0: {', '.join(flags.boundary)}")
        if self.moderator_problem:
            lines.append(f"moderators: not fitted ({self.moderator_problem})")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def analysis_state(
    data: pd.DataFrame,
    mapping: ColumnMapping,
    settings: AnalysisSettings,
    table: pd.DataFrame | None = None,
) -> AnalysisState:
    """Fit the pooled model and (with moderators) the moderator model of one state.

    AnalysisError when the pooled model cannot be fitted (nothing to show); a moderator model
    that cannot be fitted is kept as ``moderator_problem`` so the pooled model still stands.
    ``table`` may pass a precomputed ``effect_size_table(data, mapping)``.
    """
    pooled_settings = settings.with_changes(moderators=())
    pooled = run_analysis(data, mapping, pooled_settings, table=table)
    _precompute(pooled)
    moderated = moderated_flags = problem = None
    if settings.moderators:
        try:
            moderated = run_analysis(data, mapping, settings, table=table)
        except AnalysisError as error:
            problem = str(error)
        else:
            _precompute(moderated)
            moderated_flags = model_flags(moderated)
    return AnalysisState(
        settings=settings,
        pooled=pooled,
        pooled_flags=model_flags(pooled),
        moderated=moderated,
        moderated_flags=moderated_flags,
        moderator_problem=problem,
        on_r_scale=mapping.on_fisher_z,
    )


def _precompute(run: AnalysisRun) -> None:
    """Derived statistics refit the model; compute them once so a cached state holds them."""
    for name in ("R2", "tau2_ci"):
        with suppress(AnalysisError):
            getattr(run.result, name)
