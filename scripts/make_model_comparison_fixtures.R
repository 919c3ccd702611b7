# Write the model-comparison reference fixtures to tests/fixtures/model_comparison/<case>.json.
#
# Usage (from any directory): Rscript scripts/make_model_comparison_fixtures.R
#   (after scripts/make_interaction_fixtures.R and scripts/make_location_scale_fixtures.R,
#   whose embedded data these cases reuse)
#
# For a model and its neighbours (moderators dropped / PTR interactions added, refitted by
# ML; variance components fixed at 0 or a scale part added, by REML), metafor's fitstats()
# and anova() against the model fitted by the same method.
# See tests/fixtures/model_comparison/README.md.

script_dir <- local({
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(file_arg) == 0) stop("run this script with Rscript")
  dirname(normalizePath(sub("^--file=", "", file_arg[1])))
})
source(file.path(script_dir, "metafor_reference_lib.R"))
suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

fixtures <- file.path(dirname(script_dir), "tests", "fixtures")
out_dir <- file.path(fixtures, "model_comparison")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)
unlink(list.files(out_dir, pattern = "\\.json$", full.names = TRUE))

embedded <- function(folder, case, columns) {
  x <- fromJSON(file.path(fixtures, folder, paste0(case, ".json")))$data
  as.data.frame(x[columns], stringsAsFactors = FALSE)
}

LS_CONTROLS <- list(
  list(optimizer = "nlminb", rel.tol = 1e-13, eval.max = 10000, iter.max = 10000),
  list(optimizer = "optim", optmethod = "BFGS", reltol = 1e-15, maxit = 10000),
  list(optimizer = "nlminb", rel.tol = 1e-11, eval.max = 10000, iter.max = 10000))

fit_ls <- function(d, mods, scl, method) {
  for (ctl in LS_CONTROLS) {
    fit <- tryCatch(rma(yi, vi, mods = mods, scale = scl, data = d, method = method,
                        control = ctl), error = function(e) e)
    if (!inherits(fit, "error")) return(fit)
  }
  stop("rma(scale = ) failed: ", conditionMessage(fit))
}

fit_row <- function(d, spec, row) {
  terms <- unlist(row$terms)
  form <- if (length(terms)) as.formula(paste("~", paste(terms, collapse = " + "))) else ~ 1
  fix <- row$fix
  if (spec$model == "two-level") {
    if (!is.null(row$scale)) {
      return(list(fit = fit_ls(d, form, as.formula(paste("~", row$scale)), row$method),
                  reduced = fit_ls(d, form, ~ 1, row$method)))
    }
    return(list(fit = rma(yi, vi, mods = form, data = d, method = row$method,
                          control = UNI_CONTROLS[[1]])))
  }
  V <- if (!is.null(spec$rho)) vcalc(vi, cluster = study, obs = es, rho = spec$rho, data = d)
       else d$vi
  sigma2 <- c(NA, NA)
  if (!is.null(fix)) sigma2[match(fix, c("study", "es"))] <- 0
  for (nm in names(MV_CONTROLS)) {
    fit <- tryCatch(rma.mv(yi, V, mods = form, random = ~ 1 | study/es, data = d,
                           method = row$method, sigma2 = sigma2, control = MV_CONTROLS[[nm]]),
                    error = function(e) e)
    if (!inherits(fit, "error")) return(list(fit = fit))
  }
  stop("rma.mv failed: ", conditionMessage(fit))
}

write_case <- function(name, description, d, spec, rows) {
  for (m in spec$factors) d[[m]] <- factor(d[[m]], levels = level_order(d[[m]]))
  fits <- lapply(rows, function(row) fit_row(d, spec, row))
  reference_of <- function(method) which(vapply(rows, function(r) r$reference && r$method == method, logical(1)))
  out <- lapply(seq_along(rows), function(i) {
    row <- rows[[i]]
    f <- fits[[i]]$fit
    fs <- fitstats(f)
    res <- list(model = row$model, terms = I(unlist(row$terms)), method = row$method,
                fix = row$fix, scale = row$scale, k = f$k,
                parameters = attr(logLik(f), "df"), loglik = as.numeric(fs[1]),
                aic = as.numeric(fs[3]), bic = as.numeric(fs[4]), aicc = as.numeric(fs[5]))
    if (!row$reference) {
      a <- if (!is.null(row$scale)) anova(f, fits[[i]]$reduced)
           else anova(fits[[reference_of(row$method)]]$fit, f)
      res$LRT <- a$LRT
      res$df <- abs(a$parms.f - a$parms.r)
      res$pval <- a$pval
    }
    res
  })
  case <- list(name = name, description = description, spec = spec,
               data = as.list(d <- as.data.frame(lapply(d, function(x) if (is.factor(x)) as.character(x) else x))),
               rows = out, metafor_version = as.character(packageVersion("metafor")))
  write_json(case, file.path(out_dir, paste0(name, ".json")), digits = NA,
             auto_unbox = TRUE, pretty = TRUE, null = "null")
  cat(sprintf("%-34s %s\n", name, description))
}

row <- function(model, terms, method, reference = FALSE, fix = NULL, scale = NULL) {
  list(model = model, terms = terms, method = method, reference = reference, fix = fix,
       scale = scale)
}

alliance <- embedded("interactions", "alliance_che06_reml_z_ptr_x_rater_design",
                     c("yi", "vi", "study", "es", "log_ptr", "alliance_rater", "design"))

write_case(
  "alliance_3l_reml", "three-level REML: log_ptr + alliance_rater + design and neighbours",
  alliance,
  list(model = "three-level", method = "REML", terms = c("log_ptr", "alliance_rater", "design"),
       factors = c("alliance_rater", "design")),
  list(row("analysed model", c("log_ptr", "alliance_rater", "design"), "ML", TRUE),
       row("without log_ptr", c("alliance_rater", "design"), "ML"),
       row("without alliance_rater", c("log_ptr", "design"), "ML"),
       row("without design", c("log_ptr", "alliance_rater"), "ML"),
       row("with log_ptr:alliance_rater",
           c("log_ptr", "alliance_rater", "design", "log_ptr:alliance_rater"), "ML"),
       row("with log_ptr:design", c("log_ptr", "alliance_rater", "design", "log_ptr:design"), "ML"),
       row("analysed model", c("log_ptr", "alliance_rater", "design"), "REML", TRUE),
       row("no between-study variance (sigma2.study = 0)",
           c("log_ptr", "alliance_rater", "design"), "REML", fix = "study"),
       row("no within-study variance (sigma2.es = 0)",
           c("log_ptr", "alliance_rater", "design"), "REML", fix = "es")))

write_case(
  "alliance_che06_ml_interaction", "CHE rho = 0.6, ML: log_ptr * alliance_rater and neighbours",
  alliance,
  list(model = "three-level", method = "ML", rho = 0.6,
       terms = c("log_ptr", "alliance_rater", "log_ptr:alliance_rater"),
       factors = c("alliance_rater")),
  list(row("analysed model", c("log_ptr", "alliance_rater", "log_ptr:alliance_rater"), "ML", TRUE),
       row("without log_ptr (and log_ptr:alliance_rater)", c("alliance_rater"), "ML"),
       row("without alliance_rater (and log_ptr:alliance_rater)", c("log_ptr"), "ML"),
       row("without log_ptr:alliance_rater", c("log_ptr", "alliance_rater"), "ML"),
       row("analysed model", c("log_ptr", "alliance_rater", "log_ptr:alliance_rater"), "REML", TRUE),
       row("no between-study variance (sigma2.study = 0)",
           c("log_ptr", "alliance_rater", "log_ptr:alliance_rater"), "REML", fix = "study"),
       row("no within-study variance (sigma2.es = 0)",
           c("log_ptr", "alliance_rater", "log_ptr:alliance_rater"), "REML", fix = "es")))

hetero <- embedded("location_scale", "hetero_reml_ptr", c("yi", "vi", "log_ptr", "design"))
write_case(
  "hetero_2l_reml", "two-level REML: log_ptr + design, neighbours and scale ~ log_ptr",
  hetero,
  list(model = "two-level", method = "REML", terms = c("log_ptr", "design"), factors = "design"),
  list(row("analysed model", c("log_ptr", "design"), "ML", TRUE),
       row("without log_ptr", c("design"), "ML"),
       row("without design", c("log_ptr"), "ML"),
       row("with log_ptr:design", c("log_ptr", "design", "log_ptr:design"), "ML"),
       row("analysed model", c("log_ptr", "design"), "REML", TRUE),
       row("heterogeneity depends on log_ptr (location-scale)", c("log_ptr", "design"), "REML",
           scale = "log_ptr")))
