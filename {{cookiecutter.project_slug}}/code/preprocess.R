#!/usr/bin/env Rscript
# Processing script: SageMaker's ScriptProcessor runs it as
#   Rscript /opt/ml/processing/input/code/preprocess.R
# It reads every CSV under /opt/ml/processing/input/data, drops incomplete rows, and writes a
# shuffled train/validation split to /opt/ml/processing/output/{train,validation}.
# With several hosts each one takes its share of the input files (by its place in resourceconfig).
# On failure it writes the reason to /opt/ml/output/message (SageMaker's ExitMessage) and exits 1.
base_dir <- Sys.getenv("SAGEMAKER_BASE_DIR", "/opt/ml")
input_dir <- file.path(base_dir, "processing", "input", "data")
output_dir <- file.path(base_dir, "processing", "output")

read_json <- function(path) if (file.exists(path)) jsonlite::fromJSON(path) else NULL

main <- function() {
  job <- read_json(file.path(base_dir, "config", "processingjobconfig.json"))
  resources <- read_json(file.path(base_dir, "config", "resourceconfig.json"))
  hosts <- sort(if (is.null(resources$hosts)) "algo-1" else resources$hosts)
  host <- if (is.null(resources$current_host)) hosts[[1]] else resources$current_host
  rank <- match(host, hosts)
  if (!is.null(job$ProcessingJobName)) cat(sprintf("Processing job %s\n", job$ProcessingJobName))

  files <- sort(list.files(input_dir, pattern = "\\.csv$", full.names = TRUE, recursive = TRUE))
  if (length(files) == 0) stop("no .csv files under ", input_dir)
  mine <- files[(seq_along(files) - 1) %% length(hosts) + 1 == rank]
  cat(sprintf("Host %s (%d of %d) takes %d of %d file(s)\n", host, rank, length(hosts), length(mine), length(files)))
  if (length(mine) == 0) return(invisible())

  data <- do.call(rbind, lapply(mine, utils::read.csv))
  complete <- data[stats::complete.cases(data), , drop = FALSE]
  set.seed(42)
  shuffled <- complete[sample(nrow(complete)), , drop = FALSE]
  # Index vectors, not negative indexing: shuffled[-integer(0), ] would select no row at all.
  train_rows <- seq_len(floor(0.8 * nrow(shuffled)))
  validation_rows <- setdiff(seq_len(nrow(shuffled)), train_rows)
  splits <- list(train = shuffled[train_rows, , drop = FALSE], validation = shuffled[validation_rows, , drop = FALSE])
  for (name in names(splits)) {
    dir.create(file.path(output_dir, name), recursive = TRUE, showWarnings = FALSE)
    path <- file.path(output_dir, name, sprintf("%s-%s.csv", name, host))
    utils::write.csv(splits[[name]], path, row.names = FALSE)
    cat(sprintf("Wrote %d rows to %s\n", nrow(splits[[name]]), path))
  }
  cat(sprintf("Dropped %d incomplete row(s)\n", nrow(data) - nrow(complete)))
}

tryCatch(main(), error = function(e) {
  message_file <- file.path(base_dir, "output", "message")
  dir.create(dirname(message_file), recursive = TRUE, showWarnings = FALSE)
  writeLines(paste("ProcessingError:", conditionMessage(e)), message_file)
  message("Processing failed: ", conditionMessage(e))
  quit(save = "no", status = 1)
})
