write_files <- function(dir, files) {
  for (name in names(files)) {
    dir.create(dirname(file.path(dir, name)), recursive = TRUE, showWarnings = FALSE)
    writeLines(files[[name]], file.path(dir, name))
  }
}

test_that("inference code leaves out dotfiles (but the top .Rprofile), renv's caches and archives", {
  root <- local_opt_ml()
  code <- file.path(root, "code")
  write_files(code, list(
    "deploy.R" = "", "helpers/util.R" = "", ".Rprofile" = "source('renv/activate.R')", "renv/activate.R" = "",
    "renv/.gitignore" = "library/", ".Renviron" = "SECRET=1", ".env" = "TOKEN=2", ".git/config" = "",
    "helpers/.secret" = "", "sourcedir.tar.gz" = "", "model.tgz" = "", "helpers/data.tar" = "",
    "renv/library/R-4.2/x86_64-pc-linux-gnu/jsonlite/DESCRIPTION" = "", "helpers/.Rprofile" = ""
  ))
  job <- list(code_dir = code, model_dir = file.path(root, "model"))
  said <- conditionMessage(expect_message(save_inference_code(job)))
  left_out <- strsplit(sub("^.*\\(left out: (.*)\\)\n$", "\\1", said), ", ")[[1]]
  expect_setequal(left_out, c(
    ".env", ".git", ".Renviron", "helpers/.secret", "helpers/.Rprofile", "helpers/data.tar", "model.tgz",
    "renv/.gitignore", "renv/library", "sourcedir.tar.gz"
  ))
  copied <- sort(list.files(file.path(root, "model", "code"), recursive = TRUE, all.files = TRUE))
  expect_identical(copied, sort(c(
    ".Rprofile", "deploy.R", "helpers/util.R", "renv/activate.R"
  )))
})

test_that("inference code the program wrote itself is left as it is", {
  root <- local_opt_ml()
  write_files(file.path(root, "model", "code"), list("deploy.R" = "# mine"))
  write_files(file.path(root, "code"), list("deploy.R" = "# not this one"))
  expect_message(save_inference_code(list(code_dir = file.path(root, "code"), model_dir = file.path(root, "model"))),
    "left as the program wrote it")
  expect_identical(readLines(file.path(root, "model", "code", "deploy.R")), "# mine")
})

test_that("the code source: sagemaker_submit_directory, else the code channel, else none", {
  root <- local_opt_ml()
  expect_null(code_source(list(submit_directory = NULL)))
  write_files(file.path(root, "input", "data", "code"), list("sourcedir.tar.gz" = ""))
  expect_identical(code_source(list(submit_directory = NULL)), sm_path("input", "data", "code", "sourcedir.tar.gz"))
  expect_identical(code_source(list(submit_directory = "s3://b/k.tar.gz")), "s3://b/k.tar.gz")
  expect_error(code_source(list(submit_directory = "")), class = "InvalidHyperparameters")
})

test_that("programs run through their interpreter", {
  expect_identical(basename(program_command("train.R")[[1]]), "Rscript")
  expect_identical(program_command("run.sh"), c("bash", "run.sh"))
})

# The user profile is the program's R process start-up: run a real Rscript with it.
run_with_profile <- function(dir, expression, home = dir) {
  error_file <- file.path(dir, "error.txt")
  withr::local_envvar(
    R_PROFILE_USER = package_file("user_profile.R"), SAGEMAKER_USER_ERROR_FILE = error_file, HOME = home
  )
  withr::local_dir(dir)
  output <- suppressWarnings(system2(file.path(R.home("bin"), "Rscript"), c("-e", shQuote(expression)),
    stdout = TRUE, stderr = TRUE
  ))
  list(
    status = attr(output, "status") %||% 0L, output = output,
    error = if (file.exists(error_file)) readLines(error_file) else character()
  )
}

test_that("the program's R runs the project's .Rprofile, as R would without R_PROFILE_USER", {
  dir <- withr::local_tempdir()
  writeLines(c("options(project.profile = 'ran')", "file.create('marker')"), file.path(dir, ".Rprofile"))
  run <- run_with_profile(dir, "cat(getOption('project.profile'))")
  expect_identical(run$status, 0L)
  expect_identical(run$output, "ran")
  expect_true(file.exists(file.path(dir, "marker")))
})

test_that("without a project .Rprofile, ~/.Rprofile runs", {
  home <- withr::local_tempdir()
  writeLines("options(home.profile = 'home')", file.path(home, ".Rprofile"))
  code <- file.path(home, "code")
  dir.create(code)
  run <- run_with_profile(code, "cat(getOption('home.profile'))", home = home)
  expect_identical(run$output, "home")
})

test_that("the program's error, and an error in .Rprofile, are recorded for the failure file", {
  dir <- withr::local_tempdir()
  run <- run_with_profile(dir, "stop('learning rate too small')")
  expect_identical(run$status, 1L)
  expect_match(paste(run$error, collapse = "\n"), "learning rate too small")
  writeLines("stop('renv could not activate')", file.path(dir, ".Rprofile"))
  run <- run_with_profile(dir, "cat('not reached')")
  expect_identical(run$status, 1L)
  expect_match(paste(run$error, collapse = "\n"), ".Rprofile failed: renv could not activate")
})

test_that("symbolic links in the code are copied as links, never followed", {
  root <- local_opt_ml()
  code <- file.path(root, "code")
  write_files(code, list("deploy.R" = "# d", "sub/x.R" = "# x"))
  file.symlink("..", file.path(code, "sub", "loop")) # a folder above: following it would never end
  file.symlink("deploy.R", file.path(code, "alias.R"))
  expect_message(save_inference_code(list(code_dir = code, model_dir = file.path(root, "model"))), "copied")
  copy <- file.path(root, "model", "code")
  expect_identical(Sys.readlink(file.path(copy, c("sub/loop", "alias.R"))), c("..", "deploy.R"))
  expect_identical(readLines(file.path(copy, "sub", "x.R")), "# x")
})

test_that("links out of the code folder never go into the model's code", {
  root <- local_opt_ml()
  code <- file.path(root, "code")
  write_files(code, list("deploy.R" = "# d", "sub/x.R" = "# x"))
  file.symlink("/etc/passwd", file.path(code, "passwd"))
  file.symlink("../../..", file.path(code, "up"))
  file.symlink("../code/deploy.R", file.path(code, "beside.R")) # inside by the folder's name only
  file.symlink(".", file.path(code, "sub", "here"))
  file.symlink("here/../..", file.path(code, "sub", "out")) # sub/here is sub: .. .. climbs out
  file.symlink("../deploy.R", file.path(code, "sub", "back.R")) # inside: kept
  file.symlink("sub/none.R", file.path(code, "dangling.R")) # to nothing, inside: kept
  expect_message(
    save_inference_code(list(code_dir = code, model_dir = file.path(root, "model"))),
    "left out: .*passwd \\(a link out of the code folder\\)"
  )
  copy <- file.path(root, "model", "code")
  out <- file.path(copy, c("passwd", "up", "beside.R", "sub/out"))
  expect_false(any(file.exists(out) | !is.na(Sys.readlink(out)) & nzchar(Sys.readlink(out))))
  expect_identical(
    Sys.readlink(file.path(copy, c("sub/back.R", "sub/here", "dangling.R"))), c("../deploy.R", ".", "sub/none.R")
  )
  expect_identical(readLines(file.path(copy, "deploy.R")), "# d")
})
