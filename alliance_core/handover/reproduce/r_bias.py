"""The metafor script's publication-bias part: the selection model and the fail-safe N.

Independent effect sizes: metafor's ``selmodel(res, type = "stepfun", steps = ...)`` on the
rma.uni model, fitted with a tight optimiser tolerance (as the project's selection fixtures).
Dependent effect sizes (three-level model): metaselection's ``selection_model(...,
estimator = "CML", vcov_type = "robust")`` when the package is installed; without it the
script says that this part is skipped and why, and its numbers are left out of the
comparison (never counted as agreeing). ``fsn(yi, vi, type = ...)`` for each fail-safe N.

metafor's selection-model standard errors come from a numerical Hessian, so the selection
rows are compared to 1e-4 relative (their z statistics and p-values to 1e-4 absolute), as the
project's selection-model parity tests compare them.
"""

from __future__ import annotations

from alliance_core.handover.bias_results import (
    FAIL_SAFE_SECTION,
    ROBUST_SELECTION_SECTION,
    SELECTION_SECTION,
    delta_name,
)
from alliance_core.handover.reproduce.common import ModelCode, number_literal

SELECTION_TOLERANCE = 1e-4


def r_bias(code: ModelCode, names: dict[str, str]) -> list[str]:
    """Section 6b: fit the selection model and the fail-safe Ns (helpers for the rows)."""
    bias = code.bias
    if bias is None:
        return []
    steps = "c(" + ", ".join(number_literal(s) for s in bias.steps) + ")"
    frame = code.frame
    lines = [
        "## 6b. Publication bias: selection model and fail-safe N -----------------------",
        "# A step-function selection model (Vevea & Hedges, 1995): effect sizes are published",
        "# with a relative weight that depends on the interval of their one-sided p-value.",
        f"sel_steps <- {steps}",
        "sel <- NULL",
    ]
    if bias.clustered:
        study = names[code.study]
        lines += [
            "# Effect sizes of one study are dependent: the composite likelihood of all effect",
            "# sizes with cluster-robust (sandwich) standard errors by study (Pustejovsky,",
            "# Citkowicz & Joshi, 2025), from the R package metaselection.",
            'has_metaselection <- requireNamespace("metaselection", quietly = TRUE)',
            "if (has_metaselection) {",
            f"  sel_data <- data.frame(yi = as.numeric({frame}$yi), "
            f"sei = sqrt(as.numeric({frame}$vi)),",
            f"                         cluster = {frame}${study})",
            "  sel <- tryCatch(metaselection::selection_model(",
            '    data = sel_data, yi = yi, sei = sei, cluster = cluster, selection_type = "step",',
            '    steps = sel_steps, estimator = "CML", vcov_type = "robust", priors = NULL),',
            '    error = function(e) { cat("selection model failed:", conditionMessage(e), "\\n")',
            "                          NULL })",
            "  if (!is.null(sel)) {",
            "    print(sel)",
            "    est <- as.data.frame(sel$est)",
            "    rownames(est) <- est$param",
            "  }",
            "} else {",
            '  cat("SKIPPED: the cluster-robust selection model needs the R package metaselection,",',
            '      "which is not installed here (install.packages(\\"metaselection\\")); its numbers",',
            '      "are not compared with the dashboard.\\n")',
            "}",
            "sel_row <- function(what, j = 1) {",
            "  if (is.null(sel)) return(num_row())",
            "  switch(what,",
            '    coef = num_row(estimate = est[j, "Est"], se = est[j, "SE"],',
            '                   statistic = est[j, "Est"] / est[j, "SE"], pval = est[j, "p_value"],',
            '                   ci_lb = est[j, "CI_lo"], ci_ub = est[j, "CI_hi"]),',
            '    r = num_row(estimate = tanh(est[1, "Est"]), ci_lb = tanh(est[1, "CI_lo"]),',
            '                ci_ub = tanh(est[1, "CI_hi"])),',
            "    # metaselection reports tau2 and the weights on the log scale (gamma, zeta)",
            '    tau2 = num_row(estimate = exp(est["gamma", "Est"]),',
            '                   se = exp(est["gamma", "Est"]) * est["gamma", "SE"],',
            '                   ci_lb = exp(est["gamma", "CI_lo"]), '
            'ci_ub = exp(est["gamma", "CI_hi"])),',
            "    delta = {",
            '      z <- est[paste0("zeta", j), ]',
            "      num_row(estimate = exp(z$Est), se = exp(z$Est) * z$SE, statistic = z$Est / z$SE,",
            "              pval = z$p_value, ci_lb = exp(z$CI_lo), ci_ub = exp(z$CI_hi))",
            "    })",
            "}",
        ]
    else:
        lines += [
            "# Effect sizes treated as independent: metafor's selmodel, with a tight optimiser",
            "# tolerance (its default stops up to 1e-3 from the maximum of a flat likelihood).",
            "sel_control <- list(reltol = 1e-15, maxit = 10000,",
            "                    ndeps = rep(1e-6, res$p + 2 + length(sel_steps)))",
            "sel <- tryCatch(",
            '  selmodel(res, type = "stepfun", steps = sel_steps, control = sel_control),',
            '  error = function(e) { cat("selection model failed:", conditionMessage(e), "\\n")',
            "                        NULL })",
            "if (!is.null(sel)) print(sel)",
            "sel_row <- function(what, j = 1) {",
            "  if (is.null(sel)) return(num_row())",
            "  switch(what,",
            "    coef = num_row(estimate = sel$beta[j], se = sel$se[j], statistic = sel$zval[j],",
            "                   pval = sel$pval[j], ci_lb = sel$ci.lb[j], ci_ub = sel$ci.ub[j]),",
            "    r = num_row(estimate = tanh(sel$beta[1]), ci_lb = tanh(sel$ci.lb[1]),",
            "                ci_ub = tanh(sel$ci.ub[1])),",
            "    tau2 = num_row(estimate = sel$tau2, se = sel$se.tau2, ci_lb = sel$ci.lb.tau2,",
            "                   ci_ub = sel$ci.ub.tau2),",
            "    # the first weight is the reference (fixed at 1): the j-th free one is j + 1",
            "    delta = num_row(estimate = sel$delta[j + 1], se = sel$se.delta[j + 1],",
            "                    statistic = sel$zval.delta[j + 1], pval = sel$pval.delta[j + 1],",
            "                    ci_lb = sel$ci.lb.delta[j + 1], ci_ub = sel$ci.ub.delta[j + 1]),",
            "    lrt = num_row(statistic = sel$LRT, df = sel$LRTdf, pval = sel$LRTp))",
            "}",
        ]
    lines += [
        "# Fail-safe N (Rosenthal, 1979; Orwin, 1983; Rosenberg, 2005): how many unpublished",
        "# null results would overturn the finding. Not a test of bias, nor a correction.",
        "fail_safe <- lapply(",
        '  c(Rosenthal = "Rosenthal", Orwin = "Orwin", Rosenberg = "Rosenberg"),',
        f"  function(type) fsn(yi, vi, data = {frame}, type = type))",
        "print(fail_safe)",
        "fsn_row <- function(type) num_row(estimate = fail_safe[[type]]$fsnum,",
        "                                  pval = fail_safe[[type]]$pval)",
    ]
    return lines


def r_bias_row(section: str, name: str, deltas: list[str]) -> str | None:
    """The R expression of one publication-bias results row, or None for another row.
    ``deltas``: the results names of the weights, in order."""
    if section == FAIL_SAFE_SECTION:
        return f'fsn_row("{name}")'
    if section not in (SELECTION_SECTION, ROBUST_SELECTION_SECTION):
        return None
    if name == "adjusted r":
        return 'sel_row("r")'
    if name.startswith("adjusted "):
        return 'sel_row("coef", 1)'
    if name == "tau2":
        return 'sel_row("tau2")'
    if name == "LRT":
        return 'sel_row("lrt")'
    if name in deltas:
        return f'sel_row("delta", {deltas.index(name) + 1})'
    return "num_row()"  # unknown: compared as missing, so it fails loudly


def delta_names(code: ModelCode) -> list[str]:
    sel = code.bias.selection if code.bias is not None else None
    if sel is None:
        return []
    return [delta_name(label) for label in sel.delta.index[1:]]


def r_bias_comparison(code: ModelCode) -> list[str]:
    """After ``scale``, ``tolerance`` and ``skipped`` are set up: the selection rows' own
    tolerance, and (dependent effect sizes without metaselection) their rows skipped."""
    if code.bias is None or code.bias.selection is None:
        return []
    lines = [
        "# The selection model's standard errors in metafor come from a numerical Hessian:",
        f"# its rows are compared to {SELECTION_TOLERANCE:g} (z and p on an absolute scale).",
        'selection_rows <- startsWith(dashboard$section, "selection model")',
        f"tolerance[selection_rows, ] <- {SELECTION_TOLERANCE:g}",
        'scale[selection_rows, c("statistic", "pval")] <- 1',
    ]
    if code.bias.clustered:
        lines += [
            "if (!has_metaselection) skipped <- skipped | selection_rows",
        ]
    return lines
