"""The metafor script's moderator part: the marginal means of each categorical moderator.

The reference grid and its weights follow the rule emmeans documents for
``weights = "proportional"`` (numeric moderators at their means over the fitted rows; the
prediction rows averaged over the other factors' level combinations in proportion to how often
each occurs), built with R's own ``model.matrix`` of the model's formula (interactions
included); the means are ``predict(res, newmods = L[, -1])`` and, under CR2,
``predict(robust(res, cluster, clubSandwich = TRUE), newmods = L[, -1])``.
"""

from __future__ import annotations

from alliance_core.errors import AnalysisError
from alliance_core.handover.reproduce.common import ModelCode, r_formula, r_string
from alliance_core.handover.results_moderators import (
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
