# Tests of your model, in this R session and with no container: train_local() trains on data/ as a
# training job would (the model lands in build/local-r/model), invoke_local() answers requests with
# code/deploy.R exactly as the endpoint would. Run them with `make test-r`, or from R in the project
# folder: testthat::test_dir("tests/testthat"). Change them as your model changes.
library(rsagemaker)

project <- test_path("..", "..")
samples <- read.csv(file.path(project, "data", "train", "iris.csv"), stringsAsFactors = TRUE)
features <- samples[setdiff(names(samples), "Species")]
train_local(project, quiet = TRUE)

test_that("the model answers each sample row with one of the classes", {
  answer <- invoke_local(project, features)
  expect_length(answer$prediction, nrow(samples))
  expect_true(all(answer$prediction %in% levels(samples$Species)))
  expect_gt(mean(answer$prediction == samples$Species), 0.9)
})

test_that("JSON requests get JSON answers", {
  answer <- invoke_local(project, features[1:3, ], content_type = "application/json")
  expect_identical(answer$content_type, "application/json")
  expect_identical(answer$prediction, as.character(samples$Species[1:3]))
})

test_that("a row without a feature is refused with a 400 naming the columns", {
  refused <- expect_error(invoke_local(project, features[1:3, -1]), class = "rsagemaker_http_error")
  expect_identical(refused$status, 400L)
  expect_match(conditionMessage(refused), "expected 4 columns")
})
