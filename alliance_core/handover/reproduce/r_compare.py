"""The metafor script's last section: its numbers laid out like the dashboard's results file,
every number compared, and the agreement line.

Each results row gets one R expression (the same order as ``results_frame``); a number
agrees when |metafor - dashboard| <= tolerance * max(|dashboard|, scale) + 1e-8, with the
scale 100 for percentages (I², pseudo-R²) and the selection model's own tolerance
(``r_bias``); rows the script cannot compute here (metaselection missing, the wild
bootstrap p) are said and left out of the count.
"""

from __future__ import annotations

from dataclasses import dataclass

from alliance_core.handover.reproduce.common import (
    ABSOLUTE_TOLERANCE,
    RELATIVE_TOLERANCE,
    ModelCode,
    r_formula,
    r_string,
)
from alliance_core.handover.reproduce.r_bias import (
    SELECTION_TOLERANCE,
    delta_names,
    r_bias_comparison,
    r_bias_row,
)
from alliance_core.handover.reproduce.r_moderators import (
    MARGINAL_SECTIONS,
    comparison_expressions,
    marginal_expressions,
    scale_expression,
)
from alliance_core.handover.reproduce.r_wild import r_wild_comparison, wild_expressions
from alliance_core.handover.results_moderators import COMPARISON_SECTION
from alliance_core.handover.results_scale import SCALE_SECTION
from alliance_core.handover.results_table import results_frame
from alliance_core.handover.results_wild import WILD_SECTION
from alliance_core.model.results import MetaResult


# The rows that need no counting are looked up in this table rather than in a chain of
# branches: one record a reported quantity keeps each name next to the metafor expression
# that recomputes it, so a new results row is one line here, and the few rows whose number
# sits elsewhere in a three-level or an equal-effects fit say so in their own record.
@dataclass(frozen=True)
class _RowExpression:
    """The R expression of one results row, found by its section and name."""

    section: str | None  # None: the row is known by its name, whatever its section
    name: str | None  # None: every row of the section
    expression: str
    three_level: str | None = None  # the expression for a three-level fit, if it differs
    equal_effects: str | None = None  # the expression for an equal-effects fit, if it differs


_ROW_EXPRESSIONS: tuple[_RowExpression, ...] = (
    _RowExpression(
        "robust test",
        "QM",
        "num_row(statistic = rob$QM, df = rob$QMdf[1], df2 = rob$QMdf[2], pval = rob$QMp)",
    ),
    _RowExpression(
        "robust prediction",
        None,
        "num_row(estimate = pooled_rob$pred, ci_lb = pooled_rob$ci.lb, "
        "ci_ub = pooled_rob$ci.ub, pi_lb = pooled_rob$pi.lb, pi_ub = pooled_rob$pi.ub)",
    ),
    _RowExpression(
        "prediction",
        None,
        "num_row(estimate = pooled$pred, ci_lb = pooled$ci.lb, ci_ub = pooled$ci.ub, "
        "pi_lb = pooled$pi.lb, pi_ub = pooled$pi.ub)",
    ),
    _RowExpression(None, "sigma2_study", "num_row(estimate = res$sigma2[1])"),
    _RowExpression(None, "sigma2_es", "num_row(estimate = res$sigma2[2])"),
    _RowExpression(None, "I2_study", "num_row(estimate = i2$levels[1])"),
    _RowExpression(None, "I2_es", "num_row(estimate = i2$levels[2])"),
    _RowExpression(
        None, "I2", "num_row(estimate = res$I2)", three_level="num_row(estimate = i2$total)"
    ),
    _RowExpression(
        None,
        "tau2",
        "num_row(estimate = res$tau2, se = res$se.tau2, "
        'ci_lb = tau2_ci["tau^2", "ci.lb"], ci_ub = tau2_ci["tau^2", "ci.ub"])',
        equal_effects="num_row(estimate = res$tau2)",
    ),
    _RowExpression(None, "H2", "num_row(estimate = res$H2)"),
    _RowExpression(None, "R2", "num_row(estimate = r2)"),
    _RowExpression(None, "QE", "num_row(statistic = res$QE, df = res$k - res$p, pval = res$QEp)"),
    _RowExpression(
        None,
        "QM",
        "num_row(statistic = res$QM, df = res$QMdf[1], df2 = res$QMdf[2], pval = res$QMp)",
    ),
    _RowExpression(None, "k", "num_row(estimate = res$k)"),
    _RowExpression(
        None,
        "studies",
        "num_row(estimate = res$k)",
        three_level="num_row(estimate = res$s.nlevels[1])",
    ),
    _RowExpression(None, "logLik", "num_row(estimate = as.numeric(logLik(res)))"),
    _RowExpression(None, "AIC", "num_row(estimate = AIC(res))"),
    _RowExpression(None, "BIC", "num_row(estimate = BIC(res))"),
)


def _table_expression(section: str, name: str, res: MetaResult) -> str | None:
    """The first table record that fits the row, for this fit; None where none does."""
    for row in _ROW_EXPRESSIONS:
        if row.section not in (None, section) or row.name not in (None, name):
            continue
        if row.equal_effects is not None and res.method == "EE":
            return row.equal_effects
        if row.three_level is not None and res.is_three_level:
            return row.three_level
        return row.expression
    return None


def r_row_expressions(code: ModelCode, names: dict[str, str]) -> list[str]:
    """One R expression per row of the dashboard's results table, in the same order."""
    res = code.res
    frame = results_frame(
        res,
        code.on_r_scale,
        code.robust,
        bias=code.bias,
        comparison=code.comparison,
        heterogeneity=code.heterogeneity,
        wild_bootstrap=code.wild_bootstrap,
    )
    coefficient = robust_coefficient = 0
    deltas = delta_names(code)
    marginal = iter(marginal_expressions(code, names))
    comparison = iter(comparison_expressions(code))
    wild = iter(wild_expressions(code))
    scale_coefficient = 0
    out = []
    wald_columns = {f"wald_{t.column}": t for t in res.design.terms if t.kind == "categorical"}
    for section, name in zip(frame["section"], frame["name"], strict=True):
        bias_row = r_bias_row(section, name, deltas)
        if bias_row is not None:
            out.append(bias_row)
        elif section in MARGINAL_SECTIONS:
            out.append(next(marginal, "num_row()"))
        elif section == COMPARISON_SECTION:
            out.append(next(comparison, "num_row()"))
        elif section == WILD_SECTION:
            out.append(next(wild, "num_row()"))
        elif section == SCALE_SECTION:
            scale_coefficient += name.startswith("scale ")
            out.append(scale_expression(name, scale_coefficient))
        elif section == "coefficient":
            coefficient += 1
            out.append(f"coef_row({coefficient})")
        elif section == "robust coefficient":
            robust_coefficient += 1
            out.append(f"coef_row({robust_coefficient}, rob)")
        elif (expression := _table_expression(section, name, res)) is not None:
            out.append(expression)
        elif name in wald_columns:  # an omnibus test of one categorical moderator's levels
            indices = res.design.coefficient_indices([wald_columns[name].column])
            btt = ", ".join(str(i + 1) for i in indices)
            fit = ", rob" if section == "robust test" else ""
            out.append(f"wald_row(c({btt}){fit})")
        else:  # a row this generator does not know: compared as missing, so it fails loudly
            out.append("num_row()")
    return out


def r_comparison(code: ModelCode, names: dict[str, str]) -> list[str]:
    res = code.res
    formula = r_formula(code, names)
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
    rows = r_row_expressions(code, names)
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
        *r_wild_comparison(code),
        *(
            [
                "# Likelihood-ratio statistics are differences of log-likelihoods: compared on",
                "# the scale of 1 (absolute), as their p-values.",
                f'compared_rows <- dashboard$section == "{COMPARISON_SECTION}"',
                'scale[compared_rows, c("statistic", "pval")] <- 1',
            ]
            if code.comparison is not None
            else []
        ),
        *(
            [
                "# metafor's optimiser stops on the flat likelihood of the scale part a little",
                "# short of its maximum: those rows are compared to 1e-4, estimates and bounds",
                "# on the scale of their standard error, z and p on the absolute scale.",
                f'scale_rows <- dashboard$section == "{SCALE_SECTION}"',
                "tolerance[scale_rows, ] <- 1e-4",
                'for (column in c("estimate", "ci_lb", "ci_ub")) {',
                '  scale[scale_rows, column] <- ifelse(is.na(theirs[scale_rows, "se"]), 0,',
                '                                      theirs[scale_rows, "se"])',
                "}",
                'scale[scale_rows, c("statistic", "pval")] <- 1',
            ]
            if code.heterogeneity is not None
            else []
        ),
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
