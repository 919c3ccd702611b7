"""From a coding sheet, its column mapping and the user's settings to a fitted model.

This is the one place where the dashboard's choices meet the engine: effect sizes from the
mapped columns, the Patient-Therapist Ratio from patient and therapist counts, the what-if
filters, and the fit. Pages call ``run_analysis`` and render what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from alliance_core.analyses.references import resolve_references, single_study_notes
from alliance_core.analyses.settings import (
    INTERACTION,
    PTR,
    AnalysisSettings,
    interaction_partner,
)
from alliance_core.data.effect_forms import effect_sizes_by_row
from alliance_core.data.effect_sizes import (
    escalc,
    from_fisher_z,
    from_standard_errors,
    patient_therapist_ratio,
)
from alliance_core.data.mapping import ColumnMapping
from alliance_core.errors import AnalysisError
from alliance_core.model.design import build_design, split_moderators
from alliance_core.model.fitting import fit
from alliance_core.model.inference import BandInference, LikelihoodRatioTest, compare, predict_under
from alliance_core.model.nesting import (
    AGGREGATED,
    aggregated_rows,
    check_enough_rows,
    display_name,
    is_nested,
)
from alliance_core.model.results import MetaResult
from alliance_core.model.robust import FEW_CLUSTERS, MIN_RELIABLE_DF, RobustResult

PTR_COLUMN = "PTR"
LOG_PTR_COLUMN = "log_PTR"


@dataclass(frozen=True, eq=False)
class AnalysisRun:
    """A fitted model and the rows it was fitted to, with what was left out and why."""

    result: MetaResult
    data: pd.DataFrame  # rows after filters, with yi, vi (and PTR, log_PTR when available)
    settings: AnalysisSettings
    moderator_columns: tuple[str, ...]  # the columns actually entered (PTR resolved)
    excluded_by_filter: int
    notes: tuple[str, ...]
    mapping: ColumnMapping | None = None
    robust: RobustResult | None = None  # CR2 by study when the settings ask for it

    # -- the one place that decides the inference -------------------------------------------
    # Pages read coefficients, tests and bands from here, never from ``result`` directly, so
    # model-based standard errors and robust df can never be mixed on one page.
    @property
    def inference_name(self) -> str:
        """The inference in a few words, for captions."""
        if self.robust is None:
            return "model-based"
        where = f" by '{self.robust.cluster}'" if self.robust.cluster else ""
        return f"cluster-robust (CR2, {self.robust.n_clusters} clusters{where}, Satterthwaite df)"

    @property
    def inference_table(self) -> pd.DataFrame:
        """Coefficients: estimate, se, statistic, df, pval, ci_lb, ci_ub of the chosen inference.

        Model-based: the fit's own (df = k - p for t / Knapp-Hartung, NaN for z tests);
        CR2: clubSandwich's ``coef_test``/``conf_int`` with Satterthwaite df per coefficient.
        """
        if self.robust is not None:
            return self.robust.coefficients.copy()
        table = self.result.coefficients.copy()
        table.insert(
            table.columns.get_loc("pval"),
            "df",
            float("nan") if self.result.ddf is None else float(self.result.ddf),
        )
        return table[["estimate", "se", "statistic", "df", "pval", "ci_lb", "ci_ub"]]

    @property
    def statistic_name(self) -> str:
        """ "z" or "t": the reference distribution of the coefficient tests."""
        return "t" if self.robust is not None or self.result.ddf is not None else "z"

    @property
    def omnibus(self) -> tuple[float, int, float | None, float] | None:
        """The test of all moderators: (statistic, df1, df2 or None, p); None without moderators.

        Model-based: QM (chi-square, df2 None) or F; CR2: the HTZ F test (fractional df2).
        """
        if self.result.p < 2:
            return None
        if self.robust is not None:
            df1, df2 = self.robust.QM_df
            return self.robust.QM, int(df1), float(df2), self.robust.QM_pval
        return self.result.QM, self.result.QM_df, self.result.QM_df2, self.result.QM_pval

    def wald_test(self, terms):
        """A moderator's omnibus test under the chosen inference (HTZ for CR2)."""
        source = self.robust if self.robust is not None else self.result
        return source.wald_test(terms)

    @property
    def band_vcov(self) -> np.ndarray:
        """The coefficients' covariance matrix of the chosen inference (for bands)."""
        return self.robust.vcov if self.robust is not None else self.result.vb

    def band_inference(self) -> BandInference | None:
        """Intervals of curves and diamonds under the chosen inference: None (the model's own)
        when model-based; under CR2 the robust predictions, each point on its own Satterthwaite
        df (clubSandwich ``linear_contrast``), never a coefficient's df borrowed."""
        if self.robust is None:
            return None
        return BandInference(
            robust=self.robust,
            label=(
                "cluster-robust (CR2) intervals, each on its own Satterthwaite df "
                "(clubSandwich linear_contrast)"
            ),
        )

    def predict(self, newmods=None, transform: str | None = None) -> pd.DataFrame:
        """Predictions under the chosen inference: ``result.predict`` when model-based; under
        CR2 ``robust.predict`` (robust se, own df per row, PI from the model's variances)."""
        return predict_under(self.result, self.robust, newmods, transform)

    def inference_warnings(self) -> tuple[str, ...]:
        """Why the robust p-values may not hold, in words a student understands."""
        if self.robust is None:
            return ()
        out = []
        rob = self.robust
        if rob.n_clusters < FEW_CLUSTERS:
            out.append(
                f"Only {rob.n_clusters} studies are left. Cluster-robust standard errors learn "
                "how much estimates vary from the studies themselves, and with fewer than "
                f"{FEW_CLUSTERS} studies they cannot learn it well: treat the p-values and "
                "intervals as rough."
            )
        df = rob.coefficients["df"]
        small = [term for term in df.index if not df[term] >= MIN_RELIABLE_DF]
        if small:
            names = ", ".join(f"{_term_words(term)} (df = {df[term]:.1f})" for term in small)
            out.append(
                f"The robust test of {names} rests on fewer than {MIN_RELIABLE_DF:g} degrees "
                "of freedom: in effect only a handful of studies inform it (for example few "
                "studies at one level of a moderator). Its p-value and interval are not "
                "trustworthy; do not draw conclusions from them."
            )
        if rob.QM_df is not None and not rob.QM_df[1] >= MIN_RELIABLE_DF:
            out.append(
                f"The robust test of all moderators has only {rob.QM_df[1]:.1f} denominator "
                "degrees of freedom, so its p-value is not trustworthy either."
            )
        return tuple(out)

    def row_use(self) -> str:
        """How many rows the model used and why the others were left out, in one sentence.

        A row lacking a moderator (or PTR's counts) is left out only of models using that
        moderator; the counts name each column (a row may lack several).
        """
        offered = len(self.data)
        used = self.result.k
        head = f"This model used {used:,} of {offered:,} rows"
        if used == offered:
            return head + "."
        reasons = []
        for column in self.model_columns:
            if column not in self.data.columns:
                continue
            missing = int(self.data[column].isna().sum())
            if missing:
                reasons.append(f"{missing:,} without {self._column_words(column)}")
        detail = ": " + "; ".join(reasons) if reasons else ""
        return f"{head}; {offered - used:,} left out{detail}."

    @property
    def model_columns(self) -> tuple[str, ...]:
        """The columns this model needs in every row (effect sizes, study, moderators)."""
        cluster = (
            (self.mapping.study,)
            if self.mapping is not None and self.settings.model == "three-level"
            else ()
        )
        return tuple(dict.fromkeys(("yi", "vi", *cluster, *self.moderator_columns)))

    def _column_words(self, column: str) -> str:
        if column in (PTR_COLUMN, LOG_PTR_COLUMN):
            inputs = self.mapping.ptr_inputs if self.mapping is not None else ()
            listed = " or ".join(f"'{c}'" for c in inputs)
            return f"PTR (missing {listed})" if listed else "PTR"
        if column in ("yi", "vi"):
            return "an effect size"
        return f"a value for '{column}'"

    @property
    def ptr_column(self) -> str | None:
        """The PTR column in the model (PTR or log_PTR), if PTR is a moderator."""
        for column in (LOG_PTR_COLUMN, PTR_COLUMN):
            if column in self.moderator_columns:
                return column
        return None


def _term_words(term: str) -> str:
    return "the average effect (intercept)" if term == "intrcpt" else display_name(term)


def effect_size_table(data: pd.DataFrame, mapping: ColumnMapping) -> pd.DataFrame:
    """A copy with yi and vi and PTR/log_PTR where possible.

    Effect sizes by the mapping's form: r and n → Fisher z, vi = 1/(n − 3); Fisher's z and n →
    vi = 1/(n − 3); yi and vi as given; yi and sei → vi = sei². PTR by ``study_ptr``.
    """
    form = mapping.effect_form
    if mapping.mixed_forms:
        # Each row in its own form (alliance_core.data.effect_forms).
        table = data.copy()
        table["yi"], table["vi"], _ = effect_sizes_by_row(data, mapping)
    elif form == "r":
        table = escalc(data, r=mapping.r, n=mapping.n, measure="ZCOR")
    elif form == "z":
        table = from_fisher_z(data, z=mapping.z, n=mapping.n)
    elif form == "vi":
        table = escalc(data, measure="precomputed", yi=mapping.yi, vi=mapping.vi)
    elif form == "sei":
        table = from_standard_errors(data, yi=mapping.yi, sei=mapping.sei)
    else:
        raise AnalysisError(
            "Say which columns hold the correlation r and sample size n, Fisher's z and n, or "
            "the effect size yi with its sampling variance vi or standard error sei."
        )
    if mapping.has_therapists:
        ratio = study_ptr(table, mapping)
        table[PTR_COLUMN] = ratio
        with np.errstate(divide="ignore", invalid="ignore"):
            table[LOG_PTR_COLUMN] = np.log(ratio)
    return table


def study_ptr(data: pd.DataFrame, mapping: ColumnMapping) -> np.ndarray:
    """The Patient–Therapist Ratio of each row's study (Del Re et al., 2012).

    A ready-made PTR column is taken as it is; otherwise PTR = study patients / therapists
    when the study's patient count is mapped, else n / therapists. Missing or non-positive
    inputs give NaN (the row is left out of models with PTR only).
    """
    if mapping.ptr is not None:
        ratio = pd.to_numeric(data[mapping.ptr], errors="coerce").to_numpy(dtype=float)
        return np.where(ratio > 0, ratio, np.nan)
    patients = pd.to_numeric(data[mapping.ptr_patients], errors="coerce")
    therapists = pd.to_numeric(data[mapping.n_therapists], errors="coerce")
    return patient_therapist_ratio(patients, therapists)


def available_moderators(data: pd.DataFrame, mapping: ColumnMapping) -> list[str]:
    """Moderators a user can choose: PTR (when therapist counts exist) and the mapped ones."""
    choices = [PTR] if mapping.has_therapists else []
    choices += [m for m in mapping.moderators if m in data.columns and m not in choices]
    return choices


def apply_filters(data: pd.DataFrame, filters) -> pd.DataFrame:
    """Rows whose value in each filtered column is among the kept levels (a view, not an edit)."""
    keep = np.ones(len(data), dtype=bool)
    for column, levels in filters.items():
        if column not in data.columns:
            raise AnalysisError(
                f"The filter refers to column '{column}', which this dataset does not have."
            )
        keep &= (
            data[column]
            .astype("string")
            .isin([str(level) for level in levels])
            .to_numpy(dtype=bool)
        )
    return data.loc[keep]


def resolve_moderators(settings: AnalysisSettings, mapping: ColumnMapping) -> tuple[str, ...]:
    """The model's moderator columns: PTR as log_PTR or PTR (``ptr_scale``), and each PTR
    interaction with its PTR part resolved the same way ("PTR:alliance_rater" becomes
    "log_PTR:alliance_rater"), so the fit follows metafor's ``~ log_PTR * alliance_rater``.

    An interaction needs both its main effects among the moderators (AnalysisError naming
    the missing one otherwise).
    """
    ptr = LOG_PTR_COLUMN if settings.ptr_scale == "log" else PTR_COLUMN
    columns = []
    for moderator in settings.moderators:
        partner = interaction_partner(moderator)
        if (moderator == PTR or partner is not None) and not mapping.has_therapists:
            raise AnalysisError(
                "PTR needs the number of therapists per study; map a therapist column to use it."
            )
        if moderator == PTR:
            columns.append(ptr)
        elif partner is not None:
            missing = [part for part in (PTR, partner) if part not in settings.moderators]
            if missing:
                raise AnalysisError(
                    f"The interaction PTR × {partner} needs '{missing[0]}' among the moderators "
                    "too: an interaction is read beside both its main effects."
                )
            columns.append(f"{ptr}{INTERACTION}{partner}")
        else:
            columns.append(moderator)
    return tuple(columns)


def run_analysis(
    data: pd.DataFrame,
    mapping: ColumnMapping,
    settings: AnalysisSettings,
    table: pd.DataFrame | None = None,
) -> AnalysisRun:
    """Effect sizes, filters and the fit for one set of choices.

    ``table`` may pass a precomputed ``effect_size_table(data, mapping)`` (the dashboard
    caches it, since toggling a moderator does not change it).
    """
    if table is None:
        table = effect_size_table(data, mapping)
    filtered = apply_filters(table, settings.filters)
    excluded = len(table) - len(filtered)
    notes = []
    if excluded:
        kept = "; ".join(f"{c} in {{{', '.join(v)}}}" for c, v in settings.filters.items())
        notes.append(f"{excluded} of {len(table)} effect sizes left out by the filter ({kept}).")
    if filtered.empty:
        raise AnalysisError("The filter leaves no effect sizes. Widen it to include some rows.")
    moderators = resolve_moderators(settings, mapping)
    if LOG_PTR_COLUMN in moderators:
        _check_ptr_can_be_logged(filtered, mapping)
    three_level = settings.model == "three-level"
    if three_level and not mapping.study:
        raise AnalysisError(
            "The three-level model needs a study column; map one or use the two-level model."
        )
    check_enough_rows(filtered)
    # A plain two-level choice on nested rows (an old link or settings file) means the valid
    # two-level analysis: one aggregated effect per study (the notes say so).
    if settings.model in (AGGREGATED, "two-level") and is_nested(filtered, mapping.study):
        filtered, moderators, aggregation_notes = aggregated_rows(
            filtered, mapping.study, settings.rho, moderators
        )
        notes.extend(aggregation_notes)
        check_enough_rows(filtered, aggregated=True)
    chosen = {c: v for c, v in settings.reference.items() if c in moderators}
    # The default reference is the level with the most studies, not R's alphabetical first.
    references = resolve_references(filtered, moderators, chosen, mapping.study)
    notes.extend(single_study_notes(filtered, moderators, mapping.study))
    if three_level and moderators:
        _check_study_variance_identified(filtered, mapping.study, moderators)
    result = fit(
        filtered,
        yi="yi",
        vi="vi",
        moderators=list(moderators),
        reference=references or None,
        method=settings.method,
        cluster=mapping.study if three_level else None,
        test=settings.engine_test,
        rho=settings.che_rho,
    )
    robust = None
    if settings.robust:
        robust = robust_inference(result, mapping)
    return AnalysisRun(
        result=result,
        data=filtered,
        settings=settings,
        moderator_columns=moderators,
        excluded_by_filter=excluded,
        notes=tuple(notes),
        mapping=mapping,
        robust=robust,
    )


def within_study_test(run: AnalysisRun) -> LikelihoodRatioTest:
    """Is there heterogeneity within studies? The three-level fit against the same model with
    sigma2_es held at 0 (metafor ``anova(full, update(full, sigma2 = c(NA, 0)))``).

    The null value lies on the boundary of the parameter space, so the chi-square(1) p-value
    is conservative (roughly twice the exact one; Viechtbauer 2010, metafor documentation).
    """
    res = run.result
    if not res.is_three_level:
        raise AnalysisError("The test of within-study heterogeneity needs the three-level model.")
    reduced = fit(
        run.data,
        yi="yi",
        vi="vi",
        moderators=list(run.moderator_columns),
        reference={
            term.column: term.reference
            for term in run.result.design.terms
            if term.kind == "categorical"
        }
        or None,
        method=run.settings.method,
        cluster=res.cluster,
        test=run.settings.engine_test,
        rho=run.settings.che_rho,
        fix_sigma2={"es": 0},
    )
    return compare(res, reduced)


def robust_inference(result: MetaResult, mapping: ColumnMapping) -> RobustResult:
    """CR2 clustered by study: the three-level model's study, or for a two-level model the
    study column when the analysed table has one (AnalysisError otherwise)."""
    if result.is_three_level:
        return result.robust(method="CR2")
    if mapping.study and mapping.study in result.data.columns:
        return result.robust(cluster=mapping.study, method="CR2")
    raise AnalysisError(
        "Cluster-robust (CR2) inference groups effect sizes by study, and this table has no "
        "study column; choose model-based inference."
    )


def _check_study_variance_identified(rows: pd.DataFrame, study: str, moderators) -> None:
    """Refuse, naming the cause, a three-level model whose between-study variance the data
    cannot identify: when every moderator is constant within studies and there are no more
    studies than coefficients, the fitted line passes through every study's average, the
    restricted likelihood is flat in sigma2_study and no estimate exists (metafor returns
    wherever its optimiser stopped)."""
    mains, _ = split_moderators(list(moderators), rows.columns)
    used = rows.dropna(subset=mains)
    studies = used[study].nunique()
    within = used.groupby(study)[mains].nunique(dropna=True)
    if (within > 1).any().any():
        return
    # Interactions count too (their columns are products of the main effects' columns).
    coefficients = len(build_design(used, list(moderators)).names)
    if studies > coefficients:
        return
    names = ", ".join(display_name(m) for m in moderators)
    raise AnalysisError(
        f"With {studies} studies and {coefficients} coefficients that differ only between "
        f"studies (the intercept and {names}), the moderator model runs through every study's "
        "average, so the variance between studies cannot be estimated. Keep more studies, "
        "use fewer moderators, or read the pooled model without moderators."
    )


def _check_ptr_can_be_logged(rows: pd.DataFrame, mapping: ColumnMapping) -> None:
    """log PTR needs PTR > 0; a PTR of 0 (no patients) has no logarithm, so name the rows."""
    if PTR_COLUMN not in rows.columns:  # a table that brings its own log PTR column
        return
    ptr = pd.to_numeric(rows[PTR_COLUMN], errors="coerce")
    zero = ptr.notna() & (ptr <= 0)
    if not zero.any():
        return
    labels = [str(label) for label in ptr.index[zero]]
    shown = ", ".join(labels[:10]) + (f" and {len(labels) - 10} more" if len(labels) > 10 else "")
    raise AnalysisError(
        f"log PTR cannot be taken where PTR is 0 or less: row(s) {shown} have "
        f"'{mapping.n}' = 0 patients per '{mapping.n_therapists}'. Correct those rows, leave "
        "them out with a filter, or enter PTR on its raw scale."
    )
