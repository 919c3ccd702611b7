# Egger's test / PET (sqrt(vi)) and PEESE (vi) on the CHE model with clubSandwich CR2; write JSON.
#
# Usage: Rscript scripts/bias_dependent_reference.R spec.json out.json
#
# spec.json: {"data_csv": "data.csv", "spec": {"rho": ..., "method": ..., "test": ...}}. The CSV
# has columns yi, vi, study, es (study and es read as text). The result is that of
# bias_dependent_reference() in bias_dependent_lib.R, the code of the committed fixtures. On
# any error the script writes {"error": "<message>"} and exits 1.

file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
source(file.path(dirname(normalizePath(sub("^--file=", "", file_arg[1]))), "reference_common.R"))

run_reference("bias_dependent_reference", "spec.json", function(spec_path) {
  source(file.path(script_dir, "bias_dependent_lib.R"), local = FALSE)
  input <- jsonlite::fromJSON(spec_path, simplifyVector = TRUE)
  csv <- input$data_csv
  if (!grepl("^(/|[A-Za-z]:)", csv)) csv <- file.path(dirname(spec_path), csv)
  data <- utils::read.csv(csv, stringsAsFactors = FALSE,
                          colClasses = c(study = "character", es = "character"))
  to_json(bias_dependent_reference(data, input$spec))
})
