# lme4 fits of the patient-level model for live comparisons (tests/unit/test_patient_level_lme4.py).
#
# Usage: Rscript scripts/lme4_reference.R cases.json out.json
# cases.json: a list of {id, method ("REML"/"ML"), covariates, data: {therapist, alliance,
# outcome, covariates...}}. out.json: per id the fixed effects, vcov(fit) = (X'V^-1 X)^-1,
# their standard errors and the two variances, as in tests/fixtures/lme4.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
args <- commandArgs(trailingOnly = TRUE)
cases <- fromJSON(args[1], simplifyDataFrame = FALSE)
control <- lmerControl(
  optimizer = "nloptwrap",
  optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-13, xtol_rel = 1e-12, ftol_rel = 1e-13,
                 maxeval = 100000),
  calc.derivs = FALSE
)
out <- list()
for (case in cases) {
  d <- as.data.frame(lapply(case$data, unlist))
  d$alliance_mean <- ave(d$alliance, d$therapist)
  d$alliance_within <- d$alliance - d$alliance_mean
  covariates <- unlist(case$covariates)
  form <- reformulate(c("alliance_mean", "alliance_within", covariates, "(1 | therapist)"),
                      response = "outcome")
  fit <- lmer(form, data = d, REML = case$method == "REML", control = control)
  vc <- as.data.frame(VarCorr(fit))
  V <- as.matrix(vcov(fit))
  out[[case$id]] <- list(
    fixef = unname(fixef(fit)), vcov = unname(V), se = unname(sqrt(diag(V))),
    therapist_var = unbox(vc$vcov[vc$grp == "therapist"]), residual_var = unbox(sigma(fit)^2)
  )
}
writeLines(toJSON(out, digits = NA, matrix = "rowmajor"), args[2])
