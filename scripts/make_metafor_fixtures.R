# Write the metafor reference fixtures to tests/fixtures/metafor/<case>.json.
#
# Usage (from any directory): Rscript scripts/make_metafor_fixtures.R
#
# Each file holds the exact data fitted, the settings, metafor's result and a
# convergence check (see tests/fixtures/metafor/README.md).  Real data come from
# the metadat package; simulated data are generated here with fixed seeds.

script_dir <- local({
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(file_arg) == 0) stop("run this script with Rscript")
  dirname(normalizePath(sub("^--file=", "", file_arg[1])))
})
source(file.path(script_dir, "metafor_reference_lib.R"))
suppressPackageStartupMessages(library(metadat))

out_dir <- file.path(dirname(script_dir), "tests", "fixtures", "metafor")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)
unlink(list.files(out_dir, pattern = "\\.json$", full.names = TRUE))

RNGkind("Mersenne-Twister", "Inversion", "Rejection")

# ---------------------------------------------------------------------------
# Helpers

# Effect-size id within each study: "1", "2", ... in row order.
within_study_id <- function(study) {
  as.character(stats::ave(seq_along(study), study, FUN = seq_along))
}

make_data <- function(yi, vi, study, es = NULL, ...) {
  study <- as.character(study)
  if (is.null(es)) es <- within_study_id(study)
  d <- data.frame(yi = as.numeric(yi), vi = as.numeric(vi), study = study,
                  es = as.character(es), stringsAsFactors = FALSE)
  extra <- list(...)
  for (nm in names(extra)) d[[nm]] <- extra[[nm]]
  d
}

# Keep the rows that are complete on the columns a set of cases uses, so the
# embedded data are exactly the data fitted.
complete_rows <- function(d, cols) {
  d <- d[stats::complete.cases(d[unique(c("yi", "vi", "study", "es", cols))]), , drop = FALSE]
  rownames(d) <- NULL
  d
}

data_columns <- function(d, moderators) {
  cols <- unique(c("yi", "vi", "study", "es", moderators))
  out <- lapply(cols, function(cn) {
    v <- d[[cn]]
    if (is.factor(v)) as.character(v) else v
  })
  names(out) <- cols
  out
}

n_cases <- 0
timings <- c()
checks <- list()

# One row of the convergence summary printed at the end.
check_row <- function(id, model, conv) {
  val <- function(x) if (is.null(x)) NA_real_ else as.numeric(unclass(x)[[1]])
  if (is.null(conv$diff_vs_scoring)) return(NULL)
  data.frame(case = id, model = model,
             max_rel = val(conv$diff_vs_scoring$max_rel),
             max_abs = val(conv$diff_vs_scoring$max_abs),
             perturbation_ok = isTRUE(val(conv$perturbation_ok) == 1),
             loglik_own_vs_metafor = abs(val(conv$loglik_metafor) - val(conv$loglik_own_formula)),
             beta_rel_change = val(conv$at_scoring_estimate$max_rel_change_estimate),
             se_rel_change = val(conv$at_scoring_estimate$max_rel_change_se),
             default_optimizer_rel = val(conv$default_optimizer$diff_vs_scoring$max_rel))
}

write_case <- function(id, source, d, settings) {
  t0 <- proc.time()[["elapsed"]]
  mods <- as_char_vec(settings$moderators)
  d <- complete_rows(d, mods)
  res <- reference_fit(d, c(settings, list(check_convergence = TRUE)))
  conv <- res$convergence
  res$convergence <- NULL
  fixture <- list(
    case = sc(id),
    source = sc(source),
    data = data_columns(d, mods),
    settings = settings_json(settings),
    result = res,
    convergence = conv
  )
  write_json_file(fixture, file.path(out_dir, paste0(id, ".json")))
  n_cases <<- n_cases + 1
  checks[[id]] <<- check_row(id, settings$model, conv)
  timings[id] <<- proc.time()[["elapsed"]] - t0
  invisible(res)
}

# Settings as JSON: scalars unboxed, lists of names kept as arrays.
settings_json <- function(settings) {
  out <- list()
  for (nm in names(settings)) {
    v <- settings[[nm]]
    if (length(v) == 0) next
    out[[nm]] <- switch(nm,
      moderators = , categorical = , wald_terms = as.character(unlist(v)),
      reference = lapply(v, sc),
      newdata = lapply(v, function(row) lapply(row, sc)),
      sc(v))
  }
  out
}

two_level <- function(method, test, ...) {
  c(list(model = "two-level", method = method, test = test), list(...))
}
three_level <- function(method, test, ...) {
  c(list(model = "three-level", method = method, test = test), list(...))
}

ALL_METHODS <- c("EE", "DL", "HE", "PM", "SJ", "ML", "REML")
ZCOR_NOTE <- "escalc(measure = 'ZCOR', ri, ni): yi = atanh(ri), vi = 1/(ni - 3)"

# ---------------------------------------------------------------------------
# dat.molloy2014: conscientiousness and medication adherence (k = 16)

m <- escalc(measure = "ZCOR", ri = ri, ni = ni, data = dat.molloy2014)
molloy <- make_data(m$yi, m$vi, study = seq_len(nrow(m)),
                    meanage = m$meanage, quality = m$quality, design = m$design)
molloy_src <- paste("metadat::dat.molloy2014 (Molloy, O'Carroll & Ferguson 2014);",
                    paste0(ZCOR_NOTE, "; study = row number"))
for (method in ALL_METHODS) for (test in c("z", "knha")) {
  id <- sprintf("molloy2014_%s_%s", tolower(method), test)
  write_case(id, molloy_src, molloy, two_level(method, test))
  # Half of the moderator cases use the non-default reference level.
  non_default <- method %in% c("EE", "HE", "SJ", "ML")
  ref <- if (non_default) list(design = "prospective") else list()
  wald <- if (non_default) "designcross-sectional" else "designprospective"
  write_case(paste0(id, "_mods"), molloy_src, molloy,
             two_level(method, test, moderators = c("meanage", "design"),
                       reference = ref,
                       newdata = list(list(meanage = 40, design = "cross-sectional"),
                                      list(meanage = 55.5, design = "prospective")),
                       wald_terms = c("meanage", wald)))
}

# ---------------------------------------------------------------------------
# dat.bcg: BCG vaccine trials, log risk ratios (k = 13)

b <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
bcg <- make_data(b$yi, b$vi, study = b$trial, ablat = b$ablat, year = b$year,
                 alloc = b$alloc)
bcg_src <- paste("metadat::dat.bcg (Colditz et al. 1994);",
                 "escalc(measure = 'RR', ai = tpos, bi = tneg, ci = cpos, di = cneg):",
                 "log risk ratio; study = trial")
for (method in ALL_METHODS) for (test in c("z", "knha")) {
  id <- sprintf("bcg_%s_%s", tolower(method), test)
  write_case(id, bcg_src, bcg, two_level(method, test))
  write_case(paste0(id, "_mods"), bcg_src, bcg,
             two_level(method, test, moderators = c("ablat", "alloc"),
                       reference = list(alloc = "random"),
                       newdata = list(list(ablat = 10, alloc = "random"),
                                      list(ablat = 33.5, alloc = "alternate"),
                                      list(ablat = 55, alloc = "systematic")),
                       wald_terms = c("allocalternate", "allocsystematic")))
}

# ---------------------------------------------------------------------------
# dat.mcdaniel1994: employment interviews and job performance (k = 160)

mc <- escalc(measure = "ZCOR", ri = ri, ni = ni, data = dat.mcdaniel1994)
mcd <- make_data(mc$yi, mc$vi, study = mc$study, type = mc$type, struct = mc$struct)
mcd_src <- paste("metadat::dat.mcdaniel1994 (McDaniel et al. 1994);",
                 paste0(ZCOR_NOTE, "; rows with missing type or struct dropped"))
mcd <- complete_rows(mcd, c("type", "struct"))
write_case("mcdaniel1994_reml_z", mcd_src, mcd, two_level("REML", "z"))
for (method in c("EE", "DL", "PM", "REML")) for (test in c("z", "knha")) {
  ref <- if (method %in% c("DL", "REML")) list(type = "p", struct = "u") else list()
  wald <- if (length(ref)) c("typej", "types") else c("typep", "types")
  write_case(sprintf("mcdaniel1994_%s_%s_mods", tolower(method), test), mcd_src, mcd,
             two_level(method, test, moderators = c("type", "struct"), reference = ref,
                       newdata = list(list(type = "j", struct = "s"),
                                      list(type = "p", struct = "u"),
                                      list(type = "s", struct = "s")),
                       wald_terms = wald))
}

# ---------------------------------------------------------------------------
# dat.bangertdrowns2004: writing-to-learn interventions, SMDs (k = 48)

bd <- dat.bangertdrowns2004
bang <- make_data(bd$yi, bd$vi, study = bd$id, length = bd$length, grade = bd$grade,
                  wic = bd$wic, meta = bd$meta)
bang_src <- paste("metadat::dat.bangertdrowns2004 (Bangert-Drowns et al. 2004);",
                  "yi, vi as supplied (standardised mean differences); study = id;",
                  "grade (1-4) treated as categorical; rows with missing length dropped")
bang <- complete_rows(bang, c("length", "grade", "wic", "meta"))
write_case("bangertdrowns2004_reml_z", bang_src, bang, two_level("REML", "z"))
bang_mods <- c("length", "grade", "wic", "meta")
for (cfg in list(c("REML", "z"), c("REML", "knha"), c("ML", "z"), c("SJ", "knha"),
                 c("HE", "z"), c("PM", "knha"))) {
  ref <- if (cfg[1] %in% c("REML", "HE")) list(grade = "4") else list()
  write_case(sprintf("bangertdrowns2004_%s_%s_mods", tolower(cfg[1]), cfg[2]),
             bang_src, bang,
             two_level(cfg[1], cfg[2], moderators = bang_mods, categorical = "grade",
                       reference = ref,
                       newdata = list(list(length = 10, grade = "1", wic = 1, meta = 0),
                                      list(length = 20, grade = "4", wic = 0, meta = 1)),
                       wald_terms = setdiff(paste0("grade", 1:4),
                                            paste0("grade", ref$grade %||% "1"))))
}

# ---------------------------------------------------------------------------
# dat.konstantopoulos2011: schools within districts, SMDs (three-level)

ko <- dat.konstantopoulos2011
konst <- make_data(ko$yi, ko$vi, study = ko$district, es = ko$school, year = ko$year)
konst_src <- paste("metadat::dat.konstantopoulos2011 (Konstantopoulos 2011);",
                   "yi, vi as supplied (SMDs); study = district, es = school; year uncentred")
for (method in c("ML", "REML")) for (test in c("z", "t")) {
  id <- sprintf("konstantopoulos2011_%s_%s", tolower(method), test)
  write_case(id, konst_src, konst, three_level(method, test))
  write_case(paste0(id, "_mods"), konst_src, konst,
             three_level(method, test, moderators = "year",
                         newdata = list(list(year = 1980), list(year = 2000)),
                         wald_terms = "year"))
}

# ---------------------------------------------------------------------------
# dat.assink2016: delinquency and psychopathology (three-level, k = 100)

as16 <- dat.assink2016
assink <- make_data(as16$yi, as16$vi, study = as16$study, es = as16$esid,
                    year = as16$year, pubstatus = as16$pubstatus, deltype = as16$deltype)
assink_src <- paste("metadat::dat.assink2016 (Assink et al. 2016);",
                    "yi, vi as supplied (SMDs); study = study, es = esid;",
                    "year as supplied (centred), pubstatus 0/1 numeric")
for (method in c("ML", "REML")) for (test in c("z", "t")) {
  id <- sprintf("assink2016_%s_%s", tolower(method), test)
  write_case(id, assink_src, assink, three_level(method, test))
  ref <- if (test == "t") list(deltype = "general") else list()
  wald <- if (test == "t") c("deltypecovert", "deltypeovert") else
    c("deltypegeneral", "deltypeovert")
  write_case(paste0(id, "_mods"), assink_src, assink,
             three_level(method, test, moderators = c("year", "pubstatus", "deltype"),
                         reference = ref,
                         newdata = list(list(year = 0, pubstatus = 1, deltype = "general"),
                                        list(year = -5, pubstatus = 0, deltype = "overt"),
                                        list(year = 3, pubstatus = 1, deltype = "covert")),
                         wald_terms = wald))
}

# ---------------------------------------------------------------------------
# dat.crede2010: class attendance and grades (three-level, k = 97)

cr <- escalc(measure = "ZCOR", ri = ri, ni = ni, data = dat.crede2010)
crede <- make_data(cr$yi, cr$vi, study = cr$studyid, source = cr$source,
                   criterion = cr$criterion)
crede_src <- paste("metadat::dat.crede2010 (Crede, Roch & Kieszczynka 2010);",
                   paste0(ZCOR_NOTE, "; study = studyid, es = row number within study"),
                   "(the sampleid level is not modelled)")
write_case("crede2010_reml_z", crede_src, crede, three_level("REML", "z"))
for (method in c("ML", "REML")) for (test in c("z", "t")) {
  write_case(sprintf("crede2010_%s_%s_mods", tolower(method), test), crede_src, crede,
             three_level(method, test, moderators = c("source", "criterion"),
                         reference = list(source = "journal"),
                         newdata = list(list(source = "journal", criterion = "grade"),
                                        list(source = "other", criterion = "gpa")),
                         wald_terms = c("sourcedissertation", "sourceother")))
}
write_case("crede2010_twolevel_reml_knha_mods", crede_src, crede,
           two_level("REML", "knha", moderators = c("source", "criterion"),
                     reference = list(source = "journal"),
                     newdata = list(list(source = "dissertation", criterion = "gpa")),
                     wald_terms = c("sourcedissertation", "sourceother")))

# ---------------------------------------------------------------------------
# Simulated data: yi drawn on the Fisher z scale, vi = 1/(n - 3) for integer n

sim_src <- function(text) {
  paste0("simulated in scripts/make_metafor_fixtures.R: ", text,
         "; yi drawn on the Fisher z scale, vi = 1/(n - 3) for integer sample sizes n")
}

# Tiny meta-analysis: k = 5.
set.seed(20240501)
n <- sample(30:200, 5)
z <- rnorm(5, 0.3, sqrt(0.02 + 1 / (n - 3)))
tiny <- make_data(z, 1 / (n - 3), study = paste0("s", 1:5), ptr = c(1, 2.5, 4, 8, 12))
tiny_src <- sim_src("k = 5, true mu = 0.3, tau2 = 0.02 (seed 20240501)")
for (method in ALL_METHODS) for (test in c("z", "knha")) {
  write_case(sprintf("sim_tiny_k5_%s_%s", tolower(method), test), tiny_src, tiny,
             two_level(method, test))
}
for (test in c("z", "knha")) {
  write_case(sprintf("sim_tiny_k5_reml_%s_mods", test), tiny_src, tiny,
             two_level("REML", test, moderators = "ptr",
                       newdata = list(list(ptr = 1), list(ptr = 10)), wald_terms = "ptr"))
}

# Homogeneous data: deviations from the weighted mean are shrunk by 0.4, so
# Q < k - 1 and every estimator truncates tau2 at 0.
set.seed(20240502)
n <- sample(40:300, 12)
vi <- 1 / (n - 3)
z <- rnorm(12, 0.25, sqrt(vi))
zbar <- sum(z / vi) / sum(1 / vi)
z <- zbar + 0.4 * (z - zbar)
homog <- make_data(z, vi, study = sprintf("h%02d", 1:12), ptr = round(runif(12, 1, 15), 1))
homog_src <- sim_src(paste("k = 12 homogeneous effects, deviations from the weighted mean",
                           "shrunk by 0.4 so that Q < k - 1 (seed 20240502)"))
for (method in ALL_METHODS) for (test in c("z", "knha")) {
  write_case(sprintf("sim_tau2_zero_%s_%s", tolower(method), test), homog_src, homog,
             two_level(method, test))
}
for (method in c("REML", "DL")) {
  write_case(sprintf("sim_tau2_zero_%s_z_mods", tolower(method)), homog_src, homog,
             two_level(method, "z", moderators = "ptr",
                       newdata = list(list(ptr = 2), list(ptr = 12)), wald_terms = "ptr"))
}

# Three-level data whose study means are pulled together, so sigma2_study
# is estimated at (or next to) 0.
set.seed(20240503)
n_st <- 20
m_es <- sample(2:5, n_st, replace = TRUE)
study <- rep(sprintf("st%02d", 1:n_st), m_es)
n <- sample(30:250, length(study), replace = TRUE)
vi <- 1 / (n - 3)
z <- rnorm(length(study), 0.28, sqrt(0.015 + vi))
z <- z - (ave(z, study) - mean(z))
ptr <- rep(round(runif(n_st, 1, 20), 1), m_es)
s0 <- make_data(z, vi, study = study, ptr = ptr)
s0_src <- sim_src(paste("20 studies with 2-5 effect sizes, sigma2_study = 0,",
                        "sigma2_es = 0.015, study means centred on the grand mean",
                        "(seed 20240503)"))
for (method in c("ML", "REML")) for (test in c("z", "t")) {
  write_case(sprintf("sim_sigma2_study_zero_%s_%s", tolower(method), test), s0_src, s0,
             three_level(method, test))
}
for (test in c("z", "t")) {
  write_case(sprintf("sim_sigma2_study_zero_reml_%s_mods", test), s0_src, s0,
             three_level("REML", test, moderators = "ptr",
                         newdata = list(list(ptr = 1), list(ptr = 20)), wald_terms = "ptr"))
}

# Alliance-outcome style data: effect sizes nested in studies, PTR and rater
# moderators, plus an alliance measure with six levels whose mixed-case names
# test the locale-free level order ("CALPAS" < "HAq" < "other" < "TSR").
set.seed(20240504)
n_st <- 40
m_es <- sample(1:4, n_st, replace = TRUE, prob = c(0.3, 0.3, 0.25, 0.15))
study <- rep(sprintf("a%02d", 1:n_st), m_es)
k <- length(study)
ptr_st <- round(exp(runif(n_st, log(1), log(30))), 1)
ptr <- rep(ptr_st, m_es)
rater <- sample(c("patient", "therapist", "observer"), k, replace = TRUE,
                prob = c(0.5, 0.25, 0.25))
measure <- sample(c("WAI", "CALPAS", "HAq", "TSR", "VPPS", "other"), k, replace = TRUE)
n <- sample(25:400, k, replace = TRUE)
vi <- 1 / (n - 3)
u_st <- rep(rnorm(n_st, 0, sqrt(0.01)), m_es)
mu <- 0.30 - 0.04 * log(ptr) + ifelse(rater == "observer", 0.05, 0) +
  ifelse(rater == "therapist", -0.03, 0)
z <- mu + u_st + rnorm(k, 0, sqrt(0.008 + vi))
alliance <- make_data(z, vi, study = study, ptr = ptr, rater = rater, measure = measure)
alliance_src <- sim_src(paste("40 studies with 1-4 effect sizes; mu = 0.30 - 0.04 log(PTR)",
                              "+ rater effects, sigma2_study = 0.01, sigma2_es = 0.008",
                              "(seed 20240504)"))
alliance_nd <- list(list(ptr = 1, rater = "patient"), list(ptr = 5, rater = "observer"),
                    list(ptr = 25, rater = "therapist"))
for (method in c("ML", "REML")) for (test in c("z", "t")) {
  id <- sprintf("sim_alliance_%s_%s", tolower(method), test)
  write_case(id, alliance_src, alliance, three_level(method, test))
  ref <- if (method == "REML") list(rater = "patient") else list()
  wald <- if (method == "REML") c("raterobserver", "ratertherapist") else
    c("raterpatient", "ratertherapist")
  write_case(paste0(id, "_mods"), alliance_src, alliance,
             three_level(method, test, moderators = c("ptr", "rater"), reference = ref,
                         newdata = alliance_nd, wald_terms = wald))
}
for (test in c("z", "knha")) {
  write_case(sprintf("sim_alliance_twolevel_reml_%s_mods", test), alliance_src, alliance,
             two_level("REML", test, moderators = c("ptr", "rater"),
                       reference = list(rater = "patient"), newdata = alliance_nd,
                       wald_terms = c("raterobserver", "ratertherapist")))
}
measure_terms <- function(ref) {
  lev <- level_order(alliance$measure)
  paste0("measure", setdiff(lev, ref))
}
for (cfg in list(list("two-level", "REML", "z", "CALPAS"),
                 list("two-level", "REML", "knha", "WAI"),
                 list("two-level", "DL", "knha", "WAI"),
                 list("three-level", "REML", "z", "WAI"),
                 list("three-level", "REML", "t", "CALPAS"),
                 list("three-level", "ML", "z", "other"))) {
  ref <- if (cfg[[4]] == "CALPAS") list() else list(measure = cfg[[4]])
  id <- sprintf("sim_many_levels_%s_%s_%s_ref%s", sub("-level", "level", cfg[[1]]),
                tolower(cfg[[2]]), cfg[[3]], cfg[[4]])
  settings <- list(model = cfg[[1]], method = cfg[[2]], test = cfg[[3]],
                   moderators = c("measure", "ptr"), reference = ref,
                   newdata = list(list(measure = "WAI", ptr = 3),
                                  list(measure = "other", ptr = 3),
                                  list(measure = "CALPAS", ptr = 12)),
                   wald_terms = measure_terms(cfg[[4]]))
  write_case(id, alliance_src, alliance, settings)
}

# ---------------------------------------------------------------------------
# Summary

tab <- do.call(rbind, checks)
for (model in c("two-level", "three-level")) {
  t <- tab[tab$model == model, ]
  cat(sprintf(paste0("%s ML/REML cases: %d; variance components vs exact scoring: max rel %.1e, ",
                     "max abs %.1e; perturbation check passed in all: %s; |loglik own - metafor| ",
                     "<= %.1e; coefficient change at exact optimum: estimate %.1e, se %.1e%s\n"),
              model, nrow(t), max(t$max_rel, na.rm = TRUE), max(t$max_abs),
              all(t$perturbation_ok), max(t$loglik_own_vs_metafor),
              max(t$beta_rel_change), max(t$se_rel_change),
              if (model == "three-level")
                sprintf("; metafor default nlminb: max rel %.1e",
                        max(t$default_optimizer_rel, na.rm = TRUE)) else ""))
}
files <- list.files(out_dir, pattern = "\\.json$", full.names = TRUE)
cat(sprintf("wrote %d cases to %s (%.2f MB); slowest case %.1f s (%s)\n",
            n_cases, out_dir, sum(file.size(files)) / 2^20, max(timings),
            names(which.max(timings))))
