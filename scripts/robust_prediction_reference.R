# CR2 prediction reference results (clubSandwich linear_contrast and metafor
# predict(robust(..., clubSandwich = TRUE), newmods)) for one or more models, as JSON.
#
# Usage: Rscript scripts/robust_prediction_reference.R cases.json out.json
#
# cases.json: [{"data_csv": "data.csv", "spec": {...}, "newdata": {column: [values]}}, ...];
# a relative data_csv path is read relative to cases.json. The CSV needs columns yi, vi,
# study, es and those the spec names; study, es and the cluster column are read as text.
# spec and the result are described in scripts/robust_prediction_lib.R and
# tests/fixtures/robust_prediction/README.md. One R start-up serves all cases.
#
# On any error the script writes {"error": "<message>"} to out.json and exits with status 1.

write_error <- function(path, message) {
  msg <- gsub("\\s+", " ", trimws(message))
  writeLines(paste0('{"error": ', jsonlite::toJSON(jsonlite::unbox(msg)), "}"), path)
}

main <- function(args) {
  if (length(args) != 2) {
    cat("usage: Rscript robust_prediction_reference.R cases.json out.json\n", file = stderr())
    quit(status = 2)
  }
  out_path <- args[2]
  result <- tryCatch({
    file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
    source(file.path(dirname(normalizePath(sub("^--file=", "", file_arg[1]))),
                     "robust_prediction_lib.R"), local = FALSE)
    cases <- jsonlite::fromJSON(args[1], simplifyVector = FALSE)
    results <- lapply(cases, function(case) {
      csv <- case$data_csv
      if (!grepl("^/", csv)) csv <- file.path(dirname(args[1]), csv)
      spec <- case$spec
      text_cols <- unique(c("study", "es", spec$cluster %||% "study"))
      data <- utils::read.csv(csv, stringsAsFactors = FALSE, check.names = FALSE,
                              colClasses = stats::setNames(rep("character", length(text_cols)),
                                                           text_cols))
      robust_prediction_reference(data, spec, case$newdata %||% list())
    })
    to_json(results)
  }, error = function(e) e)
  if (inherits(result, "error")) {
    write_error(out_path, conditionMessage(result))
    cat("robust_prediction_reference: ", conditionMessage(result), "\n", sep = "", file = stderr())
    quit(status = 1)
  }
  writeLines(result, out_path, useBytes = TRUE)
}

main(commandArgs(trailingOnly = TRUE))
