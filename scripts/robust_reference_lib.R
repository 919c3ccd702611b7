# Reference cluster-robust inference (clubSandwich, metafor robust) and
# aggregation (metafor aggregate.escalc), used to check alliance_core.robust and
# alliance_core.aggregate.
#
# robust_reference(data, spec) fits one model with metafor and returns
# clubSandwich's CR2 results (coef_test / conf_int with Satterthwaite df,
# Wald_test HTZ) and metafor's robust(adjust = TRUE) CR1 results.
# aggregate_reference(data, spec) returns metafor's aggregate() of the data.
# The JSON schema is described in tests/fixtures/robust/README.md.
#
# spec fields:
#   model        "two-level" (rma.uni), "three-level" (rma.mv ~ 1 | study/es) or
#                "che" (rma.mv(yi, V, ~ 1 | study/es), V = vcalc(vi, study, obs = es, rho))
#   method       "REML" (default) or "ML"; two-level also the other rma.uni estimators
#   rho          within-study sampling correlation (model "che" only)
#   moderators   moderator columns; text columns (or those in `categorical`) are factors
#                with levels in level_order() (alphabetical, first level the reference)
#   cluster      robust clustering column (default "study")
#   wald_terms   list of coefficient-name vectors for extra HTZ tests
#   level        confidence level (default 0.95)

robust_lib_dir <- local({
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  dirname(normalizePath(sub("^--file=", "", file_arg[1])))
})
source(file.path(robust_lib_dir, "metafor_reference_lib.R"))
suppressPackageStartupMessages(library(clubSandwich))

# Specs written here wrap scalars with sc() (for JSON output); read them plainly.
plain_spec <- function(spec) {
  lapply(spec, function(x) if (inherits(x, "json_scalar")) unclass(x)[[1]] else x)
}

robust_prepare <- function(data, spec) {
  d <- as.data.frame(data, stringsAsFactors = FALSE, check.names = FALSE)
  d$yi <- as.numeric(d$yi)
  d$vi <- as.numeric(d$vi)
  d$study <- as.character(d$study)
  if (!is.null(d$es)) d$es <- as.character(d$es)
  cats <- as_char_vec(spec$categorical)
  for (m in as_char_vec(spec$moderators)) {
    x <- d[[m]]
    if (is.character(x) || is.logical(x) || is.factor(x) || m %in% cats) {
      x <- as_category(x)
      d[[m]] <- factor(x, levels = level_order(x))
    } else {
      d[[m]] <- as.numeric(x)
    }
  }
  d
}

robust_fit <- function(d, spec) {
  form <- moderator_formula(as_char_vec(spec$moderators))
  method <- spec$method %||% "REML"
  level <- 100 * (spec$level %||% 0.95)
  model <- spec$model
  if (model == "two-level") {
    for (ctl in UNI_CONTROLS) {
      fit <- tryCatch(
        if (is.null(form)) rma.uni(yi, vi, data = d, method = method, level = level, control = ctl)
        else rma.uni(yi, vi, mods = form, data = d, method = method, level = level, control = ctl),
        error = function(e) e)
      if (!inherits(fit, "error")) return(fit)
    }
    stop("rma.uni failed: ", conditionMessage(fit))
  }
  V <- if (model == "che") {
    vcalc(vi, cluster = study, obs = es, rho = spec$rho, data = d)
  } else d$vi
  for (nm in names(MV_CONTROLS)) {
    fit <- tryCatch(
      if (is.null(form)) rma.mv(yi, V, random = ~ 1 | study/es, data = d, method = method,
                                level = level, control = MV_CONTROLS[[nm]])
      else rma.mv(yi, V, mods = form, random = ~ 1 | study/es, data = d, method = method,
                  level = level, control = MV_CONTROLS[[nm]]),
      error = function(e) e)
    if (!inherits(fit, "error")) return(fit)
  }
  stop("rma.mv failed: ", conditionMessage(fit))
}

# Run an expression, returning its value or the error message (clubSandwich and
# metafor refuse some designs; the refusal is part of the reference).
attempt <- function(expr) {
  warnings <- character(0)
  value <- withCallingHandlers(
    tryCatch(expr, error = function(e) structure(conditionMessage(e), class = "failed")),
    warning = function(w) {
      warnings <<- c(warnings, conditionMessage(w))
      invokeRestart("muffleWarning")
    })
  list(value = value, warnings = warnings)
}

wald_block <- function(w) {
  if (inherits(w, "failed")) return(list(error = sc(unclass(w))))
  list(Fstat = sc(w$Fstat), delta = sc(w$delta), df_num = sc(w$df_num),
       df_denom = sc(w$df_denom), p_val = sc(w$p_val))
}

robust_reference <- function(data, spec) {
  spec <- plain_spec(spec)
  d <- robust_prepare(data, spec)
  fit <- robust_fit(d, spec)
  cluster <- as.character(d[[spec$cluster %||% "study"]])
  p <- fit$p
  names_b <- rownames(fit$beta)
  level <- spec$level %||% 0.95

  vc <- clubSandwich::vcovCR(fit, cluster = cluster, type = "CR2")
  ct <- clubSandwich::coef_test(fit, vcov = vc, test = "Satterthwaite")
  ci <- clubSandwich::conf_int(fit, vcov = vc, level = level, test = "Satterthwaite")
  cr2 <- list(
    se = as.numeric(ct$SE), tstat = as.numeric(ct$tstat), df = as.numeric(ct$df_Satt),
    pval = as.numeric(ct$p_Satt), ci_lb = as.numeric(ci$CI_L), ci_ub = as.numeric(ci$CI_U),
    vcov = lapply(seq_len(p), function(i) as.numeric(as.matrix(vc)[i, ])))
  cr2$QM <- if (p > 1) {
    wald_block(attempt(clubSandwich::Wald_test(
      fit, constraints = clubSandwich::constrain_zero(2:p), vcov = vc, test = "HTZ"))$value)
  } else NULL
  cr2$wald <- lapply(spec$wald_terms, function(terms) {
    terms <- as_char_vec(terms)
    c(list(terms = terms), wald_block(attempt(clubSandwich::Wald_test(
      fit, constraints = clubSandwich::constrain_zero(terms), vcov = vc, test = "HTZ"))$value))
  })

  cr1_run <- attempt(metafor::robust(fit, cluster = cluster, adjust = TRUE))
  cr1 <- if (inherits(cr1_run$value, "failed")) {
    list(error = sc(unclass(cr1_run$value)))
  } else {
    r <- cr1_run$value
    list(se = as.numeric(r$se), tstat = as.numeric(r$zval), df = sc(r$dfs),
         pval = as.numeric(r$pval), ci_lb = as.numeric(r$ci.lb), ci_ub = as.numeric(r$ci.ub),
         QM = sc(if (p > 1) r$QM else NA), QM_df = as.numeric(r$QMdf),
         QM_pval = sc(if (p > 1) r$QMp else NA))
  }

  list(
    coef_names = names_b,
    beta = as.numeric(fit$beta),
    sigma2 = if (inherits(fit, "rma.mv")) as.numeric(fit$sigma2) else NULL,
    tau2 = if (inherits(fit, "rma.mv")) NULL else sc(fit$tau2),
    n_clusters = sc(length(unique(cluster))),
    cr2 = cr2,
    cr1 = cr1,
    versions = list(metafor = sc(as.character(packageVersion("metafor"))),
                    clubSandwich = sc(as.character(packageVersion("clubSandwich"))))
  )
}

# metafor's aggregate(escalc, cluster, rho, struct = "CS", addk = TRUE), plus the
# columns that vary within some cluster (NA counted as a value).
aggregate_reference <- function(data, spec) {
  spec <- plain_spec(spec)
  d <- as.data.frame(data, stringsAsFactors = FALSE, check.names = FALSE)
  cl <- spec$cluster %||% "study"
  e <- escalc(yi = yi, vi = vi, data = d)
  agg <- aggregate(e, cluster = e[[cl]], rho = spec$rho, addk = TRUE)
  others <- setdiff(names(d), c("yi", "vi", cl))
  varying <- others[vapply(others, function(col) {
    any(tapply(d[[col]], d[[cl]], function(x) length(unique(x)) > 1))
  }, logical(1))]
  carried <- setdiff(others, varying)
  list(
    cluster = as.character(agg[[cl]]),
    yi = as.numeric(agg$yi),
    vi = as.numeric(agg$vi),
    ki = as.integer(agg$ki),
    varying = as.character(varying),
    carried = lapply(stats::setNames(carried, carried), function(col) {
      x <- agg[[col]]
      if (is.factor(x)) as.character(x) else x
    }),
    versions = list(metafor = sc(as.character(packageVersion("metafor"))))
  )
}
