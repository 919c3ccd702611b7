# Write the CR2 prediction reference fixtures to tests/fixtures/robust_prediction/<case>.json.
#
# Usage (from any directory): Rscript scripts/make_robust_prediction_fixtures.R
#
# Each file holds the data, the spec, the prediction rows (moderator values) and the
# reference from clubSandwich linear_contrast and metafor predict(robust(..., clubSandwich =
# TRUE), newmods) (see tests/fixtures/robust_prediction/README.md and
# scripts/robust_prediction_lib.R). Real data come from metadat; the uploaded-style
# coding sheet is simulated here with a fixed seed and stored in the fixture.

script_dir <- local({
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(file_arg) == 0) stop("run this script with Rscript")
  dirname(normalizePath(sub("^--file=", "", file_arg[1])))
})
source(file.path(script_dir, "robust_prediction_lib.R"))
suppressPackageStartupMessages(library(metadat))

out_dir <- file.path(dirname(script_dir), "tests", "fixtures", "robust_prediction")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)
unlink(list.files(out_dir, pattern = "\\.json$", full.names = TRUE))
RNGkind("Mersenne-Twister", "Inversion", "Rejection")

columns_of <- function(d) {
  out <- lapply(names(d), function(cn) { v <- d[[cn]]; if (is.factor(v)) as.character(v) else v })
  names(out) <- names(d)
  out
}

n_cases <- 0
write_case <- function(name, description, d, spec, newdata = list(), changes = NULL) {
  result <- robust_prediction_reference(d, spec, newdata, changes)
  case <- list(name = sc(name), description = sc(description), spec = spec,
               data = columns_of(d), newdata = newdata, result = result)
  write_json_file(case, file.path(out_dir, paste0(name, ".json")))
  n_cases <<- n_cases + 1
  cat(sprintf("%-32s %s (df %s)\n", name, description,
              paste(sprintf("%.2f", result$clubsandwich$df), collapse = ", ")))
}

spec <- function(model, moderators = character(0), ...) {
  list(model = sc(model), method = sc("REML"), moderators = I(moderators), ...)
}

# -- dat.assink2016: 17 studies, 100 effect sizes -------------------------------------
assink <- with(dat.assink2016, data.frame(
  yi = yi, vi = vi, study = as.character(study), es = as.character(esid),
  deltype = as.character(deltype), year = year, stringsAsFactors = FALSE))
assink_rows <- list(deltype = c("covert", "general", "overt", "overt", "general"),
                    year = c(mean(assink$year), 2005, 1995, 2015, 1990))

# -- an uploaded-style coding sheet: 35 studies with 1-6 correlations each -------------
set.seed(20261206)
studies <- 35
sizes <- sample(1:6, studies, replace = TRUE)
study <- rep(seq_len(studies), sizes)
k <- length(study)
patients <- sample(20:400, studies, replace = TRUE)
therapists <- pmax(1, round(patients / exp(runif(studies, 0, log(40)))))
log_ptr <- log(patients / therapists)
rater <- sample(c("observer", "patient", "therapist"), k, replace = TRUE, prob = c(.2, .5, .3))
# A Fisher-z correlation per effect size: study effects, effect-size effects and sampling error
# (n = the study's patients), the PTR slope negative as a therapist contribution predicts.
vi <- 1 / (patients[study] - 3)
yi <- 0.32 - 0.03 * log_ptr[study] + 0.04 * (rater == "observer") +
  rnorm(studies, 0, 0.08)[study] + rnorm(k, 0, 0.05) + rnorm(k, 0, sqrt(vi))
upload <- data.frame(
  yi = yi, vi = vi, study = sprintf("Study %02d", study),
  es = as.character(stats::ave(seq_len(k), study, FUN = seq_along)),
  PTR = (patients / therapists)[study], log_PTR = log_ptr[study], rater = rater,
  stringsAsFactors = FALSE)
upload_rows <- list(log_PTR = log(c(1, 3, 10, 40, 3, 10)),
                    rater = c("observer", "observer", "patient", "patient", "therapist",
                              "therapist"))

# -- cases -----------------------------------------------------------------------------
for (rho in c(0, 0.6)) {
  tag <- sprintf("%02d", round(10 * rho))
  write_case(paste0("assink_che_rho", tag), paste("assink2016 CHE rho =", rho, "intercept only"),
             assink, spec("che", rho = sc(rho)))
  write_case(paste0("assink_che_rho", tag, "_mods"),
             paste("assink2016 CHE rho =", rho, "deltype + year"),
             assink, spec("che", c("deltype", "year"), rho = sc(rho)), assink_rows)
  write_case(paste0("upload_che_rho", tag), paste("simulated upload CHE rho =", rho, "intercept only"),
             upload, spec("che", rho = sc(rho)))
  write_case(paste0("upload_che_rho", tag, "_mods"),
             paste("simulated upload CHE rho =", rho, "log_PTR + rater"),
             upload, spec("che", c("log_PTR", "rater"), rho = sc(rho)), upload_rows)
}
write_case("upload_2l_mods", "simulated upload two-level rma.uni, clustered by study, log_PTR + rater",
           upload, spec("two-level", c("log_PTR", "rater")), upload_rows)
# PTR entering as PTR + log(PTR): a change in PTR moves two coefficients, so its contrast
# has its own df, equal to neither slope's (the dashboard's "how much does r change").
both_rows <- list(PTR = c(1, 3, 10, 40), log_PTR = log(c(1, 3, 10, 40)),
                  rater = c("patient", "patient", "observer", "therapist"))
write_case("upload_che_rho06_ptr_both", "simulated upload CHE rho = 0.6, PTR + log_PTR + rater",
           upload, spec("che", c("PTR", "log_PTR", "rater"), rho = sc(0.6)), both_rows,
           changes = list(from = list(PTR = c(1, 2, 1), log_PTR = log(c(1, 2, 1)),
                                      rater = c("patient", "observer", "therapist")),
                          to = list(PTR = c(10, 8, 40), log_PTR = log(c(10, 8, 40)),
                                    rater = c("patient", "observer", "therapist"))))
cat(n_cases, "fixtures written to", out_dir, "\n")
