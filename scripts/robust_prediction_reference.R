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

file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
source(file.path(dirname(normalizePath(sub("^--file=", "", file_arg[1]))), "reference_common.R"))

run_reference("robust_prediction_reference", "cases.json", function(cases_path) {
  source(file.path(script_dir, "robust_prediction_lib.R"), local = FALSE)
  robust_cases(cases_path, function(data, case) {
    robust_prediction_reference(data, case$spec, case$newdata %||% list())
  })
})
