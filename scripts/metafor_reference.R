# Fit one model with metafor and write the reference result as JSON.
#
# Usage: Rscript scripts/metafor_reference.R spec.json out.json
#
# spec.json: {"data_csv": "path/to/data.csv", "settings": {...}}
#   (or "data": {column: [values]} instead of data_csv).
# The CSV has columns yi, vi, study, es (three-level) and the moderator
# columns; study and es are read as text.  A relative data_csv path is taken
# relative to the spec file.  Settings and the output schema are described in
# tests/fixtures/metafor/README.md.
#
# On any error the script writes {"error": "<message>"} to out.json and exits
# with status 1.

script_dir <- local({
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(file_arg) == 0) stop("run this script with Rscript")
  dirname(normalizePath(sub("^--file=", "", file_arg[1])))
})

write_error <- function(path, message) {
  msg <- gsub("\\s+", " ", trimws(message))
  writeLines(paste0('{"error": ', jsonlite::toJSON(jsonlite::unbox(msg)), "}"), path)
}

main <- function(args) {
  if (length(args) != 2) {
    cat("usage: Rscript metafor_reference.R spec.json out.json\n", file = stderr())
    quit(status = 2)
  }
  spec_path <- args[1]
  out_path <- args[2]
  result <- tryCatch({
    source(file.path(script_dir, "metafor_reference_lib.R"), local = FALSE)
    spec <- jsonlite::fromJSON(spec_path, simplifyVector = FALSE)
    if (!is.null(spec$data_csv)) {
      csv <- spec$data_csv
      if (!grepl("^(/|[A-Za-z]:)", csv)) csv <- file.path(dirname(spec_path), csv)
      header <- names(utils::read.csv(csv, nrows = 1, check.names = FALSE))
      text_cols <- intersect(c("study", "es"), header)
      data <- utils::read.csv(csv, stringsAsFactors = FALSE, check.names = FALSE,
                              colClasses = stats::setNames(rep("character", length(text_cols)),
                                                           text_cols),
                              na.strings = c("", "NA"))
    } else if (!is.null(spec$data)) {
      data <- lapply(spec$data, function(col)
        unlist(lapply(col, function(v) if (is.null(v)) NA else v)))
      data <- as.data.frame(data, stringsAsFactors = FALSE, check.names = FALSE)
    } else {
      stop("spec needs 'data_csv' or 'data'")
    }
    to_json(reference_fit(data, spec$settings %||% list()))
  }, error = function(e) e)
  if (inherits(result, "error")) {
    write_error(out_path, conditionMessage(result))
    cat("metafor_reference: ", conditionMessage(result), "\n", sep = "", file = stderr())
    quit(status = 1)
  }
  writeLines(result, out_path, useBytes = TRUE)
}

main(commandArgs(trailingOnly = TRUE))
