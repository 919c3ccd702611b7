# metafor's selmodel(type = "stepfun") on cases given as JSON, for the live comparison in
# tests/unit/test_selection_live.py.
#
# Usage: Rscript scripts/selection_reference.R cases.json out.json
# cases.json: a list of {yi, vi, x (or null), steps}; out.json: one result per case
# (beta, se, tau2, se_tau2, delta, se_delta, ci_lb_delta, ci_ub_delta, LRT, loglik) or
# {error}. The fits use the tight optim controls of scripts/make_selection_fixtures.R.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})
args <- commandArgs(trailingOnly = TRUE)
cases <- fromJSON(args[1], simplifyVector = TRUE, simplifyDataFrame = FALSE)
out <- lapply(cases, function(case) {
  d <- data.frame(yi = case$yi, vi = case$vi)
  fit <- if (is.null(case$x)) rma(yi, vi, data = d, method = "REML") else {
    d$x <- case$x
    rma(yi, vi, mods = ~ x, data = d, method = "REML")
  }
  npar <- fit$p + 1 + length(unique(c(case$steps, 1)))
  sel <- tryCatch(
    suppressWarnings(selmodel(fit, type = "stepfun", steps = case$steps,
                              control = list(reltol = 1e-15, maxit = 10000,
                                             ndeps = rep(1e-6, npar)))),
    error = function(e) e)
  if (inherits(sel, "error")) return(list(error = conditionMessage(sel)))
  list(beta = as.numeric(sel$beta), se = as.numeric(sel$se), tau2 = sel$tau2,
       se_tau2 = sel$se.tau2, delta = sel$delta, se_delta = sel$se.delta,
       ci_lb_delta = sel$ci.lb.delta, ci_ub_delta = sel$ci.ub.delta, LRT = sel$LRT,
       loglik = sel$ll)
})
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null"), args[2])
