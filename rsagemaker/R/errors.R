#' Errors that end a training job
#'
#' A job fails with a classed condition (a kind and a message). The reason written to
#' `/opt/ml/output/failure` starts with the kind and the message, because SageMaker keeps only its
#' first 1024 characters as the job's `FailureReason`, e.g.
#' `MissingChannel: channel 'train' is in inputdataconfig.json but /opt/ml/input/data/train does not exist`.
#' An error in the user's program is reported as `ExecuteUserScriptError` with the program's own
#' error message.
#' @name errors
#' @keywords internal
#' @concept training
NULL

sagemaker_error <- function(kind, message) {
  structure(
    class = c(kind, "sagemaker_error", "error", "condition"),
    list(message = message, call = NULL)
  )
}

#' Stop the job with a reason, e.g. fail("MissingChannel", "channel 'train' has no directory").
#' @noRd
fail <- function(kind, ...) {
  stop(sagemaker_error(kind, paste0(...)))
}

failure_reason <- function(condition) {
  kind <- if (inherits(condition, "sagemaker_error")) class(condition)[[1]] else "AlgorithmError"
  paste0(kind, ": ", conditionMessage(condition))
}

write_failure <- function(path, reason) {
  dir.create(dirname(path), recursive = TRUE, showWarnings = FALSE)
  writeLines(enc2utf8(reason), path, useBytes = TRUE)
  message("Failure reason written to ", path, ":\n", reason)
}
