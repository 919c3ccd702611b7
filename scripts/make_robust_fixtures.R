# Write the cluster-robust and aggregation reference fixtures to
# tests/fixtures/robust/<case>.json.
#
# Usage (from any directory): Rscript scripts/make_robust_fixtures.R
#
# Each file holds the exact data, the spec and the reference result from
# clubSandwich / metafor (see tests/fixtures/robust/README.md).  Real data come
# from the metadat package; simulated data are generated here with fixed seeds.

script_dir <- local({
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(file_arg) == 0) stop("run this script with Rscript")
  dirname(normalizePath(sub("^--file=", "", file_arg[1])))
})
source(file.path(script_dir, "robust_reference_lib.R"))
suppressPackageStartupMessages(library(metadat))

out_dir <- file.path(dirname(script_dir), "tests", "fixtures", "robust")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)
unlink(list.files(out_dir, pattern = "\\.json$", full.names = TRUE))
RNGkind("Mersenne-Twister", "Inversion", "Rejection")

within_study_id <- function(study) {
  as.character(stats::ave(seq_along(study), study, FUN = seq_along))
}

columns_of <- function(d) {
  out <- lapply(names(d), function(cn) { v <- d[[cn]]; if (is.factor(v)) as.character(v) else v })
  names(out) <- names(d)
  out
}

n_cases <- 0
write_case <- function(name, description, d, spec, kind = "robust") {
  result <- if (kind == "robust") robust_reference(d, spec) else aggregate_reference(d, spec)
  case <- list(name = sc(name), description = sc(description), kind = sc(kind),
               spec = spec, data = columns_of(d), result = result)
  write_json_file(case, file.path(out_dir, paste0(name, ".json")))
  n_cases <<- n_cases + 1
  cat(sprintf("%-40s %s\n", name, description))
}

# -- datasets ------------------------------------------------------------------
assink <- with(dat.assink2016, data.frame(
  yi = yi, vi = vi, study = as.character(study), es = as.character(esid),
  deltype = as.character(deltype), year = year, pubstatus = pubstatus,
  stringsAsFactors = FALSE))

tanner <- with(dat.tannersmith2016, data.frame(
  yi = yi, vi = vi, study = as.character(studyid), es = within_study_id(studyid),
  sexmix = sexmix, propmale = propmale, aget1 = aget1, stringsAsFactors = FALSE))
tanner <- tanner[complete.cases(tanner), ]

lehmann <- with(dat.lehmann2018, data.frame(
  yi = yi, vi = vi, study = as.character(Full_Citation), es = within_study_id(Full_Citation),
  prereg = ifelse(Preregistered == "Pre-Registered", "yes", "no"), gender = as.character(Gender),
  year = Year, stringsAsFactors = FALSE))
# Study labels are long citations: replace them by short codes in order of first appearance.
lehmann$study <- paste0("L", match(lehmann$study, unique(lehmann$study)))

born_es <- escalc(measure = "OR", ai = waward, n1i = wtotal, ci = maward, n2i = mtotal,
                  data = dat.bornmann2007)
bornmann <- with(born_es, data.frame(
  yi = as.numeric(yi), vi = as.numeric(vi), study = as.character(study),
  es = as.character(obs), type = as.character(type), doctype = as.character(doctype),
  year = year, country = as.character(country), stringsAsFactors = FALSE))

# Simulated: few studies, and a categorical level present in one study only.
simulate_nested <- function(seed, studies, per_study_max, tau = 0.15) {
  set.seed(seed)
  sizes <- sample(1:per_study_max, studies, replace = TRUE)
  study <- rep(seq_len(studies), sizes)
  k <- length(study)
  n <- sample(20:300, studies, replace = TRUE)[study]
  x <- rnorm(studies)[study]
  rater <- sample(c("observer", "patient", "therapist"), k, replace = TRUE)
  vi <- 1 / (n - 3)
  yi <- 0.3 - 0.05 * x + rnorm(studies, 0, tau)[study] + rnorm(k, 0, tau / 2) + rnorm(k, 0, sqrt(vi))
  data.frame(yi = yi, vi = vi, study = paste0("s", study), es = within_study_id(study),
             x = x, rater = rater, group = paste0("g", (study - 1) %/% 3), stringsAsFactors = FALSE)
}
few <- simulate_nested(11, 5, 6)
rare <- simulate_nested(12, 20, 5)
rare$rater[rare$study == "s3"] <- "other"  # the level "other" sits in one study only
coarse <- simulate_nested(13, 30, 4)

# -- three-level, two-level and CHE fits -----------------------------------------
spec <- function(model, method = "REML", moderators = character(0), ...) {
  s <- list(model = sc(model), method = sc(method), moderators = I(moderators), ...)
  s
}
for (method in c("REML", "ML")) {
  m <- tolower(method)
  write_case(paste0("assink_3l_", m), "assink2016 three-level, no moderators",
             assink, spec("three-level", method))
  write_case(paste0("assink_3l_", m, "_mods"), "assink2016 three-level, deltype + year",
             assink, spec("three-level", method, c("deltype", "year"),
                          wald_terms = list(I(c("deltypegeneral", "deltypeovert")))))
  write_case(paste0("tannersmith_3l_", m, "_mods"), "tannersmith2016 three-level, sexmix + aget1",
             tanner, spec("three-level", method, c("sexmix", "aget1")))
  write_case(paste0("lehmann_3l_", m, "_mods"), "lehmann2018 three-level, prereg + gender + year",
             lehmann, spec("three-level", method, c("prereg", "gender", "year")))
  write_case(paste0("bornmann_3l_", m, "_mods"), "bornmann2007 three-level, type + year",
             bornmann, spec("three-level", method, c("type", "year")))
}
write_case("bornmann_3l_reml", "bornmann2007 three-level, no moderators",
           bornmann, spec("three-level", "REML"))
for (rho in c(0, 0.6, 0.9)) {
  tag <- sprintf("%02d", round(10 * rho))
  write_case(paste0("assink_che_rho", tag, "_mods"), paste("assink2016 CHE rho =", rho, "deltype + year"),
             assink, spec("che", "REML", c("deltype", "year"), rho = sc(rho)))
  write_case(paste0("tannersmith_che_rho", tag), paste("tannersmith2016 CHE rho =", rho),
             tanner, spec("che", "REML", character(0), rho = sc(rho)))
  write_case(paste0("lehmann_che_rho", tag, "_mods"), paste("lehmann2018 CHE rho =", rho, "prereg + year"),
             lehmann, spec("che", "ML", c("prereg", "year"), rho = sc(rho)))
}
write_case("assink_2l_reml_mods", "assink2016 two-level rma.uni, clustered by study",
           assink, spec("two-level", "REML", c("deltype", "year")))
write_case("bornmann_2l_dl", "bornmann2007 two-level DL, clustered by study",
           bornmann, spec("two-level", "DL"))
write_case("tannersmith_2l_reml_mods", "tannersmith2016 two-level, clustered by study",
           tanner, spec("two-level", "REML", c("propmale")))
write_case("few_clusters_3l", "simulated: 5 studies (Satterthwaite df < 4)",
           few, spec("three-level", "REML", c("x")))
write_case("few_clusters_2l", "simulated: 5 studies, two-level",
           few, spec("two-level", "REML", c("x")))
write_case("rare_level_3l", "simulated: level 'other' of rater in one study only",
           rare, spec("three-level", "REML", c("rater", "x"),
                      wald_terms = list(I("raterother"), I(c("raterpatient", "ratertherapist")))))
write_case("coarse_cluster_3l", "simulated: robust clusters (group) coarser than studies",
           coarse, spec("three-level", "REML", c("x", "rater"), cluster = sc("group")))

# -- aggregation -----------------------------------------------------------------
for (rho in c(0, 0.6, 0.9)) {
  tag <- sprintf("%02d", round(10 * rho))
  shuffled <- assink[c(51:100, 1:50), ]  # study order of first appearance differs from sorted
  write_case(paste0("aggregate_assink_rho", tag), paste("aggregate assink2016, rho =", rho),
             shuffled, list(cluster = sc("study"), rho = sc(rho)), kind = "aggregate")
  write_case(paste0("aggregate_bornmann_rho", tag), paste("aggregate bornmann2007, rho =", rho),
             bornmann, list(cluster = sc("study"), rho = sc(rho)), kind = "aggregate")
}
cat(n_cases, "fixtures written to", out_dir, "\n")
