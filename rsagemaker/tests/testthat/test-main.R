test_that("options: the value after each occurrence, the last one for a single value", {
  args <- c("serve", "--socket", "/tmp/a.sock", "--ready", "r1", "--ready", "r2", "--port")
  expect_identical(option_values(args, "--ready"), c("r1", "r2"))
  expect_identical(option_value(args, "--socket"), "/tmp/a.sock")
  expect_null(option_value(args, "--port")) # no value follows it
  expect_null(option_values(args, "--missing"))
})

test_that("only the entry points, http_error, save_input_prototype and the R session's are exported", {
  exports <- getNamespaceExports("rsagemaker")
  expect_setequal(exports[!startsWith(exports, "project_")], c(
    "http_error", "main", "save_input_prototype", "serve", "train", "invoke_local", "train_local"
  ))
})
