# Write the metaselection reference fixtures for step-function selection models of dependent
# effect sizes to tests/fixtures/selection_clustered/<case>.json.
#
# Usage (from any directory): Rscript scripts/make_metaselection_fixtures.R [case-prefix ...]
#
# Needs metaselection 0.1.5 (not in Debian; see tests/fixtures/selection_clustered/README.md
# for how it was installed), metafor, metadat and jsonlite. Each case fits
#   selection_model(data, yi, sei, cluster, selection_type = "step", steps, mean_mods,
#                   estimator = "CML", vcov_type = "robust", priors = NULL)
# and records its estimates (beta, gamma = log tau2, zeta = log delta) with cluster-robust
# standard errors, p-values and large-sample intervals, the composite log-likelihood and the
# p-value table. Only fixture generation needs metaselection; the tests read the JSON files.

script_dir <- local({
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(file_arg) == 0) stop("run this script with Rscript")
  dirname(normalizePath(sub("^--file=", "", file_arg[1])))
})
source(file.path(script_dir, "metafor_reference_lib.R"))
suppressPackageStartupMessages({
  library(metadat)
  library(metaselection)
})

repo_dir <- dirname(script_dir)
out_dir <- file.path(repo_dir, "tests", "fixtures", "selection_clustered")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)
only <- commandArgs(trailingOnly = TRUE)
wanted <- function(name) length(only) == 0 || any(startsWith(name, only))
num <- function(x) as.numeric(unname(x))

write_case <- function(name, d, moderators = character(0), reference = list(), step_sets,
                       source) {
  if (!wanted(name)) return(invisible(NULL))
  cat("case", name, "\n")
  keep <- c("study", "yi", "vi", moderators)
  d <- d[stats::complete.cases(d[, keep, drop = FALSE]), keep, drop = FALSE]
  fitted <- d
  for (nm in names(reference)) {
    fitted[[nm]] <- relevel(factor(fitted[[nm]]), ref = reference[[nm]])
  }
  fitted$sei <- sqrt(fitted$vi)
  mean_mods <- if (length(moderators) == 0) NULL else
    as.formula(paste("~", paste(moderators, collapse = " + ")))
  fits <- lapply(step_sets, function(steps) {
    m <- selection_model(data = fitted, yi = yi, sei = sei, cluster = study,
                         selection_type = "step", steps = steps, mean_mods = mean_mods,
                         estimator = "CML", vcov_type = "robust", priors = NULL)
    list(
      steps = num(steps),
      est = list(param = as.character(m$est$param), Est = num(m$est$Est), SE = num(m$est$SE),
                 p_value = num(m$est$p_value), CI_lo = num(m$est$CI_lo),
                 CI_hi = num(m$est$CI_hi)),
      loglik = sc(m$ll),
      k = num(m$ptable$k),
      m = num(m$ptable$m),
      n_clusters = sc(m$n_clusters),
      optimizer = sc(m$method)
    )
  })
  case <- list(
    source = sc(source),
    settings = list(moderators = moderators, reference = lapply(reference, sc),
                    cluster = sc("study")),
    data = lapply(d, function(v) if (is.factor(v)) as.character(v) else v),
    selection_model = fits,
    metaselection_version = sc(as.character(packageVersion("metaselection")))
  )
  write_json_file(case, file.path(out_dir, paste0(name, ".json")))
}

# ---------------------------------------------------------------------------
# Data

assink <- dat.assink2016
assink <- data.frame(study = assink$study, yi = assink$yi, vi = assink$vi,
                     year = assink$year, deltype = as.character(assink$deltype),
                     stringsAsFactors = FALSE)

alliance <- read.csv(file.path(repo_dir, "data", "alliance_simulated.csv"))
alliance <- escalc(measure = "ZCOR", ri = r, ni = n, data = alliance)
alliance <- data.frame(study = alliance$study, yi = num(alliance$yi), vi = num(alliance$vi),
                       log_PTR = log(alliance$ptr))

# Seeded simulation: 60 studies with 1-6 effect sizes sharing a study effect
# (sigma2_study = 0.02, sigma2_es = 0.01), mu = 0.15 + 0.1 x; a study's non-significant
# effect sizes (one-sided p > .025) are each kept with probability 0.5.
simulated <- local({
  set.seed(20261208)
  rows <- list()
  for (s in 1:60) {
    m <- sample(1:6, 1)
    n <- sample(30:300, 1)
    u <- rnorm(1, 0, sqrt(0.02))
    x <- rnorm(1)
    vi <- rep(1 / (n - 3), m)
    yi <- 0.15 + 0.1 * x + u + rnorm(m, 0, sqrt(0.01)) + rnorm(m, 0, sqrt(vi))
    p <- pnorm(yi / sqrt(vi), lower.tail = FALSE)
    keep <- p <= 0.025 | runif(m) < 0.5
    if (any(keep)) rows[[length(rows) + 1]] <- data.frame(study = s, yi = yi[keep],
                                                          vi = vi[keep], x = x)
  }
  do.call(rbind, rows)
})

# ---------------------------------------------------------------------------
# Cases

write_case("assink2016", assink, step_sets = list(0.025, c(0.025, 0.5)),
           source = "dat.assink2016, SMDs, 17 studies, k = 100")
write_case("assink2016_mods", assink, c("year", "deltype"), list(deltype = "general"),
           step_sets = list(0.025),
           source = "dat.assink2016, year + deltype (reference general)")
write_case("sim_clustered", simulated, c("x"), step_sets = list(0.025, c(0.025, 0.5)),
           source = "seeded simulation (20261208), 60 studies, selection of non-significant effect sizes with probability 0.5")
write_case("alliance", alliance, step_sets = list(0.025, c(0.025, 0.5)),
           source = "data/alliance_simulated.csv, ZCOR, 811 effect sizes in 152 studies")
write_case("alliance_ptr", alliance, c("log_PTR"), step_sets = list(0.025),
           source = "data/alliance_simulated.csv, ZCOR, log_PTR")
