# Reference fits from R's metafor, used to check alliance_core.fit.
#
# reference_fit(data, settings) fits one model with metafor and returns the
# result in the fixture schema described in tests/fixtures/metafor/README.md.
# to_json() serialises it with full double precision (the fewest of 15, 16 or
# 17 significant digits that read back to the same double).
#
# Two-level models use rma.uni(); three-level models use
# rma.mv(yi, vi, mods, random = ~ 1 | study/es).  Both are fitted with much
# tighter convergence settings than metafor's defaults, because the Python
# engine converges its variance components to about 1e-10 and the parity tests
# compare at that scale.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

`%||%` <- function(a, b) if (is.null(a)) b else a

TWO_LEVEL_METHODS <- c("EE", "DL", "HE", "PM", "SJ", "ML", "REML")
THREE_LEVEL_METHODS <- c("ML", "REML")

# rma.uni: Fisher scoring (ML/REML) stops when |change in tau2| < threshold;
# PM and the Q-profile use uniroot() with tolerance `tol`, which is also the
# margin of metafor's "ll at tau2 = 0 is higher" check.  Later entries are
# fallbacks for data on which the first setting does not converge.
UNI_CONTROLS <- list(
  list(threshold = 1e-12, tol = 1e-12, maxiter = 10000),
  list(threshold = 1e-12, tol = 1e-12, maxiter = 10000, stepadj = 0.5),
  list(threshold = 1e-10, tol = 1e-10, maxiter = 10000, stepadj = 0.25)
)

# rma.mv optimises log(sigma2) with finite-difference gradients of a
# log-likelihood that is only accurate to ~1e-14, so no optimizer setting gets
# the variance components much closer than ~1e-8..1e-7 (relative) to the exact
# stationary point.  optim/BFGS with central-difference steps of 1e-5 and
# reltol = 1e-15 did best in our checks; metafor's default (nlminb) is off by up
# to ~1e-6 (see the README).  optim's parameter vector holds the two sigma2
# values plus one placeholder each for tau2, rho, gamma2 and phi, so ndeps has
# length 6.  The later entries are fallbacks if BFGS reports non-convergence.
MV_CONTROLS <- list(
  "optim/BFGS" = list(optimizer = "optim", optmethod = "BFGS", reltol = 1e-15,
                      maxit = 10000, ndeps = rep(1e-5, 6)),
  "nlminb" = list(optimizer = "nlminb", rel.tol = 1e-12, eval.max = 10000,
                  iter.max = 10000),
  "nlminb(default)" = list(optimizer = "nlminb")
)

CONFINT_CONTROL <- list(tol = 1e-12, maxiter = 10000)

# Fields of a result, in output order (all present; null when not applicable).
RESULT_KEYS <- c(
  "coefficients", "tau2", "tau2_se", "sigma2",
  "QE", "QE_df", "QE_pval", "QM", "QM_df", "QM_df2", "QM_pval",
  "I2", "H2", "I2_levels", "R2", "R2_sigma2_reduced",
  "loglik", "deviance", "aic", "bic", "aicc", "fitstats_type",
  "tau2_ci", "I2_ci", "H2_ci", "k", "p", "n_studies",
  "predict", "predict_r", "wald", "weights",
  "factor_levels", "n_dropped", "fit_control", "metafor_version", "warnings"
)

# ---------------------------------------------------------------------------
# JSON output

# Mark a value as a JSON scalar; everything else atomic is written as an array.
sc <- function(x) {
  v <- if (is.null(x) || length(x) == 0) NA else x[[1]]
  if (is.factor(v)) v <- as.character(v)
  structure(list(v), class = "json_scalar")
}

json_number <- function(x) {
  if (is.na(x) || !is.finite(x)) return("null")
  for (digits in 15:17) {
    s <- sprintf("%.*g", digits, x)
    if (as.numeric(s) == x) break
  }
  s
}

json_atom <- function(x) {
  if (is.na(x)) return("null")
  if (is.character(x)) return(as.character(jsonlite::toJSON(jsonlite::unbox(x))))
  if (is.logical(x)) return(if (x) "true" else "false")
  json_number(as.numeric(x))
}

to_json <- function(x, indent = 0, pretty_depth = 2) {
  pad <- function(n) strrep("  ", n)
  if (is.null(x)) return("null")
  if (inherits(x, "json_scalar")) return(json_atom(unclass(x)[[1]]))
  if (is.factor(x)) x <- as.character(x)
  if (is.list(x)) {
    nms <- names(x)
    is_object <- !is.null(nms) && length(x) > 0
    if (!is_object && !is.null(nms) && length(x) == 0) return("{}")
    parts <- vapply(seq_along(x), function(i) {
      val <- to_json(x[[i]], indent + 1, pretty_depth)
      if (is_object) paste0(json_atom(nms[[i]]), ": ", val) else val
    }, character(1))
    open <- if (is_object) "{" else "["
    close <- if (is_object) "}" else "]"
    if (length(parts) == 0) return(paste0(open, close))
    if (indent < pretty_depth) {
      return(paste0(open, "\n", pad(indent + 1),
                    paste(parts, collapse = paste0(",\n", pad(indent + 1))),
                    "\n", pad(indent), close))
    }
    return(paste0(open, paste(parts, collapse = ", "), close))
  }
  if (is.atomic(x)) {
    x <- unname(x)
    return(paste0("[", paste(vapply(seq_along(x), function(i) json_atom(x[i]),
                                     character(1)), collapse = ", "), "]"))
  }
  stop("cannot serialise an object of class ", class(x)[1])
}

write_json_file <- function(x, path) {
  writeLines(to_json(x), path, useBytes = TRUE)
}

# ---------------------------------------------------------------------------
# Settings and data

as_char_vec <- function(x) if (is.null(x)) character(0) else as.character(unlist(x))

normalise_settings <- function(settings) {
  s <- list()
  s$model <- settings$model %||% "two-level"
  if (!s$model %in% c("two-level", "three-level"))
    stop("settings$model must be 'two-level' or 'three-level', not '", s$model, "'")
  s$method <- settings$method %||% "REML"
  allowed <- if (s$model == "two-level") TWO_LEVEL_METHODS else THREE_LEVEL_METHODS
  if (!s$method %in% allowed)
    stop("method '", s$method, "' is not available for a ", s$model, " model (",
         paste(allowed, collapse = ", "), ")")
  s$test <- settings$test %||% "z"
  tests <- if (s$model == "two-level") c("z", "knha") else c("z", "t")
  if (!s$test %in% tests)
    stop("test '", s$test, "' is not available for a ", s$model, " model (",
         paste(tests, collapse = ", "), ")")
  s$moderators <- as_char_vec(settings$moderators)
  s$categorical <- as_char_vec(settings$categorical)
  ref <- settings$reference %||% list()
  s$reference <- lapply(ref, function(v) as.character(unlist(v)))
  s$level <- as.numeric(settings$level %||% 0.95)
  if (s$level > 1) s$level <- s$level / 100
  s$newdata <- settings$newdata %||% list()
  s$wald_terms <- as_char_vec(settings$wald_terms)
  s$check_convergence <- isTRUE(settings$check_convergence)
  unknown_ref <- setdiff(names(s$reference), s$moderators)
  if (length(unknown_ref))
    stop("reference given for columns that are not moderators: ",
         paste(unknown_ref, collapse = ", "))
  s
}

# Category labels as text.  Boolean columns (R logical, or text written as
# True/False by Python) become "TRUE"/"FALSE", so a coefficient reads e.g.
# `rctTRUE` whichever way the data arrived.
as_category <- function(x) {
  if (is.factor(x)) x <- as.character(x)
  if (is.logical(x)) return(ifelse(is.na(x), NA_character_, ifelse(x, "TRUE", "FALSE")))
  x <- as.character(x)
  if (length(x) && all(is.na(x) | x %in% c("TRUE", "FALSE", "True", "False", "true", "false")))
    x <- toupper(x)
  x
}

# Alphabetical order of category labels that does not depend on the locale
# (R's factor() sorts by the locale's collation, which differs between
# machines): compare case-folded labels by code point, and on ties put lower
# case first.  The same rule as Python's
# sorted(levels, key=lambda s: (s.casefold(), s.swapcase())) for ASCII labels.
level_order <- function(levels) {
  levels <- unique(as.character(levels))
  swapcase <- vapply(levels, function(s) {
    ch <- strsplit(s, "")[[1]]
    up <- ch == toupper(ch) & ch != tolower(ch)
    paste(ifelse(up, tolower(ch), toupper(ch)), collapse = "")
  }, character(1), USE.NAMES = FALSE)
  levels[order(tolower(levels), swapcase, method = "radix")]
}

# Categorical moderators: character, logical or factor columns, plus any column
# named in settings$categorical or settings$reference.  Levels follow
# level_order() and the reference level is moved to the front (treatment
# contrasts).
prepare_data <- function(data, s) {
  d <- as.data.frame(data, stringsAsFactors = FALSE, check.names = FALSE)
  needed <- c("yi", "vi", "study", if (s$model == "three-level") "es", s$moderators)
  missing_cols <- setdiff(needed, names(d))
  if (length(missing_cols))
    stop("data lacks column(s): ", paste(missing_cols, collapse = ", "))
  d <- d[, unique(needed), drop = FALSE]
  d$yi <- as.numeric(d$yi)
  d$vi <- as.numeric(d$vi)
  d$study <- as.character(d$study)
  if (s$model == "three-level") d$es <- as.character(d$es)
  keep <- stats::complete.cases(d)
  d <- d[keep, , drop = FALSE]
  rownames(d) <- NULL
  if (nrow(d) < 2) stop("fewer than two complete rows to fit")
  # The inner level is the single effect size, so (study, es) must be unique;
  # otherwise metafor would silently pool rows into one inner-level unit.
  if (s$model == "three-level" && anyDuplicated(d[c("study", "es")]))
    stop("(study, es) pairs must be unique: each row is one effect size")
  levels_used <- list()
  for (m in s$moderators) {
    x <- d[[m]]
    is_cat <- is.character(x) || is.logical(x) || is.factor(x) ||
      m %in% s$categorical || m %in% names(s$reference)
    if (is_cat) {
      x <- as_category(x)
      lev <- level_order(x[!is.na(x)])
      ref <- s$reference[[m]] %||% lev[1]
      if (!ref %in% lev)
        stop("reference level '", ref, "' of '", m, "' does not occur in the data (",
             paste(lev, collapse = ", "), ")")
      if (length(lev) < 2)
        stop("categorical moderator '", m, "' has only one level ('", lev, "')")
      d[[m]] <- factor(x, levels = c(ref, setdiff(lev, ref)))
      levels_used[[m]] <- levels(d[[m]])
    } else {
      d[[m]] <- as.numeric(x)
    }
  }
  list(data = d, dropped = sum(!keep), levels = levels_used)
}

moderator_formula <- function(moderators) {
  if (length(moderators) == 0) return(NULL)
  stats::as.formula(paste("~", paste0("`", moderators, "`", collapse = " + ")))
}

# Rows of raw moderator values -> metafor's newmods matrix (no intercept
# column), built with the same factor levels and contrasts as the fit.
newmods_matrix <- function(newdata, d, s, form, coef_names) {
  nd <- list()
  for (m in s$moderators) {
    vals <- lapply(newdata, function(row) row[[m]])
    if (any(vapply(vals, is.null, logical(1))))
      stop("newdata rows must give a value for every moderator; '", m, "' is missing")
    vals <- unlist(vals)
    if (is.factor(d[[m]])) {
      vals <- as_category(vals)
      bad <- setdiff(vals, levels(d[[m]]))
      if (length(bad))
        stop("newdata level(s) ", paste(bad, collapse = ", "), " of '", m,
             "' not in the data")
      nd[[m]] <- factor(vals, levels = levels(d[[m]]))
    } else {
      nd[[m]] <- as.numeric(vals)
    }
  }
  nd <- as.data.frame(nd, check.names = FALSE)
  mm <- stats::model.matrix(stats::delete.response(stats::terms(form)), nd)
  mm <- mm[, colnames(mm) != "(Intercept)", drop = FALSE]
  # metafor drops redundant (collinear) predictors; keep the columns it kept.
  if (all(coef_names[-1] %in% colnames(mm))) mm <- mm[, coef_names[-1], drop = FALSE]
  if (!identical(colnames(mm), coef_names[-1]))
    stop("newmods columns (", paste(colnames(mm), collapse = ", "),
         ") do not match the coefficients (", paste(coef_names[-1], collapse = ", "), ")")
  mm
}

# ---------------------------------------------------------------------------
# Fitting

# Evaluate expr, collecting warnings instead of printing them.
collect_warnings <- function(expr, env) {
  withCallingHandlers(expr, warning = function(w) {
    env$warnings <- c(env$warnings, conditionMessage(w))
    invokeRestart("muffleWarning")
  })
}

# metafor rejects an explicit `mods = NULL`, so the argument is left out for
# intercept-only models.  tau2 / sigma2 = NA means "estimate".
uni_call <- function(d, s, form, control = list(), tau2 = NA) {
  if (is.null(form)) {
    rma.uni(yi, vi, data = d, method = s$method, test = s$test, level = s$level,
            tau2 = tau2, control = control)
  } else {
    rma.uni(yi, vi, mods = form, data = d, method = s$method, test = s$test,
            level = s$level, tau2 = tau2, control = control)
  }
}

mv_call <- function(d, s, form, control = list(), sigma2 = NA) {
  if (is.null(form)) {
    rma.mv(yi, vi, random = ~ 1 | study/es, data = d, method = s$method,
           test = s$test, level = s$level, sigma2 = sigma2, control = control)
  } else {
    rma.mv(yi, vi, mods = form, random = ~ 1 | study/es, data = d,
           method = s$method, test = s$test, level = s$level, sigma2 = sigma2,
           control = control)
  }
}

fit_two_level <- function(d, s, form, mods = TRUE, wenv) {
  last_error <- NULL
  for (ctl in UNI_CONTROLS) {
    fit <- tryCatch(
      collect_warnings(
        uni_call(d, s, if (mods) form else NULL, control = ctl),
        wenv),
      error = function(e) e)
    if (!inherits(fit, "error")) return(list(fit = fit, control = ctl))
    last_error <- fit
  }
  stop("rma.uni failed: ", conditionMessage(last_error))
}

fit_three_level <- function(d, s, form, mods = TRUE, wenv) {
  last_error <- NULL
  for (nm in names(MV_CONTROLS)) {
    fit <- tryCatch(
      collect_warnings(
        mv_call(d, s, if (mods) form else NULL, control = MV_CONTROLS[[nm]]),
        wenv),
      error = function(e) e)
    if (!inherits(fit, "error")) return(list(fit = fit, optimizer = nm))
    last_error <- fit
  }
  stop("rma.mv failed: ", conditionMessage(last_error))
}

# I^2 for multilevel models (metafor's "I^2 for multilevel and multivariate
# models" page): typical sampling variance (k - p) / tr(P) with
# P = W - W X (X'WX)^-1 X'W and W = diag(1/vi).
multilevel_i2 <- function(fit) {
  W <- diag(1 / fit$vi, nrow = fit$k)
  X <- fit$X
  P <- W - W %*% X %*% solve(crossprod(X, W %*% X)) %*% crossprod(X, W)
  typical_v <- (fit$k - fit$p) / sum(diag(P))
  total <- sum(fit$sigma2)
  list(I2 = 100 * total / (total + typical_v),
       I2_levels = 100 * fit$sigma2 / (total + typical_v))
}

prediction_block <- function(pr) {
  col <- function(name) {
    v <- pr[[name]]
    if (is.null(v) || all(is.na(v))) NULL else as.numeric(v)
  }
  list(pred = col("pred"), se = col("se"), ci_lb = col("ci.lb"), ci_ub = col("ci.ub"),
       pi_lb = col("pi.lb"), pi_ub = col("pi.ub"))
}

#' Fit one model with metafor and return the reference result.
#'
#' @param data data frame (or list of columns) with yi, vi, study, es
#'   (three-level) and the moderator columns.
#' @param settings list: model, method, test, moderators, categorical,
#'   reference, level, newdata, wald_terms, check_convergence.
#' @return list in the fixture schema (scalars marked with sc()).
reference_fit <- function(data, settings) {
  s <- normalise_settings(settings)
  prep <- prepare_data(data, s)
  d <- prep$data
  form <- moderator_formula(s$moderators)
  has_mods <- length(s$moderators) > 0
  three <- s$model == "three-level"
  wenv <- new.env()
  wenv$warnings <- character(0)

  if (three) {
    fitted <- fit_three_level(d, s, form, mods = has_mods, wenv = wenv)
  } else {
    fitted <- fit_two_level(d, s, form, mods = has_mods, wenv = wenv)
  }
  fit <- fitted$fit
  coef_names <- rownames(fit$beta)

  res <- list()
  res$coefficients <- list(
    term = coef_names,
    estimate = as.numeric(fit$beta),
    se = as.numeric(fit$se),
    statistic = as.numeric(fit$zval),
    pval = as.numeric(fit$pval),
    ci_lb = as.numeric(fit$ci.lb),
    ci_ub = as.numeric(fit$ci.ub)
  )
  if (three) {
    res$tau2 <- sc(NULL)
    res$tau2_se <- sc(NULL)
    res$sigma2 <- as.numeric(fit$sigma2)
  } else {
    res$tau2 <- sc(fit$tau2)
    res$tau2_se <- sc(fit$se.tau2)
    res$sigma2 <- NULL
  }
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

  if (three) {
    i2 <- multilevel_i2(fit)
    res$I2 <- sc(i2$I2)
    res$H2 <- sc(NULL)
    res$I2_levels <- as.numeric(i2$I2_levels)
    res$R2 <- sc(NULL)
    if (has_mods) {
      reduced <- fit_three_level(d, s, form, mods = FALSE, wenv = wenv)$fit
      total0 <- sum(reduced$sigma2)
      if (total0 > 0)
        res$R2 <- sc(max(0, 100 * (total0 - sum(fit$sigma2)) / total0))
      res$R2_sigma2_reduced <- as.numeric(reduced$sigma2)
    }
  } else {
    res$I2 <- sc(fit$I2)
    res$H2 <- sc(fit$H2)
    res$I2_levels <- NULL
    res$R2 <- sc(fit$R2)
  }

  fs <- fitstats(fit)
  res$loglik <- sc(fs[1, 1])
  res$deviance <- sc(fs[2, 1])
  res$aic <- sc(fs[3, 1])
  res$bic <- sc(fs[4, 1])
  res$aicc <- sc(fs[5, 1])
  res$fitstats_type <- sc(colnames(fs)[1])

  res$tau2_ci <- NULL
  res$I2_ci <- NULL
  res$H2_ci <- NULL
  if (!three && s$method != "EE") {
    ci <- tryCatch(collect_warnings(confint(fit, control = CONFINT_CONTROL), wenv),
                   error = function(e) {
                     wenv$warnings <- c(wenv$warnings,
                                        paste("confint failed:", conditionMessage(e)))
                     NULL
                   })
    if (!is.null(ci)) {
      rnd <- ci$random
      res$tau2_ci <- as.numeric(rnd["tau^2", c("ci.lb", "ci.ub")])
      res$I2_ci <- as.numeric(rnd["I^2(%)", c("ci.lb", "ci.ub")])
      res$H2_ci <- as.numeric(rnd["H^2", c("ci.lb", "ci.ub")])
    }
  }

  res$k <- sc(fit$k)
  res$p <- sc(fit$p)
  res$n_studies <- sc(if (three) fit$s.nlevels[1] else length(unique(d$study)))

  res$predict <- NULL
  res$predict_r <- NULL
  if (!has_mods) {
    res$predict <- prediction_block(predict(fit))
    res$predict_r <- prediction_block(predict(fit, transf = transf.ztor))
  } else if (length(s$newdata) > 0) {
    nm <- newmods_matrix(s$newdata, d, s, form, coef_names)
    res$predict <- prediction_block(predict(fit, newmods = nm))
    res$predict_r <- prediction_block(predict(fit, newmods = nm, transf = transf.ztor))
  }

  res$wald <- NULL
  if (length(s$wald_terms) > 0) {
    idx <- match(s$wald_terms, coef_names)
    if (anyNA(idx))
      stop("wald_terms not among the coefficients (", paste(coef_names, collapse = ", "),
           "): ", paste(s$wald_terms[is.na(idx)], collapse = ", "))
    a <- anova(fit, btt = idx)
    res$wald <- list(terms = s$wald_terms, QM = sc(a$QM), QM_df = sc(a$QMdf[1]),
                     QM_df2 = sc(a$QMdf[2]), QM_pval = sc(a$QMp))
  }

  res$weights <- as.numeric(weights(fit))
  res$factor_levels <- if (length(prep$levels)) prep$levels else NULL
  res$n_dropped <- sc(prep$dropped)
  res$fit_control <- if (three) list(optimizer = sc(fitted$optimizer)) else
    lapply(fitted$control, sc)
  res$metafor_version <- sc(as.character(utils::packageVersion("metafor")))
  res$warnings <- unique(wenv$warnings)

  # `res$x <- NULL` drops a field; put every schema field back (as JSON null)
  # so that readers can rely on the keys being present.
  missing_keys <- setdiff(RESULT_KEYS, names(res))
  res[missing_keys] <- list(NULL)
  res <- res[c(RESULT_KEYS, setdiff(names(res), RESULT_KEYS))]

  if (s$check_convergence) {
    res$convergence <- tryCatch(convergence_check(fit, d, s, form, has_mods),
                                error = function(e) list(error = sc(conditionMessage(e))))
  }
  res
}

# ---------------------------------------------------------------------------
# Convergence checks (independent of metafor's optimizer)

# Pieces of the (restricted) likelihood of V = diag(vi) + sum_j theta_j G_j,
# computed through the Cholesky factor of V and a QR decomposition of the
# whitened design, so that P = V^-1 - V^-1 X (X'V^-1 X)^-1 X'V^-1 is formed
# without cancellation (matters for uncentred moderators such as a year).
likelihood_parts <- function(theta, yi, vi, X, G) {
  k <- length(yi)
  V <- diag(vi, nrow = k) + Reduce(`+`, Map(`*`, theta, G))
  R <- chol(V)                                   # V = R'R
  Rinv <- backsolve(R, diag(k))                  # R^-1
  Xw <- crossprod(Rinv, X)                       # R'^-1 X
  yw <- crossprod(Rinv, yi)
  qx <- qr(Xw)
  Q <- qr.Q(qx)
  ew <- yw - Q %*% crossprod(Q, yw)              # whitened residuals
  IH <- diag(k) - tcrossprod(Q)
  list(
    logdetV = 2 * sum(log(diag(R))),
    logdetXtViX = 2 * sum(log(abs(diag(qr.R(qx))))),
    rss = sum(ew^2),
    P = Rinv %*% IH %*% t(Rinv),
    Vinv = tcrossprod(Rinv),
    Py = Rinv %*% ew
  )
}

# Log-likelihood with the same constants metafor uses (REML includes
# +1/2 log|X'X|).
own_loglik <- function(theta, yi, vi, X, G, reml) {
  lp <- likelihood_parts(theta, yi, vi, X, G)
  k <- length(yi)
  p <- ncol(X)
  if (reml) {
    -0.5 * (k - p) * log(2 * pi) +
      0.5 * as.numeric(determinant(crossprod(X))$modulus) -
      0.5 * lp$logdetV - 0.5 * lp$logdetXtViX - 0.5 * lp$rss
  } else {
    -0.5 * k * log(2 * pi) - 0.5 * lp$logdetV - 0.5 * lp$rss
  }
}

# Fisher scoring with the exact score, projected onto theta >= 0, with step
# halving whenever the log-likelihood would fall.
#   score_j = -1/2 tr(A G_j) + 1/2 y'P G_j P y,  A = P (REML) or V^-1 (ML)
#   info_ij = 1/2 tr(A G_i A G_j)
own_scoring <- function(theta, yi, vi, X, G, reml, fixed = rep(FALSE, length(theta)),
                        tol = 1e-14, maxit = 500) {
  ll <- function(th) own_loglik(th, yi, vi, X, G, reml)
  score_info <- function(th) {
    lp <- likelihood_parts(th, yi, vi, X, G)
    A <- if (reml) lp$P else lp$Vinv
    AG <- lapply(G, function(Gj) A %*% Gj)
    g <- vapply(seq_along(G), function(j)
      -0.5 * sum(diag(AG[[j]])) + 0.5 * c(crossprod(lp$Py, G[[j]] %*% lp$Py)),
      numeric(1))
    info <- outer(seq_along(G), seq_along(G),
                  Vectorize(function(i, j) 0.5 * sum(AG[[i]] * t(AG[[j]]))))
    list(g = g, info = info)
  }
  theta <- pmax(theta, 0)
  theta[fixed] <- 0
  cur <- ll(theta)
  for (it in seq_len(maxit)) {
    si <- score_info(theta)
    free <- !fixed & !(theta <= 0 & si$g <= 0)
    step <- numeric(length(theta))
    # Generalised inverse: with one effect size per study the two variance
    # components enter the likelihood only through their sum.
    if (any(free)) step[free] <- MASS::ginv(si$info[free, free, drop = FALSE]) %*% si$g[free]
    t_step <- 1
    repeat {
      new <- pmax(theta + t_step * step, 0)
      new_ll <- ll(new)
      if (new_ll >= cur - 1e-13 || t_step < 1e-8) break
      t_step <- t_step / 2
    }
    if (!all(is.finite(new)) || !is.finite(new_ll))
      stop("Fisher scoring check diverged")
    change <- max(abs(new - theta))
    theta <- new
    cur <- new_ll
    if (change < tol * max(1, max(theta))) break
  }
  list(theta = theta, gradient = score_info(theta)$g, iterations = it, loglik = cur)
}

# Largest absolute difference, and largest relative difference over the
# components that are clearly away from 0 (> 1e-6 in the reference).
diff_summary <- function(a, b) {
  interior <- abs(b) > 1e-6
  list(max_abs = sc(max(abs(a - b))),
       max_rel = sc(if (any(interior)) max(abs(a - b)[interior] / abs(b)[interior]) else NA))
}

convergence_check <- function(fit, d, s, form, has_mods) {
  three <- s$model == "three-level"
  mform <- if (has_mods) form else NULL
  yi <- as.numeric(fit$yi)
  vi <- as.numeric(fit$vi)
  X <- fit$X
  k <- length(yi)
  out <- list()
  if (three) {
    inner <- paste(d$study, d$es, sep = "\r")
    same <- function(g) 1 * outer(g, g, "==")
    G <- list(same(d$study), same(inner))
    est <- as.numeric(fit$sigma2)
  } else {
    G <- list(diag(k))
    est <- fit$tau2
  }
  out$estimate <- est
  if (k <= ncol(X)) {
    out$note <- sc("k <= p: the variance components are not estimable; no check")
  } else if (s$method %in% c("ML", "REML")) {
    reml <- s$method == "REML"
    own_at_fit <- own_loglik(est, yi, vi, X, G, reml)
    out$loglik_metafor <- sc(as.numeric(logLik(fit)))
    out$loglik_own_formula <- sc(own_at_fit)
    # Like metafor, hold sigma2_study at 0 when there is a single study.
    fixed <- if (three) c(length(unique(d$study)) < 2, FALSE) else FALSE
    sco <- own_scoring(est, yi, vi, X, G, reml, fixed = fixed)
    out$scoring_estimate <- sco$theta
    out$scoring_gradient <- sco$gradient
    out$scoring_iterations <- sc(sco$iterations)
    out$diff_vs_scoring <- diff_summary(est, sco$theta)
    out$loglik_gain_scoring <- sc(sco$loglik - own_at_fit)

    # metafor's own log-likelihood at small perturbations of the estimate,
    # with the variance components held fixed; none should be higher.
    ll_fixed <- function(theta) {
      f <- suppressWarnings(if (three) mv_call(d, s, mform, sigma2 = theta) else
        uni_call(d, s, mform, tau2 = theta))
      as.numeric(logLik(f))
    }
    ll0 <- ll_fixed(est)
    gains <- c()
    for (j in seq_along(est)) {
      for (sgn in c(-1, 1)) {
        h <- if (est[j] > 1e-6) 1e-4 * est[j] else 1e-6
        th <- est
        th[j] <- est[j] + sgn * h
        if (th[j] < 0) next
        gains <- c(gains, ll_fixed(th) - ll0)
      }
    }
    out$perturbation_max_gain <- sc(max(gains))
    out$perturbation_ok <- sc(max(gains) <= 1e-12)

    # metafor's own results with the variance components held at the exact
    # stationary point: shows how far the optimizer's small error in the
    # variance components carries into the other results.
    f_exact <- suppressWarnings(if (three) mv_call(d, s, mform, sigma2 = sco$theta) else
      uni_call(d, s, mform, tau2 = sco$theta))
    out$at_scoring_estimate <- list(
      estimate = as.numeric(f_exact$beta),
      se = as.numeric(f_exact$se),
      loglik = sc(as.numeric(logLik(f_exact))),
      max_rel_change_estimate = sc(max(abs(f_exact$beta - fit$beta) /
                                         pmax(abs(fit$beta), 1e-12))),
      max_rel_change_se = sc(max(abs(f_exact$se - fit$se) / fit$se))
    )

    if (three) {
      # The same model with metafor's default optimizer settings (nlminb).
      alt <- tryCatch({
        f2 <- suppressWarnings(mv_call(d, s, mform, control = list(optimizer = "nlminb")))
        list(optimizer = sc("nlminb (metafor default)"), sigma2 = as.numeric(f2$sigma2),
             diff_vs_scoring = diff_summary(as.numeric(f2$sigma2), sco$theta))
      }, error = function(e) list(optimizer = sc("nlminb (metafor default)"),
                                  error = sc(conditionMessage(e))))
      out$default_optimizer <- alt
    }
  } else if (s$method == "PM") {
    # Paule-Mandel solves generalised Q(tau2) = k - p unless truncated at 0.
    W <- diag(1 / (vi + est), nrow = k)
    P <- W - W %*% X %*% solve(crossprod(X, W %*% X)) %*% crossprod(X, W)
    q <- c(crossprod(yi, P %*% yi))
    out$generalised_Q <- sc(q)
    out$Q_target <- sc(k - ncol(X))
  }
  out
}
