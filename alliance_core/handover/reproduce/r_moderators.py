"""The metafor script's moderator part: the marginal means of each categorical moderator.

The reference grid and its weights follow the rule emmeans documents for
``weights = "proportional"`` (numeric moderators at their means over the fitted rows; the
prediction rows averaged over the other factors' level combinations in proportion to how often
each occurs), built with R's own ``model.matrix`` of the model's formula (interactions
included); the means are ``predict(res, newmods = L[, -1])`` and, under CR2,
``predict(robust(res, cluster, clubSandwich = TRUE), newmods = L[, -1])``.
"""

from __future__ import annotations

from alliance_core.analyses.model_comparison import FIXED, ptr_moderator
from alliance_core.errors import AnalysisError
from alliance_core.handover.reproduce.common import (
    ModelCode,
    r_formula,
    r_string,
    r_term,
)
from alliance_core.handover.results_moderators import (
    FIT_STATISTICS,
    MARGINAL_SECTION,
    ROBUST_MARGINAL_SECTION,
    categorical_columns,
)

MARGINAL_SECTIONS = (MARGINAL_SECTION, ROBUST_MARGINAL_SECTION)

MARGINAL_ROWS_R = r"""marginal_rows <- function(d, form, focal) {
  vars <- all.vars(form)
  factors <- vars[vapply(vars, function(v) is.factor(d[[v]]), logical(1))]
  others <- setdiff(factors, focal)
  grid_base <- lapply(vars, function(v) if (is.factor(d[[v]])) levels(d[[v]]) else mean(d[[v]]))
  names(grid_base) <- vars
  rows <- list()
  for (lev in levels(d[[focal]])) {
    g <- grid_base
    g[[focal]] <- lev
    grid <- expand.grid(g, stringsAsFactors = FALSE)
    for (v in factors) grid[[v]] <- factor(grid[[v]], levels = levels(d[[v]]))
    mm <- model.matrix(delete.response(terms(form)), grid)
    w <- 1
    if (length(others)) {
      key <- function(frame) do.call(paste, c(lapply(others, function(v) as.character(frame[[v]])),
                                              sep = "\r"))
      combos <- key(grid)
      counts <- table(factor(key(d), levels = unique(combos)))
      w <- as.numeric(counts[combos]) / nrow(d)
    }
    rows[[lev]] <- colSums(mm * w)
  }
  do.call(rbind, rows)
}"""


def r_marginal(code: ModelCode, names: dict[str, str]) -> list[str]:
    """Section 6c: the marginal means (model-based, and robust under CR2)."""
    columns = categorical_columns(code.res)
    if not columns:
        return []
    robust = "predict(rob, newmods = newmods)" if code.robust is not None else "NULL"
    return [
        "## 6c. Marginal means of the categorical moderators ----------------------------",
        "# Each level's expected effect: numeric moderators at their means over the fitted rows,",
        "# the other categorical moderators averaged over how often their level combinations",
        '# occur (emmeans, weights = "proportional"); the model-matrix rows L give',
        "# predict(res, newmods = L[, -1])" + (" and the same under CR2." if code.robust else "."),
        *MARGINAL_ROWS_R.splitlines(),
        f"form <- {r_formula(code, names)}",
        "marginal <- list()",
        "for (focal in c(" + ", ".join(r_string(names[c]) for c in columns) + ")) {",
        f"  L <- marginal_rows({code.frame}, form, focal)",
        "  newmods <- L[, -1, drop = FALSE]",
        f"  marginal[[focal]] <- list(model = predict(res, newmods = newmods), robust = {robust})",
        "  print(focal)",
        "  print(marginal[[focal]]$model)",
        "}",
        'mm_row <- function(focal, i, which = "model") {',
        "  p <- marginal[[focal]][[which]]",
        "  ddf <- if (is.null(p$ddf)) NA else rep_len(p$ddf, length(p$pred))[i]",
        "  num_row(estimate = p$pred[i], se = p$se[i], df = ddf, ci_lb = p$ci.lb[i],",
        "          ci_ub = p$ci.ub[i], pi_lb = p$pi.lb[i], pi_ub = p$pi.ub[i])",
        "}",
    ]


def marginal_expressions(code: ModelCode, names: dict[str, str]) -> list[str]:
    """The R expression of each marginal-mean row, in the order of ``marginal_rows``."""
    out = []
    sections = (("model", None), ("robust", code.robust))
    for which, inference in sections:
        if which == "robust" and inference is None:
            continue
        for column in categorical_columns(code.res):
            try:
                levels = code.res.marginal_means(column, robust=inference).table.index
            except AnalysisError:  # the results file has no rows for it either
                continue
            out += [
                f"mm_row({r_string(names[column])}, {i}, {r_string(which)})"
                for i in range(1, len(levels) + 1)
            ]
    return out


def _mods(terms: str, names: dict[str, str]) -> str:
    if terms == "1":
        return "~ 1"
    return "~ " + " + ".join(r_term(term, names) for term in terms.split(" + "))


def r_model_comparison(code: ModelCode, names: dict[str, str]) -> list[str]:
    """Section 6d: the model comparison table, each row refitted as the engine refits it."""
    comparison = code.comparison
    if comparison is None:
        return []
    res = code.res
    lines = [
        "## 6d. The model and its neighbours ---------------------------------------------",
        "# Moderator changes are refitted by ML (REML likelihoods of models with different",
        "# moderators are not comparable), heterogeneity changes by REML; each neighbour's",
        "# likelihood-ratio test (anova) is against the analysed model fitted the same way.",
        'res_ml <- if (res$method == "ML") res else update(res, method = "ML")',
        'res_reml <- if (res$method == "REML") res else update(res, method = "REML")',
        "compared <- list()",
    ]
    for _, row in comparison.table.iterrows():
        label = row["model"]
        if row["comparison"] == FIXED:
            if label == "analysed model":
                fitted, reference = "res_ml", "NULL"
            else:
                fitted = f'update(res, mods = {_mods(row["terms"], names)}, method = "ML")'
                reference = "res_ml"
        elif label == "analysed model":
            fitted, reference = "res_reml", "NULL"
        elif "sigma2.study = 0" in label:
            fitted, reference = "update(res_reml, sigma2 = c(0, NA))", "res_reml"
        elif "sigma2.es = 0" in label:
            fitted, reference = "update(res_reml, sigma2 = c(NA, 0))", "res_reml"
        else:  # the location-scale neighbour: tau2 = exp(a0 + a1 ptr) against one tau2
            ptr = names.get(ptr_moderator(res), ptr_moderator(res))
            mods = _mods(row["terms"], names)
            fitted = f'location_scale({mods}, ~ {ptr}, "REML")'
            reference = f'location_scale({mods}, ~ 1, "REML")'
            lines += location_scale_helper(code.frame)
        lines.append(
            f"compared[[{len([x for x in lines if x.startswith('compared[[')]) + 1}]] <- "
            f"list(fit = {fitted}, reference = {reference})  # {r_string(label)}"
        )
    lines += [
        "compare_row <- function(i, what) {",
        "  f <- compared[[i]]$fit",
        "  r <- compared[[i]]$reference",
        '  if (what != "logLik") return(num_row(estimate = fitstats(f)[paste0(what, ":"), 1]))',
        "  if (is.null(r)) return(num_row(estimate = as.numeric(logLik(f))))",
        "  test <- anova(r, f)",
        "  num_row(estimate = as.numeric(logLik(f)), statistic = test$LRT,",
        "          df = abs(test$parms.f - test$parms.r), pval = test$pval)",
        "}",
    ]
    return lines


def comparison_expressions(code: ModelCode) -> list[str]:
    """The R expression of each model-comparison row, in the order of ``comparison_rows``."""
    if code.comparison is None:
        return []
    out = []
    for i in range(1, len(code.comparison.table) + 1):
        out.append(f'compare_row({i}, "logLik")')
        out += [f'compare_row({i}, "{name}")' for name, _ in FIT_STATISTICS]
    return out


def location_scale_helper(frame: str) -> list[str]:
    return [
        "# The location-scale model, with the first of these optimiser settings that converges.",
        "location_scale <- function(mods, scale, method) {",
        "  controls <- list(",
        '    list(optimizer = "nlminb", rel.tol = 1e-13, eval.max = 10000, iter.max = 10000),',
        '    list(optimizer = "nlminb", rel.tol = 1e-11, eval.max = 10000, iter.max = 10000),',
        '    list(optimizer = "nlminb"),',
        '    list(optimizer = "optim", optmethod = "BFGS", reltol = 1e-15, maxit = 10000))',
        "  for (ctl in controls) {",
        f"    fit <- tryCatch(rma(yi, vi, mods = mods, scale = scale, data = {frame},",
        "                        method = method, control = ctl), error = function(e) e)",
        '    if (!inherits(fit, "error")) return(fit)',
        "  }",
        "  stop(conditionMessage(fit))",
        "}",
    ]


def r_heterogeneity(code: ModelCode, names: dict[str, str]) -> list[str]:
    """Section 6e: the location-scale refit (scale = ~ PTR) and its test against one tau2."""
    ls = code.heterogeneity
    if ls is None:
        return []
    mods = r_formula(code, names) or "~ 1"
    scale = " + ".join(r_term(m, names) for m in ls.scale_design.moderators)
    method = r_string(ls.method)
    return [
        "## 6e. Does the heterogeneity depend on PTR? ------------------------------------",
        "# The location-scale model: log tau2 = a0 + a1 PTR (Viechtbauer & Lopez-Lopez, 2022),",
        "# tested against one tau2 for all studies.",
        *location_scale_helper(code.frame),
        f"ls_fit <- location_scale({mods}, ~ {scale}, {method})",
        f"ls_test <- anova(ls_fit, location_scale({mods}, ~ 1, {method}))",
        "print(ls_fit)",
        "scale_row <- function(what, j = 1) switch(what,",
        "  coef = num_row(estimate = ls_fit$alpha[j], se = ls_fit$se.alpha[j],",
        "                 statistic = ls_fit$zval.alpha[j], pval = ls_fit$pval.alpha[j],",
        "                 ci_lb = ls_fit$ci.lb.alpha[j], ci_ub = ls_fit$ci.ub.alpha[j]),",
        "  lrt = num_row(statistic = ls_test$LRT, df = abs(ls_test$parms.f - ls_test$parms.r),",
        "                pval = ls_test$pval),",
        "  loglik = num_row(estimate = as.numeric(logLik(ls_fit))))",
    ]


def scale_expression(name: str, index: int) -> str:
    """The R expression of one location-scale row (``index``: the scale coefficient's)."""
    if name.startswith("scale "):
        return f'scale_row("coef", {index})'
    if name.startswith("LRT"):
        return 'scale_row("lrt")'
    return 'scale_row("loglik")'
