# `docker run IMAGE train`: fetch the user's code, export the toolkit's environment, run the
# program named by sagemaker_program, and leave the model with its inference code in /opt/ml/model.

plumbing_dir <- function() Sys.getenv("SAGEMAKER_PLUMBING_DIR", "/opt/sagemaker/sagemaker")

# Where the code comes from: sagemaker_submit_directory (s3://, file:// or a path), else the `code`
# channel of a network-isolated job, else the code baked into the image (nothing to fetch).
code_source <- function(env) {
  submit <- env$sagemaker_parameters$sagemaker_submit_directory
  if (!is.null(submit)) {
    if (!is.character(submit) || length(submit) != 1 || !nzchar(submit)) {
      fail("InvalidHyperparameters", "sagemaker_submit_directory must be a non-empty string")
    }
    return(submit)
  }
  isolated <- sm_path("input", "data", "code", "sourcedir.tar.gz")
  if (file.exists(isolated)) isolated else NULL
}

fetch_code <- function(source, code_dir) {
  python <- Sys.getenv("SAGEMAKER_PYTHON", "python3")
  output <- suppressWarnings(system2(python, c(file.path(plumbing_dir(), "fetch_code.py"), source, code_dir),
    stdout = TRUE, stderr = TRUE
  ))
  if (length(output) > 0) message(paste(output, collapse = "\n"))
  status <- attr(output, "status") %||% 0L
  if (status != 0) {
    reason <- if (length(output) > 0) output[[length(output)]] else paste("exit status", status)
    fail("CodeFetchError", "cannot fetch code from ", source, ": ", reason)
  }
}

check_channels <- function(env) {
  for (name in env$channels) {
    mode <- env$input_data_config[[name]]$TrainingInputMode %||% "File"
    if (identical(mode, "Pipe")) next # FIFOs <channel>_<epoch> appear while the job runs
    if (!dir.exists(env$channel_dirs[[name]])) {
      fail("MissingChannel", "channel '", name, "' is configured but ", env$channel_dirs[[name]], " does not exist")
    }
  }
}

# How a program runs, by its extension; R scripts through Rscript, so a shebang is optional.
program_command <- function(path) {
  ext <- tolower(tools::file_ext(path))
  switch(ext,
    r = c(file.path(R.home("bin"), "Rscript"), path),
    py = c(Sys.getenv("SAGEMAKER_PYTHON", "python3"), path),
    sh = c("bash", path),
    path
  )
}

run_program <- function(env) {
  program <- env$program
  if (!is.character(program) || length(program) != 1 || !nzchar(program)) {
    fail("InvalidHyperparameters", "sagemaker_program must be a script name such as \"train.R\"")
  }
  path <- file.path(env$code_dir, program)
  if (!file.exists(path)) {
    fail(
      "ProgramNotFound", "sagemaker_program '", program, "' is not in ", env$code_dir,
      " (found: ", paste(utils::head(list.files(env$code_dir), 10), collapse = ", "), ")"
    )
  }
  # R_PROFILE_USER makes the user's R process record its own error message for the failure file.
  error_file <- tempfile("user-error-")
  on.exit(unlink(error_file), add = TRUE)
  Sys.setenv(R_PROFILE_USER = file.path(plumbing_dir(), "user_profile.R"), SAGEMAKER_USER_ERROR_FILE = error_file)
  command <- program_command(path)
  args <- shQuote(c(command[-1], user_args(env$hyperparameters)))
  message("Running: ", paste(c(command[[1]], args), collapse = " "))
  owd <- setwd(env$code_dir)
  on.exit(setwd(owd), add = TRUE)
  status <- system2(command[[1]], args)
  Sys.unsetenv(c("R_PROFILE_USER", "SAGEMAKER_USER_ERROR_FILE"))
  if (status != 0) {
    detail <- if (file.exists(error_file)) trimws(paste(readLines(error_file, warn = FALSE), collapse = "\n")) else ""
    fail(
      "ExecuteUserScriptError", program, " exited with status ", status,
      if (nzchar(detail)) paste0(": ", detail) else ""
    )
  }
}

# The model ships with the code that serves it: everything in the code directory goes to
# /opt/ml/model/code unless the program already put its own inference code there.
save_inference_code <- function(env) {
  target <- file.path(env$model_dir, "code")
  if (dir.exists(target)) {
    message("Inference code left as the program wrote it in ", target)
    return(invisible())
  }
  dir.create(target, recursive = TRUE)
  entries <- list.files(env$code_dir, all.files = TRUE, no.. = TRUE, full.names = TRUE)
  ok <- file.copy(entries, target, recursive = TRUE, copy.date = TRUE)
  if (!all(ok)) fail("ModelSaveError", "cannot copy ", paste(entries[!ok], collapse = ", "), " to ", target)
  message("Inference code copied to ", target, ": ", paste(basename(entries), collapse = ", "))
}

train <- function() {
  failure_file <- sm_path("output", "failure")
  unlink(failure_file)
  status <- tryCatch(
    {
      env <- training_environment()
      source <- code_source(env)
      if (!is.null(source)) fetch_code(source, env$code_dir)
      check_channels(env)
      vars <- toolkit_env_vars(env)
      do.call(Sys.setenv, as.list(vars))
      dir.create(env$model_dir, recursive = TRUE, showWarnings = FALSE)
      dir.create(env$output_data_dir, recursive = TRUE, showWarnings = FALSE)
      dir.create(env$checkpoint_dir, recursive = TRUE, showWarnings = FALSE)
      message(
        "Training on host ", env$current_host, " (rank ", env$host_rank, " of ", length(env$hosts),
        "), channels: ", paste(env$channels, collapse = ", ")
      )
      run_program(env)
      save_inference_code(env)
      message("Training complete; model in ", env$model_dir)
      0L
    },
    interrupt = function(e) {
      write_failure(failure_file, "Stopped: the job received SIGTERM before training finished")
      143L
    },
    error = function(e) {
      write_failure(failure_file, failure_reason(e))
      1L
    }
  )
  quit(save = "no", status = status)
}
