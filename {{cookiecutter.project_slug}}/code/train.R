#!/usr/bin/env Rscript
# Training script: SageMaker runs it as `train.R --maxdepth 5 --cp 0.01` (see entrypoint.R), with
# the job's settings in SM_* environment variables, as aws/sagemaker-training-toolkit sets them:
#   SM_HPS              the hyperparameters as JSON (typed: numbers, booleans, strings, lists)
#   SM_CHANNEL_<NAME>   the directory of each input channel, e.g. SM_CHANNEL_TRAIN
#   SM_MODEL_DIR        where to save the model (SageMaker uploads it as model.tar.gz)
#   SM_CHECKPOINT_DIR   checkpoints kept across Spot interruptions (synced with checkpoint_s3_uri)
#   SM_HOSTS, SM_CURRENT_HOST, SM_HOST_RANK   the job's hosts, this host, its 0-based rank
# A stopped job (SIGTERM) reaches this script as an R interrupt: catch it with
# tryCatch(..., interrupt = function(e) ...) or on.exit() to save a partial model or checkpoint.
# The files in this folder are copied to SM_MODEL_DIR/code after training, so the model is served
# by the deploy.R it was trained with.
library(rpart)

hyperparameters <- jsonlite::fromJSON(Sys.getenv("SM_HPS", "{}"))
setting <- function(name, default) if (is.null(hyperparameters[[name]])) default else hyperparameters[[name]]

# Checkpoints: a restarted Spot job finds the previous run's files in SM_CHECKPOINT_DIR.
checkpoint_dir <- Sys.getenv("SM_CHECKPOINT_DIR")
checkpoint_file <- file.path(checkpoint_dir, "checkpoint.rds")
checkpoint <- if (file.exists(checkpoint_file)) readRDS(checkpoint_file) else list(runs = 0L)
if (checkpoint$runs > 0) {
  cat(sprintf("Resuming from checkpoint %s: %d earlier run(s), last accuracy %.4f\n",
    checkpoint_file, checkpoint$runs, checkpoint$accuracy))
}
cat(sprintf("Host %s, rank %s of %d\n", Sys.getenv("SM_CURRENT_HOST"), Sys.getenv("SM_HOST_RANK"),
  length(jsonlite::fromJSON(Sys.getenv("SM_HOSTS", "[]")))))

train_dir <- Sys.getenv("SM_CHANNEL_TRAIN")
model_dir <- Sys.getenv("SM_MODEL_DIR")
target <- setting("target", "Species")

files <- list.files(train_dir, pattern = "\\.csv$", full.names = TRUE)
if (length(files) == 0) stop("no .csv files in the train channel (", train_dir, ")")
data <- do.call(rbind, lapply(files, utils::read.csv, stringsAsFactors = TRUE))
if (!target %in% names(data)) stop("target column '", target, "' is not in the training data")
features <- setdiff(names(data), target)
data[[target]] <- as.factor(data[[target]])

fit <- rpart(
  stats::reformulate(features, response = target),
  data = data,
  method = "class",
  control = rpart.control(
    maxdepth = setting("maxdepth", 5), cp = setting("cp", 0.01), minsplit = setting("minsplit", 10)
  )
)
# Metric lines: SageMaker reads them from the log with the regexes of training.metric_definitions
# (config/aws.json; the default matches these two lines); change both together.
accuracy <- mean(predict(fit, data, type = "class") == data[[target]])
cat(sprintf("train_accuracy=%.4f;\n", accuracy))
validation_dir <- Sys.getenv("SM_CHANNEL_VALIDATION")
validation_files <- if (nzchar(validation_dir)) list.files(validation_dir, pattern = "\\.csv$", full.names = TRUE)
if (length(validation_files) > 0) {
  validation <- do.call(rbind, lapply(validation_files, utils::read.csv, stringsAsFactors = TRUE))
  if (target %in% names(validation) && nrow(validation) > 0) {
    validation_accuracy <- mean(as.character(predict(fit, validation, type = "class")) == validation[[target]])
    cat(sprintf("validation_accuracy=%.4f;\n", validation_accuracy))
  }
}

saveRDS(list(fit = fit, features = features, target = target), file.path(model_dir, "model.rds"))
cat("Model saved to", file.path(model_dir, "model.rds"), "\n")
# The input prototype (feature names and types) goes with the model: the serving image's default
# input_fn answers 400 naming a missing or mistyped column instead of failing inside predict().
rsagemaker::save_input_prototype(data[features], model_dir)
# The monitoring baseline (code/baseline.R): what make monitor compares the endpoint's traffic with.
source("baseline.R")
save_baseline(data[features], predict(fit, data, type = "class"), model_dir, accuracy = accuracy)
if (nzchar(checkpoint_dir)) {
  dir.create(checkpoint_dir, recursive = TRUE, showWarnings = FALSE)
  saveRDS(list(runs = checkpoint$runs + 1L, accuracy = accuracy), checkpoint_file)
  cat("Checkpoint saved to", checkpoint_file, "\n")
}
