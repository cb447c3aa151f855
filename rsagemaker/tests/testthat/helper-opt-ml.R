# A temporary /opt/ml for one test (SAGEMAKER_BASE_DIR moves the root), with config files written
# from R lists; removed when the test ends.
local_opt_ml <- function(hyperparameters = NULL, channels = NULL, resources = NULL, env = parent.frame()) {
  root <- tempfile("opt-ml-")
  for (sub in c("input/config", "input/data", "model", "output", "code")) {
    dir.create(file.path(root, sub), recursive = TRUE)
  }
  write_config <- function(name, value) {
    if (!is.null(value)) {
      writeLines(jsonlite::toJSON(value, auto_unbox = TRUE), file.path(root, "input", "config", name))
    }
  }
  write_config("hyperparameters.json", hyperparameters)
  write_config("inputdataconfig.json", channels)
  write_config("resourceconfig.json", resources)
  for (name in names(channels)) dir.create(file.path(root, "input", "data", name), recursive = TRUE)
  old <- Sys.getenv("SAGEMAKER_BASE_DIR", NA)
  Sys.setenv(SAGEMAKER_BASE_DIR = root)
  withr::defer(
    {
      if (is.na(old)) Sys.unsetenv("SAGEMAKER_BASE_DIR") else Sys.setenv(SAGEMAKER_BASE_DIR = old)
      unlink(root, recursive = TRUE)
    },
    envir = env
  )
  root
}
