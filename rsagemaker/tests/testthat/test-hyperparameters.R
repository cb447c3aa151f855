test_that("script-mode values are JSON-decoded, other values arrive raw", {
  local_opt_ml(hyperparameters = list(epochs = "10", name = '"abc"', raw = "just text", flag = "true"))
  hps <- read_hyperparameters()
  expect_identical(hps$epochs, py_int("10"))
  expect_identical(hps$name, "abc")
  expect_identical(hps$raw, "just text")
  expect_true(hps$flag)
})

test_that("a value that is not a string is refused, naming it", {
  local_opt_ml(hyperparameters = list(epochs = 10, name = "ok"))
  expect_error(read_hyperparameters(), "not a string: epochs", class = "InvalidHyperparameters")
})

test_that("command-line arguments follow the toolkit's to_cmd_args", {
  hps <- py_dict(list(
    zeta = "upper", k = "short", list = parse_py_json('[1, "a"]'), obj = parse_py_json('{"b": 1, "a": null}'),
    nothing = py_none, flag = FALSE
  ))
  expect_identical(user_args(hps), c(
    "--flag", "False", "-k", "short", "--list", "[1, 'a']", "--nothing", "", "--obj", "a=None,b=1", "--zeta", "upper"
  ))
})
