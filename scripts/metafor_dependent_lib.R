# Reference fits of three-level models with dependent sampling errors (CHE).
#
# dependent_fit(data, settings) fits, with metafor,
#   V <- vcalc(vi, cluster = study, obs = es, rho = rho, data = d)   (V = vi when rho is null)
#   rma.mv(yi, V, mods, random = ~ 1 | study/es, sigma2 = c(fixed or NA, fixed or NA))
# and returns every reported number in the schema of tests/fixtures/metafor_dependent/README.md,
# plus profile-likelihood intervals (confint) and likelihood-ratio tests (anova) against
# reduced models.  Helpers (JSON output, data preparation, optimizer settings) come from
# metafor_reference_lib.R, which must be sourced first.
#
# Settings beyond those of reference_fit(): rho (null or a number in [0, 1)), fix_sigma2
# (e.g. {"es": 0}), confint (true/false), and compare: a list of reduced models, each
# {"name": ..., "fix_sigma2": ..., "moderators": [...], "method": ...} (fields not given are
# those of the full model).

dependent_settings <- function(settings) {
  s <- normalise_settings(c(settings[setdiff(names(settings),
                                             c("rho", "fix_sigma2", "confint", "compare"))],
                            list(model = "three-level")))
  s$rho <- if (is.null(settings$rho)) NULL else as.numeric(settings$rho)
  fix <- settings$fix_sigma2 %||% list()
  s$sigma2 <- c(if (is.null(fix$study)) NA else as.numeric(fix$study),
                if (is.null(fix$es)) NA else as.numeric(fix$es))
  s$confint <- isTRUE(settings$confint)
  s$compare <- settings$compare %||% list()
  s
}

sampling_matrix <- function(d, rho) {
  if (is.null(rho)) return(d$vi)
  vcalc(vi, cluster = study, obs = es, rho = rho, data = d)
}

che_call <- function(d, V, s, form, control) {
  if (is.null(form)) {
    rma.mv(yi, V, random = ~ 1 | study/es, data = d, method = s$method, test = s$test,
           level = s$level, sigma2 = s$sigma2, control = control)
  } else {
    rma.mv(yi, V, mods = form, random = ~ 1 | study/es, data = d, method = s$method,
           test = s$test, level = s$level, sigma2 = s$sigma2, control = control)
  }
}

fit_che <- function(d, V, s, form, wenv) {
  last_error <- NULL
  for (nm in names(MV_CONTROLS)) {
    fit <- tryCatch(collect_warnings(che_call(d, V, s, form, MV_CONTROLS[[nm]]), wenv),
                    error = function(e) e)
    if (!inherits(fit, "error")) return(list(fit = fit, optimizer = nm))
    last_error <- fit
  }
  stop("rma.mv failed: ", conditionMessage(last_error))
}

# I^2 with the typical sampling variance (k - p) / tr(P), P built from W = V^-1
# (metafor's "I^2 for multilevel and multivariate models"; W = diag(1/vi) when V is diagonal).
che_i2 <- function(fit) {
  V <- as.matrix(fit$V)
  W <- solve(V)
  X <- fit$X
  P <- W - W %*% X %*% solve(crossprod(X, W %*% X)) %*% crossprod(X, W)
  vt <- (fit$k - fit$p) / sum(diag(P))
  total <- sum(fit$sigma2)
  list(I2 = 100 * total / (total + vt), I2_levels = 100 * fit$sigma2 / (total + vt),
       H2 = (total + vt) / vt)
}

fit_stats_block <- function(fit) {
  fs <- fitstats(fit)
  list(loglik = sc(fs[1, 1]), deviance = sc(fs[2, 1]), aic = sc(fs[3, 1]),
       bic = sc(fs[4, 1]), aicc = sc(fs[5, 1]), parms = sc(fit$parms))
}

profile_intervals <- function(fit, wenv) {
  ci <- collect_warnings(confint(fit, control = CONFINT_CONTROL), wenv)
  parts <- if (inherits(ci, "list.confint.rma")) ci[seq_along(ci)] else list(ci)
  parts <- Filter(function(x) inherits(x, "confint.rma"), parts)
  out <- list(component = character(0), estimate = numeric(0), ci_lb = numeric(0),
              ci_ub = numeric(0))
  for (part in parts) {
    row <- part$random[1, ]
    name <- rownames(part$random)[1]  # "sigma^2.1" or "sigma^2.2"
    out$component <- c(out$component,
                       if (grepl("1$", name)) "sigma2.study" else "sigma2.es")
    out$estimate <- c(out$estimate, as.numeric(row[["estimate"]]))
    out$ci_lb <- c(out$ci_lb, as.numeric(row[["ci.lb"]]))
    out$ci_ub <- c(out$ci_ub, as.numeric(row[["ci.ub"]]))
  }
  out
}

dependent_fit <- function(data, settings) {
  s <- dependent_settings(settings)
  prep <- prepare_data(data, s)
  d <- prep$data
  V <- sampling_matrix(d, s$rho)
  form <- moderator_formula(s$moderators)
  has_mods <- length(s$moderators) > 0
  wenv <- new.env()
  wenv$warnings <- character(0)
  fitted <- fit_che(d, V, s, form, wenv)
  fit <- fitted$fit
  coef_names <- rownames(fit$beta)

  res <- list()
  res$coefficients <- list(term = coef_names, estimate = as.numeric(fit$beta),
                           se = as.numeric(fit$se), statistic = as.numeric(fit$zval),
                           pval = as.numeric(fit$pval), ci_lb = as.numeric(fit$ci.lb),
                           ci_ub = as.numeric(fit$ci.ub))
  res$sigma2 <- as.numeric(fit$sigma2)
  res$QE <- sc(fit$QE)
  res$QE_df <- sc(fit$k - fit$p)
  res$QE_pval <- sc(fit$QEp)
  if (has_mods) {
    res$QM <- sc(fit$QM)
    res$QM_df <- sc(fit$QMdf[1])
    res$QM_df2 <- sc(fit$QMdf[2])
    res$QM_pval <- sc(fit$QMp)
  } else {
    res$QM <- res$QM_df <- res$QM_df2 <- res$QM_pval <- sc(NULL)
  }
  i2 <- che_i2(fit)
  res$I2 <- sc(i2$I2)
  res$I2_levels <- as.numeric(i2$I2_levels)
  res$H2 <- sc(i2$H2)
  res$R2 <- sc(NULL)
  if (has_mods) {
    reduced <- fit_che(d, V, s, NULL, wenv)$fit
    total0 <- sum(reduced$sigma2)
    if (total0 > 0) res$R2 <- sc(max(0, 100 * (total0 - sum(fit$sigma2)) / total0))
  }
  res <- c(res, fit_stats_block(fit))
  res$k <- sc(fit$k)
  res$p <- sc(fit$p)
  res$n_studies <- sc(fit$s.nlevels[1])
  if (!has_mods) {
    res$predict <- prediction_block(predict(fit))
    res$predict_r <- prediction_block(predict(fit, transf = transf.ztor))
  } else if (length(s$newdata) > 0) {
    nm <- newmods_matrix(s$newdata, d, s, form, coef_names)
    res$predict <- prediction_block(predict(fit, newmods = nm))
    res$predict_r <- prediction_block(predict(fit, newmods = nm, transf = transf.ztor))
  }
  if (length(s$wald_terms) > 0) {
    a <- anova(fit, btt = match(s$wald_terms, coef_names))
    res$wald <- list(terms = s$wald_terms, QM = sc(a$QM), QM_df = sc(a$QMdf[1]),
                     QM_df2 = sc(a$QMdf[2]), QM_pval = sc(a$QMp))
  }
  res$weights <- as.numeric(weights(fit))
  if (s$confint) res$variance_ci <- profile_intervals(fit, wenv)
  if (length(s$compare) > 0) {
    res$compare <- lapply(s$compare, function(spec) {
      rs <- s
      if (!is.null(spec$method)) rs$method <- spec$method
      if (!is.null(spec$moderators)) rs$moderators <- as_char_vec(spec$moderators)
      fix <- spec$fix_sigma2 %||% list()
      rs$sigma2 <- c(if (is.null(fix$study)) NA else as.numeric(fix$study),
                     if (is.null(fix$es)) NA else as.numeric(fix$es))
      full <- fit
      if (!identical(rs$method, s$method))
        full <- fit_che(d, V, utils::modifyList(s, list(method = rs$method)), form, wenv)$fit
      rfit <- fit_che(d, V, rs, moderator_formula(rs$moderators), wenv)$fit
      a <- anova(full, rfit)
      # anova() takes the model with more parameters as the full one; record them that way.
      if (full$parms < rfit$parms) {
        swap <- full
        full <- rfit
        rfit <- swap
      }
      list(name = sc(spec$name), method = sc(rs$method),
           reduced_moderators = rs$moderators,
           reduced_fix_sigma2 = lapply(fix, sc),
           LRT = sc(a$LRT), df = sc(a$parms.f - a$parms.r), pval = sc(a$pval),
           full = c(fit_stats_block(full), list(QE = sc(full$QE))),
           reduced = c(fit_stats_block(rfit), list(QE = sc(rfit$QE))))
    })
  }
  res$factor_levels <- if (length(prep$levels)) prep$levels else NULL
  res$fit_control <- list(optimizer = sc(fitted$optimizer))
  res$metafor_version <- sc(as.character(utils::packageVersion("metafor")))
  res$warnings <- unique(wenv$warnings)
  res
}
