#' The project's commands from R
#'
#' The commands of a project made from the r-sagemaker template, its `make` targets, have R
#' functions here (`make deploy` is [project_deploy()], ...); [project_command()] runs any other
#' target (`autoscale`, `invoke-async`, `local-pipeline`, ...). Each one runs that very target,
#' `make -C path TARGET`, so make and R share one implementation: the Makefile computes the image
#' references and the tag, and calls the project CLI (`rsagemaker`, the Python package
#' rsagemaker-cli), which R asks for a JSON outcome (`rsagemaker --json FILE`) to return R data.
#' A failure is an R error of class `rsagemaker_command_error` whose message is the command's one
#' error line.
#'
#' The command's output is shown as it runs (`quiet = TRUE` hides it). With the package processx
#' installed, each line goes through R as it comes: standard output to R's [stdout()], standard
#' error as a [message()], so that knitr (R Markdown, Quarto), [capture.output()] and RStudio show
#' or capture it as they do R's own output. Without processx (or with
#' `options(rsagemaker.processx = FALSE)`), the command writes straight to the R process's
#' terminal: shown in a console, but not in a knitted document. An interrupt of R (Ctrl-C, Esc)
#' stops the command as Ctrl-C in a terminal would, so the CLI removes the containers it started.
#'
#' The CLI is found in this order: `options(rsagemaker.cli = "/path/to/rsagemaker")` or the
#' environment variable `RSAGEMAKER_CLI`; the project's `.venv/bin/rsagemaker` (`make venv` makes
#' it); `rsagemaker` on the `PATH` (`pip install rsagemaker-cli`). The commands also need `make`
#' and `bash`.
#'
#' The remote commands ([project_remote_train()], [project_deploy()], [project_invoke()],
#' [project_models()], ...) need no container engine: they run where there is no Docker, e.g. in
#' RStudio on SageMaker, with images pushed from elsewhere or built by [project_remote_build()].
#' The local ones ([project_build()], [project_local_train()], [project_local_serve()], ...) need
#' Docker (or podman behind the Docker API).
#' @name project
#' @concept project
#' @keywords internal
NULL

# The project a command acts on: what the CLI's find_project() looks for.
PROJECT_FILES <- c("Makefile", file.path("config", "aws.json"))

#' A project's root folder, absolute; else one line naming the argument.
#' @noRd
project_root <- function(path) {
  path <- existing_folder(path, "project folder")
  missing <- PROJECT_FILES[!file.exists(file.path(path, PROJECT_FILES))]
  if (length(missing) > 0) {
    usage_error(
      "not a project made from the r-sagemaker template (no ", paste(missing, collapse = " or "), "): ",
      deparse1(path)
    )
  }
  normalizePath(path, winslash = "/")
}

#' The project CLI's path: the option or variable, else the project's .venv, else the PATH.
#' @noRd
project_cli <- function(root) {
  set <- getOption("rsagemaker.cli", Sys.getenv("RSAGEMAKER_CLI"))
  if (is_string(set) && nzchar(set)) {
    found <- Sys.which(set)
    if (!nzchar(found)) usage_error("no rsagemaker CLI at ", deparse1(set), " (options(rsagemaker.cli) or RSAGEMAKER_CLI)")
    return(normalizePath(found, winslash = "/"))
  }
  venv <- file.path(root, ".venv", "bin", "rsagemaker")
  if (file.exists(venv)) {
    return(venv)
  }
  found <- Sys.which("rsagemaker")
  if (nzchar(found)) {
    return(normalizePath(found, winslash = "/"))
  }
  usage_error(
    "the project CLI (rsagemaker) is not installed: run `make venv` in ", root,
    ", or `pip install rsagemaker-cli`, or set options(rsagemaker.cli = \"/path/to/rsagemaker\")"
  )
}

#' make's command-line variables from R values: TRUE is 1; NULL and FALSE are left out.
#' @noRd
make_variables <- function(variables) {
  variables <- Filter(function(value) !is.null(value) && !isFALSE(value), variables)
  if (length(variables) > 0 && (is.null(names(variables)) || !all(grepl("^[A-Z_][A-Z0-9_]*$", names(variables))))) {
    usage_error("make variables must be named in capitals, e.g. NO_WAIT = TRUE")
  }
  values <- vapply(names(variables), function(name) {
    value <- variables[[name]]
    if (isTRUE(value)) value <- "1"
    if (!(is.character(value) || is.numeric(value)) || length(value) != 1 || is.na(value)) {
      usage_error(name, " must be one string or number, or TRUE")
    }
    value <- as.character(value)
    if (grepl("[\n\r]", value)) usage_error(name, " must be one line")
    value
  }, character(1))
  if (length(values) == 0) character() else paste0(names(values), "=", values)
}

#' Run a project's make target, as `make TARGET` does
#'
#' The function the other `project_*()` functions call: it runs `make -C path TARGET VARIABLES`,
#' with the project CLI (see [project]) asked for its outcome as JSON, shows the output as it runs
#' (through R with processx: see [project]), and returns what the command reports. Use it for a
#' target that has no function of its own, e.g.
#' `project_command("autoscale", MIN = 1, MAX = 4, TARGET = 100)`.
#'
#' @param target the make target, e.g. `"deploy"`.
#' @param ... make variables, named as the Makefile names them, e.g. `NO_WAIT = TRUE` (`TRUE` is
#'   `1`; `NULL` and `FALSE` are left out).
#' @param path the project folder (it holds `Makefile` and `config/aws.json`).
#' @param quiet `TRUE` hides the command's output (its error line still makes the R error).
#' @return What the command reports (the `result` of `rsagemaker --json`: a list), or `NULL` for
#'   a command that reports nothing, invisibly. A failed command is an error of class
#'   `rsagemaker_command_error` with `target` and `status` (make's exit status), whose message is
#'   the command's last error line; a wrong argument (no such folder, not a project, a malformed
#'   variable, no CLI) is an error of class `rsagemaker_usage_error`, before anything runs.
#' @seealso [project] for how the CLI is found and what needs Docker.
#' @concept project
#' @examples
#' \dontrun{
#' project_command("autoscale", MIN = 1, MAX = 4, TARGET = 100, path = "my-project")
#' }
#' @export
project_command <- function(target, ..., path = ".", quiet = FALSE) {
  if (!is_string(target) || !grepl("^[a-z][a-z0-9-]*$", target)) usage_error("no such make target: ", deparse1(target))
  root <- project_root(path)
  variables <- make_variables(list(...))
  cli <- if (target %in% c("build", "images")) NULL else project_cli(root)
  make <- Sys.which("make")
  if (!nzchar(make)) usage_error("make is not installed (the project's commands are its make targets)")
  outcome_file <- tempfile("rsagemaker-", fileext = ".json")
  stderr_file <- tempfile("rsagemaker-", fileext = ".err")
  on.exit(unlink(c(outcome_file, stderr_file)))
  if (!is.null(cli)) {
    variables <- c(paste0("CLI=", shQuote(cli), " --json ", shQuote(outcome_file)), variables)
    venv <- file.path(root, ".venv", "bin")
    if (dirname(cli) != venv) { # a CLI of its own: make leaves the project's .venv alone
      python <- file.path(dirname(cli), "python")
      variables <- c(paste0("PYTHON=", if (file.exists(python)) python else cli), variables)
    }
  }
  # Both ways give the command the library path R was started with (child_library_path()).
  arguments <- c("-s", "--no-print-directory", "-C", root, target, variables)
  run <- if (use_processx()) run_through_r else run_on_terminal
  status <- run(make, arguments, quiet, stderr_file)
  outcome <- if (file.exists(outcome_file) && file.size(outcome_file) > 0) {
    jsonlite::read_json(outcome_file)
  }
  if (status != 0) command_failed(target, status, outcome, stderr_file)
  invisible(outcome$result)
}

#' Whether to run commands with processx (see the `project` topic): 3.5.0 or later, whose `env`
#' takes "current".
#' @noRd
use_processx <- function() {
  !isFALSE(getOption("rsagemaker.processx")) &&
    requireNamespace("processx", versionCheck = list(op = ">=", version = "3.5.0"), quietly = TRUE)
}

#' Run a command with each line of its output written through R as it comes: stdout to stdout(),
#' stderr as message(). A child writing to R's own file descriptors (system2(stdout = "")) goes
#' around R's connections, where knitr, capture.output() and RStudio read. Returns the exit
#' status; stderr's lines are also written to stderr_file (the error line).
#' @noRd
run_through_r <- function(command, arguments, quiet, stderr_file) {
  # PYTHONUNBUFFERED: the CLI's prints come as they are made, not when a pipe's buffer fills.
  # (An empty LD_LIBRARY_PATH is no path to the loader, as an unset one.)
  process <- processx::process$new(command, arguments,
    stdout = "|", stderr = "|",
    env = c("current", LD_LIBRARY_PATH = child_library_path(), PYTHONUNBUFFERED = "1")
  )
  on.exit(if (process$is_alive()) interrupt_group(process))
  errors <- character()
  # Until both pipes end: what the command printed last comes after it has exited. The short
  # poll keeps R responsive to an interrupt.
  while (process$is_incomplete_output() || process$is_incomplete_error()) {
    process$poll_io(200)
    output <- process$read_output_lines()
    error <- process$read_error_lines()
    errors <- c(errors, error)
    if (!quiet) {
      writeLines(output)
      for (line in error) message(line)
    }
  }
  process$wait()
  writeLines(errors, stderr_file)
  process$get_exit_status()
}

#' Stop a command R was interrupted in. processx starts it in a session of its own, out of reach of
#' the terminal's Ctrl-C: it gets SIGINT as the terminal would send it, to its whole process group
#' (make, the CLI: the CLI then removes the containers it started), and a while to end.
#' @noRd
interrupt_group <- function(process) {
  system2("kill", c("-s", "INT", "--", paste0("-", process$get_pid())), stdout = FALSE, stderr = FALSE)
  process$wait(10000)
  if (process$is_alive()) process$kill_tree()
}

#' Run a command writing straight to the R process's terminal (no processx): shown in a console,
#' not captured by knitr. stderr is also kept in stderr_file (the error line). Returns the exit
#' status.
#' @noRd
run_on_terminal <- function(command, arguments, quiet, stderr_file) {
  script <- paste(
    'err=$1; if [ -n "$2" ]; then export LD_LIBRARY_PATH="$2"; else unset LD_LIBRARY_PATH; fi; shift 2;',
    'export PYTHONUNBUFFERED=1; set -o pipefail; { "$@" 2>&1 1>&3 3>&- | tee "$err" 1>&2 3>&-; } 3>&1'
  )
  arguments <- c(
    "-c", shQuote(script), "rsagemaker", shQuote(stderr_file), shQuote(child_library_path()), shQuote(command),
    shQuote(arguments)
  )
  output <- if (quiet) FALSE else ""
  system2("bash", arguments, stdout = output, stderr = output)
}

#' LD_LIBRARY_PATH without what R's start-up script (R_HOME/etc/ldpaths) put in front of it: R's own
#' and the system's library folders would make a Python built with its own libpython (pyenv's, say)
#' load the system's instead, and fail.
#' @noRd
child_library_path <- function() {
  current <- Sys.getenv("LD_LIBRARY_PATH")
  ldpaths <- file.path(R.home("etc"), "ldpaths")
  if (!nzchar(current) || !file.exists(ldpaths)) {
    return(current)
  }
  script <- 'unset LD_LIBRARY_PATH R_LD_LIBRARY_PATH R_JAVA_LD_LIBRARY_PATH; . "$1"; printf %s "$LD_LIBRARY_PATH"'
  added <- suppressWarnings(system2("sh", c("-c", shQuote(script), "sh", shQuote(ldpaths)), stdout = TRUE, stderr = FALSE))
  added <- paste(added, collapse = "")
  # (R started from R, as R CMD check starts it, put it in front more than once)
  while (nzchar(added) && startsWith(current, added)) current <- sub("^:", "", substring(current, nchar(added) + 1))
  current
}

#' The one R error of a failed command: its JSON error line, else its last line on stderr.
#' @noRd
command_failed <- function(target, status, outcome, stderr_file) {
  line <- outcome$error
  if (is.null(line)) {
    lines <- if (file.exists(stderr_file)) trimws(readLines(stderr_file, warn = FALSE)) else character()
    lines <- lines[nzchar(lines) & !grepl("^make(\\[[0-9]+\\])?: \\*\\*\\*", lines)]
    line <- if (length(lines) > 0) sub("^error: ", "", lines[[length(lines)]]) else sprintf("exit status %d", status)
  }
  stop(structure(
    class = c("rsagemaker_command_error", "error", "condition"),
    list(
      message = sprintf("make %s: %s", target, line), call = NULL, target = target, status = status,
      result = outcome$result
    )
  ))
}

#' A list of records (JSON objects) as a data frame: one column per field, NULL as NA.
#' @noRd
records_frame <- function(records, fields) {
  columns <- lapply(fields, function(field) {
    values <- lapply(records, function(record) record[[field]] %||% NA)
    unlist(values)
  })
  frame <- as.data.frame(stats::setNames(columns, fields), stringsAsFactors = FALSE)
  if (length(records) == 0) frame <- frame[0, , drop = FALSE]
  frame
}

#' A prediction's body as a data frame (a one-column answer in the column `prediction`).
#' @noRd
prediction_frame <- function(result) {
  prediction <- read_prediction(result$body, result$content_type %||% "")
  frame <- if (is.data.frame(prediction)) prediction else data.frame(prediction = prediction)
  structure(frame, body = result$body, content_type = result$content_type)
}

#' A character value with the rest of a command's report as attributes.
#' @noRd
named_with <- function(name, ...) {
  structure(name, ...)
}

# ---- images ---------------------------------------------------------------------------------------

#' The project's image references
#'
#' `make images`: each image the project builds and its local reference,
#' `<project>-<image>:<TAG>` (TAG: the commit, `-dirty` when the tree has changed).
#' @inheritParams project_command
#' @param tag the Makefile's TAG, `NULL` for its default.
#' @return A named character vector, e.g. `c(training = "my-project-training:0a1b2c3d4e5f")`.
#' @concept project
#' @examples
#' \dontrun{
#' project_images("my-project")
#' }
#' @export
project_images <- function(path = ".", tag = NULL) {
  root <- project_root(path)
  arguments <- c("-s", "--no-print-directory", "-C", shQuote(root), "images", shQuote(make_variables(list(TAG = tag))))
  lines <- system2(Sys.which("make"), arguments, stdout = TRUE)
  pairs <- strsplit(lines[grepl("=", lines, fixed = TRUE)], "=", fixed = TRUE)
  stats::setNames(vapply(pairs, `[[`, "", 2), vapply(pairs, `[[`, "", 1))
}

#' Build the project's images
#'
#' `make build`: a make target (it runs `docker build` for each image; no CLI). Needs Docker;
#' where there is none, [project_remote_build()] builds and pushes them in AWS CodeBuild.
#' @inheritParams project_command
#' @param base_image,tag the Makefile's BASE_IMAGE and TAG, `NULL` for its defaults.
#' @return The built image references ([project_images()] at that TAG), invisibly.
#' @concept project
#' @examples
#' \dontrun{
#' project_build("my-project")
#' }
#' @export
project_build <- function(path = ".", base_image = NULL, tag = NULL, quiet = FALSE) {
  project_command("build", BASE_IMAGE = base_image, TAG = tag, path = path, quiet = quiet)
  invisible(project_images(path, tag = tag))
}

#' Push the built images to Amazon ECR
#'
#' `make push`: every built image at its TAG (and `latest`), to ECR or to `registry`. Needs Docker.
#' @inheritParams project_command
#' @param registry another registry, `host[:port]/prefix` (no AWS involved).
#' @return The pushed references, `repository:tag`, as a character vector, invisibly.
#' @concept project
#' @examples
#' \dontrun{
#' project_push("my-project")
#' }
#' @export
project_push <- function(path = ".", registry = NULL, quiet = FALSE) {
  result <- project_command("push", REGISTRY = registry, path = path, quiet = quiet)
  invisible(vapply(result, function(pushed) pushed$pushed, ""))
}

#' Build and push the images in AWS CodeBuild
#'
#' `make remote-build`: `make build push` without a local Docker (e.g. in RStudio on SageMaker).
#' @inheritParams project_command
#' @param no_wait `TRUE` returns once the build has started.
#' @return The pushed images as ECR references at the TAG, named by image (e.g.
#'   `c(training = "<account>.dkr.ecr.<region>.amazonaws.com/my-project-training:0a1b2c3d4e5f")`),
#'   with attributes `by_digest` (the same images by digest), `build_id` and `status`; with
#'   `no_wait = TRUE` an empty vector with `build_id`. Invisibly.
#' @concept project
#' @examples
#' \dontrun{
#' project_remote_build("my-project")
#' }
#' @export
project_remote_build <- function(path = ".", no_wait = FALSE, quiet = FALSE) {
  result <- project_command("remote-build", NO_WAIT = no_wait, path = path, quiet = quiet)
  images <- result$images %||% list()
  pushed <- stats::setNames(vapply(images, function(image) image$pushed, ""), vapply(images, function(image) image$image, ""))
  by_digest <- stats::setNames(vapply(images, function(image) image$by_digest, ""), names(pushed))
  invisible(structure(pushed, by_digest = by_digest, build_id = result$build_id, status = result$status))
}

# ---- local runs -----------------------------------------------------------------------------------

#' Run the project's jobs and endpoint in local containers
#'
#' `make local-process`, `make local-train`, `make local-serve`, `make predict`, `make local-stop`
#' and `make local-transform`: the built images run here, as SageMaker runs them (Docker needed).
#' [train_local()] and [invoke_local()] do the same with no container.
#' @inheritParams project_command
#' @param instances the number of hosts the job runs on (INSTANCES).
#' @return `project_local_process()`: the output folder (`build/processing/output`);
#'   `project_local_train()`: the model (`build/model.tar.gz`); `project_local_serve()`: the
#'   endpoint's URL; `project_local_transform()`: the output folder; invisibly.
#' @concept project
#' @examples
#' \dontrun{
#' project_local_train("my-project")
#' url <- project_local_serve("my-project")
#' project_predict("my-project")
#' project_local_stop("my-project")
#' }
#' @export
project_local_train <- function(path = ".", instances = NULL, quiet = FALSE) {
  project_command("local-train", INSTANCES = instances, path = path, quiet = quiet)
  invisible(file.path(project_root(path), "build", "model.tar.gz"))
}

#' @rdname project_local_train
#' @export
project_local_process <- function(path = ".", instances = NULL, quiet = FALSE) {
  project_command("local-process", INSTANCES = instances, path = path, quiet = quiet)
  invisible(file.path(project_root(path), "build", "processing", "output"))
}

#' @rdname project_local_train
#' @param port the port on 127.0.0.1 (PORT).
#' @param multi_model `TRUE` serves every model of `build/models/` (MULTI_MODEL).
#' @param capture `TRUE` keeps every request and answer under `build/capture/` (CAPTURE), as
#'   SageMaker's data capture does: what [project_local_monitor()] reads.
#' @export
project_local_serve <- function(path = ".", port = 8080, multi_model = FALSE, capture = FALSE, quiet = FALSE) {
  project_command("local-serve", PORT = port, MULTI_MODEL = multi_model, CAPTURE = capture, path = path, quiet = quiet)
  invisible(sprintf("http://127.0.0.1:%s", port))
}

#' @rdname project_local_train
#' @export
project_local_stop <- function(path = ".", quiet = FALSE) {
  invisible(project_command("local-stop", path = path, quiet = quiet))
}

#' @rdname project_local_train
#' @param input a folder of input files (INPUT), `NULL` for `data/`.
#' @export
project_local_transform <- function(path = ".", input = NULL, quiet = FALSE) {
  project_command("local-transform", INPUT = input, path = path, quiet = quiet)
  invisible(file.path(project_root(path), "build", "transform", "output"))
}

#' Run a batch transform job on SageMaker
#'
#' `make remote-transform`: the model [project_deploy()] would serve (or the one named), over
#' `data/` (or `transform.input_s3_uri`), one `<file>.out` per input file. No Docker needed;
#' [project_local_transform()] runs the same here.
#' @inheritParams project_command
#' @param training_job,model_package transform with this training job's model, or this model
#'   package (an ARN).
#' @param no_wait `TRUE` returns once the job is created.
#' @return The job's name, with attributes `status`, `arn` and `output_uri` (where the `.out`
#'   files are), invisibly. A failed job is an error with its failure reason.
#' @concept project
#' @examples
#' \dontrun{
#' job <- project_remote_transform("my-project")
#' attr(job, "output_uri")
#' }
#' @export
project_remote_transform <- function(path = ".", training_job = NULL, model_package = NULL, no_wait = FALSE,
                                     quiet = FALSE) {
  result <- project_command("remote-transform",
    TRAINING_JOB = as_name(training_job), MODEL_PACKAGE = as_name(model_package), NO_WAIT = no_wait,
    path = path, quiet = quiet
  )
  invisible(named_with(result$job_name, status = result$status, arn = result$job_arn, output_uri = result$output_uri))
}

#' Send sample rows to an endpoint: the local one, or the one on SageMaker
#'
#' `make predict` (the local endpoint of [project_local_serve()]) and `make invoke` (the endpoint of
#' [project_deploy()]): sample rows of `data/train/`, without the target column, sent as CSV.
#' [invoke_local()] sends rows of your own, with no endpoint.
#' @inheritParams project_command
#' @param target_model on a multi-model endpoint, the model (a file name of `build/models/`).
#' @return The prediction as a data frame (a one-column answer in the column `prediction`), with
#'   the response's `body` and `content_type` as attributes. An answer with an error status is an
#'   error of class `rsagemaker_command_error`.
#' @concept project
#' @examples
#' \dontrun{
#' project_predict("my-project")
#' project_invoke("my-project")
#' }
#' @export
project_predict <- function(path = ".", target_model = NULL, quiet = FALSE) {
  prediction_frame(project_command("predict", TARGET_MODEL = target_model, path = path, quiet = quiet))
}

#' @rdname project_predict
#' @export
project_invoke <- function(path = ".", target_model = NULL, quiet = FALSE) {
  prediction_frame(project_command("invoke", TARGET_MODEL = target_model, path = path, quiet = quiet))
}

# ---- SageMaker ------------------------------------------------------------------------------------

#' Run the project's jobs on SageMaker
#'
#' `make remote-process` and `make remote-train`: the pushed images run `code/` on `data/`. No
#' Docker needed.
#' @inheritParams project_command
#' @param no_wait `TRUE` returns once the job is created.
#' @return The job's name (a string), with attributes `arn`, `status` and, for a training job,
#'   `model_data` (its `model.tar.gz` in S3) and `metrics` (a data frame: `name`, `value`,
#'   `timestamp`, the job's final metrics); for a processing job, `output_uri`. A job that fails is
#'   an error of class `rsagemaker_command_error` with its failure reason.
#' @concept project
#' @examples
#' \dontrun{
#' job <- project_remote_train("my-project")
#' attr(job, "metrics")
#' project_deploy("my-project", training_job = job)
#' }
#' @export
project_remote_train <- function(path = ".", no_wait = FALSE, quiet = FALSE) {
  result <- project_command("remote-train", NO_WAIT = no_wait, path = path, quiet = quiet)
  named_with(result$job_name,
    arn = result$job_arn, status = result$status, model_data = result$model_data,
    metrics = records_frame(result$metrics %||% list(), c("name", "value", "timestamp"))
  )
}

#' @rdname project_remote_train
#' @export
project_remote_process <- function(path = ".", no_wait = FALSE, quiet = FALSE) {
  result <- project_command("remote-process", NO_WAIT = no_wait, path = path, quiet = quiet)
  named_with(result$job_name, arn = result$job_arn, status = result$status, output_uri = result$output_uri)
}

#' Deploy a model to a SageMaker endpoint, and take it down
#'
#' `make deploy`: the latest Approved model package, else the last trained model (or the one named),
#' in the image that trained it. `make undeploy` deletes the endpoint, its configs and models. No
#' Docker needed.
#' @inheritParams project_command
#' @param serverless `TRUE` for a serverless endpoint (SERVERLESS).
#' @param training_job,tuning_job,model_package serve this training job's model, this tuning
#'   job's best one, or this model package (an ARN).
#' @param capture `TRUE` turns on SageMaker's data capture (CAPTURE): what [project_monitor()] reads.
#' @param no_wait `TRUE` returns once the endpoint is being created.
#' @return `project_deploy()`: the endpoint's name, with attributes `arn`, `status` and `model`;
#'   `project_undeploy()`: `NULL`; invisibly.
#' @concept project
#' @examples
#' \dontrun{
#' project_deploy("my-project", serverless = TRUE)
#' project_invoke("my-project")
#' project_undeploy("my-project")
#' }
#' @export
project_deploy <- function(path = ".", serverless = FALSE, training_job = NULL, tuning_job = NULL,
                           model_package = NULL, capture = FALSE, no_wait = FALSE, quiet = FALSE) {
  result <- project_command("deploy",
    SERVERLESS = serverless, TRAINING_JOB = as_name(training_job), TUNING_JOB = as_name(tuning_job),
    MODEL_PACKAGE = as_name(model_package), CAPTURE = capture, NO_WAIT = no_wait, path = path, quiet = quiet
  )
  invisible(named_with(result$endpoint, arn = result$endpoint_arn, status = result$status, model = result$model))
}

#' @rdname project_deploy
#' @export
project_undeploy <- function(path = ".", quiet = FALSE) {
  invisible(project_command("undeploy", path = path, quiet = quiet))
}

#' A job's name without the attributes a project_*() function gave it.
#' @noRd
as_name <- function(x) if (is.null(x)) NULL else as.vector(x)

#' The model registry: list the versions, approve one
#'
#' `make models` and `make approve VERSION=n`: the project's model package group, which
#' [project_pipeline()] registers into. No Docker needed.
#' @inheritParams project_command
#' @param version the version to approve.
#' @return `project_models()`: a data frame, newest first: `version`, `status`, `accuracy`,
#'   `created` (POSIXct) and `arn`; `project_approve()`: the approved package's ARN, invisibly.
#' @concept project
#' @examples
#' \dontrun{
#' project_models("my-project")
#' project_approve("my-project", version = 2)
#' }
#' @export
project_models <- function(path = ".", quiet = FALSE) {
  result <- project_command("models", path = path, quiet = quiet)
  frame <- records_frame(result$versions %||% list(), c("version", "status", "accuracy", "created", "arn"))
  frame$accuracy <- as.numeric(frame$accuracy)
  frame$created <- as.POSIXct(sub("(\\d\\d):(\\d\\d)$", "\\1\\2", frame$created), format = "%Y-%m-%dT%H:%M:%OS%z", tz = "UTC")
  frame
}

#' @rdname project_models
#' @export
project_approve <- function(path = ".", version, quiet = FALSE) {
  if (missing(version) || !is.numeric(version) || length(version) != 1 || is.na(version)) {
    usage_error("version must be one number (see project_models())")
  }
  invisible(project_command("approve", VERSION = version, path = path, quiet = quiet)$arn)
}

#' Tune the model's hyperparameters on SageMaker
#'
#' `make tune` runs a tuning job over `config/tuning.json`; `make tune-results` lists a tuning
#' job's training jobs, best first. No Docker needed. `make local-tune` searches the same ranges
#' here, in local training runs.
#' @inheritParams project_command
#' @param tuning_job the tuning job, `NULL` for the last one `project_tune()` started.
#' @param no_wait `TRUE` returns once the tuning job is created.
#' @return A data frame of the training jobs, best first: `name`, `status`, `objective` and one
#'   column per tuned hyperparameter (as text), with attributes `tuning_job`, `status` and `metric`.
#'   `project_tune(no_wait = TRUE)` returns the tuning job's name.
#' @concept project
#' @examples
#' \dontrun{
#' project_tune("my-project")
#' project_tune_results("my-project")
#' }
#' @export
project_tune_results <- function(path = ".", tuning_job = NULL, quiet = FALSE) {
  tuning_frame(project_command("tune-results", TUNING_JOB = as_name(tuning_job), path = path, quiet = quiet))
}

#' @rdname project_tune_results
#' @param trials,seed `project_local_tune()`: how many training runs (TRIALS, default 3) and the
#'   draw's seed (SEED), in the training image here (Docker); the best model becomes
#'   `build/model.tar.gz`.
#' @export
project_local_tune <- function(path = ".", trials = NULL, seed = NULL, quiet = FALSE) {
  tuning_frame(project_command("local-tune", TRIALS = trials, SEED = seed, path = path, quiet = quiet))
}

#' @rdname project_tune_results
#' @export
project_tune <- function(path = ".", no_wait = FALSE, quiet = FALSE) {
  result <- project_command("tune", NO_WAIT = no_wait, path = path, quiet = quiet)
  if (isTRUE(no_wait)) {
    return(invisible(result$tuning_job_name))
  }
  tuning_frame(result)
}

#' @noRd
tuning_frame <- function(result) {
  jobs <- result$training_jobs %||% list()
  frame <- records_frame(jobs, c("name", "status", "objective"))
  frame$objective <- as.numeric(frame$objective)
  tuned <- unique(unlist(lapply(jobs, function(job) names(job$hyperparameters))))
  for (name in tuned) {
    frame[[name]] <- vapply(jobs, function(job) as.character(job$hyperparameters[[name]] %||% NA), "")
  }
  structure(frame, tuning_job = result$tuning_job_name, status = result$status, metric = result$metric)
}

#' Run the pipeline on SageMaker
#'
#' `make pipeline` upserts the pipeline (process, train, evaluate, accuracy gate, register) and
#' starts it; `make local-pipeline` runs it in local containers. No Docker needed for the first.
#' @inheritParams project_command
#' @param min_accuracy the gate: the test accuracy a model needs to be registered (MIN_ACCURACY;
#'   `NULL`: the Makefile's, 0.9).
#' @param approval `"Approved"` registers the model approved (APPROVAL; `NULL`: pending manual
#'   approval, see [project_approve()]).
#' @param no_wait `TRUE` returns once the execution has started.
#' @return The execution's ARN, with attributes `status` (`NA` with `no_wait = TRUE`) and
#'   `model_package` (the registered version's ARN, else `NA`), invisibly; [project_models()] then
#'   lists what it registered. A failed execution (the gate too) is an error naming the failed step.
#' @concept project
#' @examples
#' \dontrun{
#' project_pipeline("my-project", min_accuracy = 0.95)
#' project_models("my-project")
#' }
#' @export
project_pipeline <- function(path = ".", min_accuracy = NULL, approval = NULL, no_wait = FALSE, quiet = FALSE) {
  if (!is.null(min_accuracy) && (!is.numeric(min_accuracy) || length(min_accuracy) != 1 || is.na(min_accuracy))) {
    usage_error("min_accuracy must be one number between 0 and 1")
  }
  result <- project_command("pipeline",
    MIN_ACCURACY = min_accuracy, APPROVAL = approval, NO_WAIT = no_wait, path = path, quiet = quiet
  )
  invisible(named_with(result$execution_arn,
    status = result$status %||% NA_character_, model_package = result$model_package_arn %||% NA_character_
  ))
}

# ---- monitoring -----------------------------------------------------------------------------------

#' Watch the deployed model: drift reports of its captured traffic
#'
#' code/monitor.R compares the traffic an endpoint captured with the model's training data (the
#' baseline train.R keeps in the model) and writes an HTML report and `violations.json`.
#' `make local-monitor` runs it here in the processing image (Docker) over `build/capture/`
#' ([project_local_serve()] with `capture = TRUE`) against `build/model.tar.gz`; `make monitor` runs
#' it as a SageMaker processing job over the endpoint's capture ([project_deploy()] with
#' `capture = TRUE`); `make monitor-schedule` has EventBridge Scheduler run that job daily, as the
#' role `make monitor-schedule-role` creates. The last three need no Docker.
#' @inheritParams project_command
#' @param no_wait `TRUE` returns once the job is created.
#' @return `project_local_monitor()`: the report's path, with attributes `status` (`"ok"`,
#'   `"violations"` or `"insufficient_data"`), `rows` and `violations` (a data frame, one row per
#'   check that failed); drift is a result here, not an error. `project_monitor()`: the job's name,
#'   with attributes `report` (its S3 URI) and `exit_status` (2 when it found violations: the job
#'   fails with them as its reason, an error here). `project_monitor_schedule()`: the schedule's
#'   name; `project_monitor_schedule_role()`: the role's ARN, for `config/aws.json`. Invisibly.
#' @concept project
#' @examples
#' \dontrun{
#' project_local_serve("my-project", capture = TRUE)
#' project_predict("my-project")
#' report <- project_local_monitor("my-project")
#' attr(report, "violations")
#' browseURL(report)
#' }
#' @export
project_local_monitor <- function(path = ".", quiet = FALSE) {
  result <- tryCatch(
    project_command("local-monitor", path = path, quiet = quiet),
    rsagemaker_command_error = function(error) {
      # Drift ends the command with status 2 and the report; anything else is an error.
      if (identical(error$result$status, "violations")) error$result else stop(error)
    }
  )
  violations <- result$violations %||% list()
  fields <- unique(unlist(lapply(violations, names)))
  invisible(named_with(result$report,
    status = result$status, rows = result$rows, violations = records_frame(violations, fields %||% character())
  ))
}

#' @rdname project_local_monitor
#' @export
project_monitor <- function(path = ".", no_wait = FALSE, quiet = FALSE) {
  result <- project_command("monitor", NO_WAIT = no_wait, path = path, quiet = quiet)
  invisible(named_with(result$processing_job, report = result$report, exit_status = result$exit_status))
}

#' @rdname project_local_monitor
#' @export
project_monitor_schedule <- function(path = ".", quiet = FALSE) {
  result <- project_command("monitor-schedule", path = path, quiet = quiet)
  invisible(named_with(result$schedule, expression = result$expression, arn = result$arn))
}

#' @rdname project_local_monitor
#' @export
project_monitor_schedule_role <- function(path = ".", quiet = FALSE) {
  invisible(project_command("monitor-schedule-role", path = path, quiet = quiet)$role_arn)
}
