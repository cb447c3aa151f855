#' The serving process model
#'
#' `run.sh serve` starts one R master (`entrypoint.R serve --run-dir DIR`). The master loads deploy.R
#' and the model once, chooses the worker count (one per CPU, no more than fit in memory beside the
#' master; `SAGEMAKER_MODEL_SERVER_WORKERS` overrides), then forks the workers with
#' [parallel::mcparallel()]: each is a copy-on-write copy of the master, so N workers hold one copy of
#' the model's memory, and each answers HTTP ([http]) on its own unix socket behind nginx. A worker
#' that dies is replaced by a new fork of the master, which still holds the loaded model: nothing is
#' loaded again. nginx answers `/ping` 200 while one of the workers' ready files exists; the master
#' removes a dead worker's file, so `/ping` says 503 when no worker is alive and 200 again once a
#' replacement is ready.
#'
#' Files in the run directory: `workers` (the count, for run.sh's nginx upstream), and per worker i
#' `worker-i.sock` and `worker-i.ready` (created empty by the worker once it listens).
#' @name server
#' @keywords internal
#' @concept serving
NULL

# What one worker may use beyond the memory it shares with the master: its own R heap, the request
# (up to the payload limit) and what the handlers make of it. SAGEMAKER_WORKER_MEMORY_MB overrides.
DEFAULT_WORKER_MEMORY_MB <- 256
# Kept free for nginx, the shell and the page cache the workers need.
RESERVED_MEMORY_MB <- 64

#' Load deploy.R's handlers and the model: the one model-loading step of the server. The master
#' calls it once, before forking; every worker serves what it returns.
#' invoke_local() (local.R) loads the same way, naming the deploy.R (a project's own) itself.
#' @return a list: handlers, model, model_dir, deploy_script, seconds (how long the load took).
#' @noRd
load_model <- function(model_dir = sm_path("model"), deploy_script = find_deploy_script(model_dir)) {
  started <- Sys.time()
  handlers <- load_handlers(deploy_script, model_dir)
  model <- call_handler(handlers$model_fn, model_dir, context = new.env())
  list(
    handlers = handlers, model = model, model_dir = model_dir, deploy_script = deploy_script,
    seconds = as.numeric(difftime(Sys.time(), started, units = "secs"))
  )
}

#' What the server serves: the model (load_model), or on a multi-model endpoint no model yet (POST
#' /models loads them into the workers, multi_model.R). A model that cannot load ends the process
#' with status 1 and the reason in the log (so the container stops, and /ping never says 200 for it).
#' @noRd
load_model_or_quit <- function() {
  if (multi_model_enabled()) {
    return(list(
      handlers = NULL, model = NULL, model_dir = sm_path("models"),
      deploy_script = "no model yet (a multi-model endpoint: POST /models loads one)", seconds = 0
    ))
  }
  warn_if_trained_elsewhere(sm_path("model"))
  tryCatch(load_model(), error = function(e) {
    message("Model failed to load: ", conditionMessage(e))
    quit(save = "no", status = 1)
  })
}

#' The HTTP app of what load_model_or_quit returned: its handlers, and on a multi-model endpoint
#' SageMaker's /models API.
#' @noRd
loaded_app <- function(loaded) {
  serving_app(loaded$handlers, loaded$model, if (multi_model_enabled()) multi_model_routes())
}

# ---- memory and the worker count -----------------------------------------------------------------

#' How many workers to fork: SAGEMAKER_MODEL_SERVER_WORKERS when set (`requested`), else one per
#' CPU, but no more than fit in memory: the container's limit less the master (which holds the one
#' copy of the model) and a reserve, divided by what one worker adds. Always at least one. Returns
#' the count and a line saying which figures chose it.
#' @noRd
worker_count <- function(cpus, requested = NULL, limit = memory_limit(), master_bytes = resident_bytes(),
                         worker_mb = env_number("SAGEMAKER_WORKER_MEMORY_MB", DEFAULT_WORKER_MEMORY_MB)) {
  mb <- function(bytes) sprintf("%.0f MB", bytes / MB)
  room <- limit$bytes - master_bytes - RESERVED_MEMORY_MB * MB
  fit <- if (is.na(room)) cpus else max(1, floor(room / (worker_mb * MB)))
  figures <- paste0(
    sprintf("memory limit %s (%s), master with the model %s, ", mb(limit$bytes), limit$source, mb(master_bytes)),
    sprintf("reserve %d MB, %g MB per worker (SAGEMAKER_WORKER_MEMORY_MB): ", RESERVED_MEMORY_MB, worker_mb),
    sprintf("room for %s", fit)
  )
  if (!is.null(requested)) {
    note <- if (requested > fit) "; more than fit in memory, the container may run out of it" else ""
    return(list(count = as.integer(requested), reason = sprintf(
      "%d worker(s): SAGEMAKER_MODEL_SERVER_WORKERS (%s%s)", as.integer(requested), figures, note
    )))
  }
  count <- as.integer(max(1, min(cpus, fit)))
  list(count = count, reason = sprintf("%d worker(s): %d CPU(s), %s", count, as.integer(cpus), figures))
}

# ---- one worker ----------------------------------------------------------------------------------

#' Answer HTTP with `app` until killed, on a unix socket (behind nginx) or a TCP port. Creates the
#' ready files once it listens.
#' @noRd
run_worker <- function(app, loaded, socket = NULL, port = NULL, ready_file = NULL) {
  if (requireNamespace("data.table", quietly = TRUE)) data.table::setDTthreads(1) # one CPU per worker
  # A full collection writes a mark into every object, so a fork's first one gives it its own copy
  # of each page of the master's R heap (not of the model's large vectors). Paid here, before the
  # worker is ready: its memory is then what it holds for good (no growth, no pause, under load).
  invisible(gc(full = TRUE))
  server <- http_listen(socket = socket, port = port)
  where <- socket %||% paste0("0.0.0.0:", port)
  message(sprintf(
    "Worker %d serving %s with %s on %s", Sys.getpid(), loaded$model_dir, loaded$deploy_script, where
  ))
  for (path in ready_file) file.create(path)
  sweep <- multi_model_enabled() # a multi-model worker frees the copies of unloaded models
  repeat {
    http_service(server, app$call, 1000L) # returns after a request, or after a second without one
    if (sweep) sweep_when_due()
  }
}

#' Serve the model in this process: one worker
#'
#' Load deploy.R and the model, then serve until killed (the host tests and a single worker; the
#' container runs serve_forked). A model that fails to load ends the process with a non-zero status
#' before it ever answers.
#' @param socket a unix socket path to listen on (behind nginx), or NULL.
#' @param port a TCP port to listen on when `socket` is NULL.
#' @param ready_file files created once the model is loaded.
#' @return Does not return: it serves until the process is killed.
#' @concept serving
#' @examples
#' \dontrun{
#' # A folder laid out as /opt/ml: model/model.rds and model/code/deploy.R (the project's code/).
#' Sys.setenv(SAGEMAKER_BASE_DIR = "opt-ml")
#' serve(port = 8080)
#' # elsewhere: curl -d '5.1,3.5,1.4,0.2' -H 'Content-Type: text/csv' localhost:8080/invocations
#' }
#' @export
serve <- function(socket = NULL, port = NULL, ready_file = NULL) {
  loaded <- load_model_or_quit()
  message(sprintf("Model loaded in %.2f s", loaded$seconds))
  run_worker(loaded_app(loaded), loaded, socket, port, ready_file)
}

# ---- the master ----------------------------------------------------------------------------------

worker_files <- function(run_dir, slot) {
  list(
    socket = file.path(run_dir, sprintf("worker-%d.sock", slot)),
    ready = file.path(run_dir, sprintf("worker-%d.ready", slot))
  )
}

#' A new worker in `slot`: a fork of this process (the model already in memory).
#' @noRd
fork_worker <- function(slot, app, loaded, run_dir) {
  files <- worker_files(run_dir, slot)
  unlink(c(files$ready, files$socket))
  parallel::mcparallel(
    run_worker(app, loaded, socket = files$socket, ready_file = files$ready),
    name = as.character(slot), mc.set.seed = TRUE, silent = FALSE
  )
}

#' The master: load the model once, fork the workers, replace each one that dies with a new fork.
#' SIGTERM (run.sh sends it to the process group once nginx has drained) ends the master and the
#' workers together. A worker that ends before it was ready (it could not listen) ends the master
#' with status 1, so the container stops instead of forking for ever.
#' @param run_dir the run directory (sockets, ready files, the `workers` file for run.sh).
#' @param cpus the CPUs the container may use (run.sh's cpu_count).
#' @param requested SAGEMAKER_MODEL_SERVER_WORKERS, or NULL for the default.
#' @noRd
serve_forked <- function(run_dir, cpus, requested = NULL) {
  loaded <- load_model_or_quit()
  # What every worker needs, loaded once here: a fork finds it loaded. (Each worker's first full
  # collection writes a mark into every object, so each ends with its own copy of these pages.)
  for (package in c("jsonlite", "data.table")) loadNamespace(package)
  invisible(gc(full = TRUE)) # the load's garbage, collected once here rather than in every worker
  # and the C library's free memory (readRDS's buffers) handed back, not inherited by every fork
  release_free_memory()
  chosen <- worker_count(cpus, requested)
  message(sprintf(
    "Model loaded once in %.2f s from %s with %s; %s", loaded$seconds, loaded$model_dir,
    loaded$deploy_script, chosen$reason
  ))
  Sys.setenv(SAGEMAKER_MODEL_SERVER_WORKERS = chosen$count) # /execution-parameters reports it
  writeLines(as.character(chosen$count), file.path(run_dir, "workers"))
  app <- loaded_app(loaded)
  jobs <- lapply(seq_len(chosen$count), fork_worker, app = app, loaded = loaded, run_dir = run_dir)
  repeat {
    # Returns at once when a worker ends (its pipe to the master closes), else after a second.
    ended <- suppressWarnings(parallel::mccollect(jobs, wait = FALSE, timeout = 1))
    for (slot in as.integer(names(ended))) {
      files <- worker_files(run_dir, slot)
      pid <- jobs[[slot]]$pid
      was_ready <- file.exists(files$ready)
      unlink(c(files$ready, files$socket)) # /ping stops counting it at once
      result <- ended[[as.character(slot)]]
      why <- if (inherits(result, "try-error")) paste0(": ", trimws(result)) else ""
      if (!was_ready) {
        message(sprintf("worker %d (pid %d) ended before it was ready%s; stopping", slot, pid, why))
        tools::pskill(vapply(jobs, function(job) job$pid, integer(1)))
        quit(save = "no", status = 1)
      }
      message(sprintf("worker %d (pid %d) died%s; forking a new one (the model stays loaded)", slot, pid, why))
      jobs[[slot]] <- fork_worker(slot, app, loaded, run_dir)
    }
  }
}
