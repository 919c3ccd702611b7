"""Scripts that rerun an analysis outside the dashboard: metafor (R) and alliance_core (Python).

``r_bundle`` and ``python_bundle`` return zip files holding ``data.csv`` (exactly the rows the
model used, with the columns it used), the script, and ``dashboard_results.csv`` (the results
download of the same analysis). Each script ends by comparing its numbers with
``dashboard_results.csv`` and prints one line, ``agreement with the dashboard: N of N numbers
within 1e-6``, exiting non-zero when any number differs.

Agreement: a number agrees when |ours - dashboard| <= 1e-6 * max(|dashboard|, s) + 1e-8: to
1e-6 relative, with an absolute floor of 1e-8 for numbers at zero (variance components at
the boundary), as the parity tests compare. s is 100 for pseudo-R² (percent): it is a
difference of two variance estimates, accurate relative to its 0-100 scale; s is 0 otherwise.

User text (column names, levels, file names) reaches the scripts only as escaped string
literals: R code refers to columns through syntactic names assigned by position, Python code
through ASCII ``ascii()`` literals, and comments carry the same escaped literals, never raw text.

Models covered: two-level (``rma``), three-level (``rma.mv`` with ``~ 1 | study/es``), the CHE
working model (``V <- vcalc(vi, cluster, obs = es, rho)``, ``rma.mv(yi, V, ...)``; ``res.rho``),
the aggregated two-level model on nested data (``aggregate(dat, cluster, rho)`` then ``rma``;
data.csv holds the effect-size rows the aggregation combined, so ``bundle_files`` needs the
effect-size table), the two-level model on nested rows treated as independent, and CR2
cluster-robust inference passed in as a ``RobustResult`` (``robust(res, cluster,
clubSandwich = TRUE)``; its rows are added to the results file and compared too).
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass

import pandas as pd

from alliance_core.aggregation import COUNT_COLUMN
from alliance_core.analysis import (
    LOG_PTR_COLUMN,
    PTR_COLUMN,
    AnalysisRun,
    apply_filters,
    resolve_moderators,
)
from alliance_core.design import level_order
from alliance_core.errors import AnalysisError
from alliance_core.mapping import ColumnMapping
from alliance_core.nesting import AGGREGATED, INDEPENDENT
from alliance_core.provenance import Provenance, fitted_rho, fitted_structure
from alliance_core.results_table import results_csv, results_frame, to_csv_text
from alliance_core.robust_variance import RobustResult

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


def _r_vector(values) -> str:
    return "c(" + ", ".join(r_string(v) for v in values) + ")"


def _num(value: float) -> str:
    return repr(float(value))


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

    @classmethod
    def of(
        cls,
        run: AnalysisRun,
        mapping: ColumnMapping,
        on_r_scale: bool,
        *,
        table: pd.DataFrame | None = None,
        robust: RobustResult | None = None,
    ) -> ModelCode:
        """``table``: the effect-size table the run was made from (``effect_size_table``);
        needed for the aggregated two-level model, whose fitted rows are one per study.
        ``robust``: cluster-robust inference on ``run.result`` to reproduce as well."""
        res = run.result
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
        if mapping.uses_correlations:
            add(mapping.r)
            add(mapping.n)
        else:
            add(mapping.yi)
            add(mapping.vi)
        for column in run.moderator_columns:
            if column in (PTR_COLUMN, LOG_PTR_COLUMN):
                add(mapping.n)
                add(mapping.n_therapists)
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


# -- R -----------------------------------------------------------------------------------------
def r_script(code: ModelCode, provenance: Provenance) -> str:
    names = r_names(list(code.columns))
    sections = [
        _r_header(provenance, robust=code.robust is not None),
        _r_read(code, names),
        _r_effect_sizes(code, names),
        _r_filter(code, names),
        _r_aggregate(code, names),
        _r_moderators(code, names),
        _r_sampling_variance(code, names),
        _r_model(code, names),
        _r_inference(code, names),
        _r_predictions(code, names),
        _r_figures(code, names),
        _r_comparison(code, names),
    ]
    return "\n".join(line for section in sections for line in [*section, ""])


def _comment_items(provenance: Provenance, prefix: str, literal) -> list[str]:
    # Values are written as escaped literals: user text cannot end the comment line.
    return [f"{prefix}   {key}: {literal(value)}" for key, value in provenance.items()]


def _r_header(provenance: Provenance, robust: bool = False) -> list[str]:
    needs = (
        "# It needs the metafor and clubSandwich packages:\n"
        '#   install.packages(c("metafor", "clubSandwich")).'
        if robust
        else '# It needs only the metafor package: install.packages("metafor").'
    )
    lines = [
        "# Reproduces with R's metafor the analysis shown on the alliance meta-analysis dashboard.",
        "# Run it in the unzipped folder:   Rscript analysis.R",
        *needs.split("\n"),
        "#",
        "# The analysis (user text appears as escaped R strings):",
        *_comment_items(provenance, "#", r_string),
    ]
    if provenance.simulated:
        lines.insert(0, "# NOTE: the data are SIMULATED, not real studies.")
    return [*lines, "", "suppressPackageStartupMessages(library(metafor))"]


def _r_read(code: ModelCode, names: dict[str, str]) -> list[str]:
    classes = [
        '"character"' if column in code.text_columns else '"numeric"' for column in code.columns
    ]
    lines = [
        "## 1. Data ----------------------------------------------------------------------",
        "# data.csv holds exactly the rows the dashboard's model used (after its filter, without",
        "# rows with missing values) and the columns the model used.",
        "# Empty cells are missing values; a level written NA stays text.",
        'dat <- read.csv("data.csv", check.names = FALSE, encoding = "UTF-8", na.strings = "",',
        f"                colClasses = c({', '.join(classes)}))",
        "# Short syntactic R names, by position (data.csv keeps the coding sheet's names):",
    ]
    for column in code.columns:
        if names[column] != column:
            lines.append(f"#   {r_string(column)} is called {names[column]} below")
    lines.append(f"names(dat) <- c({', '.join(r_string(names[c]) for c in code.columns)})")
    return lines


def _r_effect_sizes(code: ModelCode, names: dict[str, str]) -> list[str]:
    mapping = code.mapping
    lines = ["## 2. Effect sizes -----------------------------------------------------------"]
    if mapping.uses_correlations:
        lines += [
            "# Correlations are analysed as Fisher's z: yi = atanh(r), vi = 1 / (n - 3).",
            f'dat <- escalc(measure = "ZCOR", ri = {names[mapping.r]}, ni = {names[mapping.n]}, '
            "data = dat)",
        ]
    else:
        lines += [
            "# Effect sizes and their sampling variances as given in the data.",
            f'dat <- escalc(measure = "GEN", yi = {names[mapping.yi]}, vi = {names[mapping.vi]}, '
            "data = dat)",
        ]
    if code.ptr_column is not None:
        n, t = names[mapping.n], names[mapping.n_therapists]
        lines += [
            "# Patient-Therapist Ratio: patients per therapist in each study.",
            f"dat$PTR <- ifelse(dat${t} > 0, dat${n} / dat${t}, NA)",
        ]
        if code.ptr_column == LOG_PTR_COLUMN:
            lines += ["# PTR enters the model on the log scale.", "dat$log_PTR <- log(dat$PTR)"]
    return lines


def _r_filter(code: ModelCode, names: dict[str, str]) -> list[str]:
    filters = code.run.settings.filters
    if not filters:
        return ["## 3. Filter: none (every row of the data is analysed) --------------------"]
    lines = [
        "## 3. Filter ------------------------------------------------------------------",
        "# The dashboard kept only these rows. data.csv already holds only them, so here the",
        "# lines keep every row; with your own full data they apply the same filter.",
    ]
    for column, levels in filters.items():
        lines.append(f"dat <- dat[dat${names[column]} %in% {_r_vector(levels)}, ]")
    lines.append(f"stopifnot(nrow(dat) == {len(model_rows(code))})")
    return lines


def _r_moderators(code: ModelCode, names: dict[str, str]) -> list[str]:
    terms = [t for t in code.res.design.terms if t.kind == "categorical"]
    if not terms:
        return []
    lines = [
        "## 4. Categorical moderators -------------------------------------------------",
        "# Levels in a fixed alphabetical order (not the locale's), then the reference level",
        "# first: each coefficient is a difference from the reference level.",
    ]
    frame = code.frame
    for term in terms:
        name = names[term.column]
        ordered = level_order(term.levels)
        lines.append(
            f"{frame}${name} <- relevel(factor({frame}${name}, levels = {_r_vector(ordered)}), "
            f"ref = {r_string(term.reference)})"
        )
    return lines


def _r_formula(code: ModelCode, names: dict[str, str]) -> str | None:
    if not code.model_moderators:
        return None
    return "~ " + " + ".join(names.get(m, m) for m in code.model_moderators)


def _r_aggregate(code: ModelCode, names: dict[str, str]) -> list[str]:
    """Aggregated two-level model: one effect per study (aggregate.escalc, struct "CS")."""
    if not code.aggregated:
        return []
    study = names[code.study]
    lines = [
        "## 3b. One aggregated effect per study -----------------------------------------",
        "# Effect sizes of one study come from the same participants: their sampling errors",
        f"# are taken to correlate with rho = {_num(code.rho)} (compound symmetry), and each",
        "# study's effect sizes are combined into one inverse-variance weighted effect.",
        "# The dashboard leaves out of this model every moderator whose value differs",
        "# within a study; the moderators below are constant within each study.",
    ]
    left_out = left_out_moderators(code)
    if left_out:
        lines.append(
            "# Left out (they differ within a study): "
            + ", ".join(r_string(m) for m in left_out)
            + "."
        )
    return [
        *lines,
        f"agg <- aggregate(dat, cluster = {study}, rho = {_num(code.rho)})",
        f"stopifnot(nrow(agg) == {code.res.k})",
    ]


def left_out_moderators(code: ModelCode) -> tuple[str, ...]:
    """Moderators chosen but left out of the aggregated model (they vary within a study)."""
    chosen = resolve_moderators(code.run.settings, code.mapping)
    return tuple(m for m in chosen if m not in code.model_moderators)


def _r_sampling_variance(code: ModelCode, names: dict[str, str]) -> list[str]:
    """CHE working model: the block-diagonal sampling covariance V of vcalc."""
    if not code.che:
        return []
    study = names[code.study]
    return [
        "## 4b. Correlated sampling errors (CHE working model) --------------------------",
        "# Effect sizes of one study share patients, so their sampling errors correlate;",
        f"# rho = {_num(code.rho)} is assumed for every pair within a study (Pustejovsky & Tipton,",
        "# 2022). V is block-diagonal by study.",
        "dat$es <- seq_len(nrow(dat))",
        f"V <- vcalc(vi, cluster = {study}, obs = es, rho = {_num(code.rho)}, data = dat)",
    ]


def _r_model(code: ModelCode, names: dict[str, str]) -> list[str]:
    res, settings = code.res, code.run.settings
    formula = _r_formula(code, names)
    mods = f"mods = {formula}, " if formula else ""
    lines = ["## 5. The model ----------------------------------------------------------------"]
    if res.is_three_level:
        cluster = names[res.cluster]
        sampling = "V" if code.che else "vi"
        lines += [
            "# Three-level model: effect sizes (es) nested in studies; every row is one effect size."
            + (
                "\n# The sampling errors within a study correlate as in V (CHE)."
                if code.che
                else ""
            ),
        ]
        if not code.che:
            lines.append("dat$es <- seq_len(nrow(dat))")
        lines += [
            f"control <- {R_MV_CONTROL}",
            "# sparse = TRUE: the variance matrix is block-diagonal by study (much faster).",
            f"res <- rma.mv(yi, {sampling}, {mods}random = ~ 1 | {cluster}/es, data = dat, "
            "sparse = TRUE,",
            f"              method = {r_string(settings.method)}, test = {r_string(res.test)}, "
            "control = control)",
        ]
    else:
        test = "knha" if settings.test == "t" else "z"
        if code.aggregated:
            lines.append("# Two-level random-effects model (rma.uni) on one effect per study.")
        elif code.structure == INDEPENDENT:
            lines += [
                "# Two-level random-effects model (rma.uni) on every effect size. NOTE: studies",
                "# contribute several effect sizes here, and this model treats them as independent",
                "# studies; it overstates precision (intervals too narrow, p-values too small).",
                "# The aggregated two-level model or the three-level model is recommended.",
            ]
        else:
            lines.append("# Two-level random-effects model (rma.uni).")
        if test == "knha":
            lines.append("# test = 'knha' is the Knapp-Hartung adjustment.")
        lines += [
            f"control <- {R_UNI_CONTROL}",
            f"res <- rma(yi, vi, {mods}data = {code.frame}, method = {r_string(settings.method)}, "
            f"test = {r_string(test)}, control = control)",
        ]
    lines.append("print(res)")
    return lines


def _r_inference(code: ModelCode, names: dict[str, str]) -> list[str]:
    """Cluster-robust CR2 inference: robust(res, cluster, clubSandwich = TRUE)."""
    if code.robust is None:
        return []
    cluster = names[code.robust.cluster]
    return [
        "## 5b. Cluster-robust inference (CR2) ------------------------------------------",
        "# Standard errors that stay valid if the working model above is wrong: the CR2",
        "# sandwich estimator with Satterthwaite df per coefficient and the HTZ test of",
        "# moderators (clubSandwich; Tipton, 2015; Pustejovsky & Tipton, 2018).",
        "suppressPackageStartupMessages(library(clubSandwich))",
        f"rob <- robust(res, cluster = {code.frame}${cluster}, clubSandwich = TRUE)",
        "print(rob)",
    ]


def _typical_values(code: ModelCode, names: dict[str, str]) -> tuple[str, list[str]]:
    """R expression of the newmods row at typical values (numeric: mean; factors: 0)."""
    parts, labels = [], []
    for term in code.res.design.terms:
        if term.kind == "numeric":
            parts.append(f"mean({code.frame}${names.get(term.column, term.column)})")
            labels.append(names.get(term.column, term.column))
        else:
            parts += ["0"] * (len(term.levels) - 1)
            labels += [f"{names[term.column]} (not the reference level)"] * (len(term.levels) - 1)
    return "c(" + ", ".join(parts) + ")", labels


def _r_predictions(code: ModelCode, names: dict[str, str]) -> list[str]:
    res = code.res
    transf = ", transf = transf.ztor" if code.on_r_scale else ""
    lines = ["## 6. Predictions ------------------------------------------------------------"]
    if res.p == 1:
        lines += [
            "# The pooled effect with its confidence and prediction intervals"
            + (" (back-transformed to r)." if code.on_r_scale else "."),
            f"pooled <- predict(res{transf})",
        ]
    else:
        typical, _ = _typical_values(code, names)
        lines += [
            "# The average effect at typical moderator values: numeric moderators at their",
            "# mean, categorical ones at their reference level (all their indicators 0).",
            f"typical <- {typical}",
            f"pooled <- predict(res, newmods = matrix(typical, nrow = 1){transf})",
        ]
    lines.append("print(pooled)")
    ptr = code.ptr_column
    if ptr is not None:
        position = code.model_moderators.index(ptr)
        index = sum(
            1 if t.kind == "numeric" else len(t.levels) - 1 for t in res.design.terms[:position]
        )
        f = code.frame
        grid = (
            f"exp(seq(log(min({f}$PTR)), log(max({f}$PTR)), length.out = {CURVE_POINTS}))"
            if code.run.settings.ptr_scale == "log"
            else f"seq(min({f}$PTR), max({f}$PTR), length.out = {CURVE_POINTS})"
        )
        value = "log(ptr_points)" if ptr == LOG_PTR_COLUMN else "ptr_points"
        lines += [
            "# The PTR curve: predictions at the curve's points, other moderators typical.",
            f"ptr_points <- {grid}",
            "curve_mods <- matrix(typical, nrow = length(ptr_points), ncol = length(typical),",
            "                     byrow = TRUE)",
            f"curve_mods[, {index + 1}] <- {value}",
            f"curve <- predict(res, newmods = curve_mods{transf})",
            "print(head(data.frame(PTR = ptr_points, pred = curve$pred, ci.lb = curve$ci.lb,",
            "                      ci.ub = curve$ci.ub)))",
        ]
    return lines


def _r_figures(code: ModelCode, names: dict[str, str]) -> list[str]:
    lines = [
        "## 7. Figures (figures.pdf) ---------------------------------------------------",
        'pdf("figures.pdf", width = 8, height = 10)',
        "try(forest(res" + (", transf = transf.ztor" if code.on_r_scale else "") + "))",
        "try(funnel(res))",
    ]
    if code.ptr_column is not None:
        lines.append(
            f"try(regplot(res, mod = {r_string(code.ptr_column)}"
            + (", transf = transf.ztor" if code.on_r_scale else "")
            + "))"
        )
    lines.append("invisible(dev.off())")
    return lines


def _r_row_expressions(code: ModelCode, names: dict[str, str]) -> list[str]:
    """One R expression per row of the dashboard's results table, in the same order."""
    res = code.res
    frame = results_frame(res, code.on_r_scale, code.robust)
    coefficient = robust_coefficient = 0
    out = []
    wald_columns = {f"wald_{t.column}": t for t in res.design.terms if t.kind == "categorical"}
    for section, name in zip(frame["section"], frame["name"], strict=True):
        if section == "coefficient":
            coefficient += 1
            out.append(f"coef_row({coefficient})")
        elif section == "robust coefficient":
            robust_coefficient += 1
            out.append(f"coef_row({robust_coefficient}, rob)")
        elif section == "robust test" and name == "QM":
            out.append(
                "num_row(statistic = rob$QM, df = rob$QMdf[1], df2 = rob$QMdf[2], pval = rob$QMp)"
            )
        elif section == "robust test" and name in wald_columns:
            indices = res.design.coefficient_indices([wald_columns[name].column])
            btt = ", ".join(str(i + 1) for i in indices)
            out.append(f"wald_row(c({btt}), rob)")
        elif section == "prediction":
            out.append(
                "num_row(estimate = pooled$pred, ci_lb = pooled$ci.lb, ci_ub = pooled$ci.ub, "
                "pi_lb = pooled$pi.lb, pi_ub = pooled$pi.ub)"
            )
        elif name == "sigma2_study":
            out.append("num_row(estimate = res$sigma2[1])")
        elif name == "sigma2_es":
            out.append("num_row(estimate = res$sigma2[2])")
        elif name == "I2_study":
            out.append("num_row(estimate = i2$levels[1])")
        elif name == "I2_es":
            out.append("num_row(estimate = i2$levels[2])")
        elif name == "I2":
            out.append(
                "num_row(estimate = i2$total)"
                if res.is_three_level
                else "num_row(estimate = res$I2)"
            )
        elif name == "tau2":
            if res.method == "EE":
                out.append("num_row(estimate = res$tau2)")
            else:
                out.append(
                    "num_row(estimate = res$tau2, se = res$se.tau2, "
                    'ci_lb = tau2_ci["tau^2", "ci.lb"], ci_ub = tau2_ci["tau^2", "ci.ub"])'
                )
        elif name == "H2":
            out.append("num_row(estimate = res$H2)")
        elif name == "R2":
            out.append("num_row(estimate = r2)")
        elif name == "QE":
            out.append("num_row(statistic = res$QE, df = res$k - res$p, pval = res$QEp)")
        elif name == "QM":
            out.append(
                "num_row(statistic = res$QM, df = res$QMdf[1], df2 = res$QMdf[2], pval = res$QMp)"
            )
        elif name in wald_columns:
            indices = res.design.coefficient_indices([wald_columns[name].column])
            btt = ", ".join(str(i + 1) for i in indices)
            out.append(f"wald_row(c({btt}))")
        elif name == "k":
            out.append("num_row(estimate = res$k)")
        elif name == "studies":
            out.append(
                "num_row(estimate = res$s.nlevels[1])"
                if res.is_three_level
                else "num_row(estimate = res$k)"
            )
        elif name == "logLik":
            out.append("num_row(estimate = as.numeric(logLik(res)))")
        elif name == "AIC":
            out.append("num_row(estimate = AIC(res))")
        elif name == "BIC":
            out.append("num_row(estimate = BIC(res))")
        else:  # a row this generator does not know: compared as missing, so it fails loudly
            out.append("num_row()")
    return out


def _r_comparison(code: ModelCode, names: dict[str, str]) -> list[str]:
    res = code.res
    formula = _r_formula(code, names)
    lines = [
        "## 8. Compare with the dashboard ----------------------------------------------",
        "# dashboard_results.csv is the dashboard's results download of this analysis",
        "# (its leading '#' lines say which analysis). Each of our numbers is put in a row",
        "# laid out like it, and every number the dashboard gives is compared.",
        'columns <- c("estimate", "se", "statistic", "df", "df2", "pval", "ci_lb", "ci_ub",',
        '             "pi_lb", "pi_ub")',
        "num <- function(x) if (is.null(x) || length(x) == 0) NA_real_ else as.numeric(x)[1]",
        "num_row <- function(estimate = NA, se = NA, statistic = NA, df = NA, df2 = NA,",
        "                    pval = NA, ci_lb = NA, ci_ub = NA, pi_lb = NA, pi_ub = NA) {",
        "  setNames(c(num(estimate), num(se), num(statistic), num(df), num(df2), num(pval),",
        "             num(ci_lb), num(ci_ub), num(pi_lb), num(pi_ub)), columns)",
        "}",
        "coef_row <- function(i, fit = res) num_row(",
        "  estimate = fit$beta[i], se = fit$se[i], statistic = fit$zval[i],",
        "  df = rep_len(fit$ddf, length(fit$beta))[i], pval = fit$pval[i],",
        "  ci_lb = fit$ci.lb[i], ci_ub = fit$ci.ub[i])",
        "wald_row <- function(btt, fit = res) {",
        "  test <- anova(fit, btt = btt)  # omnibus test of one categorical moderator's levels",
        "  num_row(statistic = test$QM, df = test$QMdf[1], df2 = test$QMdf[2], pval = test$QMp)",
        "}",
    ]
    if res.is_three_level:
        lines += [
            "# I^2 of a multilevel model: typical sampling variance (k - p) / tr(P) with",
            "# P = W - W X (X'W X)^-1 X'W and W = V^-1 (metafor's I^2 page).",
            "W <- solve(as.matrix(V))" if code.che else "W <- diag(1 / res$vi)",
            "P <- W - W %*% res$X %*% solve(t(res$X) %*% W %*% res$X) %*% t(res$X) %*% W",
            "typical_v <- (res$k - res$p) / sum(diag(P))",
            "i2 <- list(total = 100 * sum(res$sigma2) / (sum(res$sigma2) + typical_v),",
            "           levels = 100 * res$sigma2 / (sum(res$sigma2) + typical_v))",
        ]
        if formula and res.R2 is not None:
            cluster = names[res.cluster]
            lines += [
                "# Pseudo-R^2: how much smaller sigma2_study + sigma2_es is than without moderators.",
                f"res0 <- rma.mv(yi, {'V' if code.che else 'vi'}, random = ~ 1 | {cluster}/es, "
                "data = dat, sparse = TRUE,",
                f"               method = {r_string(code.run.settings.method)}, control = control)",
                "r2 <- max(0, 100 * (sum(res0$sigma2) - sum(res$sigma2)) / sum(res0$sigma2))",
            ]
    else:
        if res.method != "EE":
            lines.append(
                "tau2_ci <- confint(res, control = list(tol = 1e-12, maxiter = 10000))$random"
            )
        lines.append("r2 <- res$R2  # pseudo-R^2 against the model without moderators")
    rows = _r_row_expressions(code, names)
    lines += ["ours <- rbind("] + [f"  {row}," for row in rows[:-1]] + [f"  {rows[-1]}", ")"]
    lines += [
        'dashboard <- read.csv("dashboard_results.csv", comment.char = "#", check.names = FALSE)',
        "stopifnot(nrow(dashboard) == nrow(ours))",
        "theirs <- as.matrix(dashboard[, columns])",
        f"# Agreement: |metafor - dashboard| <= {RELATIVE_TOLERANCE:g} * |dashboard| + "
        f"{ABSOLUTE_TOLERANCE:g}",
        "# R^2 = 100 (1 - s1 / s0) is a difference of two estimates, so its error is relative",
        "# to its full scale (100%), not to itself.",
        'scale <- ifelse(dashboard$name == "R2", 100, 0)',
        "given <- !is.na(theirs)",
        f"close <- abs(ours - theirs) <= {RELATIVE_TOLERANCE:g} * pmax(abs(theirs), scale) + "
        f"{ABSOLUTE_TOLERANCE:g}",
        "agree <- given & !is.na(ours) & close",
        "for (i in which(given & !agree)) {",
        "  row <- (i - 1) %% nrow(theirs) + 1",
        "  column <- columns[(i - 1) %/% nrow(theirs) + 1]",
        '  cat(sprintf("differs: %s %s %s: dashboard %.10g, metafor %.10g\\n",',
        "              dashboard$section[row], dashboard$name[row], column, theirs[i], ours[i]))",
        "}",
        'cat(sprintf("agreement with the dashboard: %d of %d numbers within '
        f'{RELATIVE_TOLERANCE:g}\\n", sum(agree), sum(given)))',
        "quit(status = if (sum(agree) == sum(given)) 0 else 1)",
    ]
    return lines


# -- Python ------------------------------------------------------------------------------------
def python_script(code: ModelCode, provenance: Provenance) -> str:
    res, settings, mapping = code.res, code.run.settings, code.mapping
    transform = '"r"' if code.on_r_scale else "None"
    header = [
        '"""Reproduces with alliance_core the analysis shown on the alliance meta-analysis dashboard.',
        "",
        "Run it in the unzipped folder with the project's Python environment:",
        "    python analysis.py",
        '"""',
        "",
        "# The analysis (user text appears as escaped Python strings):",
        *_comment_items(provenance, "#", py_string),
    ]
    if provenance.simulated:
        header[0] = '"""NOTE: the data are SIMULATED, not real studies.'
        header.insert(1, "")
        header.insert(
            2, "Reproduces with alliance_core the analysis shown on the alliance dashboard."
        )
    text_types = ", ".join(f"{py_string(c)}: str" for c in code.columns if c in code.text_columns)
    body = [
        "import sys",
        "from pathlib import Path",
        "",
        "import numpy as np",
        "import pandas as pd",
        "",
        "import alliance_core as ac",
        "from alliance_core.results_table import results_frame",
        "",
        "HERE = Path(__file__).resolve().parent",
        "",
        "# 1. Data: exactly the rows the dashboard's model used, with the columns it used.",
        f'rows = pd.read_csv(HERE / "data.csv", dtype={{{text_types}}},',
        '                   keep_default_na=False, na_values=[""])  # a level "NA" stays text',
        "",
        "# 2. Effect sizes.",
    ]
    if mapping.uses_correlations:
        body.append(
            f"dat = ac.escalc(rows, r={py_string(mapping.r)}, n={py_string(mapping.n)}, "
            'measure="ZCOR")  # Fisher z'
        )
    else:
        body.append(
            f'dat = ac.escalc(rows, measure="precomputed", yi={py_string(mapping.yi)}, '
            f"vi={py_string(mapping.vi)})"
        )
    if code.ptr_column is not None:
        body += [
            "# Patient-Therapist Ratio: patients per therapist.",
            f'dat["PTR"] = ac.ptr(dat[{py_string(mapping.n)}], '
            f"dat[{py_string(mapping.n_therapists)}])",
        ]
        if code.ptr_column == LOG_PTR_COLUMN:
            body.append('dat["log_PTR"] = np.log(dat["PTR"])')
    if settings.filters:
        body.append("")
        body.append("# 3. Filter (data.csv holds only the kept rows already; shown for your data).")
        for column, levels in settings.filters.items():
            kept = "[" + ", ".join(py_string(v) for v in levels) + "]"
            body.append(f'dat = dat[dat[{py_string(column)}].astype("string").isin({kept})]')
    reference = {t.column: t.reference for t in res.design.terms if t.kind == "categorical"}
    moderators = "[" + ", ".join(py_string(m) for m in code.model_moderators) + "]"
    ref_text = (
        "{" + ", ".join(f"{py_string(c)}: {py_string(v)}" for c, v in reference.items()) + "}"
        if reference
        else "None"
    )
    cluster = py_string(res.cluster) if res.is_three_level else "None"
    if code.aggregated:
        left_out = left_out_moderators(code)
        body += [
            "",
            "# 3b. One aggregated effect per study: sampling errors within a study correlate",
            f"# with rho = {_num(code.rho)} (compound symmetry), as metafor's aggregate.escalc.",
            "# Moderators whose value differs within a study are left out of this model"
            + (": " + ", ".join(py_string(m) for m in left_out) + "." if left_out else "."),
            f"dat = ac.aggregate(dat, cluster={py_string(code.study)}, rho={_num(code.rho)})",
        ]
    if res.is_three_level:
        model_words = "three-level (effect sizes nested in studies)"
        if code.che:
            model_words += (
                f", sampling errors within a study correlated with rho = {_num(code.rho)} (CHE)"
            )
    elif code.aggregated:
        model_words = "two-level on one aggregated effect per study"
    elif code.structure == INDEPENDENT:
        model_words = (
            "two-level on every effect size, treating effect sizes of one study as\n"
            "# independent (this overstates precision; not recommended)"
        )
    else:
        model_words = "two-level"
    rho_argument = [f"    rho={_num(code.rho)},"] if code.che else []
    body += [
        "",
        f"# 4. The model: {model_words}.",
        "res = ac.fit(",
        "    dat,",
        '    yi="yi",',
        '    vi="vi",',
        f"    moderators={moderators},",
        f"    reference={ref_text},",
        f"    method={py_string(settings.method)},",
        f"    cluster={cluster},",
        f"    test={py_string(res.test)},",
        *rho_argument,
        ")",
        "print(res.summary())",
        "",
        "# 5. Predictions: the average effect at typical moderator values.",
        f"print(res.predict(transform={transform}))",
    ]
    if code.ptr_column is not None:
        spacing = "np.geomspace" if settings.ptr_scale == "log" else "np.linspace"
        value = "np.log(ptr_points)" if code.ptr_column == LOG_PTR_COLUMN else "ptr_points"
        body += [
            f'ptr_points = {spacing}(dat["PTR"].min(), dat["PTR"].max(), {CURVE_POINTS})',
            f"curve = res.predict({{{py_string(code.ptr_column)}: {value}}}, "
            f"transform={transform})",
            "print(curve.head())",
        ]
    robust_argument = ""
    if code.robust is not None:
        body += [
            "",
            "# 5b. Cluster-robust inference: CR2 with Satterthwaite df, HTZ tests (clubSandwich).",
            f'rob = res.robust(cluster={py_string(code.robust.cluster)}, method="CR2")',
            "print(rob.summary())",
        ]
        robust_argument = ", robust=rob"
    body += [
        "",
        "# 6. Compare with the dashboard's results download of this analysis.",
        f"ours = results_frame(res, on_r_scale={code.on_r_scale}{robust_argument})",
        'dashboard = pd.read_csv(HERE / "dashboard_results.csv", comment="#")',
        f"columns = {list(COMPARED_COLUMNS)!r}",
        "assert len(ours) == len(dashboard), (len(ours), len(dashboard))",
        "theirs = dashboard[columns].to_numpy(dtype=float)",
        "mine = ours[columns].to_numpy(dtype=float)",
        f"# Agreement: |ours - dashboard| <= {RELATIVE_TOLERANCE:g} * |dashboard| + "
        f"{ABSOLUTE_TOLERANCE:g}",
        "# R^2 = 100 (1 - s1 / s0) is a difference of two estimates: its error is relative to 100%.",
        'scale = np.where(dashboard["name"] == "R2", 100.0, 0.0)[:, None]',
        "given = ~np.isnan(theirs)",
        'with np.errstate(invalid="ignore"):',
        f"    close = np.abs(mine - theirs) <= {RELATIVE_TOLERANCE:g} * np.maximum(np.abs(theirs), scale) + "
        f"{ABSOLUTE_TOLERANCE:g}",
        "agree = given & close",
        "for row, col in zip(*np.nonzero(given & ~agree), strict=True):",
        '    print(f"differs: {dashboard.section[row]} {dashboard.name[row]} {columns[col]}: "',
        '          f"dashboard {theirs[row, col]:.10g}, alliance_core {mine[row, col]:.10g}")',
        'print(f"agreement with the dashboard: {agree.sum()} of {given.sum()} numbers within '
        f'{RELATIVE_TOLERANCE:g}")',
        "sys.exit(0 if agree.sum() == given.sum() else 1)",
    ]
    return "\n".join([*header, "", *body, ""])


# -- bundles -----------------------------------------------------------------------------------
def _zip(files: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content.encode("utf-8") if isinstance(content, str) else content)
    return buffer.getvalue()


def bundle_files(
    run: AnalysisRun,
    mapping: ColumnMapping,
    provenance: Provenance,
    *,
    on_r_scale: bool,
    language: str,
    table: pd.DataFrame | None = None,
    robust: RobustResult | None = None,
) -> dict[str, bytes | str]:
    """The files of a reproduction zip: data.csv, dashboard_results.csv, the script.

    ``table``: the effect-size table the run was made from (needed for the aggregated
    two-level model); ``robust``: the cluster-robust inference shown with the model, whose
    numbers the results file and the scripts then include.
    """
    code = ModelCode.of(run, mapping, on_r_scale, table=table, robust=robust)
    script = r_script(code, provenance) if language == "R" else python_script(code, provenance)
    return {
        "data.csv": to_csv_text(model_rows(code)),
        "dashboard_results.csv": results_csv(run.result, on_r_scale, provenance, robust),
        "analysis.R" if language == "R" else "analysis.py": script,
    }


def r_bundle(run, mapping, provenance, *, on_r_scale: bool, table=None, robust=None) -> bytes:
    """Zip: data.csv, analysis.R (metafor), dashboard_results.csv (see ``bundle_files``)."""
    return _zip(
        bundle_files(
            run,
            mapping,
            provenance,
            on_r_scale=on_r_scale,
            language="R",
            table=table,
            robust=robust,
        )
    )


def python_bundle(run, mapping, provenance, *, on_r_scale: bool, table=None, robust=None) -> bytes:
    """Zip: data.csv, analysis.py (alliance_core), dashboard_results.csv (see ``bundle_files``)."""
    return _zip(
        bundle_files(
            run,
            mapping,
            provenance,
            on_r_scale=on_r_scale,
            language="Python",
            table=table,
            robust=robust,
        )
    )


def parse_agreement(output: str) -> tuple[int, int] | None:
    """(agreeing, compared) from a script's agreement line, or None when it printed none."""
    match = re.search(rf"{re.escape(AGREEMENT_PREFIX)} (\d+) of (\d+) numbers", output)
    return (int(match.group(1)), int(match.group(2))) if match else None


__all__ = [
    "ModelCode",
    "bundle_files",
    "model_rows",
    "parse_agreement",
    "python_bundle",
    "python_script",
    "r_bundle",
    "r_names",
    "r_script",
    "r_string",
]
