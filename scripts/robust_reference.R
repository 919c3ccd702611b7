# Cluster-robust reference results (clubSandwich CR2, metafor robust CR1) for
# one or more models, as JSON.
#
# Usage: Rscript scripts/robust_reference.R cases.json out.json
#
# cases.json: [{"data_csv": "data.csv", "spec": {...}}, ...]; a relative
# data_csv path is read relative to cases.json. The CSV needs columns yi, vi,
# study, es and those the spec names; study, es and the cluster column are
# read as text. The spec and the output are described in
# scripts/robust_reference_lib.R and tests/fixtures/robust/README.md (the
# "result" of a fixture). One R start-up serves all cases.
#
# On any error the script writes {"error": "<message>"} to out.json and exits
# with status 1.

file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
source(file.path(dirname(normalizePath(sub("^--file=", "", file_arg[1]))), "reference_common.R"))

run_reference("robust_reference", "cases.json", function(cases_path) {
  source(file.path(script_dir, "robust_reference_lib.R"), local = FALSE)
  robust_cases(cases_path, function(data, case) robust_reference(data, case$spec))
})
