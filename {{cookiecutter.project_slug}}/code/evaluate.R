#!/usr/bin/env Rscript
# Evaluation script: the pipeline's Evaluate step runs it in the processing image as
#   Rscript /opt/ml/processing/input/code/evaluate.R
# It unpacks the trained model (/opt/ml/processing/input/model/model.tar.gz), predicts the held-out
# test split (/opt/ml/processing/input/test/*.csv, written by preprocess.R) with the model's own
# deploy.R (model_fn if it defines one, else model.rds; then predict_fn), and writes
# /opt/ml/processing/evaluation/evaluation.json in SageMaker's model-quality shape:
#   {"multiclass_classification_metrics": {"accuracy": {"value": 0.95, "standard_deviation": 0.03}}}
# The pipeline's condition step reads multiclass_classification_metrics.accuracy.value from it, and
# the registered model package carries the file as its model statistics.
# The target column is the TARGET environment variable (default Species).
# On failure it writes the reason to /opt/ml/output/message (SageMaker's ExitMessage) and exits 1.
base_dir <- Sys.getenv("SAGEMAKER_BASE_DIR", "/opt/ml")
model_tarball <- file.path(base_dir, "processing", "input", "model", "model.tar.gz")
test_dir <- file.path(base_dir, "processing", "input", "test")
evaluation_file <- file.path(base_dir, "processing", "evaluation", "evaluation.json")
target <- Sys.getenv("TARGET", "Species")

# deploy.R may raise http_error() for bad input, as it does when serving: here that is a plain error.
http_error <- function(status, message) stop(sprintf("HTTP %s: %s", status, message), call. = FALSE)

load_model <- function(model_dir) {
  handlers <- new.env()
  handlers$http_error <- http_error
  deploy_file <- file.path(model_dir, "code", "deploy.R")
  if (!file.exists(deploy_file)) stop("model.tar.gz has no code/deploy.R (train.R copies code/ into the model)")
  sys.source(deploy_file, envir = handlers)
  if (!exists("predict_fn", envir = handlers, inherits = FALSE)) stop(deploy_file, " defines no predict_fn")
  model <- if (exists("model_fn", envir = handlers, inherits = FALSE)) {
    handlers$model_fn(model_dir)
  } else {
    readRDS(file.path(model_dir, "model.rds"))
  }
  list(model = model, predict_fn = handlers$predict_fn)
}

main <- function() {
  if (!file.exists(model_tarball)) stop("no model at ", model_tarball)
  model_dir <- file.path(tempdir(), "model")
  dir.create(model_dir, showWarnings = FALSE)
  if (utils::untar(model_tarball, exdir = model_dir) != 0) stop("cannot unpack ", model_tarball)
  loaded <- load_model(model_dir)

  files <- sort(list.files(test_dir, pattern = "\\.csv$", full.names = TRUE, recursive = TRUE))
  if (length(files) == 0) stop("no .csv files under ", test_dir, " (preprocess.R writes them with TEST_FRACTION > 0)")
  test <- do.call(rbind, lapply(files, utils::read.csv, stringsAsFactors = FALSE))
  if (!target %in% names(test)) stop("target column '", target, "' is not in the test split")
  if (nrow(test) == 0) stop("the test split is empty")

  predicted <- loaded$predict_fn(test[setdiff(names(test), target)], loaded$model)
  correct <- as.character(predicted) == as.character(test[[target]])
  accuracy <- mean(correct)
  report <- list(multiclass_classification_metrics = list(
    accuracy = list(value = accuracy, standard_deviation = sqrt(accuracy * (1 - accuracy) / nrow(test)))
  ))
  dir.create(dirname(evaluation_file), recursive = TRUE, showWarnings = FALSE)
  jsonlite::write_json(report, evaluation_file, auto_unbox = TRUE, digits = NA, pretty = TRUE)
  cat(sprintf("test_accuracy=%.4f; (%d of %d test rows)\n", accuracy, sum(correct), nrow(test)))
  cat("Wrote", evaluation_file, "\n")
}

tryCatch(main(), error = function(e) {
  message_file <- file.path(base_dir, "output", "message")
  dir.create(dirname(message_file), recursive = TRUE, showWarnings = FALSE)
  writeLines(paste("EvaluationError:", conditionMessage(e)), message_file)
  message("Evaluation failed: ", conditionMessage(e))
  quit(save = "no", status = 1)
})
