#' @section The package:
#' The SageMaker container contract in R: what a project's training and serving image runs. The
#' image's `run.sh` calls `Rscript entrypoint.R train|serve ...`, and entrypoint.R calls [main()].
#' A training job ([train()], [training]) reads `/opt/ml` as the SageMaker training toolkit does;
#' serving ([serve()], [serving], [server]) answers SageMaker's HTTP contract with the handlers of
#' the project's deploy.R, on [multi_model] endpoints too. A project's own code calls
#' [save_input_prototype()] (train.R) and [http_error()] (deploy.R).
#' @keywords internal
#' @concept utilities
#' @useDynLib rsagemaker, .registration = TRUE
"_PACKAGE"

#' The container's R entry point
#'
#' The image's `run.sh` calls `Rscript entrypoint.R train|serve ...`, and entrypoint.R
#' (`rsagemaker::main(commandArgs(trailingOnly = TRUE))`) hands the arguments here.
#' @param args the command-line arguments: `train` ([train()]); `serve --run-dir DIR --cpus N
#'   [--workers N]` (the master that forks the workers, [server]); or `serve [--socket PATH |
#'   --port N] [--ready FILE ...]` (one worker in this process, [serve()]).
#' @return Does not return: the mode runs until it ends the R process (training) or is killed
#'   (serving). Other arguments print the usage and end R with status 2.
#' @concept utilities
#' @examples
#' \dontrun{
#' # What the image's entrypoint.R does (inside a container with /opt/ml laid out):
#' rsagemaker::main(c("train"))
#' # one worker answering SageMaker's HTTP contract on port 8080
#' rsagemaker::main(c("serve", "--port", "8080"))
#' }
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
#' @noRd
option_values <- function(args, name) {
  at <- which(args == name)
  at <- at[at < length(args)]
  if (length(at) == 0) NULL else args[at + 1]
}

option_value <- function(args, name) {
  values <- option_values(args, name)
  if (is.null(values)) NULL else values[[length(values)]]
}
