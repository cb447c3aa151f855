#' The container's R entry point
#'
#' run.sh calls `Rscript entrypoint.R train|serve ...`; entrypoint.R hands the arguments here.
#' @param args the command-line arguments: `train`; `serve --run-dir DIR --cpus N [--workers N]`
#'   (the master that forks the workers, server.R); or `serve [--socket PATH | --port N]
#'   [--ready FILE ...]` (one worker in this process).
#' @export
main <- function(args = commandArgs(trailingOnly = TRUE)) {
  mode <- if (length(args) > 0) args[[1]] else ""
  switch(mode,
    train = train(),
    serve = if (!is.null(option_value(args, "--run-dir"))) {
      workers <- option_value(args, "--workers")
      serve_forked(
        run_dir = option_value(args, "--run-dir"),
        cpus = as.integer(option_value(args, "--cpus") %||% 1),
        requested = if (is.null(workers)) NULL else as.integer(workers)
      )
    } else {
      serve(
        socket = option_value(args, "--socket"),
        port = option_value(args, "--port") %||% Sys.getenv("SAGEMAKER_BIND_TO_PORT", "8080"),
        ready_file = option_values(args, "--ready")
      )
    },
    {
      message(
        "usage: entrypoint.R train | serve --run-dir DIR --cpus N [--workers N]",
        " | serve [--socket PATH | --port N] [--ready FILE ...]"
      )
      quit(save = "no", status = 2)
    }
  )
}

#' The values following each occurrence of an option; the last one where one value is meant.
option_values <- function(args, name) {
  at <- which(args == name)
  at <- at[at < length(args)]
  if (length(at) == 0) NULL else args[at + 1]
}

option_value <- function(args, name) {
  values <- option_values(args, name)
  if (is.null(values)) NULL else values[[length(values)]]
}
