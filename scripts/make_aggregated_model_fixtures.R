# Reference results of the two-level model on one aggregated effect per study: metafor's
# aggregate.escalc(struct = "CS", rho) followed by rma() on the aggregated rows, written to
# tests/fixtures/aggregated/<case>.json with the data embedded (tests need no R).
#
# Usage (from any directory): Rscript scripts/make_aggregated_model_fixtures.R

suppressPackageStartupMessages({
  library(metafor)
  library(metadat)
  library(jsonlite)
})

script_dir <- local({
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(file_arg) == 0) stop("run this script with Rscript")
  dirname(normalizePath(sub("^--file=", "", file_arg[1])))
})
repo <- dirname(script_dir)
out_dir <- file.path(repo, "tests", "fixtures", "aggregated")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)
unlink(list.files(out_dir, pattern = "\\.json$", full.names = TRUE))

# Categorical moderators: factor levels sorted case-insensitively, as alliance_core does.
as_factor <- function(x) factor(x, levels = unique(x)[order(tolower(unique(x)), unique(x))])

write_case <- function(name, description, d, moderators, rho, method = "REML", test = "z") {
  e <- escalc(yi = yi, vi = vi, data = d)
  agg <- aggregate(e, cluster = study, rho = rho, struct = "CS")
  for (m in moderators) if (is.character(agg[[m]])) agg[[m]] <- as_factor(agg[[m]])
  form <- if (length(moderators)) as.formula(paste("~", paste(moderators, collapse = " + "))) else ~ 1
  fit <- rma(yi, vi, mods = form, data = agg, method = method, test = test,
             control = list(tau2.min = 0, threshold = 1e-10, maxiter = 1000))
  case <- list(
    name = unbox(name), description = unbox(description),
    spec = list(rho = unbox(rho), method = unbox(method), test = unbox(test),
                moderators = I(moderators)),
    data = as.list(d),
    result = list(
      k = unbox(fit$k), names = rownames(fit$beta), beta = as.vector(fit$beta),
      se = as.vector(fit$se), pval = as.vector(fit$pval), ci_lb = as.vector(fit$ci.lb),
      ci_ub = as.vector(fit$ci.ub), tau2 = unbox(fit$tau2), QE = unbox(fit$QE),
      QE_df = unbox(fit$k - fit$p), I2 = unbox(fit$I2),
      QM = unbox(if (fit$p > 1) fit$QM else NA), agg_yi = as.vector(agg$yi),
      agg_vi = as.vector(agg$vi)
    )
  )
  writeLines(toJSON(case, digits = NA, na = "null", auto_unbox = FALSE, pretty = FALSE),
             file.path(out_dir, paste0(name, ".json")))
  cat(sprintf("%-28s k = %d  %s\n", name, fit$k, description))
}

# The dashboard's default dataset (simulated): Fisher z and its variance, log PTR.
sim <- read.csv(file.path(repo, "data", "alliance_simulated.csv"), stringsAsFactors = FALSE)
alliance <- data.frame(
  study = sim$study, yi = atanh(sim$r), vi = 1 / (sim$n - 3),
  log_PTR = log(sim$n / sim$n_therapists), design = sim$design, pd = sim$pd,
  stringsAsFactors = FALSE
)
write_case("alliance_ptr_design_rho06", "default dataset, log PTR + design, rho 0.6",
           alliance, c("log_PTR", "design"), 0.6)
write_case("alliance_pooled_rho09_knha", "default dataset, no moderators, rho 0.9, Knapp-Hartung",
           alliance, character(0), 0.9, test = "knha")
write_case("alliance_pd_rho0_ml", "default dataset, log PTR + pd, rho 0, ML",
           alliance, c("log_PTR", "pd"), 0.0, method = "ML")

a <- dat.assink2016
assink <- data.frame(study = a$study, yi = a$yi, vi = a$vi, pubstatus = a$pubstatus)
write_case("assink_pubstatus_rho06", "assink2016 (SMD), pubstatus, rho 0.6",
           assink, "pubstatus", 0.6)

k <- dat.konstantopoulos2011
konst <- data.frame(study = k$district, yi = k$yi, vi = k$vi)
write_case("konstantopoulos_pooled_rho03_dl", "konstantopoulos2011 (SMD), pooled, rho 0.3, DL",
           konst, character(0), 0.3, method = "DL")
