#' The worker's HTTP server
#'
#' Each worker answers HTTP itself, on R's own thread, with the small HTTP/1.1 server of
#' `src/http.c`: it waits in `poll()` for nginx's connections (a unix socket) or a client's (a TCP
#' port, when a worker runs alone), hands each complete request to the app as an environment, and
#' writes the app's response. A worker takes one request at a time, so nothing needs another thread:
#' no hand-off per request, no body written to disk, and a process the master may fork at any moment.
#'
#' The request: `REQUEST_METHOD`, `PATH_INFO` (the path as sent), `QUERY_STRING` (with its `?`, or
#' `""`), one `HTTP_<NAME>` per header (upper case, `-` as `_`, as in CGI), and `body` (raw). The
#' response: `list(status, headers = list(Name = "value"), body = "text" or raw)`.
#' @name http
#' @keywords internal
#' @concept serving
NULL

#' Listen on a unix socket (`socket`) or on TCP `host`:`port`. Bodies over `max_body` bytes are
#' refused with a JSON 413 before they are read (Inf: no limit).
#' @noRd
http_listen <- function(socket = NULL, host = "0.0.0.0", port = NULL, max_body = max_payload_bytes()) {
  # A request's line and headers must come within the header timeout, and its body must not stop
  # coming for the body timeout (nginx's client_header_timeout and client_body_timeout: 60 s).
  timeouts <- getOption("rsagemaker.http_timeouts", c(header = 60, body = 60))
  .Call(
    rsm_http_listen, if (!is.null(socket)) as.character(socket), as.character(host),
    as.integer(port %||% 0L), as.double(max_body), as.double(timeouts)
  )
}

#' Wait up to `timeout_ms` for a request and answer it with `handler(request)`. TRUE when one was
#' answered, FALSE when the time passed without one.
#' @noRd
http_service <- function(server, handler, timeout_ms = 1000L) {
  .Call(rsm_http_service, server, handler, environment(), as.integer(timeout_ms))
}

#' Stop listening and close every connection.
#' @noRd
http_close <- function(server) invisible(.Call(rsm_http_close, server))
