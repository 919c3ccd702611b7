# Reference fits of the patient-level model (alliance split into the therapist's mean and the
# patient's deviation from it, random intercept per therapist) by lme4's lmer, written to
# tests/fixtures/lme4/<case>.json with the data embedded (tests need no R).
#
# Usage (from any directory): Rscript scripts/make_lme4_fixtures.R
#
# Each file holds the data (therapist, alliance, outcome and covariates), the method (REML or
# ML) and lme4's fixed effects, their covariance vcov(fit) = (X'V^-1 X)^-1 at the estimated
# variances, the therapist and residual variances and the log-likelihood. The designs are
# unbalanced (caseloads differ), where this covariance and the inverse of the full observed
# Hessian differ, plus one balanced control. The optimiser runs to tight tolerances so that
# differences measure the convention, not optimiser slack.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

script_dir <- local({
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(file_arg) == 0) stop("run this script with Rscript")
  dirname(normalizePath(sub("^--file=", "", file_arg[1])))
})
out_dir <- file.path(dirname(script_dir), "tests", "fixtures", "lme4")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)

TIGHT <- lmerControl(
  optimizer = "nloptwrap",
  optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-13, xtol_rel = 1e-12, ftol_rel = 1e-13,
                 maxeval = 100000),
  calc.derivs = FALSE
)

# Patients of each therapist: alliance = 5 + u + e, outcome = 0.6 u + 0.2 e + v + noise
# (therapist parts u and v; a patient-level covariate "severity" when asked for).
simulate_patients <- function(seed, caseloads, with_severity = FALSE) {
  set.seed(seed)
  therapist <- rep(seq_along(caseloads), caseloads)
  u <- rnorm(length(caseloads), 0, 0.6)[therapist]
  v <- rnorm(length(caseloads), 0, 0.4)[therapist]
  e <- rnorm(length(therapist), 0, 1)
  d <- data.frame(therapist = sprintf("T%02d", therapist), alliance = round(5 + u + e, 4))
  severity <- round(rnorm(length(therapist), 0, 1), 4)
  d$outcome <- round(0.6 * u + 0.2 * e + v - (if (with_severity) 0.3 * severity else 0) +
                       rnorm(length(therapist), 0, 1), 4)
  if (with_severity) d$severity <- severity
  d
}

write_case <- function(id, d, method, covariates = character(0)) {
  d$alliance_mean <- ave(d$alliance, d$therapist)
  d$alliance_within <- d$alliance - d$alliance_mean
  terms <- c("alliance_mean", "alliance_within", covariates)
  form <- reformulate(c(terms, "(1 | therapist)"), response = "outcome")
  fit <- lmer(form, data = d, REML = method == "REML", control = TIGHT)
  vc <- as.data.frame(VarCorr(fit))
  fixture <- list(
    case = unbox(id),
    source = unbox(paste("simulated by scripts/make_lme4_fixtures.R; lme4::lmer(", deparse(form),
                         ", REML =", method == "REML", ")")),
    method = unbox(method),
    covariates = covariates,
    data = d[c("therapist", "alliance", "outcome", covariates)],
    results = list(
      terms = c("(Intercept)", terms),
      fixef = unname(fixef(fit)),
      vcov = unname(as.matrix(vcov(fit))),
      se = unname(sqrt(diag(as.matrix(vcov(fit))))),
      therapist_var = unbox(vc$vcov[vc$grp == "therapist"]),
      residual_var = unbox(sigma(fit)^2),
      loglik = unbox(as.numeric(logLik(fit)))
    ),
    lme4_version = unbox(as.character(packageVersion("lme4")))
  )
  writeLines(toJSON(fixture, digits = NA, dataframe = "columns", matrix = "rowmajor"),
             file.path(out_dir, paste0(id, ".json")))
  cat(sprintf("%-40s SE(between) %.6f\n", id, sqrt(vcov(fit)[2, 2])))
}

caseloads8 <- c(3L, 5L, 8L, 12L, 4L, 20L, 6L, 9L)
d8 <- simulate_patients(20261129, caseloads8)
write_case("unbalanced_8_therapists_reml", d8, "REML")
write_case("unbalanced_8_therapists_ml", d8, "ML")
d20 <- simulate_patients(7, c(2L, 25L, 4L, 9L, 3L, 14L, 6L, 2L, 18L, 5L, 7L, 3L, 11L, 4L, 8L,
                               2L, 22L, 5L, 6L, 10L), with_severity = TRUE)
write_case("unbalanced_20_therapists_severity_reml", d20, "REML", "severity")
d_bal <- simulate_patients(11, rep(6L, 10))
write_case("balanced_10_therapists_reml", d_bal, "REML")
