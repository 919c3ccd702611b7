"""The "Reproduce in R" script: metafor code for the analysis on screen, with its check.

Sections: data, effect sizes (escalc), filter, aggregation (aggregated two-level model),
categorical moderators (relevel), sampling covariance (CHE: vcalc), the model (rma / rma.mv),
cluster-robust inference (robust, clubSandwich), predictions, figures, and the comparison with
the dashboard's results that prints the agreement line.
"""

from __future__ import annotations

from alliance_core.analyses.run import LOG_PTR_COLUMN
from alliance_core.data.effect_forms import FORM_NAMES, form_columns
from alliance_core.handover.provenance import Provenance
from alliance_core.handover.reproduce.common import (
    CURVE_POINTS,
    R_MV_CONTROL,
    R_UNI_CONTROL,
    ModelCode,
    comment_items,
    left_out_moderators,
    model_rows,
    number_literal,
    r_formula,
    r_names,
    r_string,
    r_vector,
)
from alliance_core.handover.reproduce.r_bias import r_bias
from alliance_core.handover.reproduce.r_compare import r_comparison
from alliance_core.handover.reproduce.r_moderators import (
    r_heterogeneity,
    r_marginal,
    r_model_comparison,
)
from alliance_core.handover.reproduce.r_wild import r_wild
from alliance_core.model.design import level_order
from alliance_core.model.nesting import INDEPENDENT


# -- R -----------------------------------------------------------------------------------------
def r_script(code: ModelCode, provenance: Provenance) -> str:
    names = r_names(list(code.columns))
    sections = [
        _r_header(provenance, robust=code.robust is not None, clustered=_clustered(code)),
        _r_read(code, names),
        _r_effect_sizes(code, names),
        _r_filter(code, names),
        _r_aggregate(code, names),
        _r_moderators(code, names),
        _r_sampling_variance(code, names),
        _r_model(code, names),
        _r_inference(code, names),
        _r_predictions(code, names),
        r_marginal(code, names),
        r_model_comparison(code, names),
        r_heterogeneity(code, names),
        r_wild(code, names),
        r_bias(code, names),
        _r_figures(code, names),
        r_comparison(code, names),
    ]
    return "\n".join(line for section in sections for line in [*section, ""])


def _clustered(code: ModelCode) -> bool:
    return code.bias is not None and code.bias.clustered


def _r_header(provenance: Provenance, robust: bool = False, clustered: bool = False) -> list[str]:
    needs = (
        "# It needs the metafor and clubSandwich packages:\n"
        '#   install.packages(c("metafor", "clubSandwich")).'
        if robust
        else '# It needs only the metafor package: install.packages("metafor").'
    )
    if clustered:
        needs += (
            "\n# The cluster-robust selection model needs metaselection as well (without it,"
            '\n# that part is skipped and said so): install.packages("metaselection").'
        )
    lines = [
        "# Reproduces with R's metafor the analysis shown on the alliance meta-analysis dashboard.",
        "# Run it in the unzipped folder:   Rscript analysis.R",
        *needs.split("\n"),
        "#",
        "# The analysis (user text appears as escaped R strings):",
        *comment_items(provenance, "#", r_string),
    ]
    if provenance.simulated:
        lines.insert(0, "# NOTE: the data are SIMULATED, not real studies.")
    return [*lines, "", "suppressPackageStartupMessages(library(metafor))"]


# Undoes csv_export.neutralise_formula(reversible=True) on every text cell and column name.
UNQUOTE_R = [
    "# The CSV files are safe to open in a spreadsheet: a text cell or column name that starts",
    "# with a formula character (= + - @, also after spaces or quotes) or with ' got one leading",
    "# ' (OWASP). Taking exactly one leading ' off every text value gives the values back.",
    "unquoted <- function(frame) {",
    '  names(frame) <- sub("^\'", "", names(frame))',
    "  for (j in seq_along(frame)) {",
    '    if (is.character(frame[[j]])) frame[[j]] <- sub("^\'", "", frame[[j]])',
    "  }",
    "  frame",
    "}",
]


def _r_read(code: ModelCode, names: dict[str, str]) -> list[str]:
    # With forms by row an effect-size column has empty cells, which data.csv writes quoted
    # (""); read.csv refuses those in a numeric column, so they are read as text first.
    gappy = set()
    if code.mapping.mixed_forms:
        gappy = {c for form in code.mapping.row_forms for c in form_columns(code.mapping, form)}
    classes = [
        '"character"' if column in code.text_columns or column in gappy else '"numeric"'
        for column in code.columns
    ]
    lines = [
        "## 1. Data ----------------------------------------------------------------------",
        "# data.csv holds exactly the rows the dashboard's model used (after its filter, without",
        "# rows with missing values) and the columns the model used.",
        "# Empty cells are missing values; a level written NA stays text.",
        'dat <- read.csv("data.csv", check.names = FALSE, encoding = "UTF-8", na.strings = "",',
        f"                colClasses = c({', '.join(classes)}))",
        *UNQUOTE_R,
        "dat <- unquoted(dat)",
        "# Short syntactic R names, by position (data.csv keeps the coding sheet's names):",
    ]
    for column in code.columns:
        if names[column] != column:
            lines.append(f"#   {r_string(column)} is called {names[column]} below")
    lines.append(f"names(dat) <- c({', '.join(r_string(names[c]) for c in code.columns)})")
    for column in code.columns:
        if column in gappy and column not in code.text_columns:
            lines.append(f"dat${names[column]} <- as.numeric(dat${names[column]})  # empty: NA")
    return lines


def _r_effect_sizes(code: ModelCode, names: dict[str, str]) -> list[str]:
    mapping = code.mapping
    lines = ["## 2. Effect sizes -----------------------------------------------------------"]
    form = mapping.effect_form
    if mapping.mixed_forms:
        lines += _r_forms_by_row(mapping, names)
    elif form == "r":
        lines += [
            "# Correlations are analysed as Fisher's z: yi = atanh(r), vi = 1 / (n - 3).",
            f'dat <- escalc(measure = "ZCOR", ri = {names[mapping.r]}, ni = {names[mapping.n]}, '
            "data = dat)",
        ]
    elif form == "z":
        lines += [
            "# Fisher's z as reported, with sampling variance vi = 1 / (n - 3).",
            f'dat <- escalc(measure = "GEN", yi = {names[mapping.z]}, '
            f"vi = 1 / ({names[mapping.n]} - 3), data = dat)",
        ]
    elif form == "sei":
        lines += [
            "# Effect sizes as given, with sampling variance vi = sei^2 (their standard error).",
            f'dat <- escalc(measure = "GEN", yi = {names[mapping.yi]}, '
            f"sei = {names[mapping.sei]}, data = dat)",
        ]
    else:
        lines += [
            "# Effect sizes and their sampling variances as given in the data.",
            f'dat <- escalc(measure = "GEN", yi = {names[mapping.yi]}, vi = {names[mapping.vi]}, '
            "data = dat)",
        ]
    if code.ptr_column is not None and mapping.ptr is not None:
        ratio = names[mapping.ptr]
        lines += [
            "# Patient-Therapist Ratio as given in the data.",
            f"dat$PTR <- ifelse(dat${ratio} > 0, dat${ratio}, NA)",
        ]
    elif code.ptr_column is not None:
        n, t = names[mapping.ptr_patients], names[mapping.n_therapists]
        lines += [
            "# Patient-Therapist Ratio: patients per therapist in each study.",
            f"dat$PTR <- ifelse(dat${t} > 0, dat${n} / dat${t}, NA)",
        ]
        if code.ptr_column == LOG_PTR_COLUMN:
            lines += ["# PTR enters the model on the log scale.", "dat$log_PTR <- log(dat$PTR)"]
    return lines


def _r_forms_by_row(mapping, names: dict[str, str]) -> list[str]:
    """Each row in the first complete form (alliance_core.data.effect_forms), as in R."""
    lines = [
        "# Effect sizes come in several forms; each row takes the first complete one:",
        "# " + "; ".join(FORM_NAMES[form] for form in mapping.row_forms) + ".",
        "dat$yi <- NA_real_",
        "dat$vi <- NA_real_",
    ]
    for form in mapping.row_forms:
        first, second = (f"dat${names[c]}" for c in form_columns(mapping, form))
        yi = f"atanh({first}[use])" if form == "r" else f"{first}[use]"
        vi = {
            "r": f"1 / ({second}[use] - 3)",
            "z": f"1 / ({second}[use] - 3)",
            "z_sei": f"{second}[use]^2",
            "sei": f"{second}[use]^2",
        }.get(form, f"{second}[use]")
        lines += [
            f"use <- is.na(dat$yi) & !is.na({first}) & !is.na({second})  # {FORM_NAMES[form]}",
            f"dat$yi[use] <- {yi}",
            f"dat$vi[use] <- {vi}",
        ]
    lines.append('dat <- escalc(measure = "GEN", yi = yi, vi = vi, data = dat)')
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
        lines.append(f"dat <- dat[dat${names[column]} %in% {r_vector(levels)}, ]")
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
            f"{frame}${name} <- relevel(factor({frame}${name}, levels = {r_vector(ordered)}), "
            f"ref = {r_string(term.reference)})"
        )
    return lines


def _r_aggregate(code: ModelCode, names: dict[str, str]) -> list[str]:
    """Aggregated two-level model: one effect per study (aggregate.escalc, struct "CS")."""
    if not code.aggregated:
        return []
    study = names[code.study]
    lines = [
        "## 3b. One aggregated effect per study -----------------------------------------",
        "# Effect sizes of one study come from the same participants: their sampling errors",
        f"# are taken to correlate with rho = {number_literal(code.rho)} (compound symmetry), and each",
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
        f"agg <- aggregate(dat, cluster = {study}, rho = {number_literal(code.rho)})",
        f"stopifnot(nrow(agg) == {code.res.k})",
    ]


def _r_sampling_variance(code: ModelCode, names: dict[str, str]) -> list[str]:
    """CHE working model: the block-diagonal sampling covariance V of vcalc."""
    if not code.che:
        return []
    study = names[code.study]
    return [
        "## 4b. Correlated sampling errors (CHE working model) --------------------------",
        "# Effect sizes of one study come from the same participants, so their sampling",
        f"# errors correlate; rho = {number_literal(code.rho)} is assumed for every pair within a study",
        "# (Pustejovsky & Tipton, 2022). V is block-diagonal by study.",
        "dat$es <- seq_len(nrow(dat))",
        f"V <- vcalc(vi, cluster = {study}, obs = es, rho = {number_literal(code.rho)}, data = dat)",
    ]


def _r_model(code: ModelCode, names: dict[str, str]) -> list[str]:
    res, settings = code.res, code.run.settings
    formula = r_formula(code, names)
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
        elif term.kind == "interaction":
            # products of the parts' typical values: 0 with a categorical part (its reference
            # level), the product of the means for numeric parts
            width = len(term.labels)
            if all(part.kind == "numeric" for part in term.parts):
                means = [f"mean({code.frame}${names.get(p.column, p.column)})" for p in term.parts]
                parts.append(" * ".join(means))
            else:
                parts += ["0"] * width
            labels += [term.column] * width
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
    if code.robust is not None:
        newmods = "" if res.p == 1 else ", newmods = matrix(typical, nrow = 1)"
        lines += [
            "# The same prediction under CR2: robust se, t on its own Satterthwaite df.",
            f"pooled_rob <- predict(rob{newmods}{transf})",
            "print(pooled_rob)",
        ]
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
