# Write the metafor reference fixtures for step-function selection models (selmodel) and the
# fail-safe N (fsn) to tests/fixtures/selection/<case>.json.
#
# Usage (from any directory): Rscript scripts/make_selection_fixtures.R [case-prefix ...]
#
# With prefixes, only the cases whose names start with one of them are rewritten. Each file
# holds the exact data analysed (yi, vi and moderators), the settings of the input model and
# the selection model, and metafor's results; see tests/fixtures/selection/README.md.
#
# selmodel maximises its likelihood with optim(BFGS) and finite-difference gradients; its
# defaults (relative tolerance sqrt(machine epsilon), difference steps 1e-3) leave flat
# likelihoods up to 1e-3 (relative) from their maximum, so the fixtures are fitted with a
# much tighter tolerance and steps of 1e-6 (sel_control). The Hessian (hence every standard
# error) is metafor's own numDeriv one.

script_dir <- local({
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(file_arg) == 0) stop("run this script with Rscript")
  dirname(normalizePath(sub("^--file=", "", file_arg[1])))
})
source(file.path(script_dir, "metafor_reference_lib.R"))
suppressPackageStartupMessages(library(metadat))

repo_dir <- dirname(script_dir)
out_dir <- file.path(repo_dir, "tests", "fixtures", "selection")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)
only <- commandArgs(trailingOnly = TRUE)

# optim's ndeps needs one step per optimised value: p coefficients, tau2 and every delta
# (the first, fixed at 1, included).
sel_control <- function(res, steps) {
  npar <- res$p + 1 + length(unique(c(steps, 1)))
  list(reltol = 1e-15, maxit = 10000, ndeps = rep(1e-6, npar))
}
UNI_CONTROL <- UNI_CONTROLS[[1]]

num <- function(x) as.numeric(unname(x))

wanted <- function(name) length(only) == 0 || any(startsWith(name, only))

data_columns <- function(d) {
  out <- lapply(names(d), function(cn) {
    v <- d[[cn]]
    if (is.factor(v)) as.character(v) else v
  })
  names(out) <- names(d)
  out
}

# The input model as the engine fits it: numeric moderators as they are, categorical ones
# with the named reference level first.
input_fit <- function(d, method, moderators, reference) {
  for (nm in names(reference)) {
    d[[nm]] <- relevel(factor(d[[nm]]), ref = reference[[nm]])
  }
  if (length(moderators) == 0) {
    return(rma(yi, vi, data = d, method = method, control = UNI_CONTROL))
  }
  form <- as.formula(paste("~", paste(moderators, collapse = " + ")))
  rma(yi, vi, mods = form, data = d, method = method, control = UNI_CONTROL)
}

selection_result <- function(sel) {
  list(
    coefficients = list(
      term = rownames(sel$beta), estimate = num(sel$beta), se = num(sel$se),
      zval = num(sel$zval), pval = num(sel$pval), ci_lb = num(sel$ci.lb),
      ci_ub = num(sel$ci.ub)
    ),
    tau2 = sc(sel$tau2), se_tau2 = sc(sel$se.tau2),
    ci_lb_tau2 = sc(sel$ci.lb.tau2), ci_ub_tau2 = sc(sel$ci.ub.tau2),
    LRT_tau2 = sc(sel$LRT.tau2), LRT_tau2_pval = sc(sel$LRTp.tau2),
    delta = list(
      estimate = num(sel$delta), se = num(sel$se.delta), zval = num(sel$zval.delta),
      pval = num(sel$pval.delta), ci_lb = num(sel$ci.lb.delta),
      ci_ub = num(sel$ci.ub.delta), k = num(sel$ptable$k)
    ),
    steps = num(sel$steps), pvals = num(sel$pvals), pgrp = num(sel$pgrp),
    LRT = sc(sel$LRT), LRT_df = sc(sel$LRTdf), LRT_pval = sc(sel$LRTp),
    loglik = sc(sel$ll), loglik0 = sc(sel$ll0),
    QM = sc(sel$QM), QM_pval = sc(sel$QMp), QM_df = sc(sel$m),
    aic = sc(sel$fit.stats["AIC", "ML"]), bic = sc(sel$fit.stats["BIC", "ML"]),
    parms = sc(sel$parms)
  )
}

fsn_result <- function(d) {
  out <- list()
  for (type in c("Rosenthal", "Orwin", "Rosenberg")) {
    f <- fsn(yi, vi, data = d, type = type)
    out[[type]] <- list(
      fsnum = sc(f$fsnum), alpha = sc(f$alpha), pval = sc(f$pval), meanes = sc(f$meanes),
      target = sc(f$target)
    )
  }
  # Orwin's with a given target (0.05; metafor turns its sign to that of the mean)
  f <- fsn(yi, vi, data = d, type = "Orwin", target = 0.05)
  out[["Orwin_target"]] <- list(fsnum = sc(f$fsnum), meanes = sc(f$meanes),
                                target = sc(f$target))
  # Rosenberg's at alpha = .10
  f <- fsn(yi, vi, data = d, type = "Rosenberg", alpha = 0.1)
  out[["Rosenberg_alpha10"]] <- list(fsnum = sc(f$fsnum), alpha = sc(f$alpha),
                                     pval = sc(f$pval), meanes = sc(f$meanes))
  out
}

# One case: a data set, an input model and one or more cut sets; each cut set's selmodel
# result (or the error metafor stops with) is recorded.
write_case <- function(name, d, method = "REML", moderators = character(0),
                       reference = list(), step_sets, source, fsn = FALSE) {
  if (!wanted(name)) return(invisible(NULL))
  cat("case", name, "\n")
  keep <- c("yi", "vi", moderators)
  d <- d[stats::complete.cases(d[, keep, drop = FALSE]), , drop = FALSE]
  res <- input_fit(d, method, moderators, reference)
  fits <- lapply(step_sets, function(steps) {
    warns <- character(0)
    sel <- withCallingHandlers(
      tryCatch(selmodel(res, type = "stepfun", steps = steps,
                        control = sel_control(res, steps)),
               error = function(e) e),
      warning = function(w) {
        warns <<- c(warns, conditionMessage(w))
        invokeRestart("muffleWarning")
      })
    if (inherits(sel, "error")) {
      return(list(steps = num(steps), error = sc(conditionMessage(sel))))
    }
    c(list(steps_requested = num(steps), error = NULL, warnings = as.list(warns)),
      selection_result(sel))
  })
  case <- list(
    source = sc(source),
    settings = list(method = sc(method), moderators = moderators,
                    reference = lapply(reference, sc), alternative = sc("greater"),
                    type = sc("stepfun")),
    data = data_columns(d[, keep, drop = FALSE]),
    input = list(loglik_ml = sc(if (method %in% c("ML", "EE")) logLik(res) else NA)),
    selmodel = fits,
    fsn = if (fsn) fsn_result(d) else NULL,
    metafor_version = sc(as.character(packageVersion("metafor")))
  )
  write_json_file(case, file.path(out_dir, paste0(name, ".json")))
}

# ---------------------------------------------------------------------------
# Data

molloy <- escalc(measure = "ZCOR", ri = ri, ni = ni, data = dat.molloy2014)
molloy <- data.frame(yi = num(molloy$yi), vi = num(molloy$vi), meanage = molloy$meanage,
                     design = as.character(molloy$design), stringsAsFactors = FALSE)

mcd <- escalc(measure = "ZCOR", ri = ri, ni = ni, data = dat.mcdaniel1994)
mcd <- data.frame(yi = num(mcd$yi), vi = num(mcd$vi), type = as.character(mcd$type),
                  struct = as.character(mcd$struct), stringsAsFactors = FALSE)

bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
bcg <- data.frame(yi = num(bcg$yi), vi = num(bcg$vi), ablat = bcg$ablat, year = bcg$year)

# dat.hackshaw1998 comes with its log odds ratios and their variances
hack <- data.frame(yi = num(dat.hackshaw1998$yi), vi = num(dat.hackshaw1998$vi))

# Seeded simulation with selection: true mu = 0.2 + 0.1 x, tau2 = 0.02, Fisher z from
# n in 20..200; a significant result (one-sided p <= .025) is always kept, others with
# probability 0.4 (a 3PSM with delta = 0.4).
simulate_selected <- function(seed, k, tau2, with_moderators) {
  set.seed(seed)
  rows <- list()
  while (length(rows) < k) {
    n <- sample(20:200, 1)
    x <- rnorm(1)
    g <- sample(c("a", "b", "c"), 1)
    mu <- 0.2 + if (with_moderators) 0.1 * x + c(a = 0, b = 0.05, c = -0.05)[[g]] else 0
    vi <- 1 / (n - 3)
    yi <- rnorm(1, mu, sqrt(tau2 + vi))
    p <- pnorm(yi / sqrt(vi), lower.tail = FALSE)
    if (p <= 0.025 || runif(1) < 0.4) rows[[length(rows) + 1]] <- data.frame(yi = yi, vi = vi, x = x, g = g)
  }
  do.call(rbind, rows)
}
sim1 <- simulate_selected(20261206, 120, 0.02, TRUE)
# Seeded simulation without heterogeneity or selection (k = 40, mu = 0.2): the selection
# model's tau2 runs to its boundary at 0 (metafor's log(tau2) parameter stops near 1e-9).
sim0 <- local({
  set.seed(7)
  n <- sample(20:200, 40, TRUE)
  vi <- 1 / (n - 3)
  data.frame(yi = rnorm(40, 0.2, sqrt(vi)), vi = vi)
})

alliance <- read.csv(file.path(repo_dir, "data", "alliance_simulated.csv"))
alliance <- escalc(measure = "ZCOR", ri = r, ni = n, data = alliance)
alliance <- data.frame(yi = num(alliance$yi), vi = num(alliance$vi),
                       log_PTR = log(alliance$ptr), study = alliance$study)

# ---------------------------------------------------------------------------
# Cases

write_case("molloy2014_reml", molloy, "REML",
           step_sets = list(c(0.025), c(0.025, 0.5), c(0.05, 0.5)),
           source = "dat.molloy2014, ZCOR", fsn = TRUE)
write_case("molloy2014_ml_mods", molloy, "ML", c("meanage", "design"),
           list(design = "prospective"),
           step_sets = list(c(0.025), c(0.025, 0.5)),
           source = "dat.molloy2014, ZCOR, meanage + design")
# No one-sided p-value of molloy2014 falls in (.05, .10]: metafor stops.
write_case("molloy2014_empty_interval", molloy, "REML",
           step_sets = list(c(0.025, 0.05, 0.10, 0.5)),
           source = "dat.molloy2014, ZCOR; an interval without p-values")
write_case("mcdaniel1994_reml", mcd, "REML",
           step_sets = list(c(0.025), c(0.025, 0.5), c(0.05, 0.10, 0.5), c(0.01, 0.025, 0.05, 0.10, 0.25, 0.5)),
           source = "dat.mcdaniel1994, ZCOR", fsn = TRUE)
write_case("mcdaniel1994_reml_mods", mcd, "REML", c("type", "struct"),
           list(type = "j", struct = "s"),
           step_sets = list(c(0.025), c(0.025, 0.5)),
           source = "dat.mcdaniel1994, ZCOR, type + struct")
write_case("bcg_reml_ablat", bcg, "REML", c("ablat"),
           step_sets = list(c(0.025, 0.5)),
           source = "dat.bcg, log risk ratios, ablat (alternative greater)")
write_case("hackshaw1998_ee", hack, "EE",
           step_sets = list(c(0.025), c(0.025, 0.5)),
           source = "dat.hackshaw1998, log odds ratios, equal-effects (tau2 fixed at 0)",
           fsn = TRUE)
write_case("hackshaw1998_reml", hack, "REML",
           step_sets = list(c(0.025), c(0.05, 0.5)),
           source = "dat.hackshaw1998, log odds ratios", fsn = TRUE)
write_case("sim_selected_mods", sim1, "REML", c("x", "g"), list(g = "a"),
           step_sets = list(c(0.025), c(0.025, 0.5), c(0.05, 0.10, 0.5)),
           source = "seeded simulation (20261206), 3PSM selection delta = 0.4, mu = 0.2 + 0.1 x + g", fsn = TRUE)
write_case("sim_selected_tau0", sim0, "REML",
           step_sets = list(c(0.025), c(0.025, 0.5)),
           source = "seeded simulation (set.seed(7)), tau2 = 0, no selection", fsn = TRUE)
# Effect sizes piled up just below the .025 cut (p between .029 and .067) and one far above
# it: significant results are much rarer than the model expects, and the weight of the
# non-significant interval runs to its upper bound 100 (metafor warns).
write_case("pileup_bound", data.frame(yi = c(0.3, seq(0.15, 0.19, length.out = 99)),
                                      vi = 0.01),
           "REML", step_sets = list(c(0.025)),
           source = "constructed: 99 effect sizes just below the cut, one above")
write_case("alliance_reml", alliance, "REML",
           step_sets = list(c(0.025), c(0.025, 0.5)),
           source = "data/alliance_simulated.csv, ZCOR, all 811 effect sizes as independent",
           fsn = TRUE)
write_case("alliance_reml_ptr", alliance, "REML", c("log_PTR"),
           step_sets = list(c(0.025)),
           source = "data/alliance_simulated.csv, ZCOR, log_PTR, effect sizes as independent")
