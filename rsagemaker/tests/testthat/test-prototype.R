deploy_file <- function(source) {
  dir <- withr::local_tempdir(.local_envir = parent.frame())
  writeLines(source, file.path(dir, "deploy.R"))
  file.path(dir, "deploy.R")
}

iris_prototype <- function() {
  dir <- withr::local_tempdir(.local_envir = parent.frame())
  suppressMessages(save_input_prototype(iris[c("Sepal.Length", "Sepal.Width", "Species")], dir))
  dir
}

test_that("training saves names, types and factor levels; serving reads them back", {
  dir <- iris_prototype()
  saved <- jsonlite::read_json(file.path(dir, "input-prototype.json"))
  expect_identical(saved$columns[[1]], list(name = "Sepal.Length", type = "number"))
  expect_identical(saved$columns[[3]]$levels, list("setosa", "versicolor", "virginica"))
  expect_identical(
    read_input_prototype(dir),
    list(names = c("Sepal.Length", "Sepal.Width", "Species"), types = c("number", "number", "string"))
  )
  expect_null(read_input_prototype(withr::local_tempdir()))
  expect_error(save_input_prototype(1:3, dir), "data frame")
})

test_that("a malformed prototype stops the model from loading, naming the file", {
  dir <- withr::local_tempdir()
  writeLines('{"columns": [{"name": "x", "type": "complex"}]}', file.path(dir, "input-prototype.json"))
  expect_error(read_input_prototype(dir), "input-prototype.json must hold")
  writeLines("{", file.path(dir, "input-prototype.json"))
  expect_error(read_input_prototype(dir), "not valid JSON")
})

test_that("the default input_fn checks requests: missing and mistyped columns name the column", {
  input_fn <- prototype_input_fn(read_input_prototype(iris_prototype()))
  # Header-less CSV: by count and type, then named as in training.
  data <- input_fn("5.1,3.5,setosa\n", "text/csv")
  expect_identical(names(data), c("Sepal.Length", "Sepal.Width", "Species"))
  expect_error(input_fn("5.1,3.5\n", "text/csv"), "expected 3 columns \\(Sepal.Length, Sepal.Width, Species\\), got 2")
  expect_error(
    input_fn("5.1,abc,setosa\n", "text/csv"),
    "column 'Sepal.Width' should be number, got text \\(e.g. 'abc'\\)"
  )
  # Named JSON records: every prototype column must be there; extra ones are left alone.
  ok <- input_fn('[{"Sepal.Length": 5, "Sepal.Width": 3, "Species": "setosa", "note": "x"}]', "application/json")
  expect_identical(ok$note, "x")
  expect_error(
    input_fn('[{"Sepal.Length": 5, "Species": "setosa"}]', "application/json"),
    "missing column 'Sepal.Width'",
    class = "http_error"
  )
  expect_error(
    input_fn('{"Sepal.Length": "5", "Sepal.Width": 3, "Species": "a"}', "application/jsonlines"),
    "column 'Sepal.Length' should be number"
  )
  # JSON null is a missing value, which fits every type.
  expect_identical(nrow(input_fn('[{"Sepal.Length": null, "Sepal.Width": 3, "Species": "a"}]', "application/json")), 1L)
})

test_that("integer columns take whole numbers only", {
  dir <- withr::local_tempdir()
  suppressMessages(save_input_prototype(data.frame(count = 1:3), dir))
  input_fn <- prototype_input_fn(read_input_prototype(dir))
  expect_identical(input_fn("2\n", "text/csv")$count, 2L)
  expect_error(input_fn("2.5\n", "text/csv"), "column 'count' should be integer, got number")
  # JSON arrays carry no names either: checked by position, then named.
  expect_identical(input_fn("[[4], [5]]", "application/json")$count, c(4L, 5L))
  expect_error(input_fn("[[4, 5]]", "application/json"), "expected 1 column \\(count\\), got 2")
})

test_that("a deploy.R can turn the check off, and its own input_fn is never wrapped", {
  withr::local_envvar(SAGEMAKER_BASE_DIR = withr::local_tempdir())
  model_dir <- sm_path("model")
  dir.create(model_dir)
  suppressMessages(save_input_prototype(data.frame(x = 1), model_dir))
  script <- deploy_file("predict_fn <- function(data, model) data")
  checked <- load_handlers(script)
  expect_error(checked$input_fn("a,b\n", "text/csv"), "expected 1 column \\(x\\), got 2")
  off <- load_handlers(deploy_file(c("check_input_prototype <- FALSE", "predict_fn <- function(data, model) data")))
  expect_identical(off$input_fn, default_input_fn)
  own <- load_handlers(deploy_file(c(
    "input_fn <- function(body, content_type) body",
    "predict_fn <- function(d, m) d"
  )))
  expect_identical(own$input_fn("a,b\n", "text/csv"), "a,b\n")
})
