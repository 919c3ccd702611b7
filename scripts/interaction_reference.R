# Command-line reference for the live interaction / marginal-means test.
#
# Usage: Rscript scripts/interaction_reference.R cases.json out.json
#
# cases.json is a list of {"name", "data_csv", "spec"} with spec as in
# tests/fixtures/interactions (model, method, test, moderators, formula, rho); out.json
# gets {name: result} with the result blocks of those fixtures (interaction_reference_lib.R).
# study and es are read as text; character moderators become factors (level_order).

script_dir <- local({
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(file_arg) == 0) stop("run this script with Rscript")
  dirname(normalizePath(sub("^--file=", "", file_arg[1])))
})
source(file.path(script_dir, "metafor_reference_lib.R"))
source(file.path(script_dir, "interaction_reference_lib.R"))
suppressPackageStartupMessages(library(jsonlite))

args <- commandArgs(trailingOnly = TRUE)
cases <- fromJSON(args[1], simplifyVector = FALSE)
out <- list()
for (case in cases) {
  d <- read.csv(case$data_csv, stringsAsFactors = FALSE,
                colClasses = c(study = "character", es = "character"))
  spec <- case$spec
  spec$moderators <- unlist(spec$moderators)
  out[[case$name]] <- case_result(d, spec)
}
write_json(out, args[2], digits = NA, auto_unbox = TRUE, null = "null")
