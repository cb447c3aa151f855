test_that("SAGEMAKER_BASE_DIR moves /opt/ml, trailing slashes ignored", {
  withr::local_envvar(SAGEMAKER_BASE_DIR = "/tmp/x//")
  expect_identical(sm_path("model"), "/tmp/x/model")
  withr::local_envvar(SAGEMAKER_BASE_DIR = NA)
  expect_identical(sm_path("model"), "/opt/ml/model")
})

test_that("the checkpoint folder follows SAGEMAKER_CHECKPOINT_DIR, else /opt/ml/checkpoints", {
  root <- local_opt_ml()
  withr::local_envvar(SAGEMAKER_CHECKPOINT_DIR = NA)
  expect_identical(training_environment()$checkpoint_dir, file.path(root, "checkpoints"))
  withr::local_envvar(SAGEMAKER_CHECKPOINT_DIR = "/data/checkpoints")
  env <- training_environment()
  expect_identical(env$checkpoint_dir, "/data/checkpoints")
  expect_identical(toolkit_env_vars(env)[["SM_CHECKPOINT_DIR"]], "/data/checkpoints")
})

test_that("one host by default; rank and SM_* of a three-host job", {
  local_opt_ml()
  env <- training_environment()
  expect_identical(c(env$current_host, env$host_rank), c("algo-1", "0"))
  local_opt_ml(
    channels = list(train = list(TrainingInputMode = "File")),
    resources = list(current_host = "algo-2", hosts = list("algo-1", "algo-2", "algo-3"))
  )
  vars <- toolkit_env_vars(training_environment())
  expect_identical(vars[["SM_HOSTS"]], '["algo-1","algo-2","algo-3"]')
  expect_identical(vars[["SM_HOST_RANK"]], "1")
  expect_identical(vars[["SM_CHANNELS"]], '["train"]')
  expect_identical(vars[["SM_CHANNEL_TRAIN"]], sm_path("input", "data", "train"))
})

test_that("a current_host outside hosts and malformed config files are refused", {
  local_opt_ml(resources = list(current_host = "algo-9", hosts = list("algo-1")))
  expect_error(training_environment(), "not one of hosts", class = "InvalidConfig")
  root <- local_opt_ml()
  writeLines("{not json", file.path(root, "input", "config", "inputdataconfig.json"))
  expect_error(training_environment(), "is not valid JSON", class = "InvalidConfig")
})

test_that("environment values: strings as they are, None as empty, the rest compact JSON", {
  expect_identical(env_value("a b"), "a b")
  expect_identical(env_value(py_none), "")
  expect_identical(env_value(TRUE), "true")
  expect_identical(env_value(py_list(list(py_int("1"), "x"))), '[1,"x"]')
})
