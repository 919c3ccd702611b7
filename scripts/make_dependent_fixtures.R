# Write the reference fixtures for dependent effect sizes (CHE working model, fixed variance
# components, profile-likelihood intervals, likelihood-ratio tests) to
# tests/fixtures/metafor_dependent/<case>.json.
#
# Usage (from any directory): Rscript scripts/make_dependent_fixtures.R
#
# Each file holds the exact data fitted, the settings and metafor's result (see that folder's
# README.md).  Real data come from the metadat package; simulated data are generated here with
# fixed seeds.

script_dir <- local({
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(file_arg) == 0) stop("run this script with Rscript")
  dirname(normalizePath(sub("^--file=", "", file_arg[1])))
})
source(file.path(script_dir, "metafor_reference_lib.R"))
source(file.path(script_dir, "metafor_dependent_lib.R"))
suppressPackageStartupMessages(library(metadat))

out_dir <- file.path(dirname(script_dir), "tests", "fixtures", "metafor_dependent")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)
unlink(list.files(out_dir, pattern = "\\.json$", full.names = TRUE))
RNGkind("Mersenne-Twister", "Inversion", "Rejection")

within_study_id <- function(study) as.character(stats::ave(seq_along(study), study, FUN = seq_along))

make_data <- function(yi, vi, study, ...) {
  study <- as.character(study)
  d <- data.frame(yi = as.numeric(yi), vi = as.numeric(vi), study = study,
                  es = within_study_id(study), stringsAsFactors = FALSE)
  extra <- list(...)
  for (nm in names(extra)) d[[nm]] <- extra[[nm]]
  d[stats::complete.cases(d), , drop = FALSE]
}

settings_json <- function(settings) {
  out <- list()
  for (nm in names(settings)) {
    v <- settings[[nm]]
    if (length(v) == 0) next
    out[[nm]] <- switch(nm,
      moderators = , categorical = , wald_terms = as.character(unlist(v)),
      reference = , fix_sigma2 = lapply(v, sc),
      newdata = lapply(v, function(row) lapply(row, sc)),
      compare = lapply(v, function(spec) {
        o <- list(name = sc(spec$name))
        if (!is.null(spec$method)) o$method <- sc(spec$method)
        if (!is.null(spec$moderators)) o$moderators <- as.character(unlist(spec$moderators))
        if (!is.null(spec$fix_sigma2)) o$fix_sigma2 <- lapply(spec$fix_sigma2, sc)
        o
      }),
      sc(v))
  }
  out
}

n_cases <- 0
write_case <- function(id, source, d, settings) {
  t0 <- proc.time()[["elapsed"]]
  mods <- as_char_vec(settings$moderators)
  cols <- unique(c("yi", "vi", "study", "es", mods))
  res <- dependent_fit(d, settings)
  fixture <- list(case = sc(id), source = sc(source),
                  data = lapply(stats::setNames(cols, cols), function(cn) d[[cn]]),
                  settings = settings_json(settings), result = res)
  write_json_file(fixture, file.path(out_dir, paste0(id, ".json")))
  n_cases <<- n_cases + 1
  cat(sprintf("%-40s %6.1f s\n", id, proc.time()[["elapsed"]] - t0))
}

case <- function(method, test, ...) c(list(method = method, test = test), list(...))

# Full grid for one dataset: REML/ML x z/t, with and without moderators, at one rho;
# the REML fits also get profile intervals and the test of within-study heterogeneity.
grid <- function(prefix, src, d, rho, mods, newdata, wald = character(0)) {
  for (method in c("REML", "ML")) for (test in c("z", "t")) {
    base <- sprintf("%s_rho%02d_%s_%s", prefix, round(100 * rho), tolower(method), test)
    first <- test == "z"
    write_case(base, src, d, case(method, test, rho = rho, confint = first && method == "REML",
               compare = if (first) list(list(name = "no within-study heterogeneity",
                                              fix_sigma2 = list(es = 0))) else list()))
    cmp <- if (first && method == "ML")
      list(list(name = "without moderators", moderators = character(0)),
           list(name = "no within-study heterogeneity", fix_sigma2 = list(es = 0))) else list()
    write_case(paste0(base, "_mods"), src, d,
               case(method, test, rho = rho, moderators = mods, newdata = newdata,
                    wald_terms = wald, confint = first && method == "REML", compare = cmp))
  }
}

# ---------------------------------------------------------------------------
a <- dat.assink2016
assink <- make_data(a$yi, a$vi, a$study, year = a$year, pubstatus = a$pubstatus,
                    deltype = a$deltype)
assink_src <- "metadat::dat.assink2016 (Assink et al. 2016): yi, vi as supplied (SMD); study"
grid("assink2016", assink_src, assink, 0.6, c("year", "deltype"),
     list(list(year = 0, deltype = "general"), list(year = -5, deltype = "overt")),
     wald = c("deltypegeneral", "deltypeovert"))
write_case("assink2016_rho90_reml_z_mods", assink_src, assink,
           case("REML", "z", rho = 0.9, moderators = c("year", "pubstatus"),
                newdata = list(list(year = 2, pubstatus = 1))))
write_case("assink2016_rho00_reml_z", assink_src, assink, case("REML", "z", rho = 0))
write_case("assink2016_indep_ml_z_fixstudy", assink_src, assink,
           case("ML", "z", fix_sigma2 = list(study = 0), confint = TRUE))
write_case("assink2016_rho60_reml_z_fixes", assink_src, assink,
           case("REML", "z", rho = 0.6, fix_sigma2 = list(es = 0), confint = TRUE,
                compare = list(list(name = "both estimated", fix_sigma2 = list()))))
write_case("assink2016_rho60_reml_t_fixvalue", assink_src, assink,
           case("REML", "t", rho = 0.6, fix_sigma2 = list(study = 0.05),
                moderators = c("deltype"), newdata = list(list(deltype = "overt"))))

b <- escalc(measure = "OR", ai = waward, n1i = wtotal, ci = maward, n2i = mtotal,
            data = dat.bornmann2007)
# year is centred at 2000: with the raw year (about 1990) rma.mv's optimizer stops ~2e-6
# (relative) short of the maximum, where the score is still clearly non-zero.
born <- make_data(b$yi, b$vi, b$study, type = b$type, year = b$year - 2000)
born_src <- paste("metadat::dat.bornmann2007 (Bornmann et al. 2007); escalc('OR', ai = waward,",
                  "n1i = wtotal, ci = maward, n2i = mtotal): log odds ratio; study;",
                  "year = publication year - 2000")
grid("bornmann2007", born_src, born, 0.6, c("year"), list(list(year = -5), list(year = 0)))
# With type as well, sigma2.study is 0 at the maximum (a true boundary); metafor's ML fit
# reaches it to 1e-8 (its REML fit stops at ~4e-7, with a lower restricted likelihood).
for (test in c("z", "t"))
  write_case(sprintf("bornmann2007_rho60_ml_%s_boundary", test), born_src, born,
             case("ML", test, rho = 0.6, moderators = c("type", "year"),
                  newdata = list(list(type = "Grant", year = -5),
                                 list(type = "Fellowship", year = 0)),
                  confint = test == "z"))

t <- dat.tannersmith2016
tanner <- make_data(t$yi, t$vi, t$studyid, propmale = t$propmale, sexmix = t$sexmix)
tanner_src <- "metadat::dat.tannersmith2016 (Tanner-Smith & Lipsey 2016): yi, vi as supplied; study = studyid"
grid("tannersmith2016", tanner_src, tanner, 0.8, c("propmale"),
     list(list(propmale = 0.5), list(propmale = 1)))

l <- dat.lehmann2018
lehmann <- make_data(l$yi, l$vi, l$Short_Title, gender = l$Gender,
                     prereg = l$Preregistered)
lehmann_src <- paste("metadat::dat.lehmann2018 (Lehmann et al. 2018): yi, vi as supplied;",
                     "study = Short_Title (most studies have one effect size)")
grid("lehmann2018", lehmann_src, lehmann, 0.5, c("gender", "prereg"),
     list(list(gender = "Males", prereg = "Pre-Registered")))

# ---------------------------------------------------------------------------
# Simulated edge cases (Fisher z scale).
simulate <- function(seed, sizes, s_study, s_es) {
  set.seed(seed)
  studies <- length(sizes)
  study <- rep(seq_len(studies), sizes)
  k <- length(study)
  n <- sample(20:300, studies, replace = TRUE)[study]
  vi <- 1 / (n - 3)
  rater <- sample(c("patient", "observer", "therapist"), k, replace = TRUE)
  log_ptr <- rnorm(studies, 1.2, 0.8)[study]
  yi <- 0.3 - 0.05 * log_ptr + 0.06 * (rater == "observer") +
    rnorm(studies, 0, s_study)[study] + rnorm(k, 0, s_es) + rnorm(k, 0, sqrt(vi))
  make_data(yi, vi, paste0("s", study), log_ptr = log_ptr, rater = rater)
}
sim_src <- function(what) paste("simulated in make_dependent_fixtures.R:", what)
mods_sim <- c("log_ptr", "rater")
nd_sim <- list(list(log_ptr = 0, rater = "observer"), list(log_ptr = 2, rater = "therapist"))

single <- simulate(11, c(rep(1, 12), sample(2:4, 18, replace = TRUE)), 0.12, 0.08)
for (method in c("REML", "ML")) for (test in c("z", "t"))
  write_case(sprintf("sim_singletons_rho60_%s_%s_mods", tolower(method), test),
             sim_src("12 of 30 studies with one effect size"), single,
             case(method, test, rho = 0.6, moderators = mods_sim, newdata = nd_sim,
                  wald_terms = c("raterpatient", "ratertherapist")))
big <- simulate(12, c(40, sample(1:4, 14, replace = TRUE)), 0.1, 0.1)
write_case("sim_bigstudy_rho80_reml_z_mods", sim_src("one study with 40 effect sizes"), big,
           case("REML", "z", rho = 0.8, moderators = mods_sim, newdata = nd_sim, confint = TRUE))
write_case("sim_bigstudy_rho80_ml_t", sim_src("one study with 40 effect sizes"), big,
           case("ML", "t", rho = 0.8))
for (rho in c(0, 0.9)) for (method in c("REML", "ML"))
  write_case(sprintf("sim_rho%02d_%s_z_mods", round(100 * rho), tolower(method)),
             sim_src("rho at the ends of its range"), simulate(13, sample(1:6, 25, TRUE), 0.1, 0.05),
             case(method, "z", rho = rho, moderators = mods_sim, newdata = nd_sim))
zero <- simulate(14, sample(2:5, 20, replace = TRUE), 0, 0.1)
for (method in c("REML", "ML"))
  write_case(sprintf("sim_zero_study_rho60_%s_z", tolower(method)),
             sim_src("no true between-study variance"), zero,
             case(method, "z", rho = 0.6, confint = TRUE,
                  compare = list(list(name = "no between-study heterogeneity",
                                      fix_sigma2 = list(study = 0)))))
zero_es <- simulate(15, sample(2:5, 20, replace = TRUE), 0.15, 0)
write_case("sim_zero_es_rho60_reml_t_mods", sim_src("no true within-study variance"), zero_es,
           case("REML", "t", rho = 0.6, moderators = mods_sim, newdata = nd_sim, confint = TRUE,
                compare = list(list(name = "no within-study heterogeneity",
                                    fix_sigma2 = list(es = 0)))))
few <- simulate(16, c(3, 5, 4, 6), 0.1, 0.08)
for (method in c("REML", "ML")) for (test in c("z", "t"))
  write_case(sprintf("sim_fewclusters_rho70_%s_%s", tolower(method), test),
             sim_src("4 studies"), few,
             case(method, test, rho = 0.7, confint = method == "REML" && test == "z"))
write_case("sim_fewclusters_rho70_ml_z_mods", sim_src("4 studies"), few,
           case("ML", "z", rho = 0.7, moderators = c("rater"),
                newdata = list(list(rater = "observer")),
                compare = list(list(name = "without moderators", moderators = character(0)))))

cat(n_cases, "fixtures written to", out_dir, "\n")
