# invoke_local() and train_local(): the handlers and the training job in the R session.

# A model folder as training leaves it: model.rds, input-prototype.json, code/deploy.R.
local_model_dir <- function(deploy, model = 2, prototype = NULL, env = parent.frame()) {
  dir <- withr::local_tempdir(.local_envir = env)
  dir.create(file.path(dir, "code"))
  writeLines(deploy, file.path(dir, "code", "deploy.R"))
  saveRDS(model, file.path(dir, "model.rds"))
  if (!is.null(prototype)) suppressMessages(save_input_prototype(prototype, dir))
  dir
}

doubling <- "predict_fn <- function(data, model) data[[1]] * model"

test_that("a model folder answers as the worker's own dispatch answers the same request", {
  model_dir <- local_model_dir(doubling, prototype = data.frame(x = 1.5))
  answer <- invoke_local(model_dir, data.frame(x = c(1, 2.5)))
  expect_s3_class(answer, "rsagemaker_response")
  expect_identical(answer$prediction, c(2L, 5L)) # read as the server reads CSV (type.convert's types)
  expect_identical(answer$body, "2\n5\n")
  expect_identical(c(answer$status, answer$content_type), c("200", "text/csv"))
  expect_identical(answer$model_dir, normalizePath(model_dir, winslash = "/"))
  loaded <- load_model(model_dir)
  request <- list(
    REQUEST_METHOD = "POST", PATH_INFO = "/invocations", HTTP_CONTENT_TYPE = "text/csv", body = charToRaw("1\n2.5\n")
  )
  expect_identical(serving_app(loaded$handlers, loaded$model)$call(request)$body, answer$body)
  expect_output(print(answer), "200 text/csv: 2 predictions")
})

test_that("data frames go as CSV rows, JSON records or JSON lines, doubles exact; answers come back as R data", {
  model_dir <- local_model_dir("predict_fn <- function(data, model) data")
  rows <- data.frame(a = c(0.1 + 0.2, 1e-300, NA), b = factor(c("x", "y,z", "x")), c = c(TRUE, FALSE, NA))
  expected <- transform(rows, b = as.character(b))
  for (type in c("text/csv", "application/json", "application/jsonlines")) {
    # (the server refuses a JSON lines record with a null: no NA there)
    sent <- if (type == "application/jsonlines") rows[1:2, ] else rows
    answer <- invoke_local(model_dir, sent, content_type = type, accept = "text/csv")
    names(answer$prediction) <- names(rows) # CSV columns come back unnamed (V1..V3)
    expect_identical(answer$prediction, expected[seq_len(nrow(sent)), ], label = type)
  }
  lines <- invoke_local(model_dir, data.frame(a = 1:2), accept = "application/jsonlines")
  expect_identical(lines$body, "{\"V1\":1}\n{\"V1\":2}\n")
  expect_identical(lines$prediction, 1:2) # one column: a vector
  expect_identical(invoke_local(model_dir, matrix(1:4, 2))$prediction, data.frame(V1 = 1:2, V2 = 3:4))
})

test_that("text and raw bodies are sent as they are; no Accept means the default one", {
  model_dir <- local_model_dir(c(
    doubling, "output_fn <- function(prediction, accept) charToRaw(paste(prediction, collapse = ' '))"
  ))
  expect_identical(invoke_local(model_dir, c("1", "2"))$body, charToRaw("2 4"))
  answer <- invoke_local(model_dir, charToRaw("3\n"), accept = "application/octet-stream")
  expect_identical(answer$prediction, charToRaw("6")) # not a text type: the bytes
  default_dir <- local_model_dir(doubling)
  withr::local_envvar(SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT = NA)
  expect_identical(invoke_local(default_dir, "4")$content_type, "text/csv")
  env <- c(SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT = "application/json")
  expect_identical(invoke_local(default_dir, "4", env = env)$body, "{\"predictions\":[8]}")
  expect_identical(Sys.getenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", NA), NA_character_) # restored
})

test_that("errors carry the status the endpoint would answer, and its JSON body", {
  model_dir <- local_model_dir(c(
    "predict_fn <- function(data, model) {",
    "  if (data[[1]][[1]] < 0) http_error(422, 'negative')",
    "  if (data[[1]][[1]] == 0) stop('model broke')",
    "  data[[1]]",
    "}"
  ), prototype = data.frame(x = 1))
  status <- function(...) tryCatch(invoke_local(model_dir, ...), rsagemaker_http_error = function(e) e$status)
  expect_identical(status("-1"), 422L)
  expect_identical(status(data.frame(x = 1, y = 2)), 400L) # the input prototype: one column
  expect_identical(status("a", content_type = "text/plain"), 415L)
  expect_identical(status("1", accept = "text/html"), 415L)
  error <- expect_error(suppressMessages(invoke_local(model_dir, "0")), class = "rsagemaker_http_error")
  expect_identical(error$status, 500L)
  expect_identical(conditionMessage(error), "HTTP 500: error in the model code: model broke")
  expect_identical(jsonlite::fromJSON(error$body), list(error = "error in the model code: model broke"))
  broken <- local_model_dir(c(doubling, "model_fn <- function(model_dir) stop('no weights')"))
  expect_error(invoke_local(broken, "1"), "failed to load .*no weights", class = "rsagemaker_load_error")
})

test_that("custom attributes reach the handlers' context and come back as a header", {
  model_dir <- local_model_dir(c(
    "predict_fn <- function(data, model, context) {",
    "  context$response_custom_attributes <- toupper(context$custom_attributes)",
    "  data[[1]]",
    "}"
  ))
  answer <- invoke_local(model_dir, "1", custom_attributes = "trace=abc")
  expect_identical(answer$headers[["X-Amzn-SageMaker-Custom-Attributes"]], "TRACE=ABC")
})

test_that("a project folder serves its own code/deploy.R with its last trained model", {
  project <- withr::local_tempdir()
  dir.create(file.path(project, "code"))
  writeLines(doubling, file.path(project, "code", "deploy.R"))
  expect_error(invoke_local(project, "1"), "^no model in .*train_local", class = "rsagemaker_usage_error")
  trained <- file.path(project, "build", "training", "opt_ml", "model")
  dir.create(file.path(trained, "code"), recursive = TRUE)
  saveRDS(3, file.path(trained, "model.rds"))
  writeLines("predict_fn <- function(data, model) 'the old deploy.R'", file.path(trained, "code", "deploy.R"))
  answer <- invoke_local(project, "1")
  expect_identical(answer$prediction, 3L) # the project's deploy.R, make local-train's model
  expect_identical(answer$deploy_script, normalizePath(file.path(project, "code", "deploy.R"), winslash = "/"))
  dir.create(file.path(project, "build", "local-r", "model"), recursive = TRUE)
  saveRDS(5, file.path(project, "build", "local-r", "model", "model.rds"))
  expect_identical(invoke_local(project, "1")$prediction, 5L) # train_local's model comes first
  other <- local_model_dir(doubling, model = 7)
  expect_identical(invoke_local(project, "1", model = other)$prediction, 7L)
})

test_that("wrong arguments get one line naming them", {
  model_dir <- local_model_dir(doubling)
  one_line <- function(expr, pattern) {
    error <- expect_error(expr, pattern, class = "rsagemaker_usage_error")
    expect_false(grepl("\n", conditionMessage(error)))
  }
  one_line(invoke_local(file.path(model_dir, "nowhere"), "1"), "no such folder: .*nowhere")
  one_line(invoke_local(file.path(model_dir, "code"), "1"), "no code/deploy.R in")
  one_line(invoke_local(model_dir, "1", content_type = "csv"), "content_type \"csv\" is not a media type")
  one_line(invoke_local(model_dir, "1", content_type = c("text/csv", "text/plain")), "is not a media type")
  one_line(invoke_local(model_dir, data.frame(x = 1), content_type = "text/plain"), "data frame body .* not text/plain")
  one_line(invoke_local(model_dir, list(1)), "body must be a data frame")
  one_line(invoke_local(model_dir, "1", model = "nowhere"), "no such model folder: \"nowhere\"")
  one_line(invoke_local(model_dir, "1", env = c("true")), "env must be a named character vector")
  one_line(train_local(file.path(model_dir, "nowhere")), "no such project folder")
  one_line(train_local(model_dir), "no code/train.R in")
})

# ---- train_local ---------------------------------------------------------------------------------

# A project: code/train.R (a mean of the train channel, scaled by the `scale` hyperparameter), its
# deploy.R, config/hyperparameters.json and data/train.
local_project <- function(train = NULL, env = parent.frame()) {
  project <- withr::local_tempdir(.local_envir = env)
  files <- list(
    "code/train.R" = train %||% c(
      "hps <- jsonlite::fromJSON(Sys.getenv('SM_HPS'))",
      "data <- read.csv(file.path(Sys.getenv('SM_CHANNEL_TRAIN'), 'numbers.csv'))",
      "saveRDS(mean(data$x) * hps$scale, file.path(Sys.getenv('SM_MODEL_DIR'), 'model.rds'))",
      "writeLines(Sys.getenv('SM_HP_LABEL'), file.path(Sys.getenv('SM_MODEL_DIR'), 'label.txt'))",
      "cat(commandArgs(trailingOnly = TRUE), file = file.path(Sys.getenv('SM_OUTPUT_DATA_DIR'), 'args.txt'))"
    ),
    "code/deploy.R" = "predict_fn <- function(data, model) rep(model, nrow(data))",
    "code/.Renviron" = "SECRET=1",
    "config/hyperparameters.json" = '{"scale": 2, "label": "first", "dropped": [1, 2]}',
    "data/train/numbers.csv" = c("x", "1", "3")
  )
  for (name in names(files)) {
    dir.create(dirname(file.path(project, name)), recursive = TRUE, showWarnings = FALSE)
    writeLines(files[[name]], file.path(project, name))
  }
  project
}

test_that("train_local runs train.R as a training job and returns a model folder invoke_local serves", {
  project <- local_project()
  said <- capture_messages(
    model_dir <- train_local(project, hyperparameters = list(label = "second", dropped = NULL), quiet = TRUE)
  )
  expect_match(said, "Training complete. Model: .*build/local-r/model .*Next: invoke_local", all = FALSE)
  root <- file.path(project, "build", "local-r")
  expect_identical(model_dir, normalizePath(file.path(root, "model"), winslash = "/"))
  expect_identical(readLines(file.path(model_dir, "label.txt")), "second")
  # hyperparameters.json as the SDK sends it: every value JSON-encoded, the SDK's keys added
  sent <- jsonlite::read_json(file.path(root, "input", "config", "hyperparameters.json"))
  expect_identical(
    sent[c("scale", "label", "sagemaker_program")],
    list(scale = "2", label = "\"second\"", sagemaker_program = "\"train.R\"")
  )
  expect_false("dropped" %in% names(sent))
  expect_identical(readLines(file.path(root, "output", "data", "args.txt"), warn = FALSE), "--label second --scale 2")
  # the code as the image packs it (no dotfiles), deploy.R kept with the model, versions recorded
  expect_false(file.exists(file.path(root, "code", ".Renviron")))
  expect_true(file.exists(file.path(model_dir, "code", "deploy.R")))
  expect_true(file.exists(file.path(model_dir, "rsagemaker-versions.json")))
  expect_identical(invoke_local(model_dir, "1\n2")$prediction, c(4L, 4L))
  expect_identical(invoke_local(project, "1")$prediction, 4L)

  # Again, into a fresh tree: the channel was a link (the data survives), checkpoints stay.
  writeLines("kept", file.path(root, "checkpoints", "c.txt"))
  writeLines("stale", file.path(model_dir, "stale.txt"))
  suppressMessages(train_local(project, quiet = TRUE))
  expect_identical(readLines(file.path(project, "data", "train", "numbers.csv")), c("x", "1", "3"))
  expect_true(file.exists(file.path(root, "checkpoints", "c.txt")))
  expect_false(file.exists(file.path(model_dir, "stale.txt")))
  expect_identical(readLines(file.path(model_dir, "label.txt")), "first")
})

test_that("a failed job is an error with the failure file's text", {
  project <- local_project(train = "stop('the data is too small')")
  error <- expect_error(suppressMessages(train_local(project, quiet = TRUE)), class = "rsagemaker_training_error")
  expect_match(
    conditionMessage(error), "^training failed \\(exit status 1\\): ExecuteUserScriptError: .*the data is too small"
  )
  expect_identical(error$failure, readLines(file.path(project, "build", "local-r", "output", "failure")))
  expect_match(paste(readLines(file.path(project, "build", "local-r", "training.log")), collapse = "\n"), "too small")
})

test_that("channels: subfolders of data/ or folders by name; wrong ones are named", {
  project <- local_project()
  expect_identical(channel_folders(project, NULL), c(train = file.path(project, "data", "train")))
  elsewhere <- withr::local_tempdir()
  expect_identical(channel_folders(project, c("train", holdout = elsewhere)), c(
    train = file.path(project, "data", "train"), holdout = elsewhere
  ))
  usage <- "rsagemaker_usage_error"
  expect_error(channel_folders(project, "validation"), "no folder .*validation for channel 'validation'", class = usage)
  expect_error(channel_folders(project, c(code = elsewhere)), "`code` carries the code", class = usage)
  unlink(file.path(project, "data", "train"), recursive = TRUE)
  expect_error(channel_folders(project, NULL), "has no subfolder", class = "rsagemaker_usage_error")
  expect_error(
    project_hyperparameters(project, list(sagemaker_region = "x")), "set by train_local",
    class = "rsagemaker_usage_error"
  )
  expect_error(project_hyperparameters(project, list(1)), "named list", class = "rsagemaker_usage_error")
  unlink(file.path(project, "config"), recursive = TRUE) # no hyperparameters.json: none but the given ones
  expect_identical(project_hyperparameters(project, NULL), list())
  expect_identical(project_hyperparameters(project, list(depth = 2L, name = "a")), list(depth = "2", name = "\"a\""))
})
