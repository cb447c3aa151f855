# R's site profile (R_PROFILE) for the one R process that the Rscript wrapper (images/rscript.sh)
# runs as a processing job's main process, when the job has /opt/ml/output. It loads the usual site
# profile, then records an R error that nothing catches in /opt/ml/output/message (SageMaker's
# ExitMessage) unless the script wrote a message of its own. A global calling handler runs only
# when no tryCatch / try of the script took the error, and R's own handling (the message on stderr,
# on.exit, exit status 1) then goes on unchanged.
local({
  message_file <- Sys.getenv("SAGEMAKER_RSCRIPT_MESSAGE_FILE")
  # R processes started by the script read the usual site profile and record nothing.
  Sys.unsetenv(c("R_PROFILE", "SAGEMAKER_RSCRIPT_MESSAGE_FILE"))
  # Where R looks for the site profile when R_PROFILE is unset.
  sites <- file.path(R.home(), c(paste0("etc", Sys.getenv("R_ARCH")), "etc"), "Rprofile.site")
  sites <- sites[file.exists(sites)]
  if (length(sites) > 0) sys.source(sites[[1]], envir = topenv())
  if (!nzchar(message_file) || !exists("globalCallingHandlers", baseenv())) {
    return(invisible())
  }
  globalCallingHandlers(error = function(e) {
    if (file.exists(message_file) && file.size(message_file) > 0) {
      return()
    }
    call <- conditionCall(e)
    where <- if (is.null(call)) "" else paste0(" in ", paste(deparse(call, nlines = 1L), collapse = " "))
    text <- gsub("[[:space:]]+", " ", paste0("Error", where, ": ", conditionMessage(e)))
    try(writeLines(substr(text, 1L, 1000L), message_file, useBytes = TRUE), silent = TRUE)
  })
})
