# Write the metafor reference fixtures for publication bias and sensitivity analyses to
# tests/fixtures/metafor_bias/<case>.json.
#
# Usage (from any directory): Rscript scripts/make_bias_fixtures.R [case-prefix ...]
#
# With prefixes, only the cases whose names start with one of them are rewritten (the
# three-level cases of the default dataset take several minutes). Each file holds the exact
# data analysed, the model settings and metafor's results of regtest, ranktest, trimfill,
# leave1out, influence, cumul and, for three-level models, hatvalues, rstandard and
# cooks.distance; see tests/fixtures/metafor_bias/README.md.  Convergence controls are the
# tight ones of scripts/metafor_reference_lib.R.

script_dir <- local({
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(file_arg) == 0) stop("run this script with Rscript")
  dirname(normalizePath(sub("^--file=", "", file_arg[1])))
})
source(file.path(script_dir, "metafor_reference_lib.R"))
suppressPackageStartupMessages(library(metadat))

repo_dir <- dirname(script_dir)
out_dir <- file.path(repo_dir, "tests", "fixtures", "metafor_bias")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)
only <- commandArgs(trailingOnly = TRUE)

UNI_CONTROL <- UNI_CONTROLS[[1]]
MV_CONTROL <- MV_CONTROLS[["optim/BFGS"]]

# ---------------------------------------------------------------------------
# Helpers

num <- function(x) as.numeric(unname(x))
nullable <- function(x) if (is.null(x)) NULL else num(x)

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

data_columns <- function(d) {
  out <- lapply(names(d), function(cn) {
    v <- d[[cn]]
    if (is.factor(v)) as.character(v) else v
  })
  names(out) <- names(d)
  out
}

coef_table <- function(fit) {
  list(term = rownames(fit$beta), estimate = num(fit$beta), se = num(fit$se),
       statistic = num(fit$zval), pval = num(fit$pval), ci_lb = num(fit$ci.lb),
       ci_ub = num(fit$ci.ub))
}

# The heterogeneity summary of one fit (I2 for rma.mv as in the parity fixtures).
fit_summary <- function(fit) {
  three <- inherits(fit, "rma.mv")
  out <- list(coefficients = coef_table(fit), k = sc(fit$k),
              QE = sc(fit$QE), QE_pval = sc(fit$QEp))
  if (three) {
    out$sigma2 <- num(fit$sigma2)
    out$I2 <- sc(multilevel_i2(fit)$I2)
  } else {
    out$tau2 <- sc(fit$tau2)
    out$I2 <- sc(fit$I2)
    out$H2 <- sc(fit$H2)
  }
  out
}

uni_fit <- function(d, s, form, data = d, ...) {
  if (is.null(form)) {
    rma.uni(yi, vi, data = data, method = s$method, test = s$test, control = UNI_CONTROL, ...)
  } else {
    rma.uni(yi, vi, mods = form, data = data, method = s$method, test = s$test,
            control = UNI_CONTROL, ...)
  }
}

# rma.mv with the tight BFGS settings; sparse matrices for the large default dataset, where
# dense 811 x 811 matrices make each fit take a minute.
mv_fit <- function(d, s, form, data = d, sparse = FALSE, init = NULL) {
  ctl <- MV_CONTROL
  if (!is.null(init)) ctl$sigma2.init <- init
  if (is.null(form)) {
    rma.mv(yi, vi, random = ~ 1 | study/es, data = data, method = s$method, test = s$test,
           sparse = sparse, control = ctl)
  } else {
    rma.mv(yi, vi, mods = form, random = ~ 1 | study/es, data = data, method = s$method,
           test = s$test, sparse = sparse, control = ctl)
  }
}

# ---------------------------------------------------------------------------
# The analyses

regtest_block <- function(fit, d, s, form, sparse) {
  if (s$model == "two-level") {
    rt <- regtest(fit)
    refit <- rt$fit
    out <- list(statistic = sc(rt$zval), pval = sc(rt$pval), ddf = sc(rt$ddf),
                est = sc(rt$est), ci_lb = sc(rt$ci.lb), ci_ub = sc(rt$ci.ub))
  } else {
    # regtest() is not defined for rma.mv: the standard error enters the multilevel model
    # as a moderator (last, as regtest puts it), and its coefficient is tested.
    terms <- if (is.null(form)) "sqrt(vi)" else c(attr(terms(form), "term.labels"), "sqrt(vi)")
    eform <- stats::as.formula(paste("~", paste(terms, collapse = " + ")))
    refit <- mv_fit(d, s, eform, sparse = sparse)
    j <- nrow(refit$beta)
    int_only <- is.null(form)
    out <- list(statistic = sc(refit$zval[j]), pval = sc(refit$pval[j]),
                ddf = sc(if (s$test == "t") refit$ddf[j] else NULL),
                est = sc(if (int_only) refit$beta[1] else NULL),
                ci_lb = sc(if (int_only) refit$ci.lb[1] else NULL),
                ci_ub = sc(if (int_only) refit$ci.ub[1] else NULL))
  }
  out$fit <- fit_summary(refit)
  out
}

ranktest_block <- function(fit) {
  # cor.test() falls back to the normal approximation when there are ties (and warns).
  w <- NULL
  rk <- withCallingHandlers(ranktest(fit), warning = function(cond) {
    w <<- conditionMessage(cond)
    invokeRestart("muffleWarning")
  })
  list(tau = sc(rk$tau), pval = sc(rk$pval), warning = sc(w))
}

# Every combination of estimator and side (NULL: metafor chooses the side), or only the
# chosen side when `all_sides` is FALSE (each fit of the 811-row dataset takes seconds).
# With `keep_test` the filled data are refitted with the model's test (trimfill(fit, test =
# ...)); without it, as metafor's plain trimfill(fit) does, which refits with z tests.
trimfill_block <- function(fit, s, all_sides = TRUE, keep_test = TRUE) {
  out <- list()
  sides <- if (all_sides) list(NULL, "left", "right") else list(NULL)
  for (estimator in c("L0", "R0")) for (side in sides) {
    args <- list(fit, estimator = estimator, control = UNI_CONTROL)
    if (!is.null(side)) args$side <- side
    if (keep_test) args$test <- s$test
    tf <- do.call(trimfill, args)
    filled <- tf$fill
    entry <- list(requested_side = sc(if (is.null(side)) NULL else side),
                  estimator = sc(estimator), k0 = sc(tf$k0), se_k0 = sc(tf$se.k0),
                  side = sc(tf$side), p_k0 = sc(tf$p.k0),
                  filled_yi = num(tf$yi[filled]), filled_vi = num(tf$vi[filled]))
    entry$fit <- fit_summary(tf)
    out[[length(out) + 1]] <- entry
  }
  out
}

leave1out_block <- function(fit) {
  l1 <- leave1out(fit)
  list(estimate = num(l1$estimate), se = num(l1$se), statistic = num(l1[[3]]),
       pval = num(l1$pval), ci_lb = num(l1$ci.lb), ci_ub = num(l1$ci.ub),
       QE = num(l1$Q), QE_pval = num(l1$Qp), tau2 = nullable(l1$tau2), I2 = num(l1$I2),
       H2 = num(l1$H2))
}

influence_block <- function(fit) {
  inf <- influence(fit)
  dfbs <- lapply(unclass(inf$dfbs)[seq_len(fit$p)], num)
  names(dfbs) <- rownames(fit$beta)
  list(rstudent = num(inf$inf$rstudent), dffits = num(inf$inf$dffits),
       cook_d = num(inf$inf$cook.d), cov_r = num(inf$inf$cov.r),
       tau2_del = num(inf$inf$tau2.del), QE_del = num(inf$inf$QE.del),
       hat = num(inf$inf$hat), weight = num(inf$inf$weight), dfbs = dfbs,
       is_infl = as.logical(inf$is.infl))
}

cumul_block <- function(fit, order_values) {
  cu <- cumul(fit, order = order_values)
  list(row = num(order(order_values)) - 1, estimate = num(cu$estimate), se = num(cu$se),
       statistic = num(cu[[3]]), pval = num(cu$pvals), ci_lb = num(cu$ci.lb),
       ci_ub = num(cu$ci.ub), QE = num(cu$Q), QE_pval = num(cu$Qp), tau2 = nullable(cu$tau2),
       I2 = num(cu$I2), H2 = num(cu$H2))
}

# Leave one out by hand, for what leave1out() does not cover: models with moderators
# (rma.uni, one effect size at a time) and three-level models (one whole study at a time).
# A three-level refit starts from the full model's variance components, as
# cooks.distance.rma.mv does, and gives Cook's distance from the same refit.
manual_leave_out_block <- function(fit, d, s, form, sparse) {
  three <- s$model == "three-level"
  units <- if (three) unique(d$study) else seq_len(nrow(d))
  svb <- chol2inv(chol(fit$vb))
  rows <- lapply(units, function(u) {
    keep <- if (three) d$study != u else seq_len(nrow(d)) != u
    # Leaving a unit out can remove the last effect size of a moderator level; metafor then
    # drops the redundant coefficient, and the row is reported as not estimable (null).
    f <- if (three) mv_fit(d, s, form, data = d[keep, , drop = FALSE], sparse = sparse,
                           init = fit$sigma2) else
      uni_fit(d, s, form, data = d[keep, , drop = FALSE])
    if (nrow(f$beta) != nrow(fit$beta)) return(NULL)
    dfb <- fit$beta - f$beta
    list(summary = fit_summary(f), cook = c(crossprod(dfb, svb) %*% dfb))
  })
  terms <- rownames(fit$beta)
  pick <- function(f) vapply(rows, function(r) if (is.null(r)) NA_real_ else f(r), numeric(1))
  scalar <- function(field) pick(function(r) unclass(r$summary[[field]])[[1]])
  per_term <- function(field) {
    out <- lapply(seq_along(terms), function(j) pick(function(r)
      r$summary$coefficients[[field]][j]))
    names(out) <- terms
    out
  }
  out <- list(left_out = as.character(units))
  for (field in c("estimate", "se", "statistic", "pval", "ci_lb", "ci_ub")) {
    out[[field]] <- per_term(field)
  }
  for (field in c("k", "QE", "QE_pval", "I2")) out[[field]] <- scalar(field)
  if (three) {
    out$sigma2_study <- pick(function(r) r$summary$sigma2[1])
    out$sigma2_es <- pick(function(r) r$summary$sigma2[2])
    out$cook_d <- pick(function(r) r$cook)
  } else {
    out$tau2 <- scalar("tau2")
  }
  out
}

three_level_influence_block <- function(fit, d, with_cooks) {
  rs <- rstandard(fit, cluster = d$study)
  out <- list(hat = num(hatvalues(fit)),
              rstandard = list(resid = num(rs$obs$resid), se = num(rs$obs$se),
                               z = num(rs$obs$z)),
              rstandard_cluster = list(study = as.character(rs$cluster$slab),
                                       X2 = num(rs$cluster$X2), k = num(rs$cluster$k)))
  if (with_cooks) {
    cd <- cooks.distance(fit, cluster = d$study)
    out$cooks_distance <- list(study = names(cd), cook_d = num(cd))
  }
  out
}

# Three-level cumulative meta-analysis by hand: whole studies are added in the order of
# `order_values` (one value per row, constant within a study; ties keep the data order).
# A step is fitted once the data hold two studies and some study has two effect sizes.
three_level_cumul_block <- function(d, s, order_values) {
  first <- !duplicated(d$study)
  studies <- d$study[first][order(order_values[first])]
  rows <- lapply(seq_along(studies), function(j) {
    sub <- d[d$study %in% studies[seq_len(j)], , drop = FALSE]
    if (j < 2 || !anyDuplicated(sub$study)) return(NULL)
    fit_summary(mv_fit(d, s, NULL, data = sub))
  })
  pick <- function(f) vapply(rows, function(r) if (is.null(r)) NA_real_ else f(r), numeric(1))
  coef <- function(field) pick(function(r) r$coefficients[[field]][1])
  list(study = as.character(studies), estimate = coef("estimate"), se = coef("se"),
       statistic = coef("statistic"), pval = coef("pval"), ci_lb = coef("ci_lb"),
       ci_ub = coef("ci_ub"), k = pick(function(r) unclass(r$k)[[1]]),
       sigma2_study = pick(function(r) r$sigma2[1]), sigma2_es = pick(function(r) r$sigma2[2]),
       QE = pick(function(r) unclass(r$QE)[[1]]), I2 = pick(function(r) unclass(r$I2)[[1]]))
}

# Study-level effects under independence (aggregate.escalc with struct = "ID": the
# inverse-variance weighted mean and 1 / sum(1/vi)), then trim-and-fill on them.
aggregate_block <- function(d, s) {
  es <- escalc(measure = "GEN", yi = d$yi, vi = d$vi)
  es$study <- d$study
  agg <- aggregate(es, cluster = study, struct = "ID")
  sa <- list(method = s$method, test = "z")
  fit <- uni_fit(agg, sa, NULL)
  list(study = as.character(agg$study), yi = num(agg$yi), vi = num(agg$vi),
       fit = fit_summary(fit), trimfill = trimfill_block(fit, sa))
}

# ---------------------------------------------------------------------------
# One case: fit the model, run the requested analyses, write the file.

write_case <- function(id, source, d, settings, analyses, order_by = NULL, sparse = FALSE) {
  if (length(only) && !any(startsWith(id, only))) return(invisible(NULL))
  t0 <- proc.time()[["elapsed"]]
  s <- normalise_settings(settings)
  needed <- unique(c("yi", "vi", "study", "es", s$moderators, order_by))
  d <- d[stats::complete.cases(d[needed]), , drop = FALSE]
  rownames(d) <- NULL
  prep <- prepare_data(d, s)
  fd <- d  # every column, for the fixture; prepare_data keeps only the model's columns
  for (m in names(prep$levels)) fd[[m]] <- as.character(fd[[m]])
  d <- cbind(prep$data, d[setdiff(names(d), names(prep$data))])
  form <- moderator_formula(s$moderators)
  three <- s$model == "three-level"
  fit <- if (three) mv_fit(d, s, form, sparse = sparse) else uni_fit(d, s, form)
  order_values <- if (is.null(order_by)) NULL else d[[order_by]]

  results <- list(fit = fit_summary(fit))
  if ("regtest" %in% analyses) results$regtest <- regtest_block(fit, d, s, form, sparse)
  if ("ranktest" %in% analyses) results$ranktest <- ranktest_block(fit)
  if ("trimfill" %in% analyses) results$trimfill <- trimfill_block(fit, s)
  if ("trimfill_auto" %in% analyses)
    results$trimfill <- trimfill_block(fit, s, all_sides = FALSE)
  if ("trimfill_default" %in% analyses)
    results$trimfill_default <- trimfill_block(fit, s, keep_test = FALSE)
  if ("leave1out" %in% analyses) results$leave1out <- leave1out_block(fit)
  if ("influence" %in% analyses) results$influence <- influence_block(fit)
  if ("cumul" %in% analyses) results$cumul <- cumul_block(fit, order_values)
  if ("leave_out" %in% analyses)
    results$leave_out <- manual_leave_out_block(fit, d, s, form, sparse)
  if ("influence3" %in% analyses)
    results$influence3 <- three_level_influence_block(fit, d, with_cooks = !sparse)
  if ("cumul3" %in% analyses) results$cumul3 <- three_level_cumul_block(d, s, order_values)
  if ("aggregate" %in% analyses) results$aggregate <- aggregate_block(d, s)

  fixture <- list(
    case = sc(id),
    source = sc(source),
    data = data_columns(fd),
    settings = c(settings_json(settings), list(order_by = sc(order_by))),
    results = results,
    metafor_version = sc(as.character(utils::packageVersion("metafor")))
  )
  write_json_file(fixture, file.path(out_dir, paste0(id, ".json")))
  cat(sprintf("%-45s %7.1f s\n", id, proc.time()[["elapsed"]] - t0))
  invisible(NULL)
}

settings_json <- function(settings) {
  out <- list()
  for (nm in names(settings)) {
    v <- settings[[nm]]
    if (length(v) == 0) next
    out[[nm]] <- switch(nm,
      moderators = , categorical = as.character(unlist(v)),
      reference = lapply(v, sc),
      sc(v))
  }
  out
}

two_level <- function(method, test, ...) c(list(model = "two-level", method = method,
                                                test = test), list(...))
three_level <- function(method, test, ...) c(list(model = "three-level", method = method,
                                                  test = test), list(...))

UNI_ALL <- c("regtest", "ranktest", "trimfill", "leave1out", "influence", "cumul")
UNI_MODS <- c("regtest", "ranktest", "influence", "leave_out")
MV_ALL <- c("regtest", "ranktest", "leave_out", "influence3", "cumul3", "aggregate")
MV_MODS <- c("regtest", "ranktest", "leave_out", "influence3")
ZCOR_NOTE <- "escalc(measure = 'ZCOR', ri, ni): yi = atanh(ri), vi = 1/(ni - 3)"

# ---------------------------------------------------------------------------
# dat.molloy2014: conscientiousness and medication adherence (k = 16, two-level)

m <- escalc(measure = "ZCOR", ri = ri, ni = ni, data = dat.molloy2014)
molloy <- make_data(m$yi, m$vi, study = seq_len(nrow(m)), year = m$year,
                    meanage = m$meanage, design = m$design)
molloy_src <- paste("metadat::dat.molloy2014 (Molloy, O'Carroll & Ferguson 2014);",
                    paste0(ZCOR_NOTE, "; study = row number"))
write_case("molloy2014_reml_z", molloy_src, molloy, two_level("REML", "z"), UNI_ALL,
           order_by = "year")
write_case("molloy2014_dl_knha", molloy_src, molloy, two_level("DL", "knha"),
           c(UNI_ALL, "trimfill_default"), order_by = "year")
write_case("molloy2014_reml_z_mods", molloy_src, molloy,
           two_level("REML", "z", moderators = c("meanage", "design")), UNI_MODS)
write_case("molloy2014_pm_knha_mods", molloy_src, molloy,
           two_level("PM", "knha", moderators = c("meanage", "design"),
                     reference = list(design = "prospective")), UNI_MODS)

# ---------------------------------------------------------------------------
# dat.bcg: BCG vaccine trials, log risk ratios (k = 13, two-level)

b <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
bcg <- make_data(b$yi, b$vi, study = b$trial, year = b$year, ablat = b$ablat)
bcg_src <- paste("metadat::dat.bcg (Colditz et al. 1994);",
                 "escalc(measure = 'RR', ai = tpos, bi = tneg, ci = cpos, di = cneg):",
                 "log risk ratio; study = trial")
write_case("bcg_reml_z", bcg_src, bcg, two_level("REML", "z"), UNI_ALL, order_by = "year")
write_case("bcg_ee_z", bcg_src, bcg, two_level("EE", "z"), UNI_ALL, order_by = "year")
write_case("bcg_ml_knha", bcg_src, bcg, two_level("ML", "knha"), c(UNI_ALL, "trimfill_default"),
           order_by = "year")
write_case("bcg_reml_knha_mods", bcg_src, bcg,
           two_level("REML", "knha", moderators = "ablat"), UNI_MODS)

# ---------------------------------------------------------------------------
# dat.hackshaw1998: passive smoking and lung cancer, log odds ratios (k = 37, two-level);
# the textbook trim-and-fill example.

h <- dat.hackshaw1998
hack <- make_data(h$yi, h$vi, study = h$study, year = h$year, design = h$design)
hack_src <- paste("metadat::dat.hackshaw1998 (Hackshaw, Law & Wald 1997);",
                  "yi, vi as supplied (log odds ratios); study = study")
write_case("hackshaw1998_ee_z", hack_src, hack, two_level("EE", "z"), UNI_ALL,
           order_by = "year")
write_case("hackshaw1998_reml_z", hack_src, hack, two_level("REML", "z"), UNI_ALL,
           order_by = "year")
write_case("hackshaw1998_he_z", hack_src, hack, two_level("HE", "z"), UNI_ALL,
           order_by = "year")

# ---------------------------------------------------------------------------
# dat.mcdaniel1994: employment interviews and job performance (k = 160, two-level); sample
# sizes repeat, so vi has ties and ranktest uses the normal approximation.

mc <- escalc(measure = "ZCOR", ri = ri, ni = ni, data = dat.mcdaniel1994)
mcd <- make_data(mc$yi, mc$vi, study = mc$study, order = seq_len(nrow(mc)))
mcd_src <- paste("metadat::dat.mcdaniel1994 (McDaniel et al. 1994);",
                 paste0(ZCOR_NOTE, "; order = row number"))
write_case("mcdaniel1994_reml_z", mcd_src, mcd, two_level("REML", "z"), UNI_ALL,
           order_by = "order")
write_case("mcdaniel1994_sj_knha", mcd_src, mcd, two_level("SJ", "knha"),
           c("regtest", "trimfill", "leave1out", "influence"))

# ---------------------------------------------------------------------------
# dat.assink2016: delinquency and psychopathology (three-level, 17 studies, k = 100)

as16 <- dat.assink2016
assink <- make_data(as16$yi, as16$vi, study = as16$study, es = as16$esid,
                    year = as16$year, pubstatus = as16$pubstatus, deltype = as16$deltype)
assink_src <- paste("metadat::dat.assink2016 (Assink et al. 2016);",
                    "yi, vi as supplied (SMDs); study = study, es = esid;",
                    "year as supplied (centred)")
write_case("assink2016_reml_z", assink_src, assink, three_level("REML", "z"), MV_ALL,
           order_by = "year")
write_case("assink2016_ml_t_mods", assink_src, assink,
           three_level("ML", "t", moderators = c("year", "deltype")), MV_MODS)

# ---------------------------------------------------------------------------
# dat.konstantopoulos2011: schools within districts (three-level, 11 districts, k = 56)

ko <- dat.konstantopoulos2011
# year is centred: with the uncentred year, rma.mv's optimum is accurate only to ~1e-6
# (tests/fixtures/metafor/README.md), too coarse for comparisons of refitted p-values.
konst <- make_data(ko$yi, ko$vi, study = ko$district, es = ko$school,
                   year = ko$year - mean(ko$year))
konst_src <- paste("metadat::dat.konstantopoulos2011 (Konstantopoulos 2011);",
                   "yi, vi as supplied (SMDs); study = district, es = school;",
                   "year centred at its mean")
write_case("konstantopoulos2011_ml_t", konst_src, konst, three_level("ML", "t"),
           c(MV_ALL[MV_ALL != "cumul3"]))
write_case("konstantopoulos2011_reml_z_mods", konst_src, konst,
           three_level("REML", "z", moderators = "year"), MV_MODS)

# ---------------------------------------------------------------------------
# The project's default dataset: data/alliance_simulated.csv (simulated, 152 studies,
# 811 correlations), Fisher z; log_PTR = log(n / n_therapists), constant within a study.
#
# One rma.uni fit of all 811 effect sizes takes metafor several seconds (it works with
# 811 x 811 matrices), so leave1out, influence and cumul, which refit once per effect size,
# use the study-level data (aggregate(..., struct = "ID"), 152 studies); the 811 effect
# sizes get regtest, ranktest and trim-and-fill with the automatically chosen side.

al <- utils::read.csv(file.path(repo_dir, "data", "alliance_simulated.csv"),
                      stringsAsFactors = FALSE)
ae <- escalc(measure = "ZCOR", ri = al$r, ni = al$n)
alliance <- make_data(ae$yi, ae$vi, study = al$study, es = al$es_id, year = al$year,
                      log_PTR = log(al$n / al$n_therapists))
alliance_src <- paste("data/alliance_simulated.csv (simulated by alliance_core.teaching.simulate,",
                      "seed 2021);", ZCOR_NOTE, "; study = study, es = es_id;",
                      "log_PTR = log(n / n_therapists)")

agg_es <- escalc(measure = "GEN", yi = alliance$yi, vi = alliance$vi)
agg_es$study <- alliance$study
agg <- aggregate(agg_es, cluster = study, struct = "ID")
first <- match(agg$study, alliance$study)
studies <- make_data(agg$yi, agg$vi, study = agg$study, year = alliance$year[first],
                     log_PTR = alliance$log_PTR[first])
studies_src <- paste(alliance_src, "; aggregated to one effect per study with",
                     "aggregate(escalc, cluster = study, struct = 'ID')")

write_case("alliance_reml_z", alliance_src, alliance, two_level("REML", "z"),
           c("regtest", "ranktest", "trimfill_auto"))
write_case("alliance_studies_reml_z", studies_src, studies, two_level("REML", "z"), UNI_ALL,
           order_by = "year")
write_case("alliance_studies_reml_knha_ptr", studies_src, studies,
           two_level("REML", "knha", moderators = "log_PTR"), UNI_MODS)
write_case("alliance3_reml_z", alliance_src, alliance, three_level("REML", "z"),
           c("regtest", "ranktest", "aggregate"), sparse = TRUE)
# Leaving out each of the 152 studies refits rma.mv 152 times (seconds each); the same
# refits give the study-level Cook's distances (see manual_leave_out_block).
write_case("alliance3_reml_z_ptr", alliance_src, alliance,
           three_level("REML", "z", moderators = "log_PTR"),
           c("regtest", "leave_out", "influence3"), sparse = TRUE)
