# Fit one dependent-effects model (CHE / fixed components) with metafor; write JSON.
#
# Usage: Rscript scripts/metafor_dependent_reference.R spec.json out.json
#
# spec.json: {"data_csv": "data.csv", "settings": {...}} with the settings of
# dependent_fit() in metafor_dependent_lib.R (rho, fix_sigma2, confint, compare, and those of
# metafor_reference.R).  The CSV has columns yi, vi, study, es and the moderators; study and
# es are read as text.  On any error the script writes {"error": "<message>"} and exits 1.

file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
source(file.path(dirname(normalizePath(sub("^--file=", "", file_arg[1]))), "reference_common.R"))

run_reference("metafor_dependent_reference", "spec.json", function(spec_path) {
  source(file.path(script_dir, "metafor_reference_lib.R"), local = FALSE)
  source(file.path(script_dir, "metafor_dependent_lib.R"), local = FALSE)
  spec <- jsonlite::fromJSON(spec_path, simplifyVector = FALSE)
  csv <- spec$data_csv
  if (!grepl("^(/|[A-Za-z]:)", csv)) csv <- file.path(dirname(spec_path), csv)
  data <- utils::read.csv(csv, stringsAsFactors = FALSE, check.names = FALSE,
                          colClasses = c(study = "character", es = "character"),
                          na.strings = c("", "NA"))
  to_json(dependent_fit(data, spec$settings %||% list()))
})
