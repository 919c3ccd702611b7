# Write the reference fixtures of the small-study tests on the dependent-effects (CHE) model
# to tests/fixtures/bias_dependent/<case>.json.
#
# Usage (from any directory): Rscript scripts/make_bias_dependent_fixtures.R
#
# Each file holds the exact data analysed (yi, vi, study, es), the spec and, for Egger's test /
# PET (predictor sqrt(vi)) and PEESE (predictor vi), metafor's rma.mv fit with the CHE working
# covariance and clubSandwich's CR2 tests (scripts/bias_dependent_lib.R). Real data: the
# bundled default dataset (data/alliance_simulated.csv, as Fisher's z) and metadat's
# dat.assink2016; simulated data are drawn here with fixed seeds.

script_dir <- local({
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(file_arg) == 0) stop("run this script with Rscript")
  dirname(normalizePath(sub("^--file=", "", file_arg[1])))
})
source(file.path(script_dir, "bias_dependent_lib.R"))
suppressPackageStartupMessages(library(metadat))

repo_dir <- dirname(script_dir)
out_dir <- file.path(repo_dir, "tests", "fixtures", "bias_dependent")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)
unlink(list.files(out_dir, pattern = "\\.json$", full.names = TRUE))
RNGkind("Mersenne-Twister", "Inversion", "Rejection")

within_study_id <- function(study) {
  as.character(stats::ave(seq_along(study), study, FUN = seq_along))
}

write_case <- function(name, description, d, spec) {
  d <- data.frame(yi = as.numeric(d$yi), vi = as.numeric(d$vi), study = as.character(d$study),
                  es = as.character(d$es), stringsAsFactors = FALSE)
  result <- bias_dependent_reference(d, spec)
  case <- list(name = sc(name), description = sc(description),
               spec = lapply(spec, sc), data = as.list(d), result = result)
  write_json_file(case, file.path(out_dir, paste0(name, ".json")))
  cat(sprintf("%-36s %s\n", name, description))
}

spec <- function(rho, method = "REML", test = "z") list(rho = rho, method = method, test = test)

# The bundled default dataset as the dashboard analyses it: Fisher's z of r, vi = 1 / (n - 3).
alliance <- utils::read.csv(file.path(repo_dir, "data", "alliance_simulated.csv"),
                            stringsAsFactors = FALSE)
alliance <- data.frame(yi = atanh(alliance$r), vi = 1 / (alliance$n - 3),
                       study = as.character(alliance$study), es = as.character(alliance$es_id))
write_case("alliance_rho60_reml_z", "default dataset, CHE rho = 0.6, REML, z (the default state)",
           alliance, spec(0.6))

assink <- dat.assink2016
assink <- data.frame(yi = assink$yi, vi = assink$vi, study = as.character(assink$study),
                     es = as.character(assink$esid))
write_case("assink2016_rho60_reml_z", "dat.assink2016, CHE rho = 0.6, REML, z", assink, spec(0.6))
write_case("assink2016_rho80_ml_t", "dat.assink2016, CHE rho = 0.8, ML, t", assink,
           spec(0.8, "ML", "t"))

simulate <- function(seed, studies, sd_study = 0.12, sd_es = 0.06, bias = 0.8) {
  set.seed(seed)
  size <- sample(1:6, studies, replace = TRUE)
  study <- rep(seq_len(studies), size)
  n <- rep(sample(15:250, studies, replace = TRUE), size)
  vi <- 1 / (n - 3)
  # A small-study effect of known size: the true effect grows with the standard error.
  yi <- 0.25 + bias * sqrt(vi) + rnorm(studies, 0, sd_study)[study] +
    rnorm(length(study), 0, sd_es) + rnorm(length(study), 0, sqrt(vi))
  data.frame(yi = yi, vi = vi, study = paste0("s", study), es = within_study_id(study))
}
write_case("sim40_rho60_reml_z", "simulated (seed 2101), 40 studies, CHE rho = 0.6, REML, z",
           simulate(2101, 40), spec(0.6))
write_case("sim7_rho60_reml_z", "simulated (seed 2102), 7 studies (few), CHE rho = 0.6, REML, z",
           simulate(2102, 7), spec(0.6))
write_case("sim25_rho30_reml_t", "simulated (seed 2103), 25 studies, CHE rho = 0.3, REML, t",
           simulate(2103, 25, bias = 0), spec(0.3, "REML", "t"))
