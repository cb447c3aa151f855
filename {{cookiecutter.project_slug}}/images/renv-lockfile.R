# The R side of images/renv-lockfile.sh: restore code/renv.lock into an image, or write it.
#   Rscript renv-lockfile.R restore LOCKFILE     a Dockerfile RUN step: every locked package, exact version
#   Rscript renv-lockfile.R lock PROJECT          `make lock`: PROJECT/code/renv.lock from the code's packages
#
# Where packages come from, fastest first:
#   1. apt binaries (r-cran-<name>: rocker/r2u has all of CRAN, Debian / r-base its own set), used only
#      when apt's version is the locked one;
#   2. renv::restore() from the lockfile's repository. A Posit Package Manager URL
#      (https://packagemanager.posit.co/cran/<date>, what `make lock` records) is turned by renv into
#      its binary form __linux__/<distro>/<date> on Ubuntu and Debian (rocker/r-ver, r2u), so this is
#      binaries too; R_REPOS replaces the repository (a mirror, a loopback repository in tests);
#   3. a source build, where neither has a binary of that version.
# A package that does not end up installed at its locked version fails the step, naming it.

# A base R install (apt's, rocker's) has no JSON reader; renv has one, so renv comes first. Its locked
# version is found in the lockfile's text, as renv writes it ("renv": { ... "Version": "x" ... }).
locked_renv_version <- function(lockfile) {
  text <- paste(readLines(lockfile, warn = FALSE), collapse = "\n")
  found <- regmatches(text, regexec('"renv": [{][^}]*?"Version": "([^"]+)"', text, perl = TRUE))[[1]]
  if (length(found) == 2) found[[2]] else NA_character_
}

lockfile_repositories <- function(lockfile) {
  text <- paste(readLines(lockfile, warn = FALSE), collapse = "\n")
  urls <- regmatches(text, gregexpr('"URL": "[^"]+"', text))[[1]]
  sub('^"URL": "([^"]+)"$', "\\1", urls)
}

# R_REPOS (a URL; several separated by spaces) replaces the lockfile's repositories.
override_repositories <- function() {
  given <- strsplit(trimws(Sys.getenv("R_REPOS")), "[[:space:]]+")[[1]]
  given <- given[nzchar(given)]
  if (length(given) == 0) return(NULL)
  stats::setNames(given, c("CRAN", if (length(given) > 1) paste0("REPO", seq_along(given)[-1])))
}

# Posit Package Manager's binary form of its URLs, __linux__/<codename>/<snapshot>, on Ubuntu and Debian
# (renv::restore() does the same itself; renv::install(), used by `make lock`, does not).
ppm_binary <- function(repos) {
  release <- if (file.exists("/etc/os-release")) readLines("/etc/os-release", warn = FALSE) else character()
  field <- function(name) {
    sub(paste0("^", name, "=\"?([^\"]*)\"?$"), "\\1", grep(paste0("^", name, "="), release, value = TRUE))
  }
  codename <- field("VERSION_CODENAME")
  if (!any(field("ID") %in% c("ubuntu", "debian")) || length(codename) != 1 || !nzchar(codename)) return(repos)
  ppm <- "^(https://packagemanager[.]posit[.]co/cran)/([^_/][^/]*)/?$"
  hit <- grepl(ppm, repos)
  repos[hit] <- sub(ppm, paste0("\\1/__linux__/", codename, "/\\2"), repos[hit])
  repos
}

installed_version <- function(package) {
  path <- find.package(package, quiet = TRUE)
  if (length(path) == 0) return(NA_character_)
  as.character(utils::packageDescription(package, lib.loc = dirname(path[[1]]))$Version)
}

same_version <- function(a, b) {
  !is.na(a) && !is.na(b) && isTRUE(package_version(a, strict = FALSE) == package_version(b, strict = FALSE))
}

# apt's candidate version of each r-cran-<name>, as the upstream (CRAN) version: NA where apt has none.
# "1.8.4+dfsg-1" (Debian), "2.0.0-1.ca2404.1" (r2u), "7.3.58.2-1" (CRAN's 7.3-58.2) -> 1.8.4, 2.0.0, 7.3.58.2.
apt_versions <- function(packages) {
  debs <- paste0("r-cran-", tolower(packages))
  out <- suppressWarnings(system2("apt-cache", c("policy", debs), stdout = TRUE, stderr = FALSE))
  versions <- stats::setNames(rep(NA_character_, length(packages)), packages)
  current <- NA_character_
  for (line in out) {
    if (grepl("^[^[:space:]].*:$", line)) {
      current <- sub(":$", "", line)
    } else if (!is.na(current) && grepl("^[[:space:]]+Candidate: ", line)) {
      version <- sub("^[[:space:]]+Candidate: ", "", line)
      if (version != "(none)") {
        upstream <- sub("[+~].*$", "", sub("-[^-]*$", "", sub("^[0-9]+:", "", version)))
        versions[packages[debs == current]] <- upstream
      }
      current <- NA_character_
    }
  }
  versions
}

apt_install <- function(packages) {
  if (length(packages) == 0) return(invisible())
  debs <- paste0("r-cran-", tolower(packages))
  message("renv-lockfile: apt binaries: ", paste(debs, collapse = " "))
  status <- system2("apt-get", c("install", "-y", "-qq", "--no-install-recommends", debs))
  if (status != 0) {
    stop("apt-get install failed (status ", status, ") for: ", paste(debs, collapse = " "), call. = FALSE)
  }
}

# One version of renv from the repositories' source folders (the current one, else CRAN's Archive):
# renv is pure R, so a source install takes seconds.
install_renv_source <- function(version, repos) {
  name <- paste0("renv_", version, ".tar.gz")
  urls <- c(file.path(repos, "src/contrib", name), file.path(repos, "src/contrib/Archive/renv", name))
  tarball <- file.path(tempdir(), name)
  fetched <- function(url) {
    failed <- function(e) FALSE
    tryCatch(utils::download.file(url, tarball, quiet = TRUE) == 0, error = failed, warning = failed)
  }
  # The first URL that answers (a failed download leaves a broken file behind: never try past it).
  if (is.null(Find(fetched, urls))) {
    stop("renv ", version, " (the lockfile's) is in none of ", paste(repos, collapse = ", "), call. = FALSE)
  }
  utils::install.packages(tarball, repos = NULL, type = "source")
}

# renv at the locked version (restore), or any renv (lock: apt's, else the repository's newest).
install_renv <- function(version, repos) {
  have <- installed_version("renv")
  if (if (is.na(version)) !is.na(have) else same_version(have, version)) return(invisible())
  apt <- apt_versions("renv")[["renv"]]
  if (!is.na(apt) && (is.na(version) || same_version(apt, version))) {
    apt_install("renv")
  } else if (is.na(version)) {
    utils::install.packages("renv", repos = repos)
  } else {
    install_renv_source(version, repos)
  }
  if (is.na(installed_version("renv"))) {
    stop("renv could not be installed from ", paste(repos, collapse = ", "), call. = FALSE)
  }
}

# renv installs straight into the image's site library: no cache (its links would point into a
# folder the image drops), no prompts, no user-level state left behind.
quiet_renv <- function() {
  Sys.setenv(RENV_CONFIG_CACHE_ENABLED = "FALSE", RENV_PATHS_ROOT = file.path(tempdir(), "renv-root"))
  options(renv.consent = TRUE, renv.verbose = TRUE)
}

restore <- function(lockfile) {
  repos <- override_repositories() %||% lockfile_repositories(lockfile)
  quiet_renv()
  install_renv(locked_renv_version(lockfile), repos)
  locked <- renv::lockfile_read(lockfile)
  records <- locked$Packages
  locked_r <- locked$R$Version
  if (!is.null(locked_r) && !identical(locked_r, format(getRversion()))) {
    message(
      "renv-lockfile: WARNING: renv.lock was written with R ", locked_r, ", this image has R ", format(getRversion()),
      ": packages may not match; run `make lock` on this base image"
    )
  }
  versions <- vapply(records, function(record) record$Version %||% NA_character_, "")
  have <- vapply(names(records), installed_version, "")
  todo <- names(records)[!mapply(same_version, have, versions)]
  apt <- if (length(todo) > 0) apt_versions(todo) else character()
  apt_install(todo[mapply(same_version, apt[todo], versions[todo])])

  message("renv-lockfile: renv::restore() from ", paste(repos, collapse = ", "))
  failure <- tryCatch(
    {
      # repos NULL: renv takes the lockfile's own (named) repositories and their binary form.
      override <- override_repositories()
      renv::restore(lockfile = lockfile, library = .libPaths(), repos = override, prompt = FALSE, clean = FALSE)
      NULL
    },
    error = function(e) conditionMessage(e)
  )
  have <- vapply(names(records), installed_version, "")
  wrong <- names(records)[!mapply(same_version, have, versions)]
  if (length(wrong) > 0 || !is.null(failure)) {
    found <- ifelse(is.na(have[wrong]), "not installed", have[wrong])
    detail <- sprintf("%s %s (found: %s)", wrong, versions[wrong], found)
    stop(
      "renv.lock not restored",
      if (length(wrong) > 0) paste0(": ", paste(detail, collapse = "; ")) else "",
      if (!is.null(failure)) paste0("\nrenv::restore(): ", failure) else "",
      "\nEach package must exist at its locked version in apt or in ", paste(repos, collapse = ", "),
      " (R_REPOS=URL names another repository; `make lock` rewrites the lockfile from what is available).",
      call. = FALSE
    )
  }
  message(
    "renv-lockfile: restored ", length(records), " packages at their locked versions: ",
    paste(sprintf("%s %s", names(records), versions), collapse = ", ")
  )
}

# The plumbing's packages (the Imports of the rsagemaker release in vendor/, as plumbing.sha256 pins
# it) and every package code/ uses, but rsagemaker itself (code/train.R calls it): the image installs
# it from vendor/, no repository has it.
wanted_packages <- function(project) {
  pins <- readLines(file.path(project, "plumbing.sha256"))
  pinned <- sub("^[0-9a-f]+  ", "", grep("  rsagemaker_[^ ]+[.]tar[.]gz$", pins, value = TRUE))
  tarball <- file.path(project, "vendor", pinned)
  plumbing <- if (length(tarball) == 1 && file.exists(tarball)) {
    unpacked <- tempfile("rsagemaker-")
    utils::untar(tarball, files = "rsagemaker/DESCRIPTION", exdir = unpacked)
    imports <- read.dcf(file.path(unpacked, "rsagemaker", "DESCRIPTION"), fields = "Imports")[1, 1]
    trimws(sub("[(].*$", "", strsplit(gsub("\n", " ", imports), ",")[[1]]))
  } else {
    stop("renv-lockfile: vendor/ lacks the rsagemaker tarball plumbing.sha256 pins (make vendor)", call. = FALSE)
  }
  code <- renv::dependencies(file.path(project, "code"), quiet = TRUE, progress = FALSE)$Package
  base <- rownames(utils::installed.packages(priority = "base"))
  setdiff(sort(unique(c("renv", plumbing, code))), c(base, "", "rsagemaker"))
}

lock <- function(project) {
  lockfile <- file.path(project, "code", "renv.lock")
  # The lockfile records LOCK_REPOS, by default Posit Package Manager's snapshot of LOCK_DATE (today):
  # a dated snapshot keeps every restore on the same versions. R_REPOS, when given, is where the
  # packages come from now (a mirror; the tests' loopback repository).
  date <- Sys.getenv("LOCK_DATE", format(Sys.Date()))
  recorded <- Sys.getenv("LOCK_REPOS", sprintf("https://packagemanager.posit.co/cran/%s", date))
  recorded <- c(CRAN = recorded)
  repos <- override_repositories() %||% recorded
  quiet_renv()
  install_renv(NA_character_, repos)
  packages <- wanted_packages(project)
  message("renv-lockfile: packages of the plumbing and code/: ", paste(packages, collapse = ", "))
  missing <- packages[is.na(vapply(packages, installed_version, ""))]
  apt <- if (length(missing) > 0) apt_versions(missing) else character()
  apt_install(missing[!is.na(apt[missing])])
  missing <- packages[is.na(vapply(packages, installed_version, ""))]
  if (length(missing) > 0) {
    message("renv-lockfile: from ", paste(repos, collapse = ", "), ": ", paste(missing, collapse = ", "))
    renv::install(missing, library = .libPaths()[[1]], repos = ppm_binary(repos), prompt = FALSE)
  }
  renv::snapshot(
    project = file.path(project, "code"), library = .libPaths(), lockfile = lockfile, packages = packages,
    repos = recorded, prompt = FALSE, force = TRUE
  )
  # .Rprofile and renv/activate.R as this renv writes them (into a scratch project, then copied:
  # renv would otherwise install itself into code/renv/library).
  scratch <- file.path(tempdir(), "scaffold")
  dir.create(scratch)
  suppressMessages(renv::scaffold(scratch, repos = repos))
  code <- file.path(project, "code")
  dir.create(file.path(code, "renv"), showWarnings = FALSE)
  for (file in c(".Rprofile", "renv/activate.R", "renv/.gitignore")) {
    # A .Rprofile of your own stays (renv's line is in it once renv wrote it).
    if (file != ".Rprofile" || !file.exists(file.path(code, file))) {
      file.copy(file.path(scratch, file), file.path(code, file), overwrite = TRUE)
    }
  }
  message(
    "renv-lockfile: wrote ", lockfile, " (R ", format(getRversion()), ", ",
    length(renv::lockfile_read(lockfile)$Packages),
    " packages, repository ", recorded, ") and code/renv/activate.R (renv ", format(utils::packageVersion("renv")), ")"
  )
}

`%||%` <- function(a, b) if (is.null(a)) b else a

local({
  args <- commandArgs(trailingOnly = TRUE)
  command <- if (length(args) >= 2) args[[1]] else ""
  result <- tryCatch(
    {
      switch(command,
        restore = restore(args[[2]]),
        lock = lock(args[[2]]),
        stop("usage: renv-lockfile.R restore LOCKFILE | lock PROJECT", call. = FALSE)
      )
      0L
    },
    error = function(e) {
      message("renv-lockfile: ERROR: ", conditionMessage(e))
      1L
    }
  )
  quit(save = "no", status = result)
})
