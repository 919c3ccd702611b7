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

source(file.path(script_dir, "interaction_reference_lib.R"))

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
