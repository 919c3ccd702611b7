# Interaction and marginal-means reference: metafor fits of `mods = ~ a * b` with the Wald
# test of every term and the marginal means of every categorical moderator (model-based
# predict() and clubSandwich CR2 linear_contrast). Shared by
# scripts/make_interaction_fixtures.R (fixtures) and scripts/interaction_reference.R (the
# live test). Needs metafor_reference_lib.R (level_order, UNI_CONTROLS, MV_CONTROLS) sourced.

suppressPackageStartupMessages({
  library(metafor)
  library(clubSandwich)
})

# -- fitting --------------------------------------------------------------------
as_factors <- function(d, moderators) {
  for (m in moderators) {
    if (is.character(d[[m]])) d[[m]] <- factor(d[[m]], levels = level_order(d[[m]]))
  }
  d
}

fit_case <- function(d, spec) {
  form <- stats::as.formula(spec$formula)
  level <- 95
  if (spec$model == "two-level") {
    for (ctl in UNI_CONTROLS) {
      fit <- tryCatch(rma.uni(yi, vi, mods = form, data = d, method = spec$method,
                              test = spec$test, level = level, control = ctl),
                      error = function(e) e)
      if (!inherits(fit, "error")) return(fit)
    }
    stop("rma.uni failed: ", conditionMessage(fit))
  }
  V <- if (spec$model == "che") vcalc(vi, cluster = study, obs = es, rho = spec$rho, data = d)
       else d$vi
  for (nm in names(MV_CONTROLS)) {
    fit <- tryCatch(rma.mv(yi, V, mods = form, random = ~ 1 | study/es, data = d,
                           method = spec$method, test = spec$test, level = level,
                           control = MV_CONTROLS[[nm]]),
                    error = function(e) e)
    if (!inherits(fit, "error")) return(fit)
  }
  stop("rma.mv failed: ", conditionMessage(fit))
}

# The coefficient positions of each term of the formula (R's "assign").
term_positions <- function(d, form) {
  mm <- stats::model.matrix(form, d)
  labels <- attr(stats::terms(form), "term.labels")
  assign <- attr(mm, "assign")
  out <- lapply(seq_along(labels), function(i) which(assign == i))
  names(out) <- labels
  out
}

# Marginal means of a categorical moderator `focal`, computed here directly
# from the rule emmeans documents for weights = "proportional": the reference
# grid crosses every level of each factor with each numeric moderator at its
# mean over the fitted rows; the prediction rows of the grid are averaged over
# the other factors with weights proportional to the frequencies, in the
# fitted data, of their level combinations.
marginal_rows <- function(d, form, factors, focal) {
  others <- setdiff(factors, focal)
  vars <- all.vars(form)
  grid_base <- lapply(vars, function(v) {
    if (is.factor(d[[v]])) levels(d[[v]]) else mean(d[[v]])
  })
  names(grid_base) <- vars
  rows <- list()
  weights_used <- list()
  for (lev in levels(d[[focal]])) {
    g <- grid_base
    g[[focal]] <- lev
    grid <- expand.grid(g, stringsAsFactors = FALSE)
    for (v in factors) grid[[v]] <- factor(grid[[v]], levels = levels(d[[v]]))
    mm <- stats::model.matrix(stats::delete.response(stats::terms(form)), grid)
    if (length(others)) {
      combo_data <- do.call(paste, c(lapply(others, function(v) as.character(d[[v]])), sep = "\r"))
      combo_grid <- do.call(paste, c(lapply(others, function(v) as.character(grid[[v]])), sep = "\r"))
      counts <- table(factor(combo_data, levels = unique(combo_grid)))
      w <- as.numeric(counts[combo_grid]) / length(combo_data)
    } else {
      w <- 1
    }
    rows[[lev]] <- colSums(mm * w)
    weights_used[[lev]] <- w
  }
  do.call(rbind, rows)
}

case_result <- function(d, spec) {
  d <- as_factors(d, spec$moderators)
  form <- stats::as.formula(spec$formula)
  fit <- fit_case(d, spec)
  names_b <- rownames(fit$beta)
  positions <- term_positions(d, form)
  wald <- lapply(names(positions), function(term) {
    a <- anova(fit, btt = positions[[term]])
    list(term = term, coefficients = I(names_b[positions[[term]]]),
         statistic = a$QM, df = a$QMdf[1], df2 = if (is.na(a$QMdf[2])) NULL else a$QMdf[2],
         pval = a$QMp)
  })
  factors <- spec$moderators[vapply(spec$moderators, function(m) is.factor(d[[m]]), logical(1))]
  means <- lapply(factors, function(focal) {
    L <- marginal_rows(d, form, factors, focal)
    pr <- predict(fit, newmods = L[, -1, drop = FALSE])
    vc <- vcovCR(fit, cluster = d$study, type = "CR2")
    lc <- linear_contrast(fit, vcov = vc, contrasts = L, test = "Satterthwaite", level = 0.95)
    list(focal = focal, levels = rownames(L), rows = unname(L),
         model = list(pred = as.numeric(pr$pred), se = as.numeric(pr$se),
                      ci_lb = as.numeric(pr$ci.lb), ci_ub = as.numeric(pr$ci.ub),
                      pi_lb = as.numeric(pr$pi.lb), pi_ub = as.numeric(pr$pi.ub)),
         cr2 = list(est = lc$Est, se = lc$SE, df = lc$df, ci_lb = lc$CI_L, ci_ub = lc$CI_U))
  })
  het <- if (spec$model == "two-level") list(tau2 = fit$tau2) else list(sigma2 = fit$sigma2)
  c(list(
    coefficients = list(names = names_b, estimate = as.numeric(fit$beta),
                        se = fit$se, statistic = fit$zval, pval = fit$pval,
                        ci_lb = fit$ci.lb, ci_ub = fit$ci.ub),
    vb = unname(fit$vb),
    QM = fit$QM, QM_df = fit$QMdf[1], QM_pval = fit$QMp,
    loglik = as.numeric(logLik(fit)),
    wald = wald, marginal_means = means,
    metafor_version = as.character(packageVersion("metafor")),
    clubSandwich_version = as.character(packageVersion("clubSandwich"))), het)
}

