# Write the interaction and marginal-means reference fixtures to
# tests/fixtures/interactions/<case>.json.
#
# Usage (from any directory): Rscript scripts/make_interaction_fixtures.R
#
# Each case fits metafor's `mods = ~ a * b` (two-level rma.uni, three-level
# rma.mv ~ 1 | study/es, or the CHE working model with vcalc) and records the
# coefficient table, its covariance, the Wald test of every model term
# (anova(fit, btt = ...)) and, for each categorical moderator, the marginal
# means: predict(fit, newmods = ...) at the reference-grid average described
# below, and clubSandwich's CR2 linear_contrast of the same rows.
# See tests/fixtures/interactions/README.md.

script_dir <- local({
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(file_arg) == 0) stop("run this script with Rscript")
  dirname(normalizePath(sub("^--file=", "", file_arg[1])))
})
source(file.path(script_dir, "metafor_reference_lib.R"))
suppressPackageStartupMessages({
  library(metafor)
  library(metadat)
  library(clubSandwich)
  library(jsonlite)
})

out_dir <- file.path(dirname(script_dir), "tests", "fixtures", "interactions")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)
unlink(list.files(out_dir, pattern = "\\.json$", full.names = TRUE))
RNGkind("Mersenne-Twister", "Inversion", "Rejection")

within_study_id <- function(study) {
  as.character(stats::ave(seq_along(study), study, FUN = seq_along))
}

# -- datasets -------------------------------------------------------------------
# Simulated alliance-outcome data (seed 2201): 40 studies with 1-4 effect sizes,
# study-level log PTR and design, effect-size-level alliance rater; PTR matters
# more for observer-rated alliance (the interaction the issue asks about).
simulate_alliance <- function(seed = 2201, studies = 40) {
  set.seed(seed)
  sizes <- sample(1:4, studies, replace = TRUE)
  study <- rep(seq_len(studies), sizes)
  k <- length(study)
  n <- sample(25:250, studies, replace = TRUE)[study]
  log_ptr <- round(rnorm(studies, 1.5, 0.8), 3)[study]
  design <- sample(c("RCT", "other"), studies, replace = TRUE)[study]
  rater <- sample(c("observer", "patient", "therapist"), k, replace = TRUE)
  setting <- sample(c("clinic", "lab", "online"), studies, replace = TRUE)[study]
  slope <- ifelse(rater == "observer", -0.08, -0.02)
  vi <- 1 / (n - 3)
  yi <- 0.3 + slope * log_ptr + 0.05 * (design == "RCT") +
    rnorm(studies, 0, 0.12)[study] + rnorm(k, 0, 0.06) + rnorm(k, 0, sqrt(vi))
  data.frame(yi = yi, vi = vi, study = paste0("s", study), es = within_study_id(study),
             log_ptr = log_ptr, alliance_rater = rater, design = design, setting = setting,
             stringsAsFactors = FALSE)
}
alliance <- simulate_alliance()

assink <- with(dat.assink2016, data.frame(
  yi = yi, vi = vi, study = as.character(study), es = as.character(esid),
  year = year, deltype = as.character(deltype),
  pubstatus = ifelse(pubstatus == 1, "published", "unpublished"),
  stringsAsFactors = FALSE))

# -- fitting --------------------------------------------------------------------
as_factors <- function(d, moderators) {
  for (m in moderators) {
    if (is.character(d[[m]])) d[[m]] <- factor(d[[m]], levels = level_order(d[[m]]))
  }
  d
}

fit_case <- function(d, spec) {
  form <- stats::as.formula(spec$formula)
  level <- 95
  if (spec$model == "two-level") {
    for (ctl in UNI_CONTROLS) {
      fit <- tryCatch(rma.uni(yi, vi, mods = form, data = d, method = spec$method,
                              test = spec$test, level = level, control = ctl),
                      error = function(e) e)
      if (!inherits(fit, "error")) return(fit)
    }
    stop("rma.uni failed: ", conditionMessage(fit))
  }
  V <- if (spec$model == "che") vcalc(vi, cluster = study, obs = es, rho = spec$rho, data = d)
       else d$vi
  for (nm in names(MV_CONTROLS)) {
    fit <- tryCatch(rma.mv(yi, V, mods = form, random = ~ 1 | study/es, data = d,
                           method = spec$method, test = spec$test, level = level,
                           control = MV_CONTROLS[[nm]]),
                    error = function(e) e)
    if (!inherits(fit, "error")) return(fit)
  }
  stop("rma.mv failed: ", conditionMessage(fit))
}

# The coefficient positions of each term of the formula (R's "assign").
term_positions <- function(d, form) {
  mm <- stats::model.matrix(form, d)
  labels <- attr(stats::terms(form), "term.labels")
  assign <- attr(mm, "assign")
  out <- lapply(seq_along(labels), function(i) which(assign == i))
  names(out) <- labels
  out
}

# Marginal means of a categorical moderator `focal`, computed here directly
# from the rule emmeans documents for weights = "proportional": the reference
# grid crosses every level of each factor with each numeric moderator at its
# mean over the fitted rows; the prediction rows of the grid are averaged over
# the other factors with weights proportional to the frequencies, in the
# fitted data, of their level combinations.
marginal_rows <- function(d, form, factors, focal) {
  others <- setdiff(factors, focal)
  vars <- all.vars(form)
  grid_base <- lapply(vars, function(v) {
    if (is.factor(d[[v]])) levels(d[[v]]) else mean(d[[v]])
  })
  names(grid_base) <- vars
  rows <- list()
  weights_used <- list()
  for (lev in levels(d[[focal]])) {
    g <- grid_base
    g[[focal]] <- lev
    grid <- expand.grid(g, stringsAsFactors = FALSE)
    for (v in factors) grid[[v]] <- factor(grid[[v]], levels = levels(d[[v]]))
    mm <- stats::model.matrix(stats::delete.response(stats::terms(form)), grid)
    if (length(others)) {
      combo_data <- do.call(paste, c(lapply(others, function(v) as.character(d[[v]])), sep = "\r"))
      combo_grid <- do.call(paste, c(lapply(others, function(v) as.character(grid[[v]])), sep = "\r"))
      counts <- table(factor(combo_data, levels = unique(combo_grid)))
      w <- as.numeric(counts[combo_grid]) / length(combo_data)
    } else {
      w <- 1
    }
    rows[[lev]] <- colSums(mm * w)
    weights_used[[lev]] <- w
  }
  do.call(rbind, rows)
}

case_result <- function(d, spec) {
  d <- as_factors(d, spec$moderators)
  form <- stats::as.formula(spec$formula)
  fit <- fit_case(d, spec)
  names_b <- rownames(fit$beta)
  positions <- term_positions(d, form)
  wald <- lapply(names(positions), function(term) {
    a <- anova(fit, btt = positions[[term]])
    list(term = term, coefficients = I(names_b[positions[[term]]]),
         statistic = a$QM, df = a$QMdf[1], df2 = if (is.na(a$QMdf[2])) NULL else a$QMdf[2],
         pval = a$QMp)
  })
  factors <- spec$moderators[vapply(spec$moderators, function(m) is.factor(d[[m]]), logical(1))]
  means <- lapply(factors, function(focal) {
    L <- marginal_rows(d, form, factors, focal)
    pr <- predict(fit, newmods = L[, -1, drop = FALSE])
    vc <- vcovCR(fit, cluster = d$study, type = "CR2")
    lc <- linear_contrast(fit, vcov = vc, contrasts = L, test = "Satterthwaite", level = 0.95)
    list(focal = focal, levels = rownames(L), rows = unname(L),
         model = list(pred = as.numeric(pr$pred), se = as.numeric(pr$se),
                      ci_lb = as.numeric(pr$ci.lb), ci_ub = as.numeric(pr$ci.ub),
                      pi_lb = as.numeric(pr$pi.lb), pi_ub = as.numeric(pr$pi.ub)),
         cr2 = list(est = lc$Est, se = lc$SE, df = lc$df, ci_lb = lc$CI_L, ci_ub = lc$CI_U))
  })
  het <- if (spec$model == "two-level") list(tau2 = fit$tau2) else list(sigma2 = fit$sigma2)
  c(list(
    coefficients = list(names = names_b, estimate = as.numeric(fit$beta),
                        se = fit$se, statistic = fit$zval, pval = fit$pval,
                        ci_lb = fit$ci.lb, ci_ub = fit$ci.ub),
    vb = unname(fit$vb),
    QM = fit$QM, QM_df = fit$QMdf[1], QM_pval = fit$QMp,
    loglik = as.numeric(logLik(fit)),
    wald = wald, marginal_means = means,
    metafor_version = as.character(packageVersion("metafor")),
    clubSandwich_version = as.character(packageVersion("clubSandwich"))), het)
}

n_cases <- 0
write_case <- function(name, description, d, spec) {
  result <- case_result(d, spec)
  columns <- c("yi", "vi", "study", "es", spec$moderators)
  case <- list(name = name, description = description, spec = spec,
               data = as.list(d[, columns]), result = result)
  write_json(case, file.path(out_dir, paste0(name, ".json")), digits = NA,
             auto_unbox = TRUE, pretty = TRUE, null = "null")
  n_cases <<- n_cases + 1
  cat(sprintf("%-36s %s\n", name, description))
}

spec <- function(model, method, test, moderators, formula, rho = NULL) {
  out <- list(model = model, method = method, test = test, moderators = moderators,
              terms = attr(stats::terms(stats::as.formula(formula)), "term.labels"),
              formula = formula)
  if (!is.null(rho)) out$rho <- rho
  out
}

write_case("alliance_2l_reml_z_ptr_x_rater", "two-level REML z, log_ptr * alliance_rater",
           alliance, spec("two-level", "REML", "z", c("log_ptr", "alliance_rater"),
                          "~ log_ptr * alliance_rater"))
write_case("alliance_2l_reml_knha_ptr_x_rater_design",
           "two-level REML Knapp-Hartung, log_ptr * alliance_rater + design",
           alliance, spec("two-level", "REML", "knha", c("log_ptr", "alliance_rater", "design"),
                          "~ log_ptr * alliance_rater + design"))
write_case("alliance_3l_reml_z_ptr_x_rater", "three-level REML z, log_ptr * alliance_rater",
           alliance, spec("three-level", "REML", "z", c("log_ptr", "alliance_rater"),
                          "~ log_ptr * alliance_rater"))
write_case("alliance_3l_ml_t_rater_x_design",
           "three-level ML t, alliance_rater * design (categorical x categorical) + log_ptr",
           alliance, spec("three-level", "ML", "t", c("alliance_rater", "design", "log_ptr"),
                          "~ alliance_rater * design + log_ptr"))
write_case("alliance_2l_ml_z_rater_x_setting",
           "two-level ML z, alliance_rater * setting (3 x 3 levels: column order of model.matrix)",
           alliance, spec("two-level", "ML", "z", c("alliance_rater", "setting"),
                          "~ alliance_rater * setting"))
write_case("alliance_che06_reml_z_ptr_x_rater_design",
           "CHE rho = 0.6 REML z, log_ptr * alliance_rater + design",
           alliance, spec("che", "REML", "z", c("log_ptr", "alliance_rater", "design"),
                          "~ log_ptr * alliance_rater + design", rho = 0.6))
write_case("assink_3l_reml_t_year_x_pubstatus",
           "three-level REML t, year * pubstatus + deltype (metadat dat.assink2016)",
           assink, spec("three-level", "REML", "t", c("year", "pubstatus", "deltype"),
                        "~ year * pubstatus + deltype"))
write_case("assink_che08_reml_z_pubstatus_x_year",
           "CHE rho = 0.8 REML z, pubstatus * year (metadat dat.assink2016)",
           assink, spec("che", "REML", "z", c("pubstatus", "year"),
                        "~ pubstatus * year", rho = 0.8))
cat(n_cases, "cases written to", out_dir, "\n")
