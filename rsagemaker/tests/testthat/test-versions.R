test_that("the versions file records R, the installed packages, the base image and the lockfile", {
  root <- local_opt_ml()
  model <- file.path(root, "model")
  dir.create(file.path(model, "code"))
  writeLines("{}", file.path(model, "code", "renv.lock"))
  withr::local_envvar(R_SAGEMAKER_BASE_IMAGE = "example.org/r@sha256:abc", R_SAGEMAKER_IMAGE = "")
  expect_message(write_versions(model), "Versions kept with the model")
  kept <- jsonlite::read_json(file.path(model, VERSIONS_FILE))
  expect_identical(kept$r, format(getRversion()))
  expect_identical(kept$base_image, "example.org/r@sha256:abc")
  expect_null(kept$image)
  expect_identical(kept$lockfile, "code/renv.lock")
  expect_identical(kept$packages$jsonlite, as.character(utils::packageVersion("jsonlite")))
  expect_null(kept$packages$stats) # base packages go with R's version
})

test_that("serving is silent for a model trained here and names each difference otherwise", {
  root <- local_opt_ml()
  model <- file.path(root, "model")
  suppressMessages(write_versions(model))
  expect_silent(warn_if_trained_elsewhere(model))

  kept <- jsonlite::read_json(file.path(model, VERSIONS_FILE))
  kept$r <- "3.6.0"
  kept$packages$jsonlite <- "0.0.1"
  kept$packages$notapackage <- "1.0"
  jsonlite::write_json(kept, file.path(model, VERSIONS_FILE), auto_unbox = TRUE)
  said <- conditionMessage(expect_message(found <- warn_if_trained_elsewhere(model), "WARNING"))
  expect_match(said, "R: trained 3.6.0, here ", fixed = TRUE)
  expect_match(said, "jsonlite: trained 0.0.1, here ", fixed = TRUE)
  expect_match(said, "notapackage: trained 1.0, here not installed", fixed = TRUE)
  expect_length(found, 3)
})

test_that("a model without a versions file is served without a warning", {
  root <- local_opt_ml()
  expect_silent(warn_if_trained_elsewhere(file.path(root, "model")))
})
