# Egger's test / PET (sqrt(vi)) and PEESE (vi) on the CHE model with clubSandwich CR2; write JSON.
#
# Usage: Rscript scripts/bias_dependent_reference.R spec.json out.json
#
# spec.json: {"data_csv": "data.csv", "spec": {"rho": ..., "method": ..., "test": ...}}. The CSV
# has columns yi, vi, study, es (study and es read as text). The result is that of
# bias_dependent_reference() in bias_dependent_lib.R, the code of the committed fixtures. On
# any error the script writes {"error": "<message>"} and exits 1.

script_dir <- local({
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(file_arg) == 0) stop("run this script with Rscript")
  dirname(normalizePath(sub("^--file=", "", file_arg[1])))
})

main <- function(args) {
  if (length(args) != 2) {
    cat("usage: Rscript bias_dependent_reference.R spec.json out.json\n", file = stderr())
    quit(status = 2)
  }
  spec_path <- args[1]
  out_path <- args[2]
  result <- tryCatch({
    source(file.path(script_dir, "bias_dependent_lib.R"), local = FALSE)
    input <- jsonlite::fromJSON(spec_path, simplifyVector = TRUE)
    csv <- input$data_csv
    if (!grepl("^(/|[A-Za-z]:)", csv)) csv <- file.path(dirname(spec_path), csv)
    data <- utils::read.csv(csv, stringsAsFactors = FALSE,
                            colClasses = c(study = "character", es = "character"))
    to_json(bias_dependent_reference(data, input$spec))
  }, error = function(e) e)
  if (inherits(result, "error")) {
    msg <- gsub("\\s+", " ", trimws(conditionMessage(result)))
    writeLines(paste0('{"error": ', jsonlite::toJSON(jsonlite::unbox(msg)), "}"), out_path)
    cat("bias_dependent_reference: ", msg, "\n", sep = "", file = stderr())
    quit(status = 1)
  }
  writeLines(result, out_path, useBytes = TRUE)
}

main(commandArgs(trailingOnly = TRUE))
