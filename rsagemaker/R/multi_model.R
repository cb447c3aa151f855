#' Multi-model endpoints: SageMaker's bring-your-own /models API
#'
#' With `SAGEMAKER_MULTI_MODEL=true` the server starts with no model (`/ping` is 200 at once) and
#' SageMaker loads, lists, unloads and invokes models through:
#'
#' ```
#' POST   /models              {"model_name": id, "url": "/opt/ml/models/<id>/model"}  200, 409, 507
#' GET    /models              ?max_results=&next_page_token=  {"models": [...], "nextPageToken"}
#' GET    /models/<id>         {"modelName", "modelUrl"}                               404
#' DELETE /models/<id>                                                                 404
#' POST   /models/<id>/invoke  the model's own handlers (deploy.R), as /invocations    404
#' ```
#'
#' Each model is a model directory of this project (`model.rds` and `code/deploy.R`), loaded as a
#' single-model server loads its model ([serving]), so every model runs its own handlers.
#'
#' The workers are separate processes. What is loaded is decided by a registry on disk, in the run
#' directory (`SAGEMAKER_SERVE_DIR/models`, cleared by run.sh at start): one file per model, created
#' with `link(2)` (atomic: exactly one load of a name wins, the others get 409) and removed with
#' `unlink(2)` (an unload takes effect for every worker at once). A worker keeps its own copy of a
#' registered model in memory ("resident"), loaded when it first needs it; nginx sends all requests
#' of one model to one worker (a consistent hash of the name), so a model is in memory about once.
#'
#' Memory: the budget is the container's memory limit ([memory]) minus a margin
#' (`SAGEMAKER_MULTI_MODEL_MEMORY_MARGIN_MB`, default 10% of the limit and at least 64 MB). Before a
#' load the worker frees its least recently used resident copies until the model's size on disk
#' fits; after the load it does so again until the container's memory in use (without the page
#' cache) is within the budget. A model that still does not fit is not loaded: 507, and SageMaker
#' unloads other models and retries. A copy freed so stays registered (loaded, for SageMaker) and is
#' read again from its directory on its next invoke.
#' @name multi_model
#' @keywords internal
#' @concept multi-model
NULL

MULTI_MODEL_PAGE_SIZE <- 100L
MULTI_MODEL_MAX_PAGE_SIZE <- 1000L
# The registry's file names carry the URL-encoded model name; a file name has at most 255 bytes.
MAX_ENCODED_NAME_CHARS <- 240L
SWEEP_SECONDS <- 1

# SageMaker sets "true"; accept any case, as for SAGEMAKER_BATCH.
multi_model_enabled <- function() env_flag("SAGEMAKER_MULTI_MODEL")

# --- the registry on disk: the truth about what is loaded ----------------------------------------

registry_dir <- function() file.path(Sys.getenv("SAGEMAKER_SERVE_DIR", "/tmp/sagemaker-serve"), "models")

#' A model name as a file name: URL-encoded, dots too (no ".", "..", or hidden files).
#' @noRd
encode_model_name <- function(name) {
  encoded <- gsub(".", "%2E", utils::URLencode(enc2utf8(name), reserved = TRUE, repeated = TRUE), fixed = TRUE)
  if (nchar(encoded) > MAX_ENCODED_NAME_CHARS) {
    http_error(400, sprintf("model name of %d characters is too long for this server", nchar(name)))
  }
  encoded
}

decode_model_name <- function(encoded) {
  name <- tryCatch(utils::URLdecode(encoded), error = function(e) http_error(400, "malformed model name"))
  Encoding(name) <- "UTF-8"
  name
}

entry_path <- function(name) file.path(registry_dir(), paste0(encode_model_name(name), ".json"))
claim_path <- function(name) file.path(registry_dir(), paste0(encode_model_name(name), ".loading"))

#' Create `path` holding `text` unless it exists, atomically (link(2) never replaces a file): TRUE
#' if this call created it.
#' @noRd
create_exclusive <- function(path, text) {
  dir.create(dirname(path), recursive = TRUE, showWarnings = FALSE)
  scratch <- tempfile("new-", tmpdir = dirname(path), fileext = ".tmp")
  on.exit(unlink(scratch))
  writeLines(text, scratch, useBytes = TRUE)
  suppressWarnings(file.link(scratch, path))
}

process_alive <- function(pid) !is.na(pid) && isTRUE(tools::pskill(pid, 0L))

#' Claim a name for loading: its claim file holds the loading worker's PID. 409 when the model is
#' loaded or another worker is loading it; a claim left by a dead worker (killed while loading) is
#' taken over.
#' @noRd
claim_model <- function(name) {
  claim <- claim_path(name)
  for (attempt in 1:2) {
    if (create_exclusive(claim, as.character(Sys.getpid()))) break
    holder <- suppressWarnings(as.integer(readLines(claim, n = 1, warn = FALSE)[1]))
    if (attempt == 2 || process_alive(holder)) {
      http_error(409, paste0("model ", name, " is being loaded"))
    }
    unlink(claim) # its worker died while loading
  }
  if (file.exists(entry_path(name))) {
    unlink(claim)
    http_error(409, paste0("model ", name, " is already loaded"))
  }
  claim
}

#' The registry entry of a loaded model (modelName, modelUrl, token), or NULL.
#' @noRd
read_entry <- function(name) {
  path <- entry_path(name)
  text <- tryCatch(readLines(path, warn = FALSE), error = function(e) NULL, warning = function(w) NULL)
  if (length(text) == 0) {
    return(NULL)
  }
  jsonlite::parse_json(paste(text, collapse = ""))
}

#' The names that sort after `name` (in byte order, as registered_names sorts), present or not.
#' @noRd
names_after <- function(names, name) {
  everything <- sort(unique(c(names, name)), method = "radix")
  everything[seq_along(everything) > match(name, everything)]
}

registered_names <- function() {
  files <- list.files(registry_dir(), pattern = "[.]json$")
  sort(vapply(sub("[.]json$", "", files), decode_model_name, character(1), USE.NAMES = FALSE), method = "radix")
}

# --- memory ---------------------------------------------------------------------------------------

#' What models may use: the limit minus a margin for the server itself and the requests.
#' @noRd
memory_budget_bytes <- function(limit = memory_limit()$bytes) {
  margin <- env_number("SAGEMAKER_MULTI_MODEL_MEMORY_MARGIN_MB", NA) * MB
  if (is.na(margin)) margin <- max(0.1 * limit, 64 * MB)
  limit - margin
}

model_dir_bytes <- function(model_dir) {
  files <- list.files(model_dir, recursive = TRUE, full.names = TRUE, all.files = TRUE)
  sum(file.size(files), na.rm = TRUE)
}

format_mb <- function(bytes) sprintf("%.0f MB", bytes / MB)

# --- the models this worker holds in memory ----------------------------------------------------------

#' This worker's resident copies: name -> list(token, url, handlers, model, last_used, bytes).
#' @noRd
resident_models <- new.env(parent = emptyenv())

drop_resident <- function(name, why) {
  if (!exists(name, envir = resident_models, inherits = FALSE)) {
    return(invisible(FALSE))
  }
  freed <- resident_models[[name]]$bytes
  rm(list = name, envir = resident_models)
  gc(verbose = FALSE)
  message(sprintf("Worker %d freed model %s (%s, %s)", Sys.getpid(), name, format_mb(freed), why))
  invisible(TRUE)
}

#' Free this worker's least recently used copies (never `keep`) until need() is FALSE; TRUE if it is.
#' @noRd
free_until <- function(need, keep = NULL) {
  repeat {
    if (!need()) {
      return(TRUE)
    }
    names <- setdiff(ls(resident_models), keep)
    if (length(names) == 0) {
      return(FALSE)
    }
    used <- vapply(names, function(n) as.numeric(resident_models[[n]]$last_used), numeric(1))
    drop_resident(names[[which.min(used)]], "least recently used, to make room; it stays loaded")
  }
}

#' Drop the copies of models that were unloaded (or unloaded and loaded again) since.
#' @noRd
sweep_residents <- function() {
  for (name in ls(resident_models)) {
    entry <- read_entry(name)
    if (is.null(entry) || !identical(entry$token, resident_models[[name]]$token)) drop_resident(name, "unloaded")
  }
}

#' The memory this worker's copies hold (but `keep`'s), which it could free.
#' @noRd
freeable_bytes <- function(keep = NULL) {
  sum(vapply(setdiff(ls(resident_models), keep), function(n) resident_models[[n]]$bytes, numeric(1)))
}

#' Load a model into this worker under the memory rule; 507 if it does not fit. What cannot fit
#' even with every copy of this worker freed is refused at once, with those copies kept.
#' @noRd
load_resident <- function(name, url, token) {
  budget <- memory_budget_bytes()
  on_disk <- model_dir_bytes(url)
  if (memory_used_bytes() - freeable_bytes() + on_disk > budget ||
    !free_until(function() memory_used_bytes() + on_disk > budget)) {
    http_error(507, sprintf(
      "not enough memory for model %s: %s on disk, %s of the %s budget in use", name, format_mb(on_disk),
      format_mb(memory_used_bytes()), format_mb(budget)
    ))
  }
  gc(verbose = FALSE)
  before <- resident_bytes()
  started <- Sys.time()
  loaded <- tryCatch(
    {
      handlers <- load_handlers(find_deploy_script(url), model_dir = url)
      list(handlers = handlers, model = call_handler(handlers$model_fn, url, context = new.env()))
    },
    error = function(e) http_error(500, paste0("model ", name, " failed to load: ", conditionMessage(e)))
  )
  bytes <- max(resident_bytes() - before, as.numeric(utils::object.size(loaded$model)), na.rm = TRUE)
  resident_models[[name]] <- c(loaded, list(token = token, url = url, last_used = Sys.time(), bytes = bytes))
  if (memory_used_bytes() - freeable_bytes(keep = name) > budget ||
    !free_until(function() memory_used_bytes() > budget, keep = name)) {
    drop_resident(name, "over the memory budget")
    http_error(507, sprintf(
      "not enough memory for model %s (%s): %s in use with it, over the %s budget", name, format_mb(bytes),
      format_mb(memory_used_bytes() + bytes), format_mb(budget)
    ))
  }
  message(sprintf(
    "Worker %d loaded model %s from %s (%s, %.2f s)", Sys.getpid(), name, url, format_mb(bytes),
    as.numeric(difftime(Sys.time(), started, units = "secs"))
  ))
  resident_models[[name]]
}

#' This worker's copy of a registered model, loaded now if it has none (or an outdated one).
#' @noRd
resident_for <- function(name, entry) {
  resident <- if (exists(name, envir = resident_models, inherits = FALSE)) resident_models[[name]]
  if (is.null(resident) || !identical(resident$token, entry$token)) {
    drop_resident(name, "unloaded and loaded again") # the old copy goes before the new one comes
    resident <- load_resident(name, entry$modelUrl, entry$token)
  }
  resident_models[[name]]$last_used <- Sys.time()
  resident
}

# --- the routes -------------------------------------------------------------------------------------

json_ok <- function(value, status = 200L) {
  list(
    status = as.integer(status), headers = list("Content-Type" = "application/json"),
    body = as.character(jsonlite::toJSON(value, auto_unbox = TRUE, null = "null"))
  )
}

#' The query string as a named list of decoded values ("?a=1&b=x%20y").
#' @noRd
query_values <- function(query) {
  pairs <- strsplit(strsplit(sub("^[?]", "", query %||% ""), "&", fixed = TRUE)[[1]], "=", fixed = TRUE)
  pairs <- pairs[lengths(pairs) > 0]
  decode <- function(p) if (length(p) > 1) utils::URLdecode(gsub("+", " ", p[[2]], fixed = TRUE)) else ""
  values <- lapply(pairs, decode)
  stats::setNames(values, vapply(pairs, `[[`, character(1), 1))
}

load_request <- function(req) {
  text <- rawToChar(req$body)
  Encoding(text) <- "UTF-8"
  spec <- parse_json_text(text, "POST /models body")
  is_text <- function(x) is.character(x) && length(x) == 1 && nzchar(x)
  if (!is.list(spec) || !is_text(spec$model_name) || !is_text(spec$url)) {
    http_error(400, "POST /models expects {\"model_name\": \"<name>\", \"url\": \"<model directory>\"}")
  }
  if (!dir.exists(spec$url)) http_error(404, paste0("no model directory at ", spec$url))
  list(name = spec$model_name, url = normalizePath(spec$url))
}

load_model_request <- function(req) {
  spec <- load_request(req)
  claim <- claim_model(spec$name)
  on.exit(unlink(claim))
  token <- sprintf("%d-%.6f-%d", Sys.getpid(), as.numeric(Sys.time()), sample.int(.Machine$integer.max, 1))
  load_resident(spec$name, spec$url, token)
  # Written aside, then renamed into place (whole or not at all); the claim, removed on exit, keeps
  # every other load of the name away meanwhile.
  entry <- list(modelName = spec$name, modelUrl = spec$url, token = token)
  scratch <- tempfile("entry-", tmpdir = registry_dir(), fileext = ".tmp")
  writeLines(as.character(jsonlite::toJSON(entry, auto_unbox = TRUE)), scratch, useBytes = TRUE)
  file.rename(scratch, entry_path(spec$name))
  json_ok(list(status = paste0("Model ", spec$name, " loaded"), modelName = spec$name, modelUrl = spec$url))
}

list_models <- function(req) {
  query <- query_values(req$QUERY_STRING)
  size <- suppressWarnings(as.integer(query$max_results %||% MULTI_MODEL_PAGE_SIZE))
  if (is.na(size) || size < 1) http_error(400, "max_results must be a positive whole number")
  size <- min(size, MULTI_MODEL_MAX_PAGE_SIZE)
  names <- registered_names()
  after <- query$next_page_token %||% ""
  if (nzchar(after)) names <- names_after(names, decode_model_name(after))
  page <- utils::head(names, size)
  entries <- Filter(Negate(is.null), lapply(page, read_entry))
  result <- list(models = lapply(entries, function(e) list(modelName = e$modelName, modelUrl = e$modelUrl)))
  if (length(names) > size) result$nextPageToken <- encode_model_name(page[[size]])
  json_ok(result)
}

not_loaded <- function(name) http_error(404, paste0("model ", name, " is not loaded"))

describe_model <- function(name) {
  entry <- read_entry(name) %||% not_loaded(name)
  json_ok(list(modelName = entry$modelName, modelUrl = entry$modelUrl))
}

unload_model <- function(name) {
  path <- entry_path(name)
  if (!file.exists(path) || !file.remove(path)) not_loaded(name)
  drop_resident(name, "unloaded")
  json_ok(list(status = paste0("Model ", name, " unloaded")))
}

invoke_model <- function(name, req) {
  entry <- read_entry(name) %||% not_loaded(name)
  resident <- resident_for(name, entry)
  invoke_with_timeout(resident$handlers, resident$model, req)
}

method_not_allowed <- function(req) {
  http_error(405, paste("method", req$REQUEST_METHOD, "not allowed on", req$PATH_INFO))
}

#' The multi-model routes, for serving_app: a response, or NULL for a route that is not one of them.
#' @noRd
multi_model_request <- function(req) {
  path <- req$PATH_INFO
  method <- req$REQUEST_METHOD
  if (path == "/invocations") {
    http_error(404, "this is a multi-model endpoint (SAGEMAKER_MULTI_MODEL=true): POST /models/<name>/invoke")
  }
  if (path == "/models") {
    sweep_residents()
    return(switch(method,
      GET = list_models(req),
      POST = load_model_request(req),
      method_not_allowed(req)
    ))
  }
  invoked <- regmatches(path, regexec("^/models/([^/]+)/invoke$", path))[[1]]
  named <- regmatches(path, regexec("^/models/([^/]+)$", path))[[1]]
  if (length(invoked) == 0 && length(named) == 0) {
    return(NULL)
  }
  sweep_residents()
  if (length(invoked) > 0) {
    if (method != "POST") method_not_allowed(req)
    return(invoke_model(decode_model_name(invoked[[2]]), req))
  }
  name <- decode_model_name(named[[2]])
  switch(method,
    GET = describe_model(name),
    DELETE = unload_model(name),
    method_not_allowed(req)
  )
}

#' The routes of a multi-model worker (serving_app tries them before its own).
#' @noRd
multi_model_routes <- function() multi_model_request

sweep_clock <- new.env(parent = emptyenv())
sweep_clock$due <- 0

#' Sweep at most every SWEEP_SECONDS: a worker's serving loop calls this between requests
#' (run_worker, server.R), so copies of models unloaded through another worker are freed also while
#' this one gets no requests. In the loop, not on a timer of the later package: the sweep then runs
#' only between requests, never inside a handler, and a fork does not inherit later's timer thread.
#' @noRd
sweep_when_due <- function(now = as.numeric(Sys.time())) {
  if (now < sweep_clock$due) {
    return(invisible(FALSE))
  }
  sweep_clock$due <- now + SWEEP_SECONDS
  tryCatch(sweep_residents(), error = function(e) message("Multi-model sweep failed: ", conditionMessage(e)))
  invisible(TRUE)
}
