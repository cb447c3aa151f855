test_that("the worker count: the CPUs, lowered to what fits in memory beside the master, at least 1", {
  gb <- function(x) list(bytes = x * 1024 * MB, source = "test")
  withr::local_envvar(SAGEMAKER_WORKER_MEMORY_MB = NA)
  # 8 GB, a 1 GB master, 64 MB reserve, 256 MB per worker: room for 27, so the CPUs decide
  expect_identical(worker_count(4, limit = gb(8), master_bytes = 1024 * MB)$count, 4L)
  # 2 GB: (2048 - 1024 - 64) / 256 = 3.75, so 3 of the 16 CPUs
  chosen <- worker_count(16, limit = gb(2), master_bytes = 1024 * MB)
  expect_identical(chosen$count, 3L)
  expect_match(chosen$reason, "3 worker(s): 16 CPU(s), memory limit 2048 MB (test), master with the model 1024 MB",
               fixed = TRUE)
  # no room at all: still one worker
  expect_identical(worker_count(4, limit = gb(1), master_bytes = 1024 * MB)$count, 1L)
  # SAGEMAKER_WORKER_MEMORY_MB changes the share of one worker
  withr::local_envvar(SAGEMAKER_WORKER_MEMORY_MB = "128")
  expect_identical(worker_count(16, limit = gb(2), master_bytes = 1024 * MB)$count, 7L)
  # SAGEMAKER_MODEL_SERVER_WORKERS wins, with a warning in the reason when it does not fit
  asked <- worker_count(16, requested = 9L, limit = gb(2), master_bytes = 1024 * MB)
  expect_identical(asked$count, 9L)
  expect_match(asked$reason, "more than fit in memory", fixed = TRUE)
})

test_that("load_model loads deploy.R and the model, once, and says how long it took", {
  dir <- withr::local_tempdir()
  dir.create(file.path(dir, "model", "code"), recursive = TRUE)
  writeLines(c("model_fn <- function(model_dir) basename(model_dir)", "predict_fn <- function(d, m) m"),
             file.path(dir, "model", "code", "deploy.R"))
  withr::local_envvar(SAGEMAKER_BASE_DIR = dir)
  loaded <- load_model()
  expect_identical(loaded$model, "model")
  expect_identical(loaded$deploy_script, file.path(dir, "model", "code", "deploy.R"))
  expect_true(is.numeric(loaded$seconds) && loaded$seconds >= 0)
})
