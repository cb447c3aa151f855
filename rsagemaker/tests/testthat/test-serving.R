# A request as the worker's HTTP server (http.R) hands it over: method, path, headers (as HTTP_*
# names) and the body's bytes.
fake_request <- function(method = "POST", path = "/invocations", body = "", ...) {
  c(list(REQUEST_METHOD = method, PATH_INFO = path, QUERY_STRING = "", body = charToRaw(body)), list(...))
}

write_deploy <- function(source) {
  dir <- withr::local_tempdir(.local_envir = parent.frame())
  writeLines(source, file.path(dir, "deploy.R"))
  file.path(dir, "deploy.R")
}

test_that("deploy.R sees the exported names, not the package's internals, and cannot replace them", {
  script <- write_deploy(c(
    "seen <- c(http_error = exists('http_error'), default_model_fn = exists('default_model_fn'))",
    "default_input_fn <- function(body, content_type) stop('replaced')",
    "model_fn <- function(model_dir) seen",
    "predict_fn <- function(data, model) data"
  ))
  handlers <- load_handlers(script)
  expect_identical(handlers$model_fn("unused"), c(http_error = TRUE, default_model_fn = FALSE))
  # deploy.R's own default_input_fn is just a name of its own: the default one is untouched
  expect_identical(handlers$input_fn, default_input_fn)
  expect_identical(nrow(default_input_fn("1,2\n3,4\n", "text/csv")), 2L)
  expect_false(exists("model_fn", envir = globalenv()))
})

test_that("a deploy.R without predict_fn or transform_fn is refused", {
  expect_error(load_handlers(write_deploy("model_fn <- function(d) 1")), "neither predict_fn nor transform_fn")
})

test_that("Accept and Content-Type choose the response type", {
  withr::local_envvar(SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT = NA)
  expect_identical(choose_accept(NULL, "text/csv"), "text/csv")
  expect_identical(choose_accept("*/*", "application/json"), "application/json")
  expect_identical(choose_accept("text/html, application/x-jsonlines", "text/csv"), "application/jsonlines")
  expect_error(choose_accept("text/html", "text/csv"), class = "http_error")
  withr::local_envvar(SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT = "text/csv")
  expect_identical(choose_accept(NULL, "application/json"), "text/csv")
})

test_that("bodies: CSV, JSON records or instances, JSON lines", {
  expect_identical(dim(default_input_fn("5.1,3.5\n6.7,3.0\n", "text/csv")), c(2L, 2L))
  expect_identical(default_input_fn('{"instances": [{"a": 1}, {"a": 2}]}', "application/json")$a, c(1L, 2L))
  expect_identical(nrow(default_input_fn('{"a": 1}\n{"a": 2}\n', "application/jsonlines")), 2L)
  # JSON null is a missing value, in one object as in a list of objects
  expect_identical(default_input_fn('{"a": 1, "b": null}', "application/json"), data.frame(a = 1L, b = NA))
  expect_identical(
    default_input_fn('{"a": 1, "b": null}\n{"a": 2, "b": 3.5}\n', "application/jsonlines"),
    default_input_fn('[{"a": 1, "b": null}, {"a": 2, "b": 3.5}]', "application/json")
  )
  expect_error(default_input_fn("{", "application/json"), class = "http_error")
  expect_error(default_input_fn("x", "text/html"), "not supported", class = "http_error")
})

test_that("outputs: CSV quoted only where needed, JSON predictions, JSON lines", {
  expect_identical(default_output_fn(c("a", "b,c"), "text/csv"), "a\n\"b,c\"\n")
  expect_identical(default_output_fn(c(1.5, 2), "application/json"), '{"predictions":[1.5,2]}')
  expect_identical(default_output_fn(data.frame(x = 1:2), "application/jsonlines"), '{"x":1}\n{"x":2}\n')
})

test_that("the app answers /ping, invocations and errors as JSON with their status", {
  handlers <- load_handlers(write_deploy(c(
    "model_fn <- function(model_dir) 2",
    "predict_fn <- function(data, model) { if (data[[1]][[1]] < 0) http_error(422, 'negative'); data[[1]] * model }"
  )))
  app <- serving_app(handlers, 2)
  expect_identical(app$call(fake_request("GET", "/ping"))$status, 200L)
  ok <- app$call(fake_request(body = "1\n3\n", HTTP_CONTENT_TYPE = "text/csv", HTTP_ACCEPT = "text/csv"))
  expect_identical(c(ok$status, ok$body), c("200", "2\n6\n"))
  refused <- app$call(fake_request(body = "-1\n", HTTP_CONTENT_TYPE = "text/csv"))
  expect_identical(refused$status, 422L)
  expect_identical(jsonlite::fromJSON(refused$body), list(error = "negative"))
  expect_identical(app$call(fake_request("GET", "/invocations"))$status, 405L)
  expect_identical(app$call(fake_request("GET", "/nowhere"))$status, 404L)
})

test_that("a request past SAGEMAKER_MODEL_SERVER_TIMEOUT is a 504; the handler's own errors keep theirs", {
  withr::local_envvar(SAGEMAKER_MODEL_SERVER_TIMEOUT = "1")
  handlers <- load_handlers(write_deploy(c(
    "predict_fn <- function(data, model) {",
    "  if (data[[1]][[1]] == 1) repeat NULL # R code that never returns: R's time limit stops it",
    "  if (data[[1]][[1]] == 2) stop('model broke')",
    "  caught <- tryCatch(stop('inner'), error = function(e) 'handled') # the handler's own tryCatch",
    "  rep(caught, nrow(data))",
    "}"
  )))
  app <- serving_app(handlers, NULL)
  started <- Sys.time()
  late <- app$call(fake_request(body = "1\n", HTTP_CONTENT_TYPE = "text/csv", HTTP_ACCEPT = "text/csv"))
  expect_identical(late$status, 504L)
  expect_match(jsonlite::fromJSON(late$body)$error, "timed out after 1 s")
  expect_lt(as.numeric(difftime(Sys.time(), started, units = "secs")), 5)
  broken <- app$call(fake_request(body = "2\n", HTTP_CONTENT_TYPE = "text/csv"))
  expect_identical(broken$status, 500L)
  expect_match(jsonlite::fromJSON(broken$body)$error, "model broke")
  fine <- app$call(fake_request(body = "3\n", HTTP_CONTENT_TYPE = "text/csv", HTTP_ACCEPT = "text/csv"))
  expect_identical(c(fine$status, fine$body), c("200", "handled\n"))
  # the time limit ended with the request: R code after it runs past the second unharmed
  expect_error(Sys.sleep(1.2), NA)
})

test_that("payload limit: 6 MB, or SAGEMAKER_MAX_PAYLOAD_IN_MB in batch transform", {
  withr::local_envvar(SAGEMAKER_BATCH = NA)
  expect_identical(max_payload_bytes(), 6 * 1024 * 1024)
  withr::local_envvar(SAGEMAKER_BATCH = "true", SAGEMAKER_MAX_PAYLOAD_IN_MB = "20")
  expect_identical(max_payload_bytes(), 20 * 1024 * 1024)
  expect_identical(execution_parameters()$MaxPayloadInMB, 20L)
})

test_that("payload limit: 0 in batch transform is no limit (and reported as 0); async takes 1 GB", {
  withr::local_envvar(SAGEMAKER_BATCH = "true", SAGEMAKER_MAX_PAYLOAD_IN_MB = "0", SAGEMAKER_ASYNC_INFERENCE = NA)
  expect_identical(max_payload_bytes(), Inf)
  expect_identical(execution_parameters()$MaxPayloadInMB, 0L)
  withr::local_envvar(SAGEMAKER_BATCH = NA, SAGEMAKER_ASYNC_INFERENCE = "true")
  expect_identical(max_payload_bytes(), 1024 * 1024 * 1024)
})

test_that("a binary body reaches input_fn as raw bytes; text bodies keep their UTF-8 checks", {
  bytes <- as.raw(c(0x89, 0x50, 0x00, 0xff, 0xfe, 0x00, 0x0a))
  binary_request <- function(type, body = bytes, ...) {
    c(
      list(REQUEST_METHOD = "POST", PATH_INFO = "/invocations", body = body),
      list(HTTP_CONTENT_TYPE = type, ...)
    )
  }
  handlers <- load_handlers(write_deploy(c(
    "model_fn <- function(model_dir) NULL",
    "input_fn <- function(body, content_type) body",
    "predict_fn <- function(data, model) data",
    "output_fn <- function(prediction, accept) if (is.raw(prediction)) rev(prediction) else 'text'"
  )))
  app <- serving_app(handlers, NULL)
  answer <- app$call(binary_request("application/octet-stream", HTTP_ACCEPT = "application/octet-stream"))
  expect_identical(answer$status, 200L)
  expect_identical(answer$body, rev(bytes))
  expect_identical(app$call(binary_request("image/png; q=1"))$body, rev(bytes))
  # Text types: NUL bytes and invalid UTF-8 are still refused before the handlers.
  for (type in c("text/csv", "text/plain", "application/json", "application/x-jsonlines")) {
    refused <- app$call(binary_request(type))
    expect_identical(refused$status, 400L)
  }
  expect_identical(app$call(binary_request("text/plain", charToRaw("caf\xc3\xa9")))$body, "text")
  expect_true(all(vapply(c("text/html", "application/vnd.api+json", "application/jsonl"), is_text_type, NA)))
  expect_false(any(vapply(c("application/x-protobuf", "application/gzip", "image/jpeg"), is_text_type, NA)))
  # The default input_fn still answers 415 for a binary type.
  defaults <- serving_app(load_handlers(write_deploy("predict_fn <- function(data, model) 1")), NULL)
  expect_identical(defaults$call(binary_request("application/x-protobuf"))$status, 415L)
})

test_that("CSV doubles read exactly (the nearest double) where R's own reader misses", {
  # R's as.numeric and fread read these one unit in the last place off; the nearest doubles are
  # given here by their bits (from Python's float(), which rounds correctly).
  bits <- function(x) paste(rev(as.character(writeBin(x, raw(), endian = "little"))), collapse = "")
  expect_identical(bits(exact_doubles("0.00000491")), "3ed4981285e98e79")
  expect_identical(bits(exact_doubles("-6.793921531704187")), "c01b2cf9c41909f1")
  expect_identical(bits(exact_doubles("1.953134219866258e-220")), "1251a67193edd993")
  frame <- parse_csv("0.00000491,-6.793921531704187\n+.5,1e-3\n7.,NA\n")
  # (R's parser reads the literal 0.00000491 in this file one unit off, too: hence the bits)
  expect_identical(vapply(frame$V1, bits, ""), c("3ed4981285e98e79", bits(0.5), bits(7)))
  expect_identical(frame$V2[2:3], c(0.001, NA))
})

test_that("CSV doubles are written with the shortest digits that read back the same", {
  expect_identical(shortest_doubles(c(0.1 + 0.2, 0.5, 1 / 3, NA, NaN, Inf, -Inf, -0.0)),
                   c("0.30000000000000004", "0.5", "0.3333333333333333", NA, NA, "Inf", "-Inf", "-0"))
  expect_identical(to_csv(data.frame(x = c(0.1 + 0.2, NA), y = c("a", ""), z = factor(c("u", "v")))),
                   "0.30000000000000004,a,u\n,,v\n")
})

# Numeric texts as clients write them: whole numbers (also past R's integers), fixed decimals,
# 17 significant digits, exponents, leading zeros and dots, -0, NA and empty fields, blanks around.
random_numeric_field <- function(n) {
  x <- stats::rnorm(n) * 10^sample(-30:30, n, replace = TRUE)
  vapply(seq_len(n), function(i) {
    switch(sample(10, 1),
      sprintf("%.0f", round(stats::runif(1, -3e9, 3e9))),
      sprintf("%.*f", sample(0:9, 1), x[[i]]),
      sprintf("%.17g", x[[i]]),
      sprintf("%.15e", x[[i]]),
      sprintf("%.3E", x[[i]]),
      sub("^(-?)0[.]", "\\1.", sprintf("%.6f", x[[i]] / 1e9)),
      sprintf("00%d.50", sample(0:99, 1)),
      sample(c("-0", "-0.0", "0", "NA", ""), 1),
      sprintf(" %.4g\t", x[[i]]),
      sprintf("%d", sample(-5:5, 1))
    )
  }, "")
}

test_that("the C path reads numeric CSV as the general path does, bit for bit", {
  set.seed(15)
  for (case in 1:300) {
    rows <- sample(1:6, 1)
    columns <- sample(1:4, 1)
    fields <- matrix(random_numeric_field(rows * columns), rows)
    body <- paste0(apply(fields, 1, paste, collapse = ","), sample(c("\n", "\r\n"), 1), collapse = "")
    if (sample(4, 1) == 1) body <- sub("\r?\n$", "", body) # no final line break
    if (!grepl("[^[:space:]]", body)) next # parse_csv's own 400, before either path
    general <- tryCatch(parse_csv_fields(body), http_error = function(e) conditionMessage(e))
    if (is.null(.Call(rsm_read_numeric_csv, body, MAX_CSV_COLUMNS))) { # left to the general path: only a blank line
      no_number <- apply(fields, 2, function(f) all(trimws(f) %in% c("", "NA"))) # or a column of NA
      expect_true(any(no_number) || any(!grepl("[^[:space:]]", strsplit(body, "\n")[[1]])), info = body)
    }
    expect_identical(tryCatch(parse_csv(body), http_error = function(e) conditionMessage(e)), general, info = body)
  }
})

test_that("the C path leaves every body that is not plain numbers to the general path", {
  for (body in c('1,"2"\n', "1,a\n", "1,2\n\n3,4\n", "1,2\n3\n", "1\n2,3\n", "+1,2\n", "Inf,1\n",
                 "NaN\n", "0x1p3\n", "1e999\n", "1.2.3\n", "1e\n", "-\n", ".\n", "NA,NA\n", "1,,\n,,\n",
                 "TRUE,1\n", "2024-01-01,1\n", "1\r,2\n", "1,2\n\r\n3,4\n")) {
    expect_null(.Call(rsm_read_numeric_csv, body, MAX_CSV_COLUMNS), label = body)
    expect_identical(
      tryCatch(parse_csv(body), http_error = function(e) conditionMessage(e)),
      tryCatch(parse_csv_fields(body), http_error = function(e) conditionMessage(e)),
      label = body
    )
  }
  # The default input_fn reads CSV from the body's bytes: the same frames, the same 400s.
  for (body in c("1,2.5\n-3,NA\n", "a,1\n", "1,2\n\n3,4\n")) {
    expect_identical(parse_csv(charToRaw(body)), parse_csv(body))
  }
  with_nul <- c(charToRaw("1,2\n"), as.raw(0), charToRaw("\n"))
  expect_error(parse_csv(with_nul), "the body contains NUL bytes", class = "http_error")
  expect_error(parse_csv(as.raw(c(0x31, 0x2c, 0xff, 0x0a))), "not valid UTF-8", class = "http_error")
  expect_error(parse_csv(raw(0)), "empty text/csv body", class = "http_error")
  expect_error(parse_csv(charToRaw(" \n")), "empty text/csv body", class = "http_error")
  app <- serving_app(load_handlers(write_deploy("predict_fn <- function(data, model) data$V1 * 2")), NULL)
  answer <- app$call(fake_request(body = "1.5,x\n2,y\n", HTTP_CONTENT_TYPE = "text/csv", HTTP_ACCEPT = "text/csv"))
  expect_identical(answer$body, "3\n4\n")
  # A first line of 100,001 fields over 100,000 one-field rows is ragged: refused before allocating.
  expect_null(.Call(rsm_read_numeric_csv, paste0(strrep(",", 1e5), "\n", strrep("1\n", 1e5)), MAX_CSV_COLUMNS))
  # What it takes: integers where read.csv types them so, doubles where one field is not whole.
  expect_identical(parse_csv("1,2.5\n-3,NA\n,4e0\n"), data.frame(V1 = c(1L, -3L, NA), V2 = c(2.5, NA, 4)))
  expect_identical(parse_csv("2147483647\n-2147483648\n"), data.frame(V1 = c(2147483647, -2147483648)))
})

test_that("the C path writes numbers as the general path does", {
  set.seed(16)
  for (case in 1:200) {
    n <- sample(1:8, 1)
    x <- stats::rnorm(n) * 10^sample(-300:300, n, replace = TRUE)
    x[sample(n, 1)] <- sample(c(NA, NaN, Inf, -Inf, -0, 0, 1e5, 123456789012345, 2^60, 0.1 + 0.2), 1)
    text <- sample(c(NA, "", "setosa", "a,b", "say \"hi\"", "two\nlines", "cr\r", " padded ", "caf\u00e9"), n, TRUE)
    frame <- data.frame(
      x = x, i = sample(c(NA, -5:5), n, replace = TRUE), l = sample(c(NA, TRUE, FALSE), n, TRUE),
      s = text, f = factor(text)
    )
    expect_identical(to_csv(frame), to_csv_fields(frame))
    expect_identical(to_csv(x), to_csv_fields(x))
    expect_identical(to_csv(text), to_csv_fields(text))
  }
  withr::local_envvar(SAGEMAKER_BATCH = "true") # batch transform: no line break after the last record
  expect_identical(to_csv(c(1.5, 2)), "1.5\n2")
  expect_identical(to_csv(c(1.5, 2)), to_csv_fields(c(1.5, 2)))
  # Subnormal numbers and dates take the general path, with the same meaning.
  expect_identical(to_csv(c(5e-324, 1)), "5e-324\n1")
  expect_identical(to_csv(data.frame(d = as.Date("2024-01-02"), f = factor("a"))), "2024-01-02,a")
  expect_null(.Call(rsm_write_csv, list(as.Date("2024-01-02")), TRUE))
  expect_identical(to_csv(data.frame(s = c("a,b", "x"), n = 1:2)), "\"a,b\",1\nx,2")
  expect_identical(to_csv(numeric(0)), "")
})

test_that("CSV keeps read.csv's meaning: types, NA, quotes, blank lines, ragged rows refused", {
  frame <- parse_csv('1,,NA,TRUE,x\n\n2,3,4,F,"b,""c"""\n')
  expect_identical(frame, data.frame(
    V1 = 1:2, V2 = c(NA, 3L), V3 = c(NA, 4L), V4 = c(TRUE, FALSE), V5 = c("x", "b,\"c\"")
  ))
  expect_error(parse_csv("1,2,3\n1,2\n"), "malformed text/csv body: line 2 did not have 3 elements",
               class = "http_error")
  expect_error(parse_csv("1,2\n1,2,3\n"), "malformed text/csv body", class = "http_error")
  expect_identical(parse_csv("a b, 1.5 \n"), data.frame(V1 = "a b", V2 = 1.5))
})

# ---- issue 25, item 1: a request's cost grows linearly with its size, however its fields lie ----

# The CPU seconds `times` readings of `body` take (a few, so the clock's resolution does not
# decide; CPU time, so a busy machine does not).
csv_seconds <- function(body, times = 3) {
  used <- system.time(for (i in seq_len(times)) parse_csv(body))
  used[["user.self"]] + used[["sys.self"]]
}

test_that("a one-row CSV of many columns costs what a tall body of the same bytes costs", {
  # 64 KB each way: numbers (the C path) and text (the general path: fread, typing, exact doubles).
  for (field in c("1.5", "abc", "x1")) {
    wide <- charToRaw(paste0(strrep(paste0(field, ","), 65536 %/% (nchar(field) + 1) - 1), field, "\n"))
    tall <- charToRaw(strrep(paste0(field, "\n"), length(wide) %/% (nchar(field) + 1)))
    expect_identical(dim(parse_csv(wide)), c(1L, length(parse_csv(tall)[[1]])))
    # generous: the fixed costs of a call are a few ms; a quadratic cost was seconds here
    expect_lt(csv_seconds(wide), 10 * csv_seconds(tall) + 0.25, label = paste("a wide row of", field))
  }
  # Text and numbers mixed in one row: fread's typed reading, then exact doubles, column by column
  # no more.
  mixed <- paste0(strrep("a,1.25,7,", 6000), "a\n")
  frame <- parse_csv(mixed)
  expect_identical(ncol(frame), 18001L)
  expect_identical(frame[1, 1:4], data.frame(V1 = "a", V2 = 1.25, V3 = 7L, V4 = "a"))
  expect_lt(csv_seconds(mixed), 10 * csv_seconds(gsub(",", "\n", mixed)) + 0.25)
})

test_that("a CSV row of more columns than the default input_fn reads is a 413 that says so", {
  for (body in list(
    charToRaw(paste0(strrep("1,", MAX_CSV_COLUMNS), "1\n")), # numbers, the C path
    paste0("x,", strrep("a,", MAX_CSV_COLUMNS), "\n"), # text
    paste0('"a,b",', strrep("1,", MAX_CSV_COLUMNS), "1\n"), # quoted: read.csv's path
    paste0("1,2\n", strrep("1,", 3 * MAX_CSV_COLUMNS), "1\n") # a ragged row below a short one
  )) {
    started <- Sys.time()
    error <- tryCatch(parse_csv(body), http_error = function(e) e)
    expect_s3_class(error, "http_error")
    expect_identical(error$status, 413L)
    expect_match(conditionMessage(error), sprintf("more than %d columns", MAX_CSV_COLUMNS), fixed = TRUE)
    expect_lt(as.numeric(difftime(Sys.time(), started, units = "secs")), 1)
  }
  # A 6 MB row (the review's: 1.4 GB against a 256 MB worker) is refused before anything is made.
  gc(reset = TRUE)
  before <- sum(gc()[, 2])
  expect_error(parse_csv(charToRaw(strrep("1,", 3e6))), "more than", class = "http_error")
  expect_lt(sum(gc()[, 6]) - before, 64) # MB at most, over the 6 MB body itself
  # Up to the limit, a row is read.
  expect_identical(ncol(parse_csv(paste0(strrep("1,", MAX_CSV_COLUMNS - 1), "1\n"))), as.integer(MAX_CSV_COLUMNS))
})

test_that("the general path types columns as type.convert does, column by column", {
  # The reading column by column it replaced (each column by type.convert, doubles made exact; a
  # data frame grown one column at a time) as the reference: the same frames, bit for bit, for
  # fields of every kind type.convert tells apart.
  by_column <- function(body) {
    frame <- csv_fields(body)
    for (column in seq_along(frame)) {
      text <- frame[[column]]
      typed <- utils::type.convert(text, as.is = TRUE, na.strings = "NA")
      if (is.double(typed)) {
        text[!nzchar(text)] <- NA
        typed <- exact_doubles(text, typed)
      }
      frame[[column]] <- typed
    }
    frame
  }
  tokens <- c(
    "", "NA", "T", "F", "TRUE", "false", "True", "tRUE", "1", "-7", "+5", "05", "2147483647",
    "-2147483647", "-2147483648", "2147483648", "99999999999999999999", "1.5", "-0.0", ".5", "5.",
    "1e5", "1E-3", "1e", "0x1A", "0X1p3", "Inf", "-Inf", "inf", "infinity", "NaN", "nan", "-nan",
    "NAN", "NA5", "1i", "2+3i", "i", "1d5", ".", "-", "+", "e5", "2024-01-02", "abc", "a b",
    "caf\u00e9", "1,5", "x\"y", "0.1000000000000000055511151231257827", "4.9e-324", "1e400"
  )
  set.seed(25)
  for (case in 1:250) {
    rows <- sample(1:4, 1)
    columns <- sample(1:6, 1)
    pool <- sample(tokens, sample(2:6, 1)) # a few kinds per body, so that columns agree now and then
    fields <- matrix(sample(pool, rows * columns, replace = TRUE), rows)
    quote <- grepl("[,\"]", fields) | (sample(8, length(fields), TRUE) == 1) # read.csv's path too
    fields[quote] <- paste0("\"", gsub("\"", "\"\"", fields[quote]), "\"")
    body <- paste0(apply(fields, 1, paste, collapse = ","), "\n", collapse = "")
    if (!grepl("[^[:space:]]", body)) next
    expected <- tryCatch(by_column(body), http_error = function(e) conditionMessage(e))
    expect_identical(tryCatch(parse_csv_fields(body), http_error = function(e) conditionMessage(e)),
                     expected, info = body)
  }
})

test_that("a CSV body is never taken for a file name (fread reads a body without a line break so)", {
  expect_identical(parse_csv("/etc/hostname"), data.frame(V1 = "/etc/hostname"))
  expect_identical(parse_csv(charToRaw("/etc/passwd")), data.frame(V1 = "/etc/passwd"))
  folder <- normalizePath(tempdir())
  expect_identical(parse_csv(paste0(folder, ",x")), data.frame(V1 = folder, V2 = "x"))
})

test_that("plain CSV fields are split as read.csv splits them", {
  # Bodies without quotes, tabs or lone CRs, no blank lines, every line as many fields: split in C
  # (csv_fields), field for field read.csv's text; any other body is read.csv's own.
  pieces <- c("a", " b ", "NA", " NA", "", " ", "1.5", "caf\u00e9", "x y", "\r", "\t", "\"q\"", "-")
  set.seed(26)
  for (case in 1:300) {
    rows <- sample(1:4, 1)
    columns <- sample(1:4, 1)
    fields <- matrix(sample(pieces, rows * columns, replace = TRUE), rows)
    ends <- sample(c("\n", "\r\n"), rows, replace = TRUE)
    body <- paste0(apply(fields, 1, paste, collapse = ","), ends, collapse = "")
    if (sample(3, 1) == 1) body <- sub("\r?\n$", "", body)
    expected <- tryCatch(
      utils::read.csv(
        text = body, header = FALSE, colClasses = "character", na.strings = "NA", strip.white = TRUE,
        fill = FALSE, blank.lines.skip = TRUE, comment.char = ""
      ),
      error = function(e) "error", warning = function(w) "error"
    )
    plain <- .Call(rsm_csv_plain_fields, body, MAX_CSV_COLUMNS)
    if (!is.null(plain)) expect_identical(unname(plain), unname(as.list(expected)), info = body)
    expect_identical(tryCatch(csv_fields(body), http_error = function(e) "error"), expected, info = body)
  }
})

test_that("the C reader keeps the sign of -0, as the general path does (found by the fuzzer)", {
  expect_identical(1 / parse_csv("-0\n1.5\n")$V1[[1]], -Inf)
  expect_identical(parse_csv("-0\n1.5\nx\n")$V1[[1]], "-0") # text: as it came
  expect_identical(1 / parse_csv_fields("-0\n1.5\n")$V1[[1]], -Inf)
})

test_that("the CSV entry points keep what they make from the collector (gctorture)", {
  withr::defer(gctorture(FALSE))
  gctorture(TRUE)
  numbers <- .Call(rsm_read_numeric_csv, charToRaw("1,2.5\n-0,NA\n"), MAX_CSV_COLUMNS)
  plain <- .Call(rsm_csv_plain_fields, "a, b\nNA,1\n", MAX_CSV_COLUMNS)
  written <- .Call(rsm_write_csv, list(c(1.5, NA), c("a,b", "c"), factor(c("u", "v"))), TRUE)
  gctorture(FALSE)
  expect_identical(numbers, list(c(1L, 0L), c(2.5, NA)))
  expect_identical(plain, list(c("a", NA), c("b", "1")))
  expect_identical(written, "1.5,\"a,b\",u\n,c,v\n")
})
