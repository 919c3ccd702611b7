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
    ABSOLUTE_TOLERANCE,
    CURVE_POINTS,
    R_MV_CONTROL,
    R_UNI_CONTROL,
    RELATIVE_TOLERANCE,
    ModelCode,
    comment_items,
    left_out_moderators,
    model_rows,
    number_literal,
    r_names,
    r_string,
    r_vector,
)
from alliance_core.handover.reproduce.r_bias import (
    SELECTION_TOLERANCE,
    delta_names,
    r_bias,
    r_bias_comparison,
    r_bias_row,
)
from alliance_core.handover.results_table import results_frame
from alliance_core.model.design import level_order
from alliance_core.model.nesting import INDEPENDENT


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
        r_bias(code, names),
        _r_figures(code, names),
        _r_comparison(code, names),
    ]
    return "\n".join(line for section in sections for line in [*section, ""])


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


def _r_row_expressions(code: ModelCode, names: dict[str, str]) -> list[str]:
    """One R expression per row of the dashboard's results table, in the same order."""
    res = code.res
    frame = results_frame(res, code.on_r_scale, code.robust, bias=code.bias)
    coefficient = robust_coefficient = 0
    deltas = delta_names(code)
    out = []
    wald_columns = {f"wald_{t.column}": t for t in res.design.terms if t.kind == "categorical"}
    for section, name in zip(frame["section"], frame["name"], strict=True):
        bias_row = r_bias_row(section, name, deltas)
        if bias_row is not None:
            out.append(bias_row)
        elif section == "coefficient":
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
        elif section == "robust prediction":
            out.append(
                "num_row(estimate = pooled_rob$pred, ci_lb = pooled_rob$ci.lb, "
                "ci_ub = pooled_rob$ci.ub, pi_lb = pooled_rob$pi.lb, pi_ub = pooled_rob$pi.ub)"
            )
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
    within = (
        f" (selection model: {SELECTION_TOLERANCE:g})"
        if code.bias is not None and code.bias.selection is not None
        else ""
    )
    lines += ["ours <- rbind("] + [f"  {row}," for row in rows[:-1]] + [f"  {rows[-1]}", ")"]
    lines += [
        'dashboard <- unquoted(read.csv("dashboard_results.csv", comment.char = "#",',
        "                               check.names = FALSE))",
        "stopifnot(nrow(dashboard) == nrow(ours))",
        "theirs <- as.matrix(dashboard[, columns])",
        f"# Agreement: |metafor - dashboard| <= {RELATIVE_TOLERANCE:g} * |dashboard| + "
        f"{ABSOLUTE_TOLERANCE:g}",
        "# R^2 = 100 (1 - s1 / s0) and I^2 are percentages built from variance estimates, so their",
        "# error is relative to the full scale (100%), not to themselves: an I^2 of a component",
        "# that sits at its zero boundary is 0 here and a hair above 0 in metafor.",
        'percent <- dashboard$name == "R2" | startsWith(dashboard$name, "I2")',
        "scale <- matrix(ifelse(percent, 100, 0), nrow(theirs), ncol(theirs),",
        "                dimnames = dimnames(theirs))",
        f"tolerance <- matrix({RELATIVE_TOLERANCE:g}, nrow(theirs), ncol(theirs))",
        "skipped <- rep(FALSE, nrow(theirs))  # rows this script cannot compute here",
        *r_bias_comparison(code),
        "given <- !is.na(theirs) & !skipped",
        f"close <- abs(ours - theirs) <= tolerance * pmax(abs(theirs), scale) + "
        f"{ABSOLUTE_TOLERANCE:g}",
        "agree <- given & !is.na(ours) & close",
        "for (i in which(given & !agree)) {",
        "  row <- (i - 1) %% nrow(theirs) + 1",
        "  column <- columns[(i - 1) %/% nrow(theirs) + 1]",
        '  cat(sprintf("differs: %s %s %s: dashboard %.10g, metafor %.10g\\n",',
        "              dashboard$section[row], dashboard$name[row], column, theirs[i], ours[i]))",
        "}",
        "if (any(skipped)) {",
        '  cat(sprintf("not compared: %d numbers of %d rows (see SKIPPED above)\\n",',
        "              sum(!is.na(theirs[skipped, , drop = FALSE])), sum(skipped)))",
        "}",
        'cat(sprintf("agreement with the dashboard: %d of %d numbers within '
        f'{RELATIVE_TOLERANCE:g}{within}\\n", sum(agree), sum(given)))',
        "quit(status = if (sum(agree) == sum(given)) 0 else 1)",
    ]
    return lines
