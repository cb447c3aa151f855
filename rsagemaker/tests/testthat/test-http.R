# The worker's HTTP server (http.R, src/http.c), in this one process: the client's bytes wait in
# the socket until http_service reads them, and its answer waits there until the client reads it.

echo_request <- function(req) {
  fields <- as.list(req)
  fields$body <- NULL
  list(
    status = 200L, headers = list("Content-Type" = "application/json", "X-Body-Bytes" = as.character(length(req$body))),
    body = as.character(jsonlite::toJSON(
      c(fields, list(body = rawToChar(req$body[req$body != as.raw(0)]))),
      auto_unbox = TRUE
    ))
  )
}

local_http <- function(max_body = Inf, env = parent.frame()) {
  for (attempt in 1:20) {
    port <- sample(20000:60000, 1)
    server <- tryCatch(http_listen(host = "127.0.0.1", port = port, max_body = max_body), error = function(e) NULL)
    if (!is.null(server)) break
  }
  withr::defer(http_close(server), envir = env)
  list(server = server, port = port)
}

connect <- function(http, env = parent.frame()) {
  con <- socketConnection("127.0.0.1", http$port, blocking = FALSE, open = "r+b")
  withr::defer(close(con), envir = env)
  con
}

# Send `request` (text or raw), let the server take `services` turns, return what came back.
exchange <- function(http, con, request, handler = echo_request, services = 1) {
  writeBin(if (is.character(request)) charToRaw(request) else request, con)
  answered <- logical(0)
  for (i in seq_len(services)) answered <- c(answered, http_service(http$server, handler, 300L))
  Sys.sleep(0.05)
  out <- readBin(con, "raw", 1e7)
  structure(rawToChar(out), answered = answered)
}

parse_response <- function(text) {
  parts <- regmatches(text, regexpr("\r\n\r\n", text), invert = TRUE)[[1]]
  lines <- strsplit(parts[[1]], "\r\n", fixed = TRUE)[[1]]
  headers <- sub("^[^:]*: ", "", lines[-1])
  names(headers) <- tolower(sub(":.*", "", lines[-1]))
  list(status = as.integer(strsplit(lines[[1]], " ")[[1]][[2]]), headers = as.list(headers), body = parts[[2]])
}

test_that("a request reaches the handler as method, path, query, HTTP_* headers and the body's bytes", {
  seen <- NULL
  spy <- function(req) {
    seen <<- req
    echo_request(req)
  }
  http <- local_http()
  con <- connect(http)
  text <- exchange(http, con, paste0(
    "POST /invocations?x=1&y=2 HTTP/1.1\r\nHost: here\r\nContent-Type: text/csv\r\n",
    "X-Amzn-SageMaker-Custom-Attributes: a=1\r\nX-Amzn-SageMaker-Custom-Attributes: b=2\r\n",
    "Accept-Encoding: identity\r\nContent-Length: 8\r\n\r\n1,2\n3,4\n"
  ), spy)
  # an environment: no partial matching of names (HTTP_ACCEPT is not HTTP_ACCEPT_ENCODING)
  expect_true(is.environment(seen))
  expect_null(seen$HTTP_ACCEPT)
  response <- parse_response(text)
  expect_identical(response$status, 200L)
  expect_identical(response$headers[["content-length"]], as.character(nchar(response$body, "bytes")))
  expect_null(response$headers[["connection"]]) # HTTP/1.1: kept open
  req <- jsonlite::fromJSON(response$body)
  expect_identical(req$REQUEST_METHOD, "POST")
  expect_identical(req$PATH_INFO, "/invocations")
  expect_identical(req$QUERY_STRING, "?x=1&y=2")
  expect_identical(req$HTTP_CONTENT_TYPE, "text/csv")
  expect_identical(req$HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES, "a=1, b=2") # repeated: joined
  expect_identical(req$body, "1,2\n3,4\n")
})

test_that("the body's bytes arrive exactly, NUL bytes and all, and a keep-alive connection takes the next request", {
  http <- local_http()
  con <- connect(http)
  bytes <- as.raw(c(0x00, 0xff, 0x0d, 0x0a, 0x41))
  seen <- NULL
  keep <- function(req) {
    seen <<- req$body
    list(status = 200L, headers = list(), body = rev(req$body))
  }
  head <- charToRaw("POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\n")
  first <- exchange(http, con, c(head, bytes), keep)
  expect_identical(seen, bytes)
  expect_identical(attr(first, "answered"), TRUE)
  second <- parse_response(exchange(http, con, "\r\nGET /ping HTTP/1.1\r\n\r\n")) # a stray CRLF first
  expect_identical(second$status, 200L)
  expect_identical(jsonlite::fromJSON(second$body)$PATH_INFO, "/ping")
})

test_that("pipelined requests are answered in order, and a chunked body is decoded", {
  http <- local_http()
  con <- connect(http)
  text <- exchange(http, con, paste0(
    "POST /one HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab,c\r\n3;ext=1\r\nd\ne\r\n0\r\n\r\n",
    "GET /two HTTP/1.1\r\n\r\n"
  ), services = 2)
  expect_identical(attr(text, "answered"), c(TRUE, TRUE))
  bodies <- regmatches(text, gregexpr("\\{[^}]*\\}", text))[[1]]
  paths <- vapply(bodies, function(b) jsonlite::fromJSON(b)$PATH_INFO, "")
  expect_identical(paths, c("/one", "/two"), ignore_attr = TRUE)
  expect_identical(jsonlite::fromJSON(bodies[[1]])$body, "ab,cd\ne")
})

test_that("Connection: close and HTTP/1.0 get their answer, then the connection is closed", {
  http <- local_http()
  for (request in c("GET /a HTTP/1.1\r\nConnection: close\r\n\r\n", "GET /b HTTP/1.0\r\n\r\n")) {
    con <- connect(http)
    response <- parse_response(exchange(http, con, request))
    expect_identical(response$status, 200L)
    expect_identical(response$headers[["connection"]], "close")
    expect_length(readBin(con, "raw", 10), 0) # closed: nothing more comes
  }
})

test_that("malformed requests get a JSON 400; a body over the limit a JSON 413 before it is sent", {
  http <- local_http(max_body = 100)
  never <- function(req) stop("the handler must not see this request")
  for (request in c(
    "NOT A REQUEST\r\n\r\n", "GET /x HTTP/2.0\r\n\r\n", "get /x HTTP/1.1\r\n\r\n",
    "GET /x HTTP/1.1\r\nNo colon\r\n\r\n",
    "POST /x HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", "POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "GET /x HTTP/1.1\r\nX-A: a\001b\r\n\r\n"
  )) {
    con <- connect(http)
    response <- parse_response(exchange(http, con, request, never))
    expect_identical(response$status, 400L, label = request)
    expect_match(jsonlite::fromJSON(response$body)$error, "malformed", label = request)
    expect_identical(response$headers[["connection"]], "close")
  }
  con <- connect(http)
  response <- parse_response(exchange(http, con, "POST /x HTTP/1.1\r\nContent-Length: 101\r\n\r\n", never))
  expect_identical(response$status, 413L)
  expect_identical(jsonlite::fromJSON(response$body)$error, "payload of 101 bytes exceeds the limit of 100 bytes")
})

test_that("Expect: 100-continue is answered before the body comes", {
  http <- local_http()
  con <- connect(http)
  interim <- exchange(http, con, "POST /x HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
  expect_identical(as.character(interim), "HTTP/1.1 100 Continue\r\n\r\n")
  expect_identical(attr(interim, "answered"), FALSE)
  response <- parse_response(exchange(http, con, "abc"))
  expect_identical(jsonlite::fromJSON(response$body)$body, "abc")
})

test_that("a failing handler is a JSON 500, and a handler's header cannot add headers of its own", {
  http <- local_http()
  con <- connect(http)
  failing <- parse_response(exchange(http, con, "GET /x HTTP/1.1\r\n\r\n", function(req) stop("boom")))
  expect_identical(failing$status, 500L)
  expect_match(jsonlite::fromJSON(failing$body)$error, "handler failed")
  sneaky <- function(req) list(status = 201L, headers = list("X-A" = "one\r\nX-Injected: yes"), body = "ok")
  response <- parse_response(exchange(http, con, "GET /x HTTP/1.1\r\n\r\n", sneaky))
  expect_identical(response$status, 201L)
  expect_identical(response$headers[["x-a"]], "one  X-Injected: yes")
  expect_null(response$headers[["x-injected"]])
  expect_identical(response$body, "ok")
})

test_that("service returns FALSE after its timeout without a request; a unix socket is open to every user", {
  http <- local_http()
  started <- Sys.time()
  expect_false(http_service(http$server, echo_request, 200L))
  expect_gte(as.numeric(difftime(Sys.time(), started, units = "secs")), 0.19)
  path <- file.path(withr::local_tempdir(), "worker.sock")
  server <- http_listen(socket = path)
  withr::defer(http_close(server))
  expect_identical(as.character(file.mode(path)), "777")
})

test_that("with the server listening, a handler's Sys.sleep stops at the request's time limit", {
  http <- local_http()
  setTimeLimit(elapsed = 0.5, transient = FALSE)
  on.exit(setTimeLimit(elapsed = Inf, transient = FALSE))
  started <- Sys.time()
  expect_error(Sys.sleep(3), "elapsed time limit")
  expect_lt(as.numeric(difftime(Sys.time(), started, units = "secs")), 2)
})

# ---- issue 25, items 2 to 4: whatever a client sends, a request costs bounded memory and time ----

# Serve until `done()` or `seconds` pass; how many requests were answered.
serve_until <- function(http, done, handler = echo_request, seconds = 10) {
  answered <- 0
  until <- Sys.time() + seconds
  while (!done() && Sys.time() < until) answered <- answered + http_service(http$server, handler, 50L)
  answered
}

test_that("a hundred connections at once are each answered, none accepted and closed", {
  http <- local_http()
  here <- environment()
  cons <- lapply(1:100, function(i) connect(http, env = here))
  for (con in cons) writeBin(charToRaw("GET /many HTTP/1.1\r\n\r\n"), con)
  expect_identical(serve_until(http, function() FALSE, seconds = 1.5), 100)
  Sys.sleep(0.05)
  statuses <- vapply(cons, function(con) {
    text <- rawToChar(readBin(con, "raw", 1e5))
    if (nzchar(text)) parse_response(text)$status else NA_integer_
  }, 1L)
  expect_identical(statuses, rep(200L, 100))
})

test_that("partial requests neither lock the worker out nor stay for ever: 408 after the timeouts", {
  withr::local_options(rsagemaker.http_timeouts = c(header = 0.4, body = 0.4))
  http <- local_http()
  here <- environment()
  stalled <- lapply(1:80, function(i) connect(http, env = here)) # more than the 64 slots there were
  for (con in stalled) writeBin(charToRaw("POST /x HTTP/1.1\r\nContent-Le"), con)
  expect_false(http_service(http$server, echo_request, 100L))
  con <- connect(http)
  response <- parse_response(exchange(http, con, "GET /ok HTTP/1.1\r\n\r\n"))
  expect_identical(response$status, 200L)
  # the head never ends: a 408 after the header timeout, and the connection is closed
  body_stalled <- connect(http)
  writeBin(charToRaw("POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"), body_stalled)
  expect_identical(serve_until(http, function() FALSE, seconds = 1), 0)
  Sys.sleep(0.05)
  first <- parse_response(rawToChar(readBin(stalled[[1]], "raw", 1e5)))
  expect_identical(first$status, 408L)
  expect_match(jsonlite::fromJSON(first$body)$error, "headers did not come in time")
  expect_identical(first$headers[["connection"]], "close")
  # the body stops coming: a 408 after the body timeout
  response <- parse_response(rawToChar(readBin(body_stalled, "raw", 1e5)))
  expect_identical(response$status, 408L)
  expect_match(jsonlite::fromJSON(response$body)$error, "body stopped coming")
})

test_that("a repeated header is joined in one pass: as cheap as one header of the same bytes", {
  http <- local_http()
  seen <- NULL
  keep <- function(req) {
    seen <<- req$HTTP_ACCEPT
    list(status = 200L, headers = list(), body = "")
  }
  value <- strrep("v", 20)
  repeated <- paste0("GET /x HTTP/1.1\r\n", strrep(paste0("Accept: ", value, "\r\n"), 2000), "\r\n")
  single <- paste0("GET /x HTTP/1.1\r\nAccept: ", strrep(value, 2000), "\r\n\r\n")
  cpu <- function(request) {
    used <- system.time(for (i in 1:3) exchange(http, connect(http), request, keep))
    used[["user.self"]] + used[["sys.self"]]
  }
  expect_lt(cpu(repeated), 5 * cpu(single) + 0.1)
  exchange(http, connect(http), repeated, keep)
  expect_identical(seen, paste(rep(value, 2000), collapse = ", "))
})

test_that("new header names do not grow the worker: R symbols for known names and a few others only", {
  http <- local_http()
  seen <- NULL
  keep <- function(req) {
    names <- c("HTTP_CONTENT_TYPE", "HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES", "HTTP_X_FIRST_SEEN")
    seen <<- mget(names, req, ifnotfound = list(NULL))
    list(status = 200L, headers = list(), body = "")
  }
  send <- function(headers) {
    exchange(http, connect(http), paste0("GET /x HTTP/1.1\r\n", paste0(headers, "\r\n", collapse = ""), "\r\n"), keep)
  }
  send("X-First-Seen: 1")
  cells <- function() gc()[1, 1] # the symbols, never collected
  before <- cells()
  for (i in 1:40) send(sprintf("X-New-%s-%d: 1", paste(sample(letters, 12), collapse = ""), 1:100))
  grown <- cells() - before
  expect_lt(grown, 1000) # 4,000 new names: each was a symbol for good (and a CHARSXP) before
  send(c("Content-Type: text/csv", "X-Amzn-SageMaker-Custom-Attributes: a=1", "X-First-Seen: 2"))
  expect_identical(seen, list(
    HTTP_CONTENT_TYPE = "text/csv", HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES = "a=1", HTTP_X_FIRST_SEEN = "2"
  ))
})

test_that("a chunk over the payload limit is refused when announced; only chunked is a transfer coding", {
  http <- local_http(max_body = 100)
  never <- function(req) stop("the handler must not see this request")
  con <- connect(http)
  chunked <- "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
  huge <- parse_response(exchange(http, con, paste0(chunked, "FFFFFFFFFFFFFFF\r\n"), never))
  expect_identical(huge$status, 413L)
  expect_match(jsonlite::fromJSON(huge$body)$error, "exceeds the limit of 100 bytes")
  for (case in list(
    list("Transfer-Encoding: chunked, gzip\r\n", 400L), # chunked not last: no length (RFC 9112, 6.3)
    list("Transfer-Encoding: gzip, chunked\r\n", 501L),
    list("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", 400L),
    list("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n", 400L),
    list("Transfer-Encoding: chunked, chunked\r\n", 400L)
  )) {
    con <- connect(http)
    request <- paste0("POST /x HTTP/1.1\r\n", case[[1]], "\r\n4\r\nabcd\r\n0\r\n\r\n")
    response <- parse_response(exchange(http, con, request, never))
    expect_identical(response$status, case[[2]], label = case[[1]])
    expect_identical(response$headers[["connection"]], "close")
  }
  con <- connect(http)
  request <- "POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"
  response <- parse_response(exchange(http, con, request, never))
  expect_identical(response$status, 400L)
})

test_that("an R error outside the handler answers that request (500, 507) and the worker goes on", {
  http <- local_http()
  con <- connect(http)
  bytes_header <- function(req) {
    value <- "caf\xe9"
    Encoding(value) <- "bytes" # translateCharUTF8 refuses it: an R error while the response is written
    list(status = 200L, headers = list("X-Bytes" = value), body = "ok")
  }
  response <- parse_response(exchange(http, con, "GET /x HTTP/1.1\r\n\r\n", bytes_header))
  expect_identical(response$status, 500L)
  expect_match(jsonlite::fromJSON(response$body)$error, "response it cannot send")
  con <- connect(http)
  expect_identical(parse_response(exchange(http, con, "GET /next HTTP/1.1\r\n\r\n"))$status, 200L)
})

# What comes back on a blocking connection (its readBin may return nothing at first).
read_response <- function(con, seconds = 30) {
  until <- Sys.time() + seconds
  repeat {
    bytes <- readBin(con, "raw", 1e5)
    if (length(bytes) > 0 || Sys.time() > until) return(rawToChar(bytes))
    Sys.sleep(0.05)
  }
}

test_that("a body R cannot allocate is a 507, and the worker answers the next request", {
  # A worker in a process of its own whose address space holds the body once, not twice: the
  # request's raw vector cannot be allocated.
  port <- sample(20000:60000, 1)
  ready <- tempfile()
  script <- withr::local_tempfile(fileext = ".R")
  writeLines(c(
    sprintf("server <- rsagemaker:::http_listen(host = '127.0.0.1', port = %d, max_body = Inf)", port),
    sprintf("file.create('%s')", ready),
    "handler <- function(req) list(status = 200L, headers = list(), body = as.character(length(req$body)))",
    "repeat rsagemaker:::http_service(server, handler, 1000L)"
  ), script)
  limit_kb <- 1024 * 1024 # 1 GB of address space; R and the package take about 110 MB of it
  worker <- processx::process$new(
    "bash", c("-c", sprintf("ulimit -v %d && exec '%s' '%s'", limit_kb, file.path(R.home("bin"), "Rscript"), script)),
    env = c("current", R_LIBS = paste(.libPaths(), collapse = ":"))
  )
  withr::defer(worker$kill())
  for (i in 1:100) if (!file.exists(ready) && worker$is_alive()) Sys.sleep(0.1)
  expect_true(file.exists(ready))
  chunk <- raw(16 * 1024 * 1024)
  chunks <- 38 # 608 MB: the buffer holds it, a raw vector of it does not fit beside
  con <- socketConnection("127.0.0.1", port, blocking = TRUE, open = "r+b", timeout = 30)
  writeBin(charToRaw(sprintf("POST /big HTTP/1.1\r\nContent-Length: %.0f\r\n\r\n", chunks * length(chunk))), con)
  for (i in seq_len(chunks)) writeBin(chunk, con)
  response <- parse_response(read_response(con))
  close(con)
  expect_identical(response$status, 507L)
  expect_true(worker$is_alive())
  con <- socketConnection("127.0.0.1", port, blocking = TRUE, open = "r+b", timeout = 10)
  writeBin(charToRaw("POST /small HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"), con)
  small <- parse_response(read_response(con))
  close(con)
  expect_identical(small$status, 200L)
  expect_identical(small$body, "3")
})

test_that("the server keeps what it makes from the collector (gctorture)", {
  http <- local_http()
  con <- connect(http)
  seen <- NULL
  handler <- function(req) {
    seen <<- list(req$PATH_INFO, req$HTTP_ACCEPT, req$body)
    list(status = 201L, headers = list("X-A" = "b"), body = "ok")
  }
  writeBin(charToRaw(paste0(
    "POST /t?q HTTP/1.1\r\nAccept: a\r\nAccept: b\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
  )), con)
  withr::defer(gctorture(FALSE))
  gctorture(TRUE)
  answered <- http_service(http$server, handler, 2000L)
  gctorture(FALSE)
  expect_true(answered)
  expect_identical(seen, list("/t", "a, b", charToRaw("hi")))
  expect_identical(parse_response(rawToChar(readBin(con, "raw", 1e4)))$status, 201L)
})
