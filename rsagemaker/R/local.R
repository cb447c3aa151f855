#' The project's model in this R session
#'
#' Two functions for R users, with no container: [train_local()] runs `code/train.R` as a training
#' job runs it (in a child R process, under an `/opt/ml` tree of its own), and [invoke_local()]
#' answers a request with `deploy.R`'s handlers through the serving worker's own dispatch.
#' @name local
#' @concept r-session
#' @keywords internal
NULL

# Where train_local() keeps its /opt/ml tree, under the project folder; the model is its model/.
LOCAL_ROOT <- file.path("build", "local-r")
# The model folders of a project, in the order invoke_local() looks for one: train_local()'s, then
# `make local-train`'s.
PROJECT_MODEL_DIRS <- c(file.path(LOCAL_ROOT, "model"), file.path("build", "training", "opt_ml", "model"))
# What training always leaves in a model folder (VERSIONS_FILE, INPUT_PROTOTYPE_FILE: those files are
# collated after this one) and the default model_fn reads: a folder holding one is a model.
MODEL_FILES <- c("rsagemaker-versions.json", "input-prototype.json", "model.rds")

#' A wrong argument: one line naming it (`Error: ...`, no call).
#' @noRd
usage_error <- function(...) {
  stop(structure(
    class = c("rsagemaker_usage_error", "error", "condition"),
    list(message = paste0(...), call = NULL)
  ))
}

#' Whether x is one string (not NA).
#' @noRd
is_string <- function(x) is.character(x) && length(x) == 1 && !is.na(x)

#' A folder argument that must exist: its path, else one line naming it.
#' @noRd
existing_folder <- function(path, what) {
  if (!is_string(path) || !dir.exists(path)) usage_error("no such ", what, ": ", deparse1(path))
  path
}

#' A path as the user may read it: relative to the working directory when inside it.
#' @noRd
shown_path <- function(path) {
  here <- paste0(normalizePath(".", winslash = "/"), "/")
  path <- normalizePath(path, winslash = "/", mustWork = FALSE)
  if (startsWith(path, here)) substring(path, nchar(here) + 1) else path
}

#' Environment variables set for the time of `code`, then restored (unset again when they were).
#' @noRd
with_envvars <- function(vars, code) {
  if (length(vars) == 0) {
    return(code)
  }
  if (!is.character(vars) || is.null(names(vars)) || any(!nzchar(names(vars))) || anyNA(vars)) {
    usage_error("env must be a named character vector, e.g. c(SAGEMAKER_BATCH = \"true\")")
  }
  old <- Sys.getenv(names(vars), unset = NA, names = TRUE)
  on.exit({
    if (any(!is.na(old))) do.call(Sys.setenv, as.list(old[!is.na(old)]))
    if (any(is.na(old))) Sys.unsetenv(names(old)[is.na(old)])
  })
  do.call(Sys.setenv, as.list(vars))
  code
}

# ---- invoke_local --------------------------------------------------------------------------------

#' Answer a request with deploy.R's handlers, as the endpoint would
#'
#' Runs `model_fn`, `input_fn`, `predict_fn` and `output_fn` (or `transform_fn`) of a `deploy.R` in
#' this R session, with no container, through the very function a serving worker calls for each
#' `POST /invocations`: the same defaults, content types, input prototype check, payload limit and
#' time limit (`SAGEMAKER_MODEL_SERVER_TIMEOUT`), and the same HTTP status for every error. The
#' handlers and the model are loaded for each call, as a worker loads them at start.
#'
#' `path` is either
#' * a project folder: its `code/deploy.R` (as you edit it) serves the project's last trained
#'   model: `model`, else `build/local-r/model` ([train_local()]'s), else
#'   `build/training/opt_ml/model` (`make local-train`'s); or
#' * a model folder as training leaves it (it holds `code/deploy.R` and `model.rds`,
#'   `input-prototype.json` or `rsagemaker-versions.json`): [train_local()]'s result, or an unpacked
#'   `model.tar.gz`; its own `code/deploy.R` serves it, as on an endpoint.
#'
#' @param path a project folder or a model folder (see Details).
#' @param body the request body: a data frame (or matrix), written as `content_type` says (CSV rows
#'   without a header, as SageMaker sends them; JSON records; JSON lines), a character string (a
#'   vector is joined with newlines) or a raw vector, sent as it is.
#' @param content_type the request's Content-Type.
#' @param accept the request's Accept; `NULL` sends none, so the response has the type of
#'   `SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT` (in `env` or this session) or else of the request.
#' @param model for a project folder, the model folder to serve with its `code/deploy.R`.
#' @param custom_attributes the X-Amzn-SageMaker-Custom-Attributes header (the handlers' `context`).
#' @param env the serving container's environment for this call, a named character vector, e.g.
#'   `c(SAGEMAKER_BATCH = "true")` for a batch transform.
#' @return An `rsagemaker_response`: a list with `prediction` (the response body read as R data by
#'   its type: a vector for one column of CSV or JSON lines, else a data frame; JSON's
#'   `{"predictions": ...}` unwrapped; other text types as a string, other types as raw bytes),
#'   `body` (the response body as sent: a string, or raw), `status`, `content_type`, `headers`,
#'   `model_dir` and `deploy_script`.
#'
#'   An error the endpoint would answer with a 4xx or 5xx status is signalled as a condition of
#'   class `rsagemaker_http_error` with `status`, `body` (the JSON the caller would get) and
#'   `headers`: catch it with `tryCatch(..., rsagemaker_http_error = function(e) e$status)`. A wrong
#'   argument (no such folder, no `deploy.R`, no model, a malformed content type) is an error of
#'   class `rsagemaker_usage_error`; a model that fails to load, one of class
#'   `rsagemaker_load_error` (a container would stop before answering).
#' @seealso [train_local()] trains the model this serves.
#' @concept r-session
#' @examples
#' # A model folder as training leaves it: the model and its code/deploy.R.
#' model_dir <- file.path(tempdir(), "model")
#' dir.create(file.path(model_dir, "code"), recursive = TRUE)
#' saveRDS(stats::lm(mpg ~ wt, data = mtcars), file.path(model_dir, "model.rds"))
#' writeLines(
#'   "predict_fn <- function(data, model) unname(predict(model, newdata = data))",
#'   file.path(model_dir, "code", "deploy.R")
#' )
#' answer <- invoke_local(model_dir, mtcars[1:3, "wt", drop = FALSE], content_type = "application/json")
#' answer$prediction
#' answer$body
#'
#' # An error is the status the endpoint would answer.
#' tryCatch(
#'   invoke_local(model_dir, "wt\n2.5", content_type = "text/plain"),
#'   rsagemaker_http_error = function(e) e$status
#' )
#' @export
invoke_local <- function(path = ".", body, content_type = "text/csv", accept = NULL, model = NULL,
                         custom_attributes = NULL, env = NULL) {
  check_content_type(content_type)
  for (header in list(list("accept", accept), list("custom_attributes", custom_attributes))) {
    if (!is.null(header[[2]]) && !is_string(header[[2]])) usage_error(header[[1]], " must be NULL or one string")
  }
  served <- served_model(path, model)
  with_envvars(env, {
    # The request as the worker's HTTP server hands it over (http.R): an environment, headers as HTTP_*.
    request <- list2env(Filter(Negate(is.null), list(
      REQUEST_METHOD = "POST", PATH_INFO = "/invocations", QUERY_STRING = "", HTTP_CONTENT_TYPE = content_type,
      HTTP_ACCEPT = accept, HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES = custom_attributes,
      body = request_bytes(body, content_type) # after env: CSV and JSON lines end as under SAGEMAKER_BATCH
    )), parent = emptyenv())
    loaded <- load_local_model(served)
    # The worker's own dispatch (serving.R): every handler, default, check and error as served.
    response <- serving_app(loaded$handlers, loaded$model)$call(request)
  })
  local_response(response, served)
}

#' The server's one loading step (load_model); a failure is what would stop the container.
#' @noRd
load_local_model <- function(served) {
  tryCatch(load_model(served$model_dir, served$deploy_script), error = function(e) {
    stop(structure(
      class = c("rsagemaker_load_error", "error", "condition"),
      list(message = paste0("the model failed to load (", served$deploy_script, "): ", conditionMessage(e)),
        call = NULL
      )
    ))
  })
}

#' The folder of deploy.R and the model folder that invoke_local() serves, both absolute.
#' @noRd
served_model <- function(path, model) {
  if (!is_string(path) || !dir.exists(path)) {
    usage_error("no such folder: ", deparse1(path), " (give a project folder or a model folder)")
  }
  deploy_script <- file.path(path, "code", "deploy.R")
  if (!file.exists(deploy_script)) {
    usage_error(
      "no code/deploy.R in ", shown_path(path),
      ": give a project folder or a model folder as training leaves it (code/deploy.R inside)"
    )
  }
  model_dir <- if (!is.null(model)) {
    existing_folder(model, "model folder")
  } else if (any(file.exists(file.path(path, MODEL_FILES)))) {
    path
  } else {
    project_model(path)
  }
  list(
    model_dir = normalizePath(model_dir, winslash = "/"),
    deploy_script = normalizePath(deploy_script, winslash = "/")
  )
}

#' A project's last trained model: the first of PROJECT_MODEL_DIRS that exists.
#' @noRd
project_model <- function(project) {
  found <- file.path(project, PROJECT_MODEL_DIRS)
  found <- found[dir.exists(found)]
  if (length(found) == 0) {
    usage_error(
      "no model in ", shown_path(project), " (looked in ", paste(PROJECT_MODEL_DIRS, collapse = ", "),
      "): train one with train_local(\"", project, "\"), or give model = a model folder"
    )
  }
  found[[1]]
}

#' A content type must be one media type ("text/csv", "application/json; charset=utf-8").
#' @noRd
check_content_type <- function(content_type) {
  ok <- is_string(content_type) && grepl("^[^/[:space:]]+/[^/[:space:]]+$", media_type(content_type))
  if (!ok) {
    usage_error(
      "content_type ", deparse1(content_type), " is not a media type; use one such as \"text/csv\", ",
      "\"application/json\" or \"application/jsonlines\""
    )
  }
}

#' The request body's bytes: a data frame written as its content type, text as UTF-8, raw as it is.
#' @noRd
request_bytes <- function(body, content_type) {
  if (is.raw(body)) {
    return(body)
  }
  if (is.character(body) && !anyNA(body)) {
    return(charToRaw(enc2utf8(paste(body, collapse = "\n"))))
  }
  if (is.matrix(body)) body <- as.data.frame(body, stringsAsFactors = FALSE)
  if (!is.data.frame(body)) {
    usage_error("body must be a data frame, a character string or a raw vector, not ", class(body)[[1]])
  }
  type <- normalise_type(media_type(content_type))
  text <- switch(type,
    "text/csv" = to_csv(body), # the server's own CSV writer: no header, doubles exact
    "application/json" = frame_json(body),
    "application/jsonlines" = records_text(vapply(seq_len(nrow(body)), function(i) {
      frame_json(body[i, , drop = FALSE], one = TRUE)
    }, character(1))),
    usage_error(
      "a data frame body is written as ", paste(SUPPORTED_TYPES, collapse = ", "), ", not ", content_type,
      ": give the body as a string or a raw vector"
    )
  )
  charToRaw(enc2utf8(text))
}

#' A data frame as JSON records (one record: an object), doubles exact (the shortest text that reads
#' back as the same double, as the CSV writer writes them), factors by their labels, NA as null.
#' @noRd
frame_json <- function(frame, one = FALSE) {
  for (column in seq_along(frame)) {
    x <- frame[[column]]
    if (is.double(x) && !is.object(x)) {
      text <- shortest_doubles(x)
      text[!is.finite(x)] <- "null"
      frame[[column]] <- structure(text, class = "json")
    }
  }
  json <- as.character(jsonlite::toJSON(frame, dataframe = "rows", json_verbatim = TRUE, na = "null"))
  if (one) sub("^\\[(.*)\\]$", "\\1", json) else json
}

#' The worker's response as invoke_local() returns it: an error status as a condition.
#' @noRd
local_response <- function(response, served) {
  body <- response$body
  content_type <- response$headers[["Content-Type"]] %||% ""
  if (response$status >= 400) {
    text <- if (is.raw(body)) rawToChar(body) else body
    reason <- tryCatch(jsonlite::parse_json(text)$error, error = function(e) NULL) %||% text
    stop(structure(
      class = c("rsagemaker_http_error", "error", "condition"),
      list(
        message = sprintf("HTTP %d: %s", response$status, reason), call = NULL,
        status = response$status, body = text, headers = response$headers
      )
    ))
  }
  structure(
    list(
      prediction = read_prediction(body, content_type), body = body, status = response$status,
      content_type = content_type, headers = response$headers, model_dir = served$model_dir,
      deploy_script = served$deploy_script
    ),
    class = "rsagemaker_response"
  )
}

#' A response body as R data, by its media type (see invoke_local's value). A body that is not what
#' its type says is kept as text, with a warning.
#' @noRd
read_prediction <- function(body, content_type) {
  type <- normalise_type(media_type(content_type))
  if (!is_text_type(type)) {
    return(if (is.raw(body)) body else charToRaw(body))
  }
  text <- if (is.raw(body)) rawToChar(body) else body
  if (!grepl("[^[:space:]]", text, perl = TRUE)) {
    return(NULL)
  }
  one_column <- function(frame) if (ncol(frame) == 1) frame[[1]] else frame
  tryCatch(
    switch(type,
      "text/csv" = one_column(parse_csv(text)),
      "application/jsonlines" = one_column(parse_jsonlines(text)),
      "application/json" = {
        value <- jsonlite::parse_json(text, simplifyVector = TRUE)
        enveloped <- is.list(value) && !is.data.frame(value) && identical(names(value), "predictions")
        if (enveloped) value$predictions else value
      },
      text
    ),
    error = function(e) {
      warning("the response is not valid ", type, " (", conditionMessage(e), "): $prediction is its text",
        call. = FALSE
      )
      text
    }
  )
}

#' @export
print.rsagemaker_response <- function(x, ...) {
  count <- if (is.data.frame(x$prediction)) nrow(x$prediction) else length(x$prediction)
  cat(sprintf(
    "<rsagemaker_response> %d %s: %d prediction%s\n  deploy.R: %s\n  model:    %s\n",
    x$status, x$content_type, count, if (count == 1) "" else "s", shown_path(x$deploy_script),
    shown_path(x$model_dir)
  ))
  print(x$prediction, ...)
  invisible(x)
}

# ---- train_local ---------------------------------------------------------------------------------

#' Train the project's model here, as a training job would
#'
#' Runs the project's `code/train.R` in a child R process as the training image runs it: rsagemaker's
#' own `train()` under an `/opt/ml` tree of its own (`build/local-r/` in the project), with the
#' configuration files and the `SM_*` variables a SageMaker training job gives, with no container.
#' The code is copied as the image packs it (no dotfiles but `.Rprofile`, no renv caches or
#' archives); each channel is a link to its folder; the hyperparameters are JSON-encoded as the
#' SageMaker SDK sends them. The child R process uses this session's libraries (`.libPaths()`),
#' with renv's autoloader off as in the image. Checkpoints (`build/local-r/checkpoints`) are kept
#' from one run to the next; the rest of `build/local-r` is made anew.
#'
#' @param project the project folder (with `code/train.R`).
#' @param hyperparameters a named list of values that replace or add to those of
#'   `config/hyperparameters.json` (a `NULL` value removes one), e.g. `list(maxdepth = 3)`.
#' @param channels the input channels: `NULL` for every subfolder of `data/`, or a character vector
#'   of subfolder names of `data/`, or of folders named by channel, e.g.
#'   `c(train = "data/train", validation = "/tmp/holdout")`.
#' @param program the script of `code/` to run.
#' @param quiet `TRUE` writes the job's log to `build/local-r/training.log` instead of the console.
#' @return The model folder (`build/local-r/model`, with its `code/deploy.R`), invisibly; serve it
#'   with [invoke_local()]. A failed job is an error of class `rsagemaker_training_error` whose
#'   message is the job's failure reason (`/opt/ml/output/failure`), with `status` (the exit status)
#'   and `failure`; a wrong argument, one of class `rsagemaker_usage_error`.
#' @seealso [invoke_local()] answers requests with the trained model.
#' @concept r-session
#' @examples
#' \donttest{
#' # A project: code/train.R and deploy.R, a data/train channel.
#' project <- file.path(tempdir(), "project")
#' dir.create(file.path(project, "code"), recursive = TRUE)
#' dir.create(file.path(project, "data", "train"), recursive = TRUE)
#' utils::write.csv(mtcars, file.path(project, "data", "train", "cars.csv"), row.names = FALSE)
#' writeLines(c(
#'   "data <- read.csv(file.path(Sys.getenv('SM_CHANNEL_TRAIN'), 'cars.csv'))",
#'   "saveRDS(lm(mpg ~ wt, data = data), file.path(Sys.getenv('SM_MODEL_DIR'), 'model.rds'))"
#' ), file.path(project, "code", "train.R"))
#' writeLines(
#'   "predict_fn <- function(data, model) unname(predict(model, newdata = data))",
#'   file.path(project, "code", "deploy.R")
#' )
#' model_dir <- train_local(project)
#' invoke_local(model_dir, data.frame(wt = c(2.5, 3.5)), content_type = "application/json")
#' }
#' @export
train_local <- function(project = ".", hyperparameters = NULL, channels = NULL, program = "train.R",
                        quiet = FALSE) {
  existing_folder(project, "project folder")
  if (!is_string(program)) usage_error("program must be a file name such as \"train.R\"")
  if (!file.exists(file.path(project, "code", program))) {
    usage_error("no code/", program, " in ", shown_path(project), " (program = the script of code/ to run)")
  }
  if (length(find.package("rsagemaker", lib.loc = .libPaths(), quiet = TRUE)) == 0) {
    usage_error("train_local() runs the installed rsagemaker in a child R process: install it (R CMD INSTALL)")
  }
  folders <- channel_folders(project, channels)
  encoded <- check_hyperparameter_limits(c(
    project_hyperparameters(project, hyperparameters), sdk_hyperparameters(project, program)
  ))
  root <- local_opt_ml_tree(project, folders, encoded)
  job_name <- jsonlite::parse_json(encoded$sagemaker_job_name)
  message("==> Training job ", job_name, ": code/", program, " under ", shown_path(root), " (its /opt/ml)")
  status <- run_training_child(root, job_name, quiet)
  if (status != 0) training_failed(root, status, quiet)
  model_dir <- file.path(root, "model")
  contents <- list.files(model_dir, all.files = TRUE, no.. = TRUE)
  folder <- dir.exists(file.path(model_dir, contents))
  contents[folder] <- paste0(contents[folder], "/")
  message(
    "==> Training complete. Model: ", shown_path(model_dir), " (", paste(contents, collapse = ", "), ")\n",
    "    Next: invoke_local(\"", project, "\", rows) answers rows (a data frame of the features) ",
    "with code/deploy.R and this model"
  )
  invisible(model_dir)
}

#' The job's /opt/ml under the project (build/local-r), made anew but for its checkpoints: the code
#' copied, the channels linked, the configuration files as SageMaker writes them. Its absolute path.
#' @noRd
local_opt_ml_tree <- function(project, folders, encoded) {
  root <- file.path(project, LOCAL_ROOT)
  # unlink removes the channels' links, never what they point to
  unlink(file.path(root, c("input", "model", "output", "code", "training.log")), recursive = TRUE)
  for (dir in c("input/config", "input/data", "model", "output", "code", "checkpoints")) {
    dir.create(file.path(root, dir), recursive = TRUE, showWarnings = FALSE)
  }
  root <- normalizePath(root, winslash = "/")
  copy_code(file.path(project, "code"), file.path(root, "code"))
  for (name in names(folders)) {
    link <- file.path(root, "input", "data", name)
    if (!file.symlink(normalizePath(folders[[name]], winslash = "/"), link)) {
      dir.create(link)
      file.copy(list.files(folders[[name]], full.names = TRUE, all.files = TRUE, no.. = TRUE), link, recursive = TRUE)
    }
  }
  config <- function(value, name) {
    jsonlite::write_json(value, file.path(root, "input", "config", name), auto_unbox = TRUE, pretty = TRUE)
  }
  config(encoded, "hyperparameters.json")
  channels <- sort(names(folders), method = "radix")
  config(stats::setNames(lapply(channels, function(name) {
    list(TrainingInputMode = "File", S3DistributionType = "FullyReplicated", RecordWrapperType = "None")
  }), channels), "inputdataconfig.json")
  config(list(
    current_host = "algo-1", current_instance_type = "local", current_group_name = "homogeneousCluster",
    hosts = list("algo-1"),
    instance_groups = list(list(
      instance_group_name = "homogeneousCluster", instance_type = "local", hosts = list("algo-1")
    )),
    network_interface_name = "eth0"
  ), "resourceconfig.json")
  root
}

#' A failed job: an error whose message is its failure file's text.
#' @noRd
training_failed <- function(root, status, quiet) {
  failure_file <- file.path(root, "output", "failure")
  failure <- if (file.exists(failure_file)) trimws(paste(readLines(failure_file, warn = FALSE), collapse = "\n"))
  log <- if (quiet) file.path(root, "training.log") else "the log above"
  stop(structure(
    class = c("rsagemaker_training_error", "error", "condition"),
    list(
      message = sprintf("training failed (exit status %d): %s", status, failure %||% paste("see", log)),
      call = NULL, status = status, failure = failure
    )
  ))
}

#' Channel name -> folder: every subfolder of data/, the named ones of data/, or as given.
#' @noRd
channel_folders <- function(project, channels) {
  data_dir <- file.path(project, "data")
  channels <- channels %||% list.dirs(data_dir, full.names = FALSE, recursive = FALSE)
  if (length(channels) == 0) {
    usage_error(shown_path(data_dir), " has no subfolder: each subfolder of data/ is a channel (e.g. data/train/)")
  }
  if (!is.character(channels) || anyNA(channels)) {
    usage_error("channels must be NULL, names of subfolders of data/, or folders named by channel")
  }
  named <- nzchar(names(channels) %||% rep("", length(channels)))
  folders <- ifelse(named, channels, file.path(data_dir, channels))
  names(folders) <- ifelse(named, names(channels), channels)
  bad_name <- !grepl("^[A-Za-z0-9][A-Za-z0-9._-]*$", names(folders)) | names(folders) == "code"
  if (any(bad_name)) {
    usage_error(
      "channel name ", deparse1(names(folders)[bad_name][[1]]), " is not allowed ",
      "(letters, digits, . _ -; `code` carries the code)"
    )
  }
  missing <- which(!dir.exists(folders))
  if (length(missing) > 0) {
    first <- missing[[1]]
    usage_error("no folder ", shown_path(folders[[first]]), " for channel '", names(folders)[[first]], "'")
  }
  folders
}

#' The project's hyperparameters as the SageMaker SDK sends them for a script-mode job: every value
#' JSON-encoded; config/hyperparameters.json's values, then `overrides` (NULL removes one).
#' @noRd
project_hyperparameters <- function(project, overrides) {
  path <- file.path(project, "config", "hyperparameters.json")
  values <- if (file.exists(path)) lapply(unclass(read_project_json(path)), to_py_json) else list()
  if (!is.null(overrides) && (!is.vector(overrides) || is.null(names(overrides)) || !all(nzchar(names(overrides))))) {
    usage_error("hyperparameters must be a named list, e.g. list(maxdepth = 3)")
  }
  for (name in names(overrides)) {
    value <- overrides[[name]]
    values[[name]] <- if (!is.null(value)) as.character(jsonlite::toJSON(value, auto_unbox = TRUE, digits = NA))
  }
  sdk <- startsWith(names(values) %||% character(), "sagemaker_")
  if (any(sdk)) usage_error("hyperparameter ", names(values)[sdk][[1]], " is set by train_local(); remove it")
  values
}

#' config/hyperparameters.json: a JSON object (read with Python's types, json.R).
#' @noRd
read_project_json <- function(path) {
  parsed <- tryCatch(parse_py_json(paste(readLines(path, warn = FALSE, encoding = "UTF-8"), collapse = "\n")),
    error = function(e) usage_error(shown_path(path), " is not valid JSON: ", conditionMessage(e))
  )
  if (!inherits(parsed, "py_dict")) usage_error(shown_path(path), " must hold a JSON object (name -> value)")
  parsed
}

#' What SageMaker's CreateTrainingJob refuses.
#' @noRd
check_hyperparameter_limits <- function(encoded) {
  if (length(encoded) > 100 || any(nchar(encoded) > 2500 | nchar(names(encoded)) > 256)) {
    usage_error("SageMaker takes at most 100 hyperparameters, names of 256 characters and values of 2500 (JSON)")
  }
  encoded
}

#' The SDK's own keys of a script-mode job (the CLI's opt_ml.encode_hyperparameters adds the same).
#' @noRd
sdk_hyperparameters <- function(project, program) {
  project_name <- gsub("[^A-Za-z0-9-]+", "-", basename(normalizePath(project)))
  stamp <- format(Sys.time(), "%Y%m%d-%H%M%S", tz = "UTC")
  region <- Sys.getenv("AWS_REGION", Sys.getenv("AWS_DEFAULT_REGION"))
  aws_config <- file.path(project, "config", "aws.json")
  if (!nzchar(region) && file.exists(aws_config)) {
    region <- tryCatch(jsonlite::read_json(aws_config)$region, error = function(e) NULL) %||% ""
  }
  c(
    list(
      sagemaker_program = to_py_json(program), sagemaker_container_log_level = "20",
      sagemaker_job_name = to_py_json(paste0(project_name, "-local-r-", stamp))
    ),
    if (is_string(region) && nzchar(region)) list(sagemaker_region = to_py_json(region))
  )
}

#' The code of code/ as the image packs it (training.R's packed()), links kept as links.
#' @noRd
copy_code <- function(from, to) {
  files <- inference_code_files(from)$kept
  sources <- file.path(from, files)
  is_dir <- dir.exists(sources) & !nzchar(Sys.readlink(sources))
  for (dir in files[is_dir]) dir.create(file.path(to, dir), recursive = TRUE, showWarnings = FALSE)
  for (path in files[!is_dir]) copy_entry(file.path(from, path), file.path(to, path))
}

#' Run rsagemaker's train() in a child R process under `root`; its exit status.
#' @noRd
run_training_child <- function(root, job_name, quiet) {
  vars <- c(
    SAGEMAKER_BASE_DIR = root, TRAINING_JOB_NAME = job_name,
    # The child loads what this session loads: rsagemaker and the project's packages.
    R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep),
    # As in the image: renv's autoloader would switch to code/renv/library (never packed).
    RENV_CONFIG_AUTOLOADER_ENABLED = "FALSE", RENV_CONFIG_USER_PROFILE = "FALSE"
  )
  log <- if (quiet) file.path(root, "training.log") else ""
  owd <- setwd(root)
  on.exit(setwd(owd))
  system2(
    file.path(R.home("bin"), "Rscript"),
    c("--no-save", "--no-restore", "--no-init-file", "-e", shQuote("rsagemaker::train()")),
    stdout = log, stderr = log, env = paste0(names(vars), "=", shQuote(vars))
  )
}
