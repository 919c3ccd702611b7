# The command-line frame of the reference scripts the live tests run (robust_reference.R,
# robust_prediction_reference.R, bias_dependent_reference.R, metafor_dependent_reference.R),
# kept here once so that the four agree on it: two arguments (an input JSON and the output
# path), the result written as JSON, and on any error {"error": "<message>"} written instead
# with exit status 1. Each script sources this file from its own folder and hands
# run_reference() the function that turns its input file into JSON text.

# The folder of the running script, of this file and of the libraries they source.
script_dir <- local({
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(file_arg) == 0) stop("run this script with Rscript")
  dirname(normalizePath(sub("^--file=", "", file_arg[1])))
})

# Runs compute(input_path) on the command line's two arguments and writes what it returns to
# the output path; `name` (the script's name without .R) and `input` (its input file) make the
# usage line and prefix the error message on stderr.
run_reference <- function(name, input, compute) {
  args <- commandArgs(trailingOnly = TRUE)
  if (length(args) != 2) {
    cat(sprintf("usage: Rscript %s.R %s out.json\n", name, input), file = stderr())
    quit(status = 2)
  }
  out_path <- args[2]
  result <- tryCatch(compute(args[1]), error = function(e) e)
  if (inherits(result, "error")) {
    msg <- gsub("\\s+", " ", trimws(conditionMessage(result)))
    writeLines(paste0('{"error": ', jsonlite::toJSON(jsonlite::unbox(msg)), "}"), out_path)
    cat(name, ": ", msg, "\n", sep = "", file = stderr())
    quit(status = 1)
  }
  writeLines(result, out_path, useBytes = TRUE)
}

# The cases of the robust scripts, [{"data_csv": "data.csv", "spec": {...}, ...}, ...], as
# JSON text: each case's CSV (a relative path is read relative to the cases file) is read with
# study, es and the spec's cluster column as text and handed to reference(data, case).
# %||% and to_json come from metafor_reference_lib.R, which the robust libraries source.
robust_cases <- function(cases_path, reference) {
  cases <- jsonlite::fromJSON(cases_path, simplifyVector = FALSE)
  results <- lapply(cases, function(case) {
    csv <- case$data_csv
    if (!grepl("^/", csv)) csv <- file.path(dirname(cases_path), csv)
    text_cols <- unique(c("study", "es", case$spec$cluster %||% "study"))
    data <- utils::read.csv(csv, stringsAsFactors = FALSE, check.names = FALSE,
                            colClasses = stats::setNames(rep("character", length(text_cols)),
                                                         text_cols))
    reference(data, case)
  })
  to_json(results)
}
