# Write the location-scale reference fixtures to tests/fixtures/location_scale/<case>.json.
#
# Usage (from any directory): Rscript scripts/make_location_scale_fixtures.R
#
# Each case fits metafor's rma(yi, vi, mods = ~ ..., scale = ~ ..., method = ML/REML) (log
# link) and the same model without the scale part, and records the location and scale
# coefficients, the covariance of the scale coefficients, tau2 of every row, the Wald tests
# QM and QS, fit statistics, the likelihood-ratio test of the scale part (anova) and
# predictions of tau2 at chosen values (predict(fit, newscale, transf = exp)).
# See tests/fixtures/location_scale/README.md.

script_dir <- local({
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(file_arg) == 0) stop("run this script with Rscript")
  dirname(normalizePath(sub("^--file=", "", file_arg[1])))
})
suppressPackageStartupMessages({
  library(metafor)
  library(metadat)
  library(jsonlite)
})

out_dir <- file.path(dirname(script_dir), "tests", "fixtures", "location_scale")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)
unlink(list.files(out_dir, pattern = "\\.json$", full.names = TRUE))
RNGkind("Mersenne-Twister", "Inversion", "Rejection")

# metafor's default optimiser (nlminb) stops at a relative change of 1e-10 in the
# log-likelihood; tighter settings put the scale coefficients within ~1e-8 of the maximum.
# Later entries are fallbacks for fits on which the first does not report convergence.
LS_CONTROLS <- list(
  list(optimizer = "nlminb", rel.tol = 1e-13, eval.max = 10000, iter.max = 10000),
  list(optimizer = "optim", optmethod = "BFGS", reltol = 1e-15, maxit = 10000),
  list(optimizer = "nlminb", rel.tol = 1e-11, eval.max = 10000, iter.max = 10000))

fit_ls <- function(d, mods, scl, method) {
  for (ctl in LS_CONTROLS) {
    fit <- tryCatch(rma(yi, vi, mods = mods, scale = scl, data = d, method = method,
                        control = ctl), error = function(e) e)
    if (!inherits(fit, "error")) return(fit)
  }
  stop("rma(scale = ) failed: ", conditionMessage(fit))
}
UNI_CONTROL <- list(threshold = 1e-12, maxiter = 10000)

# -- datasets -------------------------------------------------------------------
bangert <- with(dat.bangertdrowns2004, data.frame(
  yi = yi, vi = vi, ni100 = ni / 100, meta = ifelse(meta == 1, "yes", "no"),
  stringsAsFactors = FALSE))
bangert <- bangert[complete.cases(bangert), ]

# Simulated (seed 2202): 80 studies whose heterogeneity grows with log PTR, as therapist
# effects would predict: tau2_i = exp(-5 + 0.8 log_ptr_i).
simulate_heteroscedastic <- function(seed = 2202, studies = 80) {
  set.seed(seed)
  n <- sample(25:300, studies, replace = TRUE)
  log_ptr <- round(runif(studies, 0, log(60)), 4)
  design <- sample(c("RCT", "other"), studies, replace = TRUE)
  tau2 <- exp(-5 + 0.8 * log_ptr)
  vi <- 1 / (n - 3)
  yi <- 0.3 - 0.03 * log_ptr + rnorm(studies, 0, sqrt(tau2)) + rnorm(studies, 0, sqrt(vi))
  data.frame(yi = yi, vi = vi, study = paste0("s", seq_len(studies)), log_ptr = log_ptr,
             design = design, stringsAsFactors = FALSE)
}
hetero <- simulate_heteroscedastic()

# Simulated nested data (seed 2203), aggregated to one effect per study with compound
# symmetry rho = 0.6 (metafor aggregate.escalc), as the dashboard's aggregated model does.
simulate_nested <- function(seed = 2203, studies = 60) {
  set.seed(seed)
  sizes <- sample(1:4, studies, replace = TRUE)
  study <- rep(seq_len(studies), sizes)
  n <- sample(25:250, studies, replace = TRUE)[study]
  log_ptr <- round(runif(studies, 0, log(50)), 4)
  tau2 <- exp(-5.5 + 0.9 * log_ptr)
  vi <- 1 / (n - 3)
  yi <- 0.28 + rnorm(studies, 0, sqrt(tau2))[study] + rnorm(length(study), 0, 0.05) +
    rnorm(length(study), 0, sqrt(vi))
  escalc(measure = "ZCOR", yi = yi, vi = vi,
         data = data.frame(study = paste0("s", study), log_ptr = log_ptr[study]))
}
nested <- simulate_nested()
aggregated <- aggregate(nested, cluster = study, rho = 0.6)
aggregated <- data.frame(yi = as.numeric(aggregated$yi), vi = as.numeric(aggregated$vi),
                         study = aggregated$study, log_ptr = aggregated$log_ptr)

# -- fitting --------------------------------------------------------------------
as_factors <- function(d, columns) {
  for (m in columns) if (is.character(d[[m]])) d[[m]] <- factor(d[[m]], levels = sort(unique(d[[m]])))
  d
}

coef_block <- function(est, se, z, p, lb, ub, names) {
  list(names = names, estimate = as.numeric(est), se = as.numeric(se),
       statistic = as.numeric(z), pval = as.numeric(p), ci_lb = as.numeric(lb),
       ci_ub = as.numeric(ub))
}

n_cases <- 0
write_case <- function(name, description, d, spec) {
  d <- as_factors(d, c(spec$moderators, spec$scale))
  mods <- if (length(spec$moderators)) paste("~", paste(spec$moderators, collapse = " + ")) else "~ 1"
  scl <- paste("~", paste(spec$scale, collapse = " + "))
  fit <- fit_ls(d, as.formula(mods), as.formula(scl), spec$method)
  # The scale part's test: against scale = ~ 1 (one tau2), which metafor 3.8.1's anova
  # accepts (it refuses to compare a location-scale fit with an rma.uni fit); the ordinary
  # fit's log-likelihood is recorded too, as the same model.
  reduced_ls <- fit_ls(d, as.formula(mods), ~ 1, spec$method)
  reduced <- rma(yi, vi, mods = as.formula(mods), data = d, method = spec$method,
                 control = UNI_CONTROL)
  lrt <- anova(fit, reduced_ls)
  fs <- fitstats(fit)
  newscale <- spec$newscale
  pr <- predict(fit, newscale = newscale)
  pr_exp <- predict(fit, newscale = newscale, transf = exp)
  result <- list(
    coefficients = coef_block(fit$beta, fit$se, fit$zval, fit$pval, fit$ci.lb, fit$ci.ub,
                              rownames(fit$beta)),
    scale_coefficients = coef_block(fit$alpha, fit$se.alpha, fit$zval.alpha, fit$pval.alpha,
                                    fit$ci.lb.alpha, fit$ci.ub.alpha, rownames(fit$alpha)),
    va = unname(fit$va), vb = unname(fit$vb), tau2 = as.numeric(fit$tau2),
    QM = if (fit$p > 1) fit$QM else NULL, QM_pval = if (fit$p > 1) fit$QMp else NULL,
    QS = if (fit$q > 1) fit$QS else NULL, QS_pval = if (fit$q > 1) fit$QSp else NULL,
    loglik = as.numeric(fs[1]), aic = as.numeric(fs[3]), bic = as.numeric(fs[4]),
    aicc = as.numeric(fs[5]), reduced_loglik = as.numeric(logLik(reduced)),
    reduced_ls_loglik = as.numeric(logLik(reduced_ls)),
    LRT = lrt$LRT, LRT_df = lrt$parms.f - lrt$parms.r, LRT_pval = lrt$pval,
    predict = list(log_tau2 = as.numeric(pr$pred), se = as.numeric(pr$se),
                   tau2 = as.numeric(pr_exp$pred), ci_lb = as.numeric(pr_exp$ci.lb),
                   ci_ub = as.numeric(pr_exp$ci.ub)),
    metafor_version = as.character(packageVersion("metafor")))
  columns <- unique(c("yi", "vi", spec$moderators, spec$scale))
  case <- list(name = name, description = description, spec = spec,
               data = as.list(as.data.frame(lapply(d[, columns, drop = FALSE], function(x)
                 if (is.factor(x)) as.character(x) else x))),
               result = result)
  write_json(case, file.path(out_dir, paste0(name, ".json")), digits = NA,
             auto_unbox = TRUE, pretty = TRUE, null = "null")
  n_cases <<- n_cases + 1
  cat(sprintf("%-40s %s\n", name, description))
}

spec <- function(method, moderators, scale, newscale) {
  list(method = method, moderators = I(moderators), scale = I(scale), newscale = newscale)
}

write_case("bangert_reml_ni100", "dat.bangertdrowns2004, REML, mods ~ ni100, scale ~ ni100",
           bangert, spec("REML", "ni100", "ni100", c(0.2, 0.6, 1.5)))
write_case("bangert_ml_ni100_meta", "dat.bangertdrowns2004, ML, mods ~ ni100 + meta, scale ~ ni100",
           bangert, spec("ML", c("ni100", "meta"), "ni100", NULL))
write_case("hetero_reml_ptr", "simulated, REML, mods ~ log_ptr + design, scale ~ log_ptr",
           hetero, spec("REML", c("log_ptr", "design"), "log_ptr", log(c(1, 5, 20, 60))))
write_case("hetero_ml_ptr_design", "simulated, ML, mods ~ log_ptr, scale ~ log_ptr + design",
           hetero, spec("ML", "log_ptr", c("log_ptr", "design"), NULL))
write_case("hetero_reml_intercept_ptr", "simulated, REML, intercept only, scale ~ log_ptr",
           hetero, spec("REML", character(0), "log_ptr", log(c(1, 10, 50))))
write_case("aggregated_reml_ptr",
           "simulated nested data aggregated with rho = 0.6, REML, mods ~ log_ptr, scale ~ log_ptr",
           aggregated, spec("REML", "log_ptr", "log_ptr", log(c(1, 5, 25))))
cat(n_cases, "cases written to", out_dir, "\n")
