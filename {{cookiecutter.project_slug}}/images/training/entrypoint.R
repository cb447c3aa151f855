# The container's R entry point, called by run.sh:
#   Rscript entrypoint.R train                       one training job (see sagemaker/training.R)
#   Rscript entrypoint.R serve [--socket PATH | --port N] [--ready FILE ...]
#                                                    one serving worker (see sagemaker/serving.R)
local({
  args <- commandArgs(trailingOnly = TRUE)
  here <- Sys.getenv("SAGEMAKER_PLUMBING_DIR", "/opt/sagemaker/sagemaker")
  for (module in c("errors.R", "python_json.R", "environment.R", "training.R", "serving.R")) {
    sys.source(file.path(here, module), envir = globalenv())
  }
  option <- function(name) {
    at <- which(args == name)
    if (length(at) == 0) NULL else args[at + 1]
  }
  mode <- if (length(args) > 0) args[[1]] else ""
  switch(mode,
    train = train(),
    serve = serve(
      socket = option("--socket"),
      port = option("--port") %||% Sys.getenv("SAGEMAKER_BIND_TO_PORT", "8080"),
      ready_file = option("--ready")
    ),
    {
      message("usage: entrypoint.R train | serve [--socket PATH | --port N] [--ready FILE]")
      quit(save = "no", status = 2)
    }
  )
})
