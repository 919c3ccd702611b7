# Reference small-study tests on the dependent-effects (CHE) model, used to check
# alliance_core.analyses.small_study (egger_test / pet_peese with a CHE fit and CR2 inference).
#
# bias_dependent_reference(data, spec) fits, for each predictor ("sei" = sqrt(vi): Egger's test
# and PET; "vi": PEESE),
#
#   V   <- vcalc(vi, cluster = study, obs = es, rho = rho)
#   fit <- rma.mv(yi ~ <predictor>, V, random = ~ 1 | study/es, method, test)
#
# and returns the model-based coefficient table and clubSandwich's CR2 inference clustered by
# study (vcovCR(type = "CR2"), coef_test(test = "Satterthwaite"), conf_int). The JSON schema is
# described in tests/fixtures/bias_dependent/README.md.
#
# spec fields: rho (within-study sampling correlation), method ("REML" or "ML"), test ("z" or
# "t"), level (default 0.95).

bias_lib_dir <- local({
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  dirname(normalizePath(sub("^--file=", "", file_arg[1])))
})
source(file.path(bias_lib_dir, "metafor_reference_lib.R"))
suppressPackageStartupMessages(library(clubSandwich))

bias_predictor_fit <- function(d, spec, predictor) {
  d$sei <- sqrt(d$vi)
  form <- if (predictor == "sei") ~ sei else ~ vi
  V <- vcalc(vi, cluster = study, obs = es, rho = spec$rho, data = d)
  level <- 100 * (spec$level %||% 0.95)
  sparse <- nrow(d) > 300  # dense 811 x 811 matrices make each fit take a minute
  for (nm in names(MV_CONTROLS)) {
    fit <- tryCatch(
      rma.mv(yi, V, mods = form, random = ~ 1 | study/es, data = d, method = spec$method,
             test = spec$test, level = level, sparse = sparse, control = MV_CONTROLS[[nm]]),
      error = function(e) e)
    if (!inherits(fit, "error")) return(fit)
  }
  stop("rma.mv failed: ", conditionMessage(fit))
}

bias_dependent_reference <- function(data, spec) {
  d <- as.data.frame(data, stringsAsFactors = FALSE, check.names = FALSE)
  d$yi <- as.numeric(d$yi)
  d$vi <- as.numeric(d$vi)
  d$study <- as.character(d$study)
  d$es <- as.character(d$es)
  level <- spec$level %||% 0.95
  out <- list()
  for (predictor in c("sei", "vi")) {
    fit <- bias_predictor_fit(d, spec, predictor)
    vc <- clubSandwich::vcovCR(fit, cluster = d$study, type = "CR2")
    ct <- clubSandwich::coef_test(fit, vcov = vc, test = "Satterthwaite")
    ci <- clubSandwich::conf_int(fit, vcov = vc, level = level, test = "Satterthwaite")
    out[[predictor]] <- list(
      terms = rownames(fit$beta),
      sigma2 = as.numeric(fit$sigma2),
      model = list(estimate = as.numeric(fit$beta), se = as.numeric(fit$se),
                   statistic = as.numeric(fit$zval), pval = as.numeric(fit$pval),
                   ci_lb = as.numeric(fit$ci.lb), ci_ub = as.numeric(fit$ci.ub),
                   ddf = sc(if (spec$test == "t") fit$ddf[[1]] else NULL)),
      cr2 = list(se = as.numeric(ct$SE), statistic = as.numeric(ct$tstat),
                 df = as.numeric(ct$df_Satt), pval = as.numeric(ct$p_Satt),
                 ci_lb = as.numeric(ci$CI_L), ci_ub = as.numeric(ci$CI_U)))
  }
  out$n_studies <- sc(length(unique(d$study)))
  out$versions <- list(metafor = sc(as.character(packageVersion("metafor"))),
                       clubSandwich = sc(as.character(packageVersion("clubSandwich"))))
  out
}
