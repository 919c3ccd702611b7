# Export public meta-analytic datasets from the R package metadat (GPL >= 2) into data/*.csv.
#
# Usage (from anywhere): Rscript scripts/export_metadat.R [output_dir]
# output_dir defaults to the repository's data/ folder (a test writes to a temporary one).
#
# Each dataset is written as it ships in metadat: same rows, same column names and values,
# nothing added. Missing values become empty fields. The data cards in data/README.md give
# the original citations (taken from the metadat help pages) and describe every column.

suppressPackageStartupMessages(library(metadat))

# Bundled file name (without .csv) -> metadat object.
datasets <- c(
  molloy2014 = "dat.molloy2014",
  mcdaniel1994 = "dat.mcdaniel1994",
  crede2010 = "dat.crede2010",
  konstantopoulos2011 = "dat.konstantopoulos2011",
  assink2016 = "dat.assink2016"
)

script_dir <- function() {
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(file_arg) == 0) return(getwd())
  dirname(normalizePath(sub("^--file=", "", file_arg)))
}

# Drop metafor's "escalc" class and attributes so the CSV holds plain columns only.
as_plain_table <- function(x) {
  x <- as.data.frame(x)
  class(x) <- "data.frame"
  for (column in names(x)) attributes(x[[column]]) <- NULL
  x
}

arguments <- commandArgs(trailingOnly = TRUE)
data_dir <- if (length(arguments) > 0) arguments[[1]] else file.path(dirname(script_dir()), "data")
for (file_name in names(datasets)) {
  table <- as_plain_table(get(datasets[[file_name]], envir = asNamespace("metadat")))
  path <- file.path(data_dir, paste0(file_name, ".csv"))
  write.csv(table, path, row.names = FALSE, na = "", fileEncoding = "UTF-8")
  cat(sprintf("%-28s %4d rows  -> %s\n", datasets[[file_name]], nrow(table), path))
}
cat(sprintf("metadat %s\n", as.character(packageVersion("metadat"))))
