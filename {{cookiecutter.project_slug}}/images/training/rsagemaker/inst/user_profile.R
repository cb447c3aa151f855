# Loaded into the user's training program through R_PROFILE_USER: when the program stops on an
# error, its message is kept for /opt/ml/output/failure and R exits non-zero, as it would anyway.
local({
  error_file <- Sys.getenv("SAGEMAKER_USER_ERROR_FILE")
  if (nzchar(error_file)) {
    options(error = function() {
      cat(geterrmessage(), file = error_file)
      quit(save = "no", status = 1)
    })
  }
})
