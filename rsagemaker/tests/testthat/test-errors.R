test_that("a failure's reason starts with its kind", {
  condition <- tryCatch(fail("MissingChannel", "channel '", "train", "' is missing"), error = identity)
  expect_s3_class(condition, "sagemaker_error")
  expect_identical(failure_reason(condition), "MissingChannel: channel 'train' is missing")
  expect_identical(failure_reason(simpleError("boom")), "AlgorithmError: boom")
})

test_that("the failure file is written in UTF-8, its folder created", {
  path <- file.path(withr::local_tempdir(), "output", "failure")
  expect_message(write_failure(path, "AlgorithmError: caf\u00e9"), "Failure reason written")
  expect_identical(readLines(path, encoding = "UTF-8"), "AlgorithmError: caf\u00e9")
})
