test_that("an answered request is captured as SageMaker's data capture record", {
  dir <- withr::local_tempdir()
  withr::local_envvar(SAGEMAKER_CAPTURE_DIR = dir, SAGEMAKER_CAPTURE_ENDPOINT = "ep")
  req <- list(body = charToRaw("5.1,3.5,1.4,0.2\n"), HTTP_CONTENT_TYPE = "text/csv")
  ok <- list(status = 200L, headers = list("Content-Type" = "text/csv"), body = "setosa\n")
  expect_identical(capture_invocation(req, ok), ok)
  capture_invocation(list(body = as.raw(c(0, 255)), HTTP_CONTENT_TYPE = "application/x-npy"), ok)
  capture_invocation(req, list(status = 400L, headers = list(), body = "bad")) # errors are not kept
  files <- list.files(dir, recursive = TRUE)
  expect_length(files, 1)
  expect_match(files, "^ep/AllTraffic/[0-9]{4}/[0-9]{2}/[0-9]{2}/[0-9]{2}/.+[.]jsonl$")
  lines <- readLines(file.path(dir, files))
  expect_length(lines, 2)
  first <- jsonlite::fromJSON(lines[[1]])
  expect_identical(first$captureData$endpointInput,
    list(observedContentType = "text/csv", mode = "INPUT", data = "5.1,3.5,1.4,0.2\n", encoding = "CSV"))
  expect_identical(first$captureData$endpointOutput$mode, "OUTPUT")
  expect_match(first$eventMetadata$eventId, "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
  expect_match(first$eventMetadata$inferenceTime, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")
  expect_identical(first$eventVersion, "0")
  second <- jsonlite::fromJSON(lines[[2]])$captureData$endpointInput
  expect_identical(c(second$encoding, second$data), c("BASE64", "AP8="))
})

test_that("no capture without SAGEMAKER_CAPTURE_DIR, and a 0 % sample keeps nothing", {
  dir <- withr::local_tempdir()
  withr::local_envvar(SAGEMAKER_CAPTURE_DIR = NA)
  ok <- list(status = 200L, headers = list("Content-Type" = "text/csv"), body = "a\n")
  capture_invocation(list(body = charToRaw("1\n"), HTTP_CONTENT_TYPE = "text/csv"), ok)
  withr::local_envvar(SAGEMAKER_CAPTURE_DIR = dir, SAGEMAKER_CAPTURE_SAMPLING = "0")
  capture_invocation(list(body = charToRaw("1\n"), HTTP_CONTENT_TYPE = "text/csv"), ok)
  expect_length(list.files(dir, recursive = TRUE), 0)
})
