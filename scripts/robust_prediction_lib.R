# Reference CR2 predictions (linear contrasts with their own Satterthwaite df) for
# alliance_core's RobustResult.predict, from two independent routes:
#
#   * clubSandwich::linear_contrast(fit, vcov = "CR2", cluster, contrasts = X_new)
#     (estimate, SE, Satterthwaite df, confidence interval), and
#   * metafor::predict(robust(fit, cluster, clubSandwich = TRUE), newmods) (the same
#     contrasts plus the prediction interval pred +/- t(df) sqrt(SE^2 + sum(sigma2)),
#     or + tau2 for rma.uni), on the model scale and with transf = tanh.
#
# robust_prediction_reference(data, spec, newdata) returns both as a list for JSON.
# data and spec are as in robust_reference_lib.R; newdata is a list of moderator
# columns (one value per prediction row), empty for an intercept-only model (one row);
# changes (optional): list(from = newdata, to = newdata), contrasts X(to) - X(from).

prediction_lib_dir <- local({
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  dirname(normalizePath(sub("^--file=", "", file_arg[1])))
})
source(file.path(prediction_lib_dir, "robust_reference_lib.R"))

# Moderator columns -> model matrix rows (intercept first) with the fit's factor levels.
contrast_rows <- function(newdata, d, moderators) {
  if (length(moderators) == 0) return(matrix(1, nrow = 1, ncol = 1))
  nd <- list()
  for (m in moderators) {
    vals <- unlist(newdata[[m]])
    nd[[m]] <- if (is.factor(d[[m]])) factor(as.character(vals), levels = levels(d[[m]]))
               else as.numeric(vals)
    if (anyNA(nd[[m]])) stop("newdata column '", m, "' has a value the data do not have")
  }
  nd <- as.data.frame(nd, check.names = FALSE)
  stats::model.matrix(moderator_formula(moderators), nd)
}

robust_prediction_reference <- function(data, spec, newdata, changes = NULL) {
  spec <- plain_spec(spec)
  d <- robust_prepare(data, spec)
  fit <- robust_fit(d, spec)
  cluster <- as.character(d[[spec$cluster %||% "study"]])
  moderators <- as_char_vec(spec$moderators)
  X <- contrast_rows(newdata, d, moderators)
  if (!identical(unname(colnames(X)[-1]), rownames(fit$beta)[-1]) && ncol(X) > 1)
    stop("contrast columns do not match the coefficients")

  lc <- clubSandwich::linear_contrast(fit, vcov = "CR2", cluster = cluster, contrasts = X,
                                      test = "Satterthwaite", level = 0.95)
  rob <- metafor::robust(fit, cluster = cluster, clubSandwich = TRUE)
  newmods <- if (ncol(X) > 1) X[, -1, drop = FALSE] else NULL
  pr <- if (is.null(newmods)) predict(rob) else predict(rob, newmods = newmods)
  pr_r <- if (is.null(newmods)) predict(rob, transf = tanh)
          else predict(rob, newmods = newmods, transf = tanh)
  het <- if (inherits(fit, "rma.mv")) sum(fit$sigma2) else fit$tau2
  # Changes between two rows of moderator values (e.g. PTR 1 -> 10): the contrast
  # X(to) - X(from), tested on its own Satterthwaite df.
  change <- if (is.null(changes)) NULL else {
    D <- contrast_rows(changes$to, d, moderators) - contrast_rows(changes$from, d, moderators)
    lc_d <- clubSandwich::linear_contrast(fit, vcov = "CR2", cluster = cluster, contrasts = D,
                                          test = "Satterthwaite", level = 0.95, p_values = TRUE)
    list(from = changes$from, to = changes$to,
         contrasts = lapply(seq_len(nrow(D)), function(i) as.numeric(D[i, ])),
         est = as.numeric(lc_d$Est), se = as.numeric(lc_d$SE), df = as.numeric(lc_d$df),
         ci_lb = as.numeric(lc_d$CI_L), ci_ub = as.numeric(lc_d$CI_U),
         pval = as.numeric(lc_d$p_val))
  }

  list(
    coef_names = rownames(fit$beta),
    beta = as.numeric(fit$beta),
    sigma2 = if (inherits(fit, "rma.mv")) as.numeric(fit$sigma2) else NULL,
    tau2 = if (inherits(fit, "rma.mv")) NULL else sc(fit$tau2),
    heterogeneity = sc(het),
    n_clusters = sc(length(unique(cluster))),
    contrasts = lapply(seq_len(nrow(X)), function(i) as.numeric(X[i, ])),
    coef_df = as.numeric(rob$ddf),
    clubsandwich = list(
      est = as.numeric(lc$Est), se = as.numeric(lc$SE), df = as.numeric(lc$df),
      ci_lb = as.numeric(lc$CI_L), ci_ub = as.numeric(lc$CI_U)),
    metafor = list(
      pred = as.numeric(pr$pred), se = as.numeric(pr$se), df = as.numeric(pr$ddf),
      ci_lb = as.numeric(pr$ci.lb), ci_ub = as.numeric(pr$ci.ub),
      pi_lb = as.numeric(pr$pi.lb), pi_ub = as.numeric(pr$pi.ub)),
    changes = change,
    metafor_r = list(
      pred = as.numeric(pr_r$pred), ci_lb = as.numeric(pr_r$ci.lb),
      ci_ub = as.numeric(pr_r$ci.ub), pi_lb = as.numeric(pr_r$pi.lb),
      pi_ub = as.numeric(pr_r$pi.ub)),
    versions = list(metafor = sc(as.character(packageVersion("metafor"))),
                    clubSandwich = sc(as.character(packageVersion("clubSandwich"))))
  )
}
