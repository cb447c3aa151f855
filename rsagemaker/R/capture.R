#' Data capture on a local endpoint: SageMaker's capture records, written by the worker
#'
#' With `SAGEMAKER_CAPTURE_DIR` set (`rsagemaker local-serve --capture`, `make local-serve
#' CAPTURE=1`), each answered `POST /invocations` is appended as one JSON Lines record in the format
#' SageMaker's data capture writes to S3: `captureData.endpointInput` and `endpointOutput` (each
#' `observedContentType`, `mode`, `data`, `encoding`), `eventMetadata` (`eventId`, `inferenceTime`)
#' and `eventVersion` "0", under `<dir>/<endpoint>/<variant>/yyyy/mm/dd/hh/` as SageMaker lays out
#' its S3 prefix (`SAGEMAKER_CAPTURE_ENDPOINT`, `SAGEMAKER_CAPTURE_VARIANT`, default `AllTraffic`).
#' `SAGEMAKER_CAPTURE_SAMPLING` is the percentage of requests kept (default 100). CSV and JSON
#' bodies are kept as text (encoding `CSV`, `JSON`, as with SageMaker's CaptureContentTypeHeader),
#' others as `BASE64`. Each worker writes its own file, whole lines only, so records never
#' interleave. A capture that fails is logged; the request is answered all the same.
#' @noRd
NULL

capture_encoding <- function(type) {
  type <- normalise_type(media_type(type %||% ""))
  if (identical(type, "text/csv")) {
    return("CSV")
  }
  if (type %in% c("application/json", "application/jsonlines", "application/x-jsonlines")) {
    return("JSON")
  }
  "BASE64"
}

capture_payload <- function(body, type, mode) {
  bytes <- if (is.raw(body)) body else charToRaw(enc2utf8(paste(body, collapse = "")))
  encoding <- capture_encoding(type)
  text <- if (encoding != "BASE64" && !any(bytes == as.raw(0))) rawToChar(bytes) else NA_character_
  if (is.na(text) || !validUTF8(text)) {
    encoding <- "BASE64"
    text <- jsonlite::base64_enc(bytes)
  }
  Encoding(text) <- "UTF-8"
  list(observedContentType = type %||% "", mode = mode, data = text, encoding = encoding)
}

# Random bytes from the kernel: the workers' R random streams are left alone (a forked worker
# shares its parent's seed, so runif() could repeat event IDs across workers).
random_bytes <- function(n) {
  con <- file("/dev/urandom", open = "rb", raw = TRUE)
  on.exit(close(con))
  readBin(con, "raw", n)
}

uuid4 <- function() {
  bytes <- random_bytes(16)
  bytes[7] <- as.raw(bitwOr(bitwAnd(as.integer(bytes[7]), 0x0f), 0x40))
  bytes[9] <- as.raw(bitwOr(bitwAnd(as.integer(bytes[9]), 0x3f), 0x80))
  hex <- paste(format(as.hexmode(as.integer(bytes)), width = 2), collapse = "")
  paste(substring(hex, c(1, 9, 13, 17, 21), c(8, 12, 16, 20, 32)), collapse = "-")
}

capture_record <- function(req, response, time = Sys.time()) {
  list(
    captureData = list(
      endpointInput = capture_payload(req$body %||% raw(), req$HTTP_CONTENT_TYPE, "INPUT"),
      endpointOutput = capture_payload(response$body, response$headers[["Content-Type"]], "OUTPUT")
    ),
    eventMetadata = list(eventId = uuid4(), inferenceTime = format(time, "%Y-%m-%dT%H:%M:%SZ", tz = "UTC")),
    eventVersion = "0"
  )
}

capture_file <- function(dir, time = Sys.time()) {
  hour <- format(time, "%Y/%m/%d/%H", tz = "UTC")
  endpoint <- Sys.getenv("SAGEMAKER_CAPTURE_ENDPOINT", "local")
  variant <- Sys.getenv("SAGEMAKER_CAPTURE_VARIANT", "AllTraffic")
  file.path(dir, endpoint, variant, hour, sprintf("%s-%d.jsonl", Sys.info()[["nodename"]], Sys.getpid()))
}

sampled <- function() {
  percentage <- suppressWarnings(as.numeric(Sys.getenv("SAGEMAKER_CAPTURE_SAMPLING", "100")))
  if (is.na(percentage)) percentage <- 100
  if (percentage >= 100) {
    return(TRUE)
  }
  bytes <- as.integer(random_bytes(2))
  (bytes[[1]] * 256 + bytes[[2]]) %% 10000 < percentage * 100
}

#' Append the record of one answered request (when capture is on); returns the response as it is.
#' @noRd
capture_invocation <- function(req, response) {
  dir <- Sys.getenv("SAGEMAKER_CAPTURE_DIR")
  if (!nzchar(dir) || !identical(response$status, 200L)) {
    return(response)
  }
  tryCatch(
    if (sampled()) {
      time <- Sys.time()
      path <- capture_file(dir, time)
      dir.create(dirname(path), recursive = TRUE, showWarnings = FALSE)
      line <- jsonlite::toJSON(capture_record(req, response, time), auto_unbox = TRUE, digits = NA)
      con <- file(path, open = "ab")
      on.exit(close(con))
      writeBin(charToRaw(paste0(enc2utf8(as.character(line)), "\n")), con)
    },
    error = function(e) message("Data capture failed: ", conditionMessage(e))
  )
  response
}
