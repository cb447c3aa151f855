# The user profile of the training program's R process (run_program sets R_PROFILE_USER to this
# file). It does two things:
# 1. When the program stops on an error, its message is kept for /opt/ml/output/failure and R exits
#    non-zero, as it would anyway.
# 2. Because R_PROFILE_USER replaces the user profile, R would skip the project's own .Rprofile
#    (and with it renv/activate.R). It is run here as R would: .Rprofile in the working directory
#    (the code folder), else ~/.Rprofile, evaluated in the global environment.
local({
  error_file <- Sys.getenv("SAGEMAKER_USER_ERROR_FILE")
  if (nzchar(error_file)) {
    options(error = function() {
      cat(geterrmessage(), file = error_file)
      quit(save = "no", status = 1)
    })
  }
  profiles <- c(".Rprofile", path.expand("~/.Rprofile"))
  profile <- profiles[file.exists(profiles)][1]
  # Once: renv's activate.R, when its autoloader is off, runs R_PROFILE_USER (this file) itself.
  if (!is.na(profile) && !isTRUE(getOption("rsagemaker.user_profile_ran"))) {
    options(rsagemaker.user_profile_ran = TRUE)
    tryCatch(
      sys.source(profile, envir = globalenv(), toplevel.env = globalenv()),
      error = function(e) stop(profile, " failed: ", conditionMessage(e), call. = FALSE)
    )
  }
})
