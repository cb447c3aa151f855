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
