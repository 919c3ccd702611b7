# Write the cluster wild bootstrap reference fixtures to tests/fixtures/wild_bootstrap/<case>.json.
#
# Usage (from any directory):
#   R_LIBS=<library holding wildmeta 0.3.2> Rscript scripts/make_wild_bootstrap_fixtures.R
#   (after scripts/make_interaction_fixtures.R, whose embedded data these cases reuse)
#
# wildmeta 0.3.2 (Joshi, Pustejovsky & Beretvas 2022) is not a Debian package: install it
# from its public repository (github.com/meghapsimatrix/wildmeta, version 0.3.2) with
# `R CMD INSTALL -l <library> <source>` after `apt-get install r-cran-robumeta`; it is used
# here to make fixtures only. Each case runs Wald_test_cwb() on a metafor fit and records the
# observed statistic (clubSandwich Wald_test), every bootstrap statistic, the p-value and the
# auxiliary weights it drew. The weights are read back from wildmeta itself: run_cwb() with
# the same null model, seed and settings returns the bootstrap outcomes
# y* = fitted(null) + eta_cluster * adjusted residual, from which each cluster's eta is
# recovered (and checked to lie on the auxiliary distribution's support).
# See tests/fixtures/wild_bootstrap/README.md.

script_dir <- local({
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(file_arg) == 0) stop("run this script with Rscript")
  dirname(normalizePath(sub("^--file=", "", file_arg[1])))
})
source(file.path(script_dir, "metafor_reference_lib.R"))
suppressPackageStartupMessages({
  library(metafor)
  library(clubSandwich)
  library(wildmeta)
  library(jsonlite)
})

fixtures <- file.path(dirname(script_dir), "tests", "fixtures")
out_dir <- file.path(fixtures, "wild_bootstrap")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)
unlink(list.files(out_dir, pattern = "\\.json$", full.names = TRUE))
RNGkind("Mersenne-Twister", "Inversion", "Rejection")

x <- fromJSON(file.path(fixtures, "interactions", "alliance_che06_reml_z_ptr_x_rater_design.json"))$data
alliance <- as.data.frame(x[c("yi", "vi", "study", "es", "log_ptr", "alliance_rater", "design")],
                          stringsAsFactors = FALSE)

# The eta of each cluster in each replicate, recovered from wildmeta's own bootstrap outcomes.
drawn_weights <- function(fit, C, cluster, spec) {
  null_model <- suppressWarnings(wildmeta:::estimate_null(fit, C_mat = C))
  outcomes <- run_cwb(null_model, cluster = cluster, R = spec$R, auxiliary_dist = spec$auxiliary,
                      adjust = spec$adjust, simplify = FALSE, seed = spec$seed)
  cluster <- as.factor(cluster)
  res <- residuals(null_model)
  if (spec$adjust != "CR0") {
    B <- attr(vcovCR(null_model, cluster = cluster, type = spec$adjust), "adjustments")
    res <- unsplit(Map(function(b, e) as.vector(b %*% e), B, split(res, cluster)), cluster)
  }
  pick <- vapply(split(seq_along(res), cluster), function(rows) rows[which.max(abs(res[rows]))],
                 integer(1))
  W <- t(vapply(outcomes, function(y) (y[pick] - fitted(null_model)[pick]) / res[pick],
                numeric(length(pick))))
  support <- switch(spec$auxiliary, Rademacher = c(-1, 1),
                    `Webb six` = c(-sqrt(3:1), sqrt(1:3)) / sqrt(2))
  off <- max(vapply(W, function(w) min(abs(w - support)), numeric(1)))
  if (off > 1e-6) stop("recovered weights are off the auxiliary support by ", off)
  round_to <- function(w) support[which.min(abs(w - support))]
  matrix(vapply(W, round_to, numeric(1)), nrow = nrow(W))
}

write_case <- function(name, description, d, spec) {
  for (m in spec$factors) d[[m]] <- factor(d[[m]], levels = level_order(d[[m]]))
  form <- as.formula(paste("~", paste(spec$terms, collapse = " + ")))
  # Literal arguments in the call: wildmeta refits by update() in its own environment.
  if (spec$model == "two-level") {
    fit <- eval(bquote(rma.uni(yi, vi, mods = .(form), data = d, method = .(spec$method),
                               control = .(UNI_CONTROLS[[1]]))))
  } else {
    V <- if (!is.null(spec$rho)) vcalc(vi, cluster = study, obs = es, rho = spec$rho, data = d)
         else d$vi
    fit <- eval(bquote(rma.mv(yi, V, mods = .(form), random = ~ 1 | study/es, data = d,
                              method = .(spec$method), control = .(MV_CONTROLS[[1]]))))
  }
  positions <- which(attr(model.matrix(form, d), "assign") %in% match(spec$test_terms, attr(terms(form), "term.labels")))
  C <- constrain_zero(positions, coefs = coef(fit))
  cwb <- Wald_test_cwb(fit, constraints = C, R = spec$R, cluster = d$study,
                       auxiliary_dist = spec$auxiliary, adjust = spec$adjust, type = spec$type,
                       test = spec$test, seed = spec$seed)
  levels_cluster <- levels(as.factor(d$study))
  W <- drawn_weights(fit, C, d$study, spec)
  result <- list(statistic = attr(cwb, "original"), boot = as.numeric(attr(cwb, "bootstraps")),
                 pval = cwb$p_val, coefficients = rownames(fit$beta)[positions],
                 cluster_levels = levels_cluster, weights = W,
                 wildmeta_version = as.character(packageVersion("wildmeta")),
                 clubSandwich_version = as.character(packageVersion("clubSandwich")),
                 metafor_version = as.character(packageVersion("metafor")))
  case <- list(name = name, description = description, spec = spec, data = as.list(
    as.data.frame(lapply(d, function(v) if (is.factor(v)) as.character(v) else v))), result = result)
  write_json(case, file.path(out_dir, paste0(name, ".json")), digits = NA, auto_unbox = TRUE,
             pretty = FALSE, null = "null")
  cat(sprintf("%-34s F = %.6f  p = %.4f  %s\n", name, result$statistic, result$pval, description))
}

spec <- function(model, method, terms, test_terms, factors, R = 99, seed = 1,
                 auxiliary = "Rademacher", adjust = "CR0", type = "CR0", test = "Naive-F",
                 rho = NULL) {
  out <- list(model = model, method = method, terms = I(terms), test_terms = I(test_terms),
              factors = I(factors), R = R, seed = seed, auxiliary = auxiliary, adjust = adjust,
              type = type, test = test)
  if (!is.null(rho)) out$rho <- rho
  out
}

write_case("che06_rater", "CHE rho = 0.6 REML, log_ptr + alliance_rater + design; test alliance_rater",
           alliance, spec("three-level", "REML", c("log_ptr", "alliance_rater", "design"),
                          "alliance_rater", c("alliance_rater", "design"), rho = 0.6))
few <- alliance[alliance$study %in% unique(alliance$study)[1:8], ]
write_case("three_level_few_webb", "three-level REML on 8 studies, log_ptr + design; test log_ptr, Webb six",
           few, spec("three-level", "REML", c("log_ptr", "design"), "log_ptr", "design",
                     auxiliary = "Webb six", seed = 7))
write_case("two_level_ptr_design_ml", "two-level ML clustered by study, log_ptr + alliance_rater + design; test log_ptr and design",
           alliance, spec("two-level", "ML", c("log_ptr", "alliance_rater", "design"),
                          c("log_ptr", "design"), c("alliance_rater", "design"), seed = 3))
write_case("che06_rater_cr1", "as che06_rater with adjust = CR1 and type = CR1",
           alliance, spec("three-level", "REML", c("log_ptr", "alliance_rater", "design"),
                          "alliance_rater", c("alliance_rater", "design"), rho = 0.6,
                          adjust = "CR1", type = "CR1", seed = 11))
# CR2: the residuals multiplied by the null model's CR2 adjustment matrices (adjust) and the
# test statistic on the refit's CR2 covariance (type), clubSandwich vcovCR(type = "CR2").
write_case("che06_rater_cr2", "as che06_rater with adjust = CR2 and type = CR2",
           alliance, spec("three-level", "REML", c("log_ptr", "alliance_rater", "design"),
                          "alliance_rater", c("alliance_rater", "design"), rho = 0.6,
                          adjust = "CR2", type = "CR2", seed = 13))
write_case("three_level_few_webb_cr2", "as three_level_few_webb with type = CR2 (adjust CR0)",
           few, spec("three-level", "REML", c("log_ptr", "design"), "log_ptr", "design",
                     auxiliary = "Webb six", seed = 17, type = "CR2"))
write_case("two_level_ptr_design_ml_cr2", "as two_level_ptr_design_ml with adjust = CR2 and type = CR2",
           alliance, spec("two-level", "ML", c("log_ptr", "alliance_rater", "design"),
                          c("log_ptr", "design"), c("alliance_rater", "design"), seed = 19,
                          adjust = "CR2", type = "CR2"))
