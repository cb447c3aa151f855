#' Versions kept with the model
#'
#' Training writes what the model was made with next to it, in
#' `/opt/ml/model/rsagemaker-versions.json` (and so in `model.tar.gz`): the R version, every installed
#' package's version, the base image the image was built on (`R_SAGEMAKER_BASE_IMAGE`, set at build
#' time: an `@sha256` reference once `make pin-base` pinned it), the image itself when the job's
#' environment names it (`R_SAGEMAKER_IMAGE`: remote-train passes the pushed digest, local-train the
#' local image ID) and, with renv, the lockfile the image was restored from (`code/renv.lock`).
#' Serving reads it at start-up and warns when it runs the model under other versions.
#' @name versions
#' @keywords internal
#' @concept training
NULL

VERSIONS_FILE <- "rsagemaker-versions.json"

#' Packages whose versions are recorded: all installed ones but R's base packages (whose version is R's).
#' @noRd
installed_versions <- function() {
  installed <- utils::installed.packages(fields = "Priority")
  installed <- installed[is.na(installed[, "Priority"]) | installed[, "Priority"] != "base", , drop = FALSE]
  installed <- installed[!duplicated(installed[, "Package"]), , drop = FALSE] # the one R loads: first in .libPaths()
  versions <- as.list(installed[, "Version"])
  names(versions) <- installed[, "Package"]
  versions[order(names(versions))]
}

runtime_versions <- function() {
  image_env <- function(name) if (nzchar(Sys.getenv(name))) Sys.getenv(name) else NULL
  list(
    r = format(getRversion()),
    platform = R.version$platform,
    base_image = image_env("R_SAGEMAKER_BASE_IMAGE"),
    image = image_env("R_SAGEMAKER_IMAGE"),
    packages = installed_versions()
  )
}

#' Write the versions file into the model folder; the lockfile is named when the inference code has one.
#' @noRd
write_versions <- function(model_dir) {
  versions <- runtime_versions()
  if (file.exists(file.path(model_dir, "code", "renv.lock"))) versions$lockfile <- "code/renv.lock"
  path <- file.path(model_dir, VERSIONS_FILE)
  jsonlite::write_json(versions, path, auto_unbox = TRUE, pretty = TRUE, null = "null")
  message(
    "Versions kept with the model in ", path, ": R ", versions$r, ", ", length(versions$packages), " packages",
    if (!is.null(versions$base_image)) paste0(", base image ", versions$base_image) else ""
  )
  invisible(path)
}

#' What differs between the versions a model was trained under and these: a character vector,
#' one "name: trained X, here Y" per difference (R first, then the packages the model's record names).
#' @noRd
version_differences <- function(trained, here = runtime_versions()) {
  differences <- character()
  if (!identical(trained$r, here$r)) differences <- sprintf("R: trained %s, here %s", trained$r, here$r)
  for (name in names(trained$packages)) {
    now <- here$packages[[name]] %||% "not installed"
    if (!identical(trained$packages[[name]], now)) {
      differences <- c(differences, sprintf("%s: trained %s, here %s", name, trained$packages[[name]], now))
    }
  }
  differences
}

#' At serving start: one warning when the model was trained under other versions than this image's.
#' A model without a versions file (trained elsewhere, or before it existed) is served without one.
#' @noRd
warn_if_trained_elsewhere <- function(model_dir) {
  path <- file.path(model_dir, VERSIONS_FILE)
  if (!file.exists(path)) return(invisible(character()))
  trained <- tryCatch(jsonlite::read_json(path), error = function(e) NULL)
  if (is.null(trained)) {
    message("WARNING: ", path, " is not readable JSON: the model's training versions are unknown")
    return(invisible(character()))
  }
  differences <- version_differences(trained)
  if (length(differences) > 0) {
    shown <- utils::head(differences, 10)
    message(
      "WARNING: this model was trained under other versions than this image's (", path, "): ",
      paste(shown, collapse = "; "),
      if (length(differences) > length(shown)) sprintf("; and %d more", length(differences) - length(shown)) else "",
      ". Serve it with the image that trained it, or retrain."
    )
  }
  invisible(differences)
}
