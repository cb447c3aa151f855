# A request of the multi-model API, as the worker's HTTP server hands it over (http.R: the path raw,
# the query with its "?").
mms_request <- function(method, path, body = "", query = "", content_type = "text/csv") {
  list(
    REQUEST_METHOD = method, PATH_INFO = path, QUERY_STRING = query, HTTP_CONTENT_TYPE = content_type,
    HTTP_ACCEPT = "text/csv", body = charToRaw(body)
  )
}

# A run directory of its own (the registry lives there) and an empty set of resident copies.
local_registry <- function(env = parent.frame()) {
  withr::local_envvar(SAGEMAKER_SERVE_DIR = withr::local_tempdir(.local_envir = env), .local_envir = env)
  rm(list = ls(resident_models), envir = resident_models)
  withr::defer(rm(list = ls(resident_models), envir = resident_models), envir = env)
  invisible(registry_dir())
}

# A model directory whose code/deploy.R is `source`.
local_model <- function(source, env = parent.frame()) {
  dir <- withr::local_tempdir(.local_envir = env)
  dir.create(file.path(dir, "code"))
  writeLines(source, file.path(dir, "code", "deploy.R"))
  dir
}

# serving_app's answer (its JSON errors included) to a request of the multi-model API.
answer <- function(...) serving_app(NULL, NULL, multi_model_request)$call(mms_request(...))
load_body <- function(name, url) as.character(jsonlite::toJSON(list(model_name = name, url = url), auto_unbox = TRUE))
body_of <- function(response) jsonlite::parse_json(response$body)

test_that("model names become safe file names and come back unchanged", {
  for (name in c("a", "model.tar.gz", "..", "dir/sub model", "caf\u00e9-\u00fc", "x%2Fy")) {
    encoded <- encode_model_name(name)
    expect_false(grepl("[/.]", encoded))
    expect_identical(decode_model_name(encoded), name)
  }
  expect_error(encode_model_name(strrep("a", 300)), class = "http_error")
})

test_that("a registry file is created once: the second creator is refused", {
  path <- file.path(withr::local_tempdir(), "sub", "entry.json")
  expect_true(create_exclusive(path, "first"))
  expect_false(create_exclusive(path, "second"))
  expect_identical(readLines(path), "first")
  expect_length(list.files(dirname(path)), 1) # no scratch file left
})

test_that("a load claim held by a live worker answers 409; one left by a dead worker is taken over", {
  local_registry()
  writeLines(as.character(Sys.getpid()), {
    dir.create(registry_dir())
    claim_path("m")
  })
  expect_error(claim_model("m"), "being loaded", class = "http_error")
  dead <- 2^22 + 12345 # above any PID this container hands out (pid_max is at most 2^22)
  writeLines(as.character(dead), claim_path("m"))
  expect_identical(claim_model("m"), claim_path("m"))
  expect_identical(readLines(claim_path("m")), as.character(Sys.getpid()))
})

test_that("the budget keeps a margin of 10%, at least 64 MB, unless one is set", {
  withr::local_envvar(SAGEMAKER_MULTI_MODEL_MEMORY_MARGIN_MB = NA)
  expect_identical(memory_budget_bytes(4096 * MB), 4096 * MB * 0.9)
  expect_identical(memory_budget_bytes(300 * MB), 236 * MB)
  withr::local_envvar(SAGEMAKER_MULTI_MODEL_MEMORY_MARGIN_MB = "10")
  expect_identical(memory_budget_bytes(300 * MB), 290 * MB)
})

test_that("query strings are decoded", {
  expect_identical(query_values("?max_results=2&next_page_token=a%2Eb&x"), list(
    max_results = "2", next_page_token = "a.b", x = ""
  ))
  expect_identical(query_values(""), stats::setNames(list(), character(0)))
})

test_that("two models with their own handlers load, answer, list, unload and reload", {
  local_registry()
  doubling <- local_model(c(
    "model_fn <- function(model_dir) 2", "predict_fn <- function(data, model) data[[1]] * model"
  ))
  naming <- local_model(c("model_fn <- function(model_dir) 'B'", "predict_fn <- function(data, model) model"))
  expect_identical(answer("GET", "/models")$body, "{\"models\":[]}")
  expect_identical(answer("POST", "/models", load_body("double", doubling))$status, 200L)
  expect_identical(answer("POST", "/models", load_body("name.tar.gz", naming))$status, 200L)
  again <- answer("POST", "/models", load_body("double", naming))
  expect_identical(again$status, 409L)
  expect_match(body_of(again)$error, "already loaded")

  expect_identical(answer("POST", "/models/double/invoke", "1\n4\n")$body, "2\n8\n")
  expect_identical(answer("POST", "/models/name%2Etar%2Egz/invoke", "1\n")$body, "B\n")
  expect_identical(answer("POST", "/models/name.tar.gz/invoke", "1\n")$body, "B\n")
  expect_identical(body_of(answer("GET", "/models/double")), list(modelName = "double", modelUrl = doubling))

  expect_identical(answer("DELETE", "/models/double")$status, 200L)
  expect_false(exists("double", envir = resident_models))
  for (route in list(c("GET", "/models/double"), c("DELETE", "/models/double"), c("POST", "/models/double/invoke"))) {
    response <- answer(route[[1]], route[[2]], "1\n")
    expect_identical(response$status, 404L)
    expect_match(body_of(response)$error, "model double is not loaded")
  }
  # loaded again, from another directory: the new handlers answer
  expect_identical(answer("POST", "/models", load_body("double", naming))$status, 200L)
  expect_identical(answer("POST", "/models/double/invoke", "1\n")$body, "B\n")
})

test_that("a model that fails to load answers a JSON error and leaves nothing registered", {
  local_registry()
  fine <- local_model(c("model_fn <- function(model_dir) 1", "predict_fn <- function(data, model) model"))
  broken <- local_model(c("model_fn <- function(model_dir) stop('corrupt model file')", "predict_fn <- identity"))
  expect_identical(answer("POST", "/models", load_body("fine", fine))$status, 200L)
  failed <- answer("POST", "/models", load_body("broken", broken))
  expect_identical(failed$status, 500L)
  expect_match(body_of(failed)$error, "model broken failed to load: corrupt model file")
  expect_identical(answer("GET", "/models/broken")$status, 404L)
  expect_identical(list.files(registry_dir()), "fine.json") # no claim or scratch file left
  expect_identical(answer("POST", "/models/fine/invoke", "1\n")$body, "1\n")
  # and it may be loaded once it is fixed
  writeLines(c("model_fn <- function(model_dir) 3", "predict_fn <- function(data, model) model"),
    file.path(broken, "code", "deploy.R")
  )
  expect_identical(answer("POST", "/models", load_body("broken", broken))$status, 200L)
})

test_that("bad load requests are refused with 400 or 404", {
  local_registry()
  expect_identical(answer("POST", "/models", "{\"model_name\": \"x\"}")$status, 400L)
  expect_identical(answer("POST", "/models", "not json")$status, 400L)
  expect_identical(answer("POST", "/models", load_body("x", "/nonexistent/model"))$status, 404L)
  expect_identical(answer("PUT", "/models")$status, 405L)
  expect_identical(answer("GET", "/models/x/invoke")$status, 405L)
  expect_identical(answer("POST", "/invocations", "1\n")$status, 404L)
  expect_identical(answer("GET", "/ping")$status, 200L)
})

test_that("GET /models pages through the models in name order", {
  local_registry()
  dir <- local_model(c("model_fn <- function(model_dir) 1", "predict_fn <- function(data, model) model"))
  for (name in c("c", "a", "e", "b", "d")) answer("POST", "/models", load_body(name, dir))
  seen <- character(0)
  token <- ""
  pages <- 0
  repeat {
    page <- body_of(answer("GET", "/models", query = paste0("?max_results=2&next_page_token=", token)))
    seen <- c(seen, vapply(page$models, `[[`, character(1), "modelName"))
    pages <- pages + 1
    if (is.null(page$nextPageToken)) break
    token <- page$nextPageToken
  }
  expect_identical(seen, c("a", "b", "c", "d", "e"))
  expect_identical(pages, 3)
  expect_identical(answer("GET", "/models", query = "?max_results=0")$status, 400L)
})

test_that("an unload through another worker frees this worker's copy at its next sweep", {
  local_registry()
  dir <- local_model(c("model_fn <- function(model_dir) 1", "predict_fn <- function(data, model) model"))
  answer("POST", "/models", load_body("m", dir))
  expect_true(exists("m", envir = resident_models))
  unlink(entry_path("m")) # what DELETE does, in another process
  sweep_residents()
  expect_false(exists("m", envir = resident_models))
})

test_that("a registered model is loaded by a worker that has no copy yet", {
  local_registry()
  dir <- local_model(c("model_fn <- function(model_dir) Sys.getpid()", "predict_fn <- function(data, model) model"))
  answer("POST", "/models", load_body("m", dir))
  rm(list = "m", envir = resident_models) # as another worker sees it: registered, not resident
  expect_identical(answer("POST", "/models/m/invoke", "1\n")$body, paste0(Sys.getpid(), "\n"))
  expect_true(exists("m", envir = resident_models))
})

test_that("short of memory, the least recently used copies go first; a model that cannot fit gets 507", {
  local_registry()
  dir <- local_model(c("model_fn <- function(model_dir) 1", "predict_fn <- function(data, model) model"))
  for (name in c("old", "newer", "newest")) {
    answer("POST", "/models", load_body(name, dir))
    Sys.sleep(0.01)
  }
  answer("POST", "/models/old/invoke", "1\n") # "old" is used again: "newer" is now the least recent
  expect_true(free_until(function() length(ls(resident_models)) > 1, keep = "newest"))
  expect_identical(ls(resident_models), "newest")
  # the freed models stay loaded: an invoke reads them again
  expect_identical(answer("POST", "/models/newer/invoke", "1\n")$status, 200L)
  # a model that cannot fit even with every copy freed is refused before it is read, copies kept
  withr::local_envvar(SAGEMAKER_MULTI_MODEL_MEMORY_MARGIN_MB = as.character(memory_limit()$bytes / MB))
  refused <- answer("POST", "/models", load_body("huge", dir))
  expect_identical(refused$status, 507L)
  expect_match(body_of(refused)$error, "not enough memory for model huge")
  expect_identical(answer("GET", "/models/huge")$status, 404L)
  expect_identical(sort(ls(resident_models)), c("newer", "newest"))
})

test_that("a worker sweeps between requests, at most once per SWEEP_SECONDS", {
  local_registry()
  dir <- local_model(c("model_fn <- function(model_dir) 1", "predict_fn <- function(data, model) model"))
  app <- serving_app(NULL, NULL, multi_model_routes())
  expect_identical(app$call(mms_request("POST", "/models", load_body("m", dir)))$status, 200L)
  unlink(entry_path("m")) # unloaded through another worker
  now <- as.numeric(Sys.time())
  withr::defer(sweep_clock$due <- 0)
  sweep_clock$due <- now + 60 # swept a moment ago: not yet
  expect_false(sweep_when_due(now))
  expect_true(exists("m", envir = resident_models))
  expect_true(sweep_when_due(now + 61))
  expect_false(exists("m", envir = resident_models))
  expect_identical(sweep_clock$due, now + 61 + SWEEP_SECONDS)
})
