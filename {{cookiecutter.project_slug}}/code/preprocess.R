#!/usr/bin/env Rscript
# Processing script: SageMaker's ScriptProcessor runs it as
#   Rscript /opt/ml/processing/input/code/preprocess.R
# It reads every CSV under /opt/ml/processing/input/data, drops incomplete rows, and writes a
# shuffled 80/20 train/validation split to /opt/ml/processing/output/{train,validation}.
# With TEST_FRACTION > 0 (the pipeline sets 0.2) that share of the rows is held out first and written
# to .../test (with the TARGET column, default Species, for evaluate.R) and to .../test-features
# (without it and without a header: the rows a batch transform sends to the model, as SageMaker does).
# On several hosts (resourceconfig.json: current_host, hosts) each one processes its share of the
# input files once: with the `data` input ShardedByS3Key (processingjobconfig.json) SageMaker gives it
# only its share; FullyReplicated, it takes every N-th file by its rank. Each host names its outputs
# <split>-<host>.csv, so no two instances write the same S3 object (one algo-1 gives <split>-algo-1.csv).
# On failure it writes the reason to /opt/ml/output/message (SageMaker's ExitMessage) and exits 1.
base_dir <- Sys.getenv("SAGEMAKER_BASE_DIR", "/opt/ml")
input_dir <- file.path(base_dir, "processing", "input", "data")
output_dir <- file.path(base_dir, "processing", "output")
test_fraction <- suppressWarnings(as.numeric(Sys.getenv("TEST_FRACTION", "0")))
target <- Sys.getenv("TARGET", "Species")

read_json <- function(path) if (file.exists(path)) jsonlite::fromJSON(path) else NULL

write_split <- function(rows, name, host, header) {
  dir.create(file.path(output_dir, name), recursive = TRUE, showWarnings = FALSE)
  path <- file.path(output_dir, name, sprintf("%s-%s.csv", name, host))
  utils::write.table(rows, path, sep = ",", row.names = FALSE, col.names = header, qmethod = "double")
  cat(sprintf("Wrote %d rows to %s\n", nrow(rows), path))
}

# The shuffled rows as list(train, validation[, test]): test_fraction of them held out first, then 80/20.
split_rows <- function(shuffled) {
  # Index vectors, not negative indexing: shuffled[-integer(0), ] would select no row at all.
  rows <- seq_len(nrow(shuffled))
  test_rows <- rows[rows > nrow(shuffled) - floor(test_fraction * nrow(shuffled))]
  rest <- setdiff(rows, test_rows)
  train_rows <- rest[seq_len(floor(0.8 * length(rest)))]
  splits <- list(
    train = shuffled[train_rows, , drop = FALSE],
    validation = shuffled[setdiff(rest, train_rows), , drop = FALSE]
  )
  if (test_fraction > 0) splits$test <- shuffled[test_rows, , drop = FALSE]
  splits
}

# Each split with a header; the test rows also without the target and header (test-features).
write_splits <- function(splits, host) {
  for (name in names(splits)) write_split(splits[[name]], name, host, header = TRUE)
  if (!is.null(splits$test)) {
    if (!target %in% names(splits$test)) stop("target column '", target, "' is not in the input data")
    write_split(splits$test[setdiff(names(splits$test), target)], "test-features", host, header = FALSE)
  }
}

main <- function() {
  if (is.na(test_fraction) || test_fraction < 0 || test_fraction >= 1) {
    stop("TEST_FRACTION must be a number from 0 to below 1, not '", Sys.getenv("TEST_FRACTION"), "'")
  }
  job <- read_json(file.path(base_dir, "config", "processingjobconfig.json"))
  resources <- read_json(file.path(base_dir, "config", "resourceconfig.json"))
  hosts <- sort(if (is.null(resources$hosts)) "algo-1" else resources$hosts)
  host <- if (is.null(resources$current_host)) hosts[[1]] else resources$current_host
  rank <- match(host, hosts)
  if (!is.null(job$ProcessingJobName)) cat(sprintf("Processing job %s\n", job$ProcessingJobName))

  files <- sort(list.files(input_dir, pattern = "\\.csv$", full.names = TRUE, recursive = TRUE))
  if (length(files) == 0) stop("no .csv files under ", input_dir)
  inputs <- job$ProcessingInputs
  sharded <- identical(inputs$S3Input$S3DataDistributionType[inputs$InputName == "data"], "ShardedByS3Key")
  mine <- if (sharded) files else files[(seq_along(files) - 1) %% length(hosts) + 1 == rank]
  cat(sprintf("Host %s (%d of %d) takes %d of %d file(s)\n", host, rank, length(hosts), length(mine), length(files)))
  if (length(mine) == 0) return(invisible())

  data <- do.call(rbind, lapply(mine, utils::read.csv))
  complete <- data[stats::complete.cases(data), , drop = FALSE]
  set.seed(42)
  write_splits(split_rows(complete[sample(nrow(complete)), , drop = FALSE]), host)
  cat(sprintf("Dropped %d incomplete row(s)\n", nrow(data) - nrow(complete)))
}

tryCatch(main(), error = function(e) {
  message_file <- file.path(base_dir, "output", "message")
  dir.create(dirname(message_file), recursive = TRUE, showWarnings = FALSE)
  writeLines(paste("ProcessingError:", conditionMessage(e)), message_file)
  message("Processing failed: ", conditionMessage(e))
  quit(save = "no", status = 1)
})
