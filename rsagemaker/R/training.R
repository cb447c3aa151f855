#' A training job
#'
#' `docker run IMAGE train`: fetch the user's code (`sagemaker_submit_directory`, the `code`
#' channel, or the code baked into the image), export the toolkit's [environment], run the program
#' named by `sagemaker_program` (R scripts with Rscript, Python and shell scripts with their
#' interpreters), and leave the model with its inference code (`/opt/ml/model/code`) and the
#' [versions] it was made with in `/opt/ml/model`. Any failure ends with its reason in
#' `/opt/ml/output/failure` ([errors]) and a non-zero exit.
#' @name training
#' @keywords internal
#' @concept training
NULL

#' A file the package installs (inst/): fetch_code.py, user_profile.R.
#' @noRd
package_file <- function(name) system.file(name, package = "rsagemaker", mustWork = TRUE)

#' run.sh creates this file when SageMaker sends SIGTERM (StopTrainingJob, MaxRuntime), before it
#' interrupts the R processes, so that an ending program is reported as stopped, not as failed.
#' @noRd
stop_requested <- function() {
  marker <- Sys.getenv("SAGEMAKER_STOP_MARKER")
  nzchar(marker) && file.exists(marker)
}

#' Where the code comes from: sagemaker_submit_directory (s3://, file:// or a path, to a
#' sourcedir.tar.gz or a directory), else the `code` channel: a network-isolated job's
#' sourcedir.tar.gz, or the code folder itself (what the SageMaker Python SDK v3's SourceCode
#' source_dir becomes), else the code baked into the image (nothing to fetch).
#' @noRd
code_source <- function(env) {
  submit <- env$submit_directory
  if (!is.null(submit)) {
    if (!is.character(submit) || inherits(submit, "py_int") || !nzchar(submit)) {
      fail("InvalidHyperparameters", "sagemaker_submit_directory must be an s3:// URI, a file:// URI or a path")
    }
    return(submit)
  }
  isolated <- sm_path("input", "data", "code", "sourcedir.tar.gz")
  if (file.exists(isolated)) {
    return(isolated)
  }
  channel <- sm_path("input", "data", "code")
  if (dir.exists(channel) && length(list.files(channel, all.files = TRUE, no.. = TRUE)) > 0) channel else NULL
}

fetch_code <- function(source, code_dir) {
  python <- Sys.getenv("SAGEMAKER_PYTHON", "python3")
  # R's own LD_LIBRARY_PATH (set by its start-up script) is not Python's: a Python built against
  # other libraries would load the wrong ones.
  args <- c("-u", "LD_LIBRARY_PATH", python, package_file("fetch_code.py"), source, code_dir)
  output <- suppressWarnings(system2("env", shQuote(args), stdout = TRUE, stderr = TRUE))
  if (length(output) > 0) message(paste(output, collapse = "\n"))
  status <- attr(output, "status") %||% 0L
  if (status != 0) {
    reason <- if (length(output) > 0) output[[length(output)]] else paste("exit status", status)
    fail("CodeFetchError", "cannot fetch the code from ", source, ": ", reason)
  }
}

check_channels <- function(env) {
  for (name in env$channels) {
    mode <- env$input_data_config[[name]][["TrainingInputMode"]] %||% "File"
    if (identical(mode, "Pipe")) next # FIFOs <channel>_<epoch> appear while the job runs
    if (!dir.exists(env$channel_dirs[[name]])) {
      fail(
        "MissingChannel", "channel '", name, "' is in inputdataconfig.json but ", env$channel_dirs[[name]],
        " does not exist"
      )
    }
  }
}

#' How a program runs: R scripts through Rscript (so a shebang is optional), Python and shell
#' scripts through their interpreters, anything else executed directly as the toolkit does.
#' @noRd
program_command <- function(path) {
  switch(tolower(tools::file_ext(path)),
    r = c(file.path(R.home("bin"), "Rscript"), path),
    py = c(Sys.getenv("SAGEMAKER_PYTHON", "python3"), path),
    sh = c("bash", path),
    {
      Sys.chmod(path, mode = "0755", use_umask = FALSE)
      path
    }
  )
}

run_program <- function(env) {
  program <- env$program
  if (!is.character(program) || inherits(program, "py_int") || !nzchar(program)) {
    fail("InvalidHyperparameters", "sagemaker_program must be a script name such as \"train.R\"")
  }
  path <- file.path(env$code_dir, program)
  if (!file.exists(path) || dir.exists(path)) {
    found <- utils::head(list.files(env$code_dir, recursive = TRUE), 10)
    fail(
      "ProgramNotFound", "sagemaker_program '", program, "' is not in ", env$code_dir,
      " (found: ", if (length(found) > 0) paste(found, collapse = ", ") else "nothing", ")"
    )
  }
  # R_PROFILE_USER makes the program's R process record its own error message for the failure file;
  # that profile then runs the project's own .Rprofile (renv's activation) as R would have.
  error_file <- tempfile("user-error-")
  on.exit(unlink(error_file), add = TRUE)
  Sys.setenv(R_PROFILE_USER = package_file("user_profile.R"), SAGEMAKER_USER_ERROR_FILE = error_file)
  on.exit(Sys.unsetenv(c("R_PROFILE_USER", "SAGEMAKER_USER_ERROR_FILE")), add = TRUE)
  command <- c(program_command(path), user_args(env$hyperparameters))
  message("Running: ", paste(shQuote(command), collapse = " "))
  owd <- setwd(env$code_dir)
  on.exit(setwd(owd), add = TRUE)
  # `exec` replaces the shell system2 goes through, so the status is the program's own and a
  # signal reaches the program directly. R itself ignores SIGINT while it waits here.
  status <- system2("exec", shQuote(command))
  if (status != 0) {
    detail <- if (file.exists(error_file)) trimws(paste(readLines(error_file, warn = FALSE), collapse = "\n")) else ""
    fail(
      "ExecuteUserScriptError", program, " exited with status ", status,
      if (nzchar(detail)) paste0(": ", detail) else " (see the job's log)"
    )
  }
}

#' What of the code is packed: one rule for sourcedir.tar.gz, the image (.dockerignore) and
#' /opt/ml/model/code (sagemaker_tools/opt_ml.py packed(); README "What gets packed"). Every file and
#' folder goes, except names starting with "." at any depth (.Renviron, .env, .git, ...) other than
#' the top-level .Rprofile (renv's, which runs renv/activate.R), renv's caches (renv/library,
#' renv/staging, renv/sandbox: renv rebuilds them from renv.lock), __pycache__, *.pyc and archives
#' (*.tar, *.tar.gz, *.tgz, *.zip). `paths` are relative to the code folder, with "/" separators.
#' @noRd
RENV_CACHES <- c("renv/library", "renv/staging", "renv/sandbox")
packed <- function(paths) {
  vapply(paths, function(path) {
    parts <- strsplit(path, "/", fixed = TRUE)[[1]]
    in_cache <- any(path == RENV_CACHES | startsWith(path, paste0(RENV_CACHES, "/")))
    hidden <- startsWith(parts, ".") & path != ".Rprofile"
    excluded <- grepl("^__pycache__$|[.]pyc$|[.]tar$|[.]tar[.]gz$|[.]tgz$|[.]zip$", parts)
    !in_cache && !any(hidden) && !any(excluded)
  }, NA, USE.NAMES = FALSE)
}

#' The model ships with the code that serves it: the code directory goes to /opt/ml/model/code
#' (what packed() keeps) unless the program already put its own inference code there.
#' @noRd
inference_code_files <- function(code_dir) {
  paths <- code_tree(code_dir)
  keep <- packed(paths)
  left_out <- paths[!keep]
  list(kept = paths[keep], left_out = left_out[!dirname(left_out) %in% left_out]) # a folder, not its files
}

#' Every path under dir (relative to it), descending into real folders only: a symbolic link is an
#' entry of its own, never followed (a link to a folder above would otherwise never end).
#' @noRd
code_tree <- function(dir, prefix = "") {
  entries <- list.files(file.path(dir, prefix), all.files = TRUE, no.. = TRUE)
  paths <- if (nzchar(prefix)) file.path(prefix, entries) else entries
  unlist(lapply(paths, function(path) {
    full <- file.path(dir, path)
    if (dir.exists(full) && !nzchar(Sys.readlink(full))) c(path, code_tree(dir, path)) else path
  }), use.names = FALSE) %||% character()
}

#' A copy of one entry: symbolic links as links (save_inference_code leaves out those that lead
#' out of the code).
#' @noRd
copy_entry <- function(from, to) {
  link <- Sys.readlink(from)
  if (nzchar(link)) file.symlink(link, to) else file.copy(from, to, copy.date = TRUE)
}

#' Whether the symbolic link `path` (relative to `dir`) leads out of `dir` when followed, `dir` taken
#' for "/": a ".." above it, an absolute target, or a loop. fetch_code.py's resolve_inside, in R: a
#' link the program made in the code folder (or one the image brought) is checked here too.
#' @noRd
link_leaves <- function(dir, path) {
  step <- list(parts = character(), todo = strsplit(path, "/", fixed = TRUE)[[1]])
  for (followed in 0:40) {
    step <- walk_to_link(dir, step$parts, step$todo)
    if (step$left || is.null(step$target)) {
      return(step$left)
    }
    if (startsWith(step$target, "/")) {
      return(TRUE)
    }
    step$todo <- c(strsplit(step$target, "/", fixed = TRUE)[[1]], step$todo)
  }
  TRUE # a loop
}

#' link_leaves' walk: the path components `todo` from the folder `parts` (under `dir`), up to the
#' first symbolic link (its target, and what is left to walk after it), or to the end.
#' @noRd
walk_to_link <- function(dir, parts, todo) {
  for (i in seq_along(todo)) {
    part <- todo[[i]]
    if (part == "..") {
      if (length(parts) == 0) {
        return(list(left = TRUE))
      }
      parts <- parts[-length(parts)]
    } else if (!part %in% c("", ".")) {
      target <- Sys.readlink(paste(c(dir, parts, part), collapse = "/")) # "" for a file, NA for nothing
      if (!is.na(target) && nzchar(target)) {
        return(list(left = FALSE, parts = parts, todo = todo[-seq_len(i)], target = target))
      }
      parts <- c(parts, part)
    }
  }
  list(left = FALSE, target = NULL)
}

save_inference_code <- function(env) {
  target <- file.path(env$model_dir, "code")
  if (dir.exists(target)) {
    message("Inference code left as the program wrote it in ", target)
    return(invisible())
  }
  files <- inference_code_files(env$code_dir)
  dir.create(target, recursive = TRUE)
  sources <- file.path(env$code_dir, files$kept)
  is_dir <- dir.exists(sources) & !nzchar(Sys.readlink(sources))
  for (dir in files$kept[is_dir]) dir.create(file.path(target, dir), recursive = TRUE, showWarnings = FALSE)
  copied <- files$kept[!is_dir]
  # a link out of the code folder (to /etc/passwd, to ../../..) never goes into the model
  links <- copied[nzchar(Sys.readlink(file.path(env$code_dir, copied)))]
  leaving <- links[vapply(links, function(path) link_leaves(env$code_dir, path), NA)]
  copied <- setdiff(copied, leaving)
  ok <- vapply(copied, function(path) copy_entry(file.path(env$code_dir, path), file.path(target, path)), NA)
  if (!all(ok)) fail("ModelSaveError", "cannot copy ", paste(copied[!ok], collapse = ", "), " to ", target)
  top <- unique(sub("/.*$", "", setdiff(files$kept, leaving)))
  left_out <- c(files$left_out, if (length(leaving) > 0) paste0(leaving, " (a link out of the code folder)"))
  message(
    "Inference code copied to ", target, ": ", paste(top, collapse = ", "),
    if (length(left_out) > 0) paste0(" (left out: ", paste(left_out, collapse = ", "), ")") else ""
  )
}

stopped_reason <- function(detail) {
  paste0(
    "Stopped: SIGTERM received (StopTrainingJob or MaxRuntime); ", detail,
    ". What the program saved in /opt/ml/model and /opt/ml/checkpoints is kept."
  )
}

#' Run the training job described under /opt/ml
#'
#' What `docker run IMAGE train` does ([training]): fetch the code, export the toolkit's
#' [environment], run the program, save the model with its inference code and [versions].
#' @return Does not return: it ends the R process with exit status 0 on success, 1 on failure (the
#'   reason in `/opt/ml/output/failure`, [errors]), 143 when the job was stopped (SIGTERM).
#' @concept training
#' @examples
#' \dontrun{
#' # Inside the training image, with /opt/ml laid out by SageMaker (or by `make local-train`):
#' rsagemaker::train()
#' }
#' @export
train <- function() {
  failure_file <- sm_path("output", "failure")
  unlink(failure_file)
  status <- tryCatch(
    {
      env <- training_environment()
      source <- code_source(env)
      if (is.null(source)) {
        message("Using the code baked into the image at ", env$code_dir)
      } else {
        fetch_code(source, env$code_dir)
      }
      check_channels(env)
      vars <- toolkit_env_vars(env)
      do.call(Sys.setenv, as.list(vars))
      for (dir in c(env$model_dir, env$output_data_dir, env$checkpoint_dir)) {
        dir.create(dir, recursive = TRUE, showWarnings = FALSE)
      }
      message(
        "Training on host ", env$current_host, " (rank ", env$host_rank, " of ", length(env$hosts),
        " hosts), channels: ", paste(env$channels, collapse = ", ")
      )
      run_program(env)
      save_inference_code(env)
      write_versions(env$model_dir)
      if (stop_requested()) {
        write_failure(failure_file, stopped_reason(paste(env$program, "ended after the interrupt")))
        143L
      } else {
        message("Training complete: model in ", env$model_dir, ", inference code in ", file.path(env$model_dir, "code"))
        0L
      }
    },
    interrupt = function(e) {
      write_failure(failure_file, stopped_reason("training was interrupted"))
      143L
    },
    error = function(e) {
      reason <- failure_reason(e)
      write_failure(failure_file, if (stop_requested()) stopped_reason(reason) else reason)
      if (stop_requested()) 143L else 1L
    }
  )
  quit(save = "no", status = status)
}
