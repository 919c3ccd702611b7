"""What the reproduction scripts are written from: the model as code, literals, data.csv.

:class:`ModelCode` gathers everything the scripts need from a fitted analysis (columns and
their roles, the model structure, rho, robust inference, the aggregated model's effect-size
rows); the literal helpers write user text only as escaped R or Python strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from alliance_core.analyses.model_comparison import ModelComparison
from alliance_core.analyses.run import (
    LOG_PTR_COLUMN,
    PTR_COLUMN,
    AnalysisRun,
    apply_filters,
    resolve_moderators,
)
from alliance_core.data.effect_forms import form_columns
from alliance_core.data.mapping import ColumnMapping
from alliance_core.errors import AnalysisError
from alliance_core.handover.bias_results import PublicationBias
from alliance_core.handover.provenance import Provenance, fitted_rho, fitted_structure
from alliance_core.model.aggregation import COUNT_COLUMN
from alliance_core.model.design import INTERACTION
from alliance_core.model.location_scale import LocationScaleResult
from alliance_core.model.nesting import AGGREGATED
from alliance_core.model.robust import RobustResult
from alliance_core.model.wild_bootstrap import WildBootstrapResult

RELATIVE_TOLERANCE = 1e-6
ABSOLUTE_TOLERANCE = 1e-8
AGREEMENT_PREFIX = "agreement with the dashboard:"
COMPARED_COLUMNS = ("estimate", "se", "statistic", "df", "df2", "pval")
COMPARED_COLUMNS += ("ci_lb", "ci_ub", "pi_lb", "pi_ub")
CURVE_POINTS = 200

# metafor converges more tightly than its defaults here, so that a difference measures the
# model, not optimiser slack (the settings of the project's metafor reference scripts).
R_UNI_CONTROL = "list(threshold = 1e-12, tol = 1e-12, maxiter = 10000)"
R_MV_CONTROL = (
    'list(optimizer = "optim", optmethod = "BFGS", reltol = 1e-15, maxit = 10000,\n'
    "                  ndeps = rep(1e-5, 6))"
)
R_RESERVED = {
    "if", "else", "repeat", "while", "function", "for", "next", "break", "in", "TRUE",
    "FALSE", "NULL", "Inf", "NaN", "NA", "NA_integer_", "NA_real_", "NA_character_",
}  # fmt: skip
# Names the scripts create themselves; a data column never takes one of them.
SCRIPT_NAMES = {"yi", "vi", "es", PTR_COLUMN, LOG_PTR_COLUMN, "dat", "res", "res0", "T", "F"}
SCRIPT_NAMES |= {"agg", "V", "V0", "rob", COUNT_COLUMN}
# metafor looks up ``mods`` and ``scale`` in the data first (the location-scale helper passes
# them on), and the script's own objects keep their names too.
SCRIPT_NAMES |= {"mods", "scale", "sel", "est", "form", "marginal", "compared", "ls_fit"}


# -- literals ----------------------------------------------------------------------------------
def r_string(text: object) -> str:
    """An R string literal of ``text``: printable ASCII as is, everything else escaped."""
    out = ['"']
    for ch in str(text):
        code = ord(ch)
        if ch in '\\"':
            out.append("\\" + ch)
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code == 0:
            continue  # R strings cannot hold NUL
        elif code <= 0xFFFF:
            out.append(f"\\u{{{code:04x}}}")
        else:
            out.append(f"\\U{{{code:08x}}}")
    out.append('"')
    return "".join(out)


def py_string(text: object) -> str:
    """A Python string literal, ASCII only (non-ASCII as escapes), safe in code and comments."""
    return ascii(str(text))


def r_names(columns: list[str]) -> dict[str, str]:
    """A syntactic, unique R name for each column: the name itself when it already is one."""
    names: dict[str, str] = {}
    taken = set(SCRIPT_NAMES)
    for column in columns:
        base = column
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", column) or column in R_RESERVED:
            base = re.sub(r"[^A-Za-z0-9]+", "_", column).strip("_")
            base = base if re.match(r"[A-Za-z]", base) else f"x_{base}"
        name, suffix = base, 2
        while name in taken or name in R_RESERVED:
            name = f"{base}_{suffix}"
            suffix += 1
        taken.add(name)
        names[column] = name
    return names


def r_vector(values) -> str:
    return "c(" + ", ".join(r_string(v) for v in values) + ")"


def number_literal(value: float) -> str:
    return repr(float(value))


def r_formula(code: ModelCode, names: dict[str, str]) -> str | None:
    """The R formula of the model's moderators (``mods = ~ ...``), or None without any."""
    if not code.model_moderators:
        return None
    return "~ " + " + ".join(r_term(m, names) for m in code.model_moderators)


def r_term(term: str, names: dict[str, str]) -> str:
    """A model term in R: a column by its R name; an interaction ``a:b`` with each part's."""
    if term in names or INTERACTION not in term:
        return names.get(term, term)
    return INTERACTION.join(names.get(part, part) for part in term.split(INTERACTION))


def comment_items(provenance: Provenance, prefix: str, literal) -> list[str]:
    # Values are written as escaped literals: user text cannot end the comment line.
    return [f"{prefix}   {key}: {literal(value)}" for key, value in provenance.items()]


# -- what the scripts need ---------------------------------------------------------------------
@dataclass(frozen=True)
class ModelCode:
    """The analysis as the scripts write it out: columns, roles, model, moderators, filter."""

    run: AnalysisRun
    mapping: ColumnMapping
    on_r_scale: bool
    columns: tuple[str, ...]  # data.csv columns (original names), in order
    text_columns: frozenset[str]  # read as text: study, categorical moderators, filters
    model_moderators: tuple[str, ...]  # as in the fit: log_PTR / PTR / original columns
    # "three-level", "two-level", or on nested data AGGREGATED / INDEPENDENT.
    structure: str = "two-level"
    # Sampling correlation within a study: of the CHE working model (three-level) or of the
    # aggregation (aggregated two-level); None for independent sampling errors.
    rho: float | None = None
    # Cluster-robust (CR2) inference shown with the model, if any.
    robust: RobustResult | None = None
    # Aggregated model: the effect-size rows the aggregation combined (data.csv holds them).
    effect_rows: pd.DataFrame | None = None
    # The pooled model's selection model and fail-safe N, to reproduce as well.
    bias: PublicationBias | None = None
    # The model comparison table of this model (its neighbours refitted), to reproduce too.
    comparison: ModelComparison | None = None
    # The location-scale refit of this two-level model (scale = ~ PTR), to reproduce too.
    heterogeneity: LocationScaleResult | None = None
    # The Moderators page's cluster wild bootstrap tests of this model (label -> result).
    wild_bootstrap: Mapping[str, WildBootstrapResult] | None = None

    @classmethod
    def of(
        cls,
        run: AnalysisRun,
        mapping: ColumnMapping,
        on_r_scale: bool,
        *,
        table: pd.DataFrame | None = None,
        robust: RobustResult | None = None,
        bias: PublicationBias | None = None,
        comparison: ModelComparison | None = None,
        heterogeneity: LocationScaleResult | None = None,
        wild_bootstrap: Mapping[str, WildBootstrapResult] | None = None,
    ) -> ModelCode:
        """``table``: the effect-size table the run was made from (``effect_size_table``);
        needed for the aggregated two-level model, whose fitted rows are one per study.
        ``robust``: cluster-robust inference on ``run.result`` to reproduce as well;
        ``bias``: the publication-bias results of this (pooled) model."""
        res = run.result
        if bias is not None and (res.p != 1 or bias.pooled.k != res.k):
            raise AnalysisError(
                "The publication-bias results belong to the model without moderators."
            )
        settings = run.settings
        structure = fitted_structure(run)
        rho = fitted_rho(run)
        effect_rows = aggregated_effect_rows(run, table) if structure == AGGREGATED else None
        if robust is not None and robust.method != "CR2":
            raise AnalysisError(
                "The reproduction scripts cover CR2 cluster-robust inference "
                f"(clubSandwich); '{robust.method}' is not covered."
            )
        if robust is not None and robust.cluster is None:
            raise AnalysisError(
                "The reproduction scripts need the robust clusters as a column of the data."
            )
        for cwb in (wild_bootstrap or {}).values():
            if not set(cwb.terms) <= set(res.design.names) or robust is None:
                raise AnalysisError(
                    "The wild bootstrap tests belong to this model under cluster-robust "
                    "inference (its clusters): " + ", ".join(cwb.terms) + " is not a test of it."
                )
        columns: list[str] = []

        def add(column: str | None) -> None:
            if column is not None and column not in columns:
                columns.append(column)

        text: set[str] = set()
        if res.is_three_level or structure == AGGREGATED:
            study = res.cluster if res.is_three_level else mapping.study
            add(study)
            text.add(study)
        if robust is not None:
            add(robust.cluster)
            text.add(robust.cluster)
        form = mapping.effect_form
        effect_columns = {
            "r": (mapping.r, mapping.n),
            "z": (mapping.z, mapping.n),
            "vi": (mapping.yi, mapping.vi),
            "sei": (mapping.yi, mapping.sei),
        }
        if mapping.mixed_forms:  # forms by row: every column of every form
            for row_form in mapping.row_forms:
                for column in form_columns(mapping, row_form):
                    add(column)
        elif form not in effect_columns:
            raise AnalysisError("The mapping names no complete effect-size form.")
        else:
            for column in effect_columns[form]:
                add(column)
        for column in run.moderator_columns:
            if INTERACTION in column and column not in res.data.columns:
                continue  # an interaction: its parts are moderators of their own
            if column in (PTR_COLUMN, LOG_PTR_COLUMN):
                for ptr_input in mapping.ptr_inputs:
                    add(ptr_input)
            else:
                add(column)
        for term in res.design.terms:
            if term.kind == "categorical":
                text.add(term.column)
        for column in settings.filters:
            add(column)
            text.add(column)
        return cls(
            run=run,
            mapping=mapping,
            on_r_scale=on_r_scale,
            columns=tuple(columns),
            text_columns=frozenset(text),
            model_moderators=tuple(run.moderator_columns),
            structure=structure,
            rho=rho,
            robust=robust,
            effect_rows=effect_rows,
            bias=bias,
            comparison=comparison,
            heterogeneity=heterogeneity,
            wild_bootstrap=wild_bootstrap or None,
        )

    @property
    def res(self):
        return self.run.result

    @property
    def ptr_column(self) -> str | None:
        return self.run.ptr_column

    @property
    def aggregated(self) -> bool:
        return self.structure == AGGREGATED

    @property
    def che(self) -> bool:
        """The correlated-and-hierarchical-effects working model (three-level with rho)."""
        return self.structure == "three-level" and self.rho is not None

    @property
    def study(self) -> str | None:
        """The study column: the three-level cluster, or what the aggregation combined by."""
        if self.res.is_three_level:
            return self.res.cluster
        return self.mapping.study if self.aggregated else None

    @property
    def frame(self) -> str:
        """The R data frame the model is fitted to: one row per study after aggregation."""
        return "agg" if self.aggregated else "dat"


def aggregated_effect_rows(run: AnalysisRun, table: pd.DataFrame | None) -> pd.DataFrame:
    """The effect-size rows that were aggregated into the studies the model used.

    As ``run_analysis`` builds them: the table after the filter, rows with an effect size and
    its variance, of the studies left in the fitted model (a study lacking a moderator's value
    is left out of the model, so its rows are left out here too).
    """
    if table is None:
        raise AnalysisError(
            "The reproduction scripts of the aggregated model need the effect-size rows that "
            "were aggregated; pass the effect-size table."
        )
    study = run.mapping.study if run.mapping is not None else None
    if study is None:
        raise AnalysisError("The aggregated model needs the study column of the mapping.")
    rows = apply_filters(table, run.settings.filters)
    rows = rows[rows["yi"].notna() & rows["vi"].notna()]
    used = set(run.result.data[study].tolist())
    rows = rows[rows[study].isin(used)]
    if rows[study].nunique() != run.result.k:
        raise AnalysisError(
            "The effect-size table does not hold the rows this aggregated model was fitted to."
        )
    return rows


def model_rows(code: ModelCode) -> pd.DataFrame:
    """data.csv: the analysed rows and the columns the model used (booleans as TRUE/FALSE).

    For the aggregated model: the effect-size rows the aggregation combined.
    """
    source = code.effect_rows if code.aggregated else code.res.data
    rows = source.loc[:, list(code.columns)].copy()
    for column in code.text_columns:
        series = rows[column]
        if pd.api.types.is_bool_dtype(series):
            rows[column] = series.map({True: "TRUE", False: "FALSE"})
    return rows


def left_out_moderators(code: ModelCode) -> tuple[str, ...]:
    """Moderators chosen but left out of the aggregated model (they vary within a study)."""
    chosen = resolve_moderators(code.run.settings, code.mapping)
    return tuple(m for m in chosen if m not in code.model_moderators)
