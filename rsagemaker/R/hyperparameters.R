#' Hyperparameters, as the training toolkit reads them and hands them to the program
#'
#' `/opt/ml/input/config/hyperparameters.json` holds strings only; each is JSON-decoded (falling back
#' to the raw text) and given to the program as `SM_HP_<NAME>` variables and as command-line
#' arguments (sorted, `--name value`, values as Python's `str()` writes them). Keys the SageMaker SDK
#' sets (`sagemaker_program`, `sagemaker_submit_directory`, every other `sagemaker_*`) are kept from
#' the program.
#' @name hyperparameters
#' @keywords internal
#' @concept training
NULL

# Hyperparameters the SDK sets for the container (the toolkit's params.SAGEMAKER_HYPERPARAMETERS).
# They and every other `sagemaker_` key are kept from the user's script; the other `sagemaker_`
# keys are the "framework parameters".
SAGEMAKER_HYPERPARAMETERS <- c(
  "sagemaker_program", "sagemaker_submit_directory", "sagemaker_enable_cloudwatch_metrics",
  "sagemaker_region", "sagemaker_container_log_level", "sagemaker_job_name",
  "default_user_module_name", "_tuning_objective_metric", "sagemaker_s3_output"
)

#' Every value in hyperparameters.json is a string. In script mode the SDK JSON-encodes each one
#' ("\"train.R\"", "10", "true"); without it the user's raw text arrives ("abc"). Decode as the
#' toolkit does: JSON first, the raw string when that fails.
#' @noRd
decode_hyperparameter <- function(value) {
  tryCatch(parse_py_json(value), error = function(e) value)
}

read_hyperparameters <- function() {
  path <- sm_path("input", "config", "hyperparameters.json")
  raw <- read_config_json("hyperparameters.json", default = py_dict())
  if (!inherits(raw, "py_dict")) {
    fail("InvalidHyperparameters", path, " must hold a JSON object whose values are strings")
  }
  not_strings <- names(raw)[!vapply(raw, function(v) is.character(v) && !inherits(v, "py_int"), logical(1))]
  if (length(not_strings) > 0) {
    fail(
      "InvalidHyperparameters", path, ": every value must be a string, as SageMaker writes them; not a string: ",
      paste(not_strings, collapse = ", "),
      ". Encode values as strings, e.g. \"epochs\": \"10\" (JSON-encoded, as the SageMaker SDK does)."
    )
  }
  py_dict(lapply(raw, decode_hyperparameter))
}

#' The hyperparameters as command-line arguments (mapping.to_cmd_args): sorted keys, "--key" (or
#' "-k"), values as Python's str() ("True", "[1, 'a']"), a dict as "k1=v1,k2=v2".
#' @noRd
user_args <- function(hyperparameters) {
  keys <- sort(names(hyperparameters), method = "radix")
  unlist(lapply(keys, function(key) {
    name <- if (nchar(key) > 1) paste0("--", key) else if (nzchar(key)) paste0("-", key) else ""
    value <- hyperparameters[[key]]
    text <- if (inherits(value, "py_dict")) {
      inner <- sort(names(value), method = "radix")
      paste(vapply(inner, function(k) paste0(k, "=", py_str(value[[k]])), ""), collapse = ",")
    } else if (inherits(value, "py_none")) {
      ""
    } else {
      py_str(value)
    }
    c(name, text)
  }), use.names = FALSE)
}
