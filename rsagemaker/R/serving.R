#' What a serving worker answers: deploy.R's handlers
#'
#' A worker ([server]) answers `GET /ping`, `POST /invocations` and `GET /execution-parameters`.
#' deploy.R defines handlers in the SageMaker inference toolkit's style; every one but `predict_fn`
#' has a default here:
#'
#' ```
#' model_fn(model_dir)            -> the model (default: readRDS(model_dir/model.rds))
#' input_fn(body, content_type)   -> data
#' predict_fn(data, model)        -> prediction
#' output_fn(prediction, accept)  -> a string (or raw vector) of media type `accept`
#' ```
#'
#' or `transform_fn(model, body, content_type, accept)` instead of the last three. `body` is the
#' request body as one UTF-8 string for a text type (`text/*`, JSON, JSON Lines, CSV), else a raw
#' vector, byte for byte (images, protobuf, parquet, gzip...). The defaults read and write
#' `text/csv`, `application/json` and `application/jsonlines`; the default `input_fn` checks each
#' request against the model's [prototype] when it has one. A handler that declares a `context`
#' argument also gets the request context, an environment holding `custom_attributes` (the
#' `X-Amzn-SageMaker-Custom-Attributes` request header, or `NULL`); setting
#' `context$response_custom_attributes` sends that header back to the caller. [http_error()] answers
#' a client error; any other error answers 500.
#' @name serving
#' @keywords internal
#' @concept serving
NULL

SUPPORTED_TYPES <- c("text/csv", "application/json", "application/jsonlines")
# SageMaker's real-time payload limit, also batch transform's default MaxPayloadInMB. run.sh gives
# nginx the same figure (tests/test_serving.py checks that the two agree at the boundary).
MAX_PAYLOAD_MB <- 6
# An asynchronous endpoint's payload limit (SageMaker reads such requests from S3). SageMaker does
# not tell the container that its endpoint is asynchronous: `make deploy ASYNC=1` sets
# SAGEMAKER_ASYNC_INFERENCE=true on the model, and run.sh gives nginx the same figure.
ASYNC_MAX_PAYLOAD_MB <- 1024
MB <- 1024 * 1024
MAX_ERROR_MESSAGE_CHARS <- 1024
# The widest CSV row the default input_fn reads (a 413 beyond): what a column costs in R (a vector,
# its name V<n>) is a hundred times what it costs in the body, so a 6 MB body of 3 million columns
# would need gigabytes. 50,000 columns take a few MB and a few tens of milliseconds.
MAX_CSV_COLUMNS <- 50000

#' Answer a request with an HTTP error
#'
#' Raise it from a handler in deploy.R for a client error, e.g. `http_error(422, "age must be > 0")`:
#' the caller gets that status and the JSON body `{"error": "age must be > 0"}`. Any other error in
#' a handler answers 500.
#' @param status the HTTP status code (4xx or 5xx).
#' @param message the reason, sent back to the caller.
#' @return Does not return: it signals a condition of class `http_error` (with the `status`), which
#'   the server answers.
#' @concept serving
#' @examples
#' # In deploy.R: refuse a request the model cannot answer.
#' input_fn <- function(body, content_type) {
#'   data <- jsonlite::parse_json(body, simplifyVector = TRUE)
#'   if (any(data$age <= 0)) http_error(422, "age must be > 0")
#'   data.frame(age = data$age)
#' }
#' # The server answers such a request with status 422 and {"error": "age must be > 0"}:
#' tryCatch(
#'   input_fn('{"age": [30, -1]}', "application/json"),
#'   http_error = function(e) list(status = e$status, message = conditionMessage(e))
#' )
#' @export
http_error <- function(status, message) {
  stop(structure(
    class = c("http_error", "error", "condition"),
    list(message = message, call = NULL, status = as.integer(status))
  ))
}

#' A positive whole number from the environment, or the default when unset or invalid.
#' @noRd
env_number <- function(name, default) {
  value <- Sys.getenv(name, "")
  if (!nzchar(value)) {
    return(default) # unset, the usual case: no conversion (each request asks for its timeout)
  }
  value <- suppressWarnings(as.numeric(value))
  if (is.na(value) || value <= 0) default else value
}

#' An environment flag set to "true" in any case: SageMaker sets "true", the SDKs' local modes "True".
#' Asked a few times a request: unset, it costs one lookup.
#' @noRd
env_flag <- function(name) {
  value <- Sys.getenv(name)
  nzchar(value) && tolower(value) == "true"
}

batch_transform <- function() env_flag("SAGEMAKER_BATCH")

async_inference <- function() env_flag("SAGEMAKER_ASYNC_INFERENCE")

#' Batch transform's MaxPayloadInMB as SageMaker set it: 0 means no limit (the records come in
#' chunks, Transfer-Encoding: chunked); unset or invalid means the default.
#' @noRd
batch_max_payload_mb <- function() {
  value <- suppressWarnings(as.numeric(Sys.getenv("SAGEMAKER_MAX_PAYLOAD_IN_MB", "")))
  if (is.na(value) || value < 0 || value != round(value)) MAX_PAYLOAD_MB else value
}

#' The largest request body taken, in bytes (Inf: no limit).
#' @noRd
max_payload_bytes <- function() {
  if (batch_transform()) {
    mb <- batch_max_payload_mb()
    return(if (mb == 0) Inf else mb * MB)
  }
  if (async_inference()) {
    return(ASYNC_MAX_PAYLOAD_MB * MB)
  }
  MAX_PAYLOAD_MB * MB
}

#' Media types whose bodies are text (checked to be UTF-8, given to input_fn as a string): text/*,
#' JSON (also the +json types), JSON lines and CSV; every other body reaches input_fn as a raw vector.
#' @noRd
is_text_type <- function(type) {
  type <- normalise_type(media_type(type))
  startsWith(type, "text/") || endsWith(type, "+json") || type %in% c("application/json", "application/jsonlines")
}

request_timeout_seconds <- function() env_number("SAGEMAKER_MODEL_SERVER_TIMEOUT", 60)

# What a request's Content-Type and Accept usually are: media_type returns them as they are.
PLAIN_TYPES <- c(SUPPORTED_TYPES, "*/*")

#' The media type of a Content-Type or Accept entry: no parameters, no blanks, lower case. Every
#' request asks this a few times: a usual header (PLAIN_TYPES) costs one lookup, not a regular
#' expression (their compilation and buffers were most of a small request's R time and garbage;
#' garbage is what makes R collect, the tail of the latency).
#' @noRd
media_type <- function(header) {
  if (any(header == PLAIN_TYPES)) {
    return(header)
  }
  if (grepl("[^a-z0-9/.+-]", header, perl = TRUE)) {
    header <- tolower(gsub("^[[:space:]]+|[[:space:]]*(;.*)?$", "", header, perl = TRUE))
  }
  header
}

normalise_type <- function(type) {
  switch(type,
    "application/x-jsonlines" = ,
    "application/jsonl" = "application/jsonlines",
    "text/x-csv" = "text/csv",
    type
  )
}

#' The response type: the first acceptable entry of Accept; a missing or */* Accept means
#' SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT when set, else the request's own content type.
#' `supported` is NULL when deploy.R writes its own output (any type may be asked for).
#' @noRd
choose_accept <- function(accept, content_type, supported = SUPPORTED_TYPES) {
  if (isTRUE(accept %in% (supported %||% SUPPORTED_TYPES))) {
    return(accept) # the usual Accept: one supported type, as sent
  }
  if (is.null(accept) || !grepl("[^[:space:]]", accept)) {
    return(default_accept(content_type))
  }
  type <- first_acceptable(accept, supported)
  if (type == "*/*") default_accept(content_type) else type
}

#' The first entry of Accept that is supported (or "*/*" for a wildcard first); a 415 for none.
#' @noRd
first_acceptable <- function(accept, supported) {
  for (entry in strsplit(accept, ",", fixed = TRUE)[[1]]) {
    type <- normalise_type(media_type(entry))
    if (type %in% c("*/*", "")) {
      return("*/*")
    }
    if (is.null(supported) || type %in% supported) {
      return(type)
    }
  }
  http_error(415, paste0("Accept '", accept, "' is not supported; use one of ", paste(supported, collapse = ", ")))
}

#' The response type when Accept leaves it open.
#' @noRd
default_accept <- function(content_type) {
  normalise_type(media_type(Sys.getenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", content_type)))
}

# ---- CSV: data.table's reader and writer, exact to the last bit of a double ---------------------

# 10^0 .. 10^22, each exactly a double (products of exact values).
POWERS_OF_TEN <- cumprod(c(1, rep(10, 22)))

#' Decimal texts as the doubles nearest to them (correctly rounded, as C's strtod and every client's
#' parser do; R's as.numeric and fread's reader miss by one unit in the last place now and then).
#' `approx` is such a near reading (fread's or R's). A plain decimal of up to 15 digits takes
#' Clinger's fast path: its digits as a whole number M (< 2^53, so round(approx * 10^decimals)
#' recovers it exactly) over 10^decimals (exact) is one IEEE division, hence correctly rounded.
#' Other decimals (an exponent, more digits) go through jsonlite's parser (C strtod); NA, Inf, NaN
#' and hexadecimal texts keep R's reading, which is exact for them; so do texts that are no number
#' in JSON's sense though R reads them, such as "1e".
#' @noRd
exact_doubles <- function(text, approx = suppressWarnings(as.numeric(text))) {
  value <- approx
  finite <- which(is.finite(approx) & !is.na(text))
  text <- text[finite]
  point <- regexpr(".", text, fixed = TRUE)
  digits <- nchar(text) - (point > 0) - (startsWith(text, "-") | startsWith(text, "+"))
  other <- grepl("[eExX]", text, perl = TRUE) # an exponent, or hexadecimal
  fast <- !other & digits <= 15
  scale <- POWERS_OF_TEN[pmax(0, nchar(text[fast]) - point[fast]) * (point[fast] > 0) + 1]
  magnitude <- round(abs(approx[finite[fast]]) * scale) / scale
  value[finite[fast]] <- ifelse(startsWith(text[fast], "-"), -magnitude, magnitude) # -0 too
  # (R also reads texts that are no JSON number at all, such as "1e": they keep R's reading)
  slow <- which(!fast & grepl("^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?$", text, perl = TRUE))
  slow <- slow[abs(approx[finite[slow]]) < 1e308] # strtod's overflow is an error in jsonlite: keep R's Inf
  if (length(slow) > 0) {
    json <- sub("^[+]", "", text[slow], perl = TRUE)
    json <- sub("^(-?)[.]", "\\10.", json, perl = TRUE) # .5 -> 0.5
    json <- sub("[.]($|[eE])", "\\1", json, perl = TRUE) # 5. -> 5
    json <- sub("^(-?)0+([0-9])", "\\1\\2", json, perl = TRUE) # JSON has no leading zeros
    whole <- !grepl("[.eE]", json, perl = TRUE)
    json[whole] <- paste0(json[whole], ".0") # a double, not an integer
    value[finite[slow]] <- jsonlite::parse_json(paste0("[", paste(json, collapse = ","), "]"), simplifyVector = TRUE)
  }
  value
}

#' `digits` significant digits of x rounded up (away from zero) instead of to the nearest: for a
#' power of two, whose lower neighbour is nearer than its upper one, the shortest text that reads
#' back may lie above it though the nearest one does not read back.
#' @noRd
rounded_away <- function(x, digits) {
  parts <- regmatches(sprintf("%.20e", x), regexec("^(-?)([0-9])[.]([0-9]+)e([-+][0-9]+)$", sprintf("%.20e", x)))
  vapply(parts, function(p) {
    mantissa <- as.integer(strsplit(paste0(p[[3]], substr(p[[4]], 1, digits - 1)), "")[[1]])
    i <- digits
    repeat { # add one in the last place, carrying
      if (i == 0) return(NA_character_) # 99..9 + 1: leave it to 17 digits
      if (mantissa[[i]] < 9) {
        mantissa[[i]] <- mantissa[[i]] + 1L
        break
      }
      mantissa[[i]] <- 0L
      i <- i - 1
    }
    sprintf("%s%d.%se%s", p[[2]], mantissa[[1]], paste(mantissa[-1], collapse = ""), p[[5]])
  }, character(1))
}

#' Which of `candidate` (x at `digits` significant digits, nearest) read back as x; for a power of
#' two that does not, the text rounded up instead may (rounded_away), and replaces it.
#' @noRd
read_back <- function(x, candidate, digits) {
  same <- exact_doubles(candidate) == x
  power_of_two <- which(!same & x != 0 & log2(abs(x)) == round(log2(abs(x))))
  if (length(power_of_two) > 0) {
    above <- rounded_away(x[power_of_two], digits)
    fits <- !is.na(above) & exact_doubles(above) == x[power_of_two]
    candidate[power_of_two][fits] <- sub("([.]?0+)(e|$)", "\\2", above[fits])
    same[power_of_two][fits] <- TRUE
  }
  list(same = same, text = candidate)
}

#' Doubles as the shortest decimal texts that read back as the same doubles (15, 16 or 17
#' significant digits; a subnormal number, with fewer bits, may need fewer); NA and NaN as NA,
#' infinities as Inf and -Inf.
#' @noRd
shortest_doubles <- function(x) {
  text <- as.character(x) # NA, NaN, Inf and -Inf as R writes them
  text[is.nan(x)] <- NA
  finite <- which(is.finite(x))
  subnormal <- finite[x[finite] != 0 & abs(x[finite]) < .Machine$double.xmin]
  for (todo in list(setdiff(finite, subnormal), subnormal)) {
    for (digits in if (identical(todo, subnormal)) 1:16 else 15:16) {
      if (length(todo) == 0) break
      tried <- read_back(x[todo], sprintf(paste0("%.", digits, "g"), x[todo]), digits)
      text[todo[tried$same]] <- tried$text[tried$same]
      todo <- todo[!tried$same]
    }
    text[todo] <- sprintf("%.17g", x[todo]) # 17 significant digits always read back
  }
  text
}

csv_error <- function(e) http_error(400, paste("malformed text/csv body:", conditionMessage(e)))

#' The fields of a CSV body, as text: split in C where every line holds plain fields, as many as
#' the first line (no quotes, tabs or lone CRs, no blank lines: read.csv's reading of them), else
#' read.csv (quotes and doubled quotes, blank lines, and read.csv's own message for a malformed
#' body). (fread, used here before, took a body without a line break for a file name to read.)
#' @noRd
csv_fields <- function(body) {
  fields <- .Call(rsm_csv_plain_fields, body, MAX_CSV_COLUMNS)
  if (!is.null(fields)) {
    names(fields) <- paste0("V", seq_along(fields))
    return(structure(fields, row.names = c(NA_integer_, -length(fields[[1]])), class = "data.frame"))
  }
  tryCatch(
    utils::read.csv(
      text = body, header = FALSE, colClasses = "character", na.strings = "NA", strip.white = TRUE,
      fill = FALSE, blank.lines.skip = TRUE, comment.char = ""
    ),
    error = csv_error, warning = csv_error
  )
}

#' A CSV body as a data frame, with read.csv's meaning (no header, columns V1..Vn, types by
#' type.convert, NA for "NA" and for empty numeric fields, quotes and doubled quotes, blank lines
#' skipped, every row as long as the first), with doubles exact. A body of numbers only (the usual
#' request, and batch transform's large ones) is read in one pass in C (src/csv.c), from its bytes
#' when it comes as bytes (request_body), so it is never made a string; any other is made text
#' (text_body: 400 for NUL bytes, invalid UTF-8) and goes through parse_csv_fields, with the same
#' meaning.
#' @noRd
parse_csv <- function(body) {
  numeric <- .Call(rsm_read_numeric_csv, body, MAX_CSV_COLUMNS)
  if (is.null(numeric)) {
    if (.Call(rsm_csv_widest_record, body, MAX_CSV_COLUMNS) > MAX_CSV_COLUMNS) {
      http_error(413, sprintf(paste(
        "the text/csv body has a row of more than %d columns, more than the default input_fn reads",
        "(define input_fn in deploy.R to read wider rows)"
      ), MAX_CSV_COLUMNS))
    }
    if (is.raw(body)) body <- text_body(body)
    if (!grepl("[^[:space:]]", body, perl = TRUE)) http_error(400, "empty text/csv body")
    return(parse_csv_fields(body))
  }
  names(numeric) <- paste0("V", seq_along(numeric))
  attr(numeric, "row.names") <- c(NA_integer_, -length(numeric[[1]]))
  class(numeric) <- "data.frame"
  numeric
}

#' parse_csv's general path: the fields as text (csv_fields), typed as type.convert
#' would, doubles made exact (exact_doubles).
#' @noRd
parse_csv_fields <- function(body) {
  fields <- csv_fields(body)
  # The whole frame at once, each column's type decided for all columns together: a row of many
  # columns costs what a column of as many rows costs (a frame grown column by column was copied
  # each time).
  columns <- convert_columns(unclass(fields), .row_names_info(fields, 2L))
  attributes(columns) <- attributes(fields)
  columns
}

#' Columns of `rows` values each, made one vector (`values`), as a list of columns again.
#' @noRd
split_columns <- function(values, rows, count) {
  if (rows == 1) {
    return(as.list(values))
  }
  levels <- as.character(seq_len(count))
  unname(split(values, structure(rep(seq_len(count), each = rows), levels = levels, class = "factor")))
}

# type.convert's logical texts (as.logical takes "true", "True"... too; type.convert does not).
LOGICAL_TEXTS <- c("T", "F", "TRUE", "FALSE")

#' Columns of text typed as type.convert(as.is = TRUE, na.strings = "NA") types each one (logical,
#' integer, double made exact, complex or text), decided for all columns at once from what each
#' field can be: a column is text as soon as one field is no number (or is a logical among
#' numbers), logical when every field is a logical or missing, integer or double when every field
#' is a plain decimal (and every one a whole number that fits, for integer). The rare column with
#' another numeral (hexadecimal, Inf, NaN, a complex number, blanks R skips) is type.convert's own.
#' @noRd
convert_columns <- function(text, rows) {
  count <- length(text)
  value <- unlist(text, use.names = FALSE)
  by_column <- function(field) colSums(matrix(field, rows)) > 0
  number <- suppressWarnings(as.numeric(value))
  read <- !is.na(number) | is.nan(number) # R reads it as a number (so does type.convert, mostly)
  # Plain decimals: type.convert reads them as R does. Any other numeral R reads (hexadecimal, Inf,
  # NaN, "1e", blanks around) is left to type.convert, as are the texts R does not read but
  # type.convert may: complex numbers ("1i"), and "NA" followed by blanks.
  decimal <- read
  # (of what R reads, the plain decimals are those of digits, point, sign and exponent only, the
  # exponent with its digits: R reads "1e" as 1)
  decimal[read] <- !grepl("[^-+.0-9eE]|[eE][-+]?$", value[read], perl = TRUE)
  integer <- decimal
  integer[decimal] <- !grepl("[.eE]", value[decimal], perl = TRUE) & abs(number[decimal]) <= .Machine$integer.max
  missing <- is.na(value) | !nzchar(value)
  rest <- !read & !missing
  logical <- rest
  logical[rest] <- value[rest] %in% LOGICAL_TEXTS
  rest <- rest & !logical
  odd <- read & !decimal
  odd[rest] <- grepl(
    "^[[:space:]]*(NA|i[[:space:]]*$)|^[[:space:]]*[-+]?[0-9.INin].*i[[:space:]]*$", value[rest],
    perl = TRUE
  )
  word <- rest & !odd
  as_text <- by_column(word) | (by_column(logical) & by_column(decimal | odd))
  as_logical <- !as_text & !by_column(decimal | odd)
  by_r <- !as_text & by_column(odd)
  as_integer <- !as_text & !as_logical & !by_r & !by_column(decimal & !integer)
  as_double <- !as_text & !as_logical & !by_r & !as_integer
  columns <- text
  of <- function(kind) rep(kind, each = rows)
  if (any(as_logical)) columns[as_logical] <- split_columns(as.logical(value[of(as_logical)]), rows, sum(as_logical))
  if (any(as_integer)) columns[as_integer] <- split_columns(as.integer(number[of(as_integer)]), rows, sum(as_integer))
  if (any(as_double)) {
    texts <- value[of(as_double)]
    texts[!nzchar(texts)] <- NA
    columns[as_double] <- split_columns(exact_doubles(texts, number[of(as_double)]), rows, sum(as_double))
  }
  for (j in which(by_r)) {
    typed <- utils::type.convert(text[[j]], as.is = TRUE, na.strings = "NA")
    if (is.double(typed)) typed <- exact_doubles(replace(text[[j]], !nzchar(text[[j]]), NA), typed)
    columns[[j]] <- typed
  }
  columns
}

is_record <- function(x) {
  is.list(x) && length(x) > 0 && !is.null(names(x)) &&
    all(vapply(x, function(v) is.atomic(v) && length(v) == 1, logical(1)))
}

#' Records as a data frame: a list of objects or of arrays, one object, or one scalar.
#' @noRd
as_frame <- function(x) {
  if (is.data.frame(x)) {
    return(x)
  }
  if (is.matrix(x)) {
    return(as.data.frame(x, stringsAsFactors = FALSE))
  }
  if (is.list(x) && length(x) > 0 && !is.null(names(x))) {
    x[vapply(x, is.null, logical(1))] <- list(NA) # one object's JSON null: a missing value, as in a list of them
  }
  if (is_record(x)) {
    return(as.data.frame(x, stringsAsFactors = FALSE, optional = TRUE))
  }
  if (is.atomic(x) && length(x) > 0 && length(dim(x)) < 2) { # one row; an array of 3+ dims is no record
    return(as.data.frame(t(x), stringsAsFactors = FALSE))
  }
  http_error(400, "expected records: a list of objects or arrays, one object, or {\"instances\": [...]}")
}

#' jsonlite::parse_json, never fromJSON: fromJSON reads a body such as "/etc/passwd" as a file name.
#' @noRd
parse_json_text <- function(text, what) {
  tryCatch(jsonlite::parse_json(text, simplifyVector = TRUE),
    error = function(e) http_error(400, paste0("malformed ", what, ": ", conditionMessage(e)))
  )
}

parse_json_body <- function(body) {
  value <- parse_json_text(body, "application/json body")
  if (is.list(value) && !is.data.frame(value) && !is.null(names(value)) && "instances" %in% names(value)) {
    value <- value$instances
  }
  as_frame(value)
}

parse_jsonlines <- function(body) {
  lines <- strsplit(body, "\r?\n")[[1]]
  lines <- lines[nzchar(trimws(lines))]
  if (length(lines) == 0) http_error(400, "empty application/jsonlines body")
  rows <- lapply(seq_along(lines), function(i) {
    as_frame(parse_json_text(lines[[i]], paste("application/jsonlines line", i)))
  })
  tryCatch(do.call(rbind, rows), error = function(e) http_error(400, "application/jsonlines records differ in shape"))
}

default_model_fn <- function(model_dir) {
  path <- file.path(model_dir, "model.rds")
  if (!file.exists(path)) stop("no model.rds in ", model_dir, "; define model_fn(model_dir) in deploy.R")
  readRDS(path)
}

default_input_fn <- function(body, content_type) {
  switch(normalise_type(media_type(content_type)),
    "text/csv" = parse_csv(body),
    "application/json" = parse_json_body(body),
    "application/jsonlines" = parse_jsonlines(body),
    http_error(415, paste0(
      "Content-Type '", content_type, "' is not supported; use one of ", paste(SUPPORTED_TYPES, collapse = ", ")
    ))
  )
}

#' The prediction as CSV: NA as an empty field, doubles exact (the shortest text that reads back as
#' the same double), text quoted only where it must be. A vector or data frame of numbers,
#' logicals, text and factors (the usual prediction) is written in one pass in C (src/csv.c);
#' anything else (dates, times, other classes) by to_csv_fields, the same way.
#' @noRd
to_csv <- function(prediction) {
  columns <- if (is.data.frame(prediction)) {
    prediction
  } else if (is.atomic(prediction) && is.null(dim(prediction))) {
    list(prediction)
  }
  text <- if (!is.null(columns)) .Call(rsm_write_csv, columns, !batch_transform())
  text %||% to_csv_fields(prediction)
}

#' to_csv's general path, by data.table's writer: fields quoted only when they must be (a comma,
#' quote or line break in them), NA as an empty field, factors by their labels, doubles exact
#' (shortest_doubles, the same texts as the C path's).
#' @noRd
to_csv_fields <- function(prediction) {
  frame <- if (is.data.frame(prediction)) prediction else as.data.frame(prediction, stringsAsFactors = FALSE)
  if (nrow(frame) == 0) {
    return("")
  }
  for (column in seq_along(frame)) {
    x <- frame[[column]]
    if (is.factor(x)) x <- frame[[column]] <- as.character(x) # by its labels
    if (is.double(x) && !is.object(x)) frame[[column]] <- shortest_doubles(x)
    if (is.character(x)) frame[[column]][!is.na(x) & !nzchar(x)] <- NA # an empty field, as for NA
  }
  path <- tempfile(fileext = ".csv")
  on.exit(unlink(path))
  data.table::fwrite(frame, path, col.names = FALSE, na = "", quote = "auto", eol = "\n", nThread = 1)
  bytes <- readBin(path, "raw", file.size(path))
  if (batch_transform() && length(bytes) > 0) bytes <- bytes[-length(bytes)] # see records_text
  text <- rawToChar(bytes)
  Encoding(text) <- "UTF-8"
  text
}

# One record per line. Batch transform's AssembleWith "Line" ends every response with a newline
# itself, so there the last one is left out: each input line gives exactly one output line, with
# SingleRecord as with MultiRecord.
records_text <- function(lines) {
  text <- paste0(lines, "\n", collapse = "")
  if (batch_transform()) sub("\n$", "", text) else text
}

to_jsonlines <- function(prediction) {
  rows <- if (is.data.frame(prediction)) {
    lapply(seq_len(nrow(prediction)), function(i) as.list(prediction[i, , drop = FALSE]))
  } else {
    as.list(prediction)
  }
  lines <- vapply(rows, function(row) {
    as.character(jsonlite::toJSON(row, auto_unbox = TRUE, digits = NA, na = "null"))
  }, character(1))
  records_text(lines)
}

default_output_fn <- function(prediction, accept) {
  switch(accept,
    "text/csv" = to_csv(prediction),
    "application/json" = as.character(jsonlite::toJSON(
      list(predictions = prediction),
      digits = NA, dataframe = "rows", na = "null"
    )),
    "application/jsonlines" = to_jsonlines(prediction),
    http_error(415, paste0(
      "Accept '", accept, "' is not supported; use one of ", paste(SUPPORTED_TYPES, collapse = ", ")
    ))
  )
}

#' deploy.R from the model (so a retrained model carries its serving code), else from the image.
#' @noRd
find_deploy_script <- function(model_dir) {
  candidates <- c(file.path(model_dir, "code", "deploy.R"), file.path(sm_path("code"), "deploy.R"))
  found <- candidates[file.exists(candidates)]
  if (length(found) == 0) stop("no deploy.R in ", paste(dirname(candidates), collapse = " or "))
  found[[1]]
}

#' What deploy.R sees besides its own definitions: the package's exported names (http_error), then
#' the global environment and the attached packages. The package's internals stay out of reach, so a
#' handler file can neither call nor replace them.
#' @noRd
handler_parent_env <- function() {
  exported <- new.env(parent = globalenv())
  for (name in getNamespaceExports("rsagemaker")) {
    assign(name, getExportedValue("rsagemaker", name), envir = exported)
  }
  lockEnvironment(exported, bindings = TRUE)
  exported
}

load_handlers <- function(deploy_script, model_dir = sm_path("model")) {
  handlers <- new.env(parent = handler_parent_env())
  owd <- setwd(dirname(deploy_script)) # deploy.R may source its helpers by relative path
  on.exit(setwd(owd))
  sys.source(deploy_script, envir = handlers)
  defined <- function(name) {
    if (exists(name, envir = handlers, inherits = FALSE)) get(name, envir = handlers) else NULL
  }
  h <- list(
    model_fn = defined("model_fn") %||% default_model_fn,
    # The default input_fn checks requests against the model's input prototype (prototype.R),
    # unless deploy.R says `check_input_prototype <- FALSE`.
    input_fn = defined("input_fn") %||%
      prototype_input_fn(if (isFALSE(defined("check_input_prototype"))) NULL else read_input_prototype(model_dir)),
    predict_fn = defined("predict_fn"),
    output_fn = defined("output_fn") %||% default_output_fn,
    transform_fn = defined("transform_fn"),
    # Only the defaults limit the media types; user handlers decide for themselves.
    own_input = !is.null(defined("input_fn")) || !is.null(defined("transform_fn")),
    own_output = !is.null(defined("output_fn")) || !is.null(defined("transform_fn"))
  )
  if (is.null(h$predict_fn) && is.null(h$transform_fn)) {
    stop(deploy_script, " defines neither predict_fn nor transform_fn")
  }
  h
}

call_handler <- function(fn, ..., context) {
  if ("context" %in% names(formals(fn))) fn(..., context = context) else fn(...)
}

json_response <- function(status, message) {
  # A message may quote the body, cut at a byte count (yajl's parse errors): keep it valid UTF-8.
  if (!validUTF8(message)) message <- gsub("[\x80-\xff]", "?", message, useBytes = TRUE)
  if (nchar(message) > MAX_ERROR_MESSAGE_CHARS) message <- paste0(substr(message, 1, MAX_ERROR_MESSAGE_CHARS), "...")
  list(
    status = as.integer(status), headers = list("Content-Type" = "application/json"),
    body = as.character(jsonlite::toJSON(list(error = enc2utf8(message)), auto_unbox = TRUE))
  )
}

execution_parameters <- function() {
  list(
    MaxConcurrentTransforms = as.integer(env_number("SAGEMAKER_MODEL_SERVER_WORKERS", 1)),
    BatchStrategy = Sys.getenv("SAGEMAKER_BATCH_STRATEGY", "MULTI_RECORD"),
    # What SageMaker set (0: unlimited), as SageMaker's own containers report it.
    MaxPayloadInMB = as.integer(if (batch_transform()) batch_max_payload_mb() else max_payload_bytes() / MB)
  )
}

#' The request body: a UTF-8 string for a text type, else the raw bytes as they came; always the
#' bytes with `as_bytes`.
#' @noRd
request_body <- function(req, content_type = "application/json", as_bytes = FALSE) {
  body_raw <- req$body
  if (length(body_raw) > max_payload_bytes()) {
    http_error(413, sprintf(
      "payload of %.0f bytes exceeds the limit of %.0f bytes", length(body_raw), max_payload_bytes()
    ))
  }
  if (as_bytes || !is_text_type(content_type)) {
    return(body_raw)
  }
  text_body(body_raw)
}

#' A text body's bytes as a UTF-8 string: 400 for NUL bytes or invalid UTF-8.
#' @noRd
text_body <- function(bytes) {
  # rawToChar refuses a NUL byte (its only error here: a body is far below R's 2^31 - 1 bytes).
  body <- tryCatch(rawToChar(bytes), error = function(e) http_error(400, "the body contains NUL bytes"))
  Encoding(body) <- "UTF-8"
  if (!validUTF8(body)) http_error(400, "the body is not valid UTF-8")
  body
}

response_body <- function(result) {
  if (is.raw(result)) {
    return(result)
  }
  if (is.character(result)) {
    return(enc2utf8(if (length(result) == 1 && !is.na(result)) result else paste(result, collapse = "")))
  }
  stop("output_fn/transform_fn must return a character string or a raw vector, not ", class(result)[[1]])
}

invoke <- function(handlers, model, req) {
  content_type <- req$HTTP_CONTENT_TYPE %||% "application/json"
  type <- normalise_type(media_type(content_type))
  if (!handlers$own_input && !type %in% SUPPORTED_TYPES) {
    default_input_fn("", content_type) # raises the 415
  }
  accept <- choose_accept(req$HTTP_ACCEPT, content_type, if (handlers$own_output) NULL else SUPPORTED_TYPES)
  # The default input_fn reads CSV from the bytes themselves (parse_csv).
  body <- request_body(req, content_type, as_bytes = !handlers$own_input && type == "text/csv")
  context <- new.env()
  context$custom_attributes <- req$HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES
  context$response_custom_attributes <- NULL
  result <- if (!is.null(handlers$transform_fn)) {
    call_handler(handlers$transform_fn, model, body, content_type, accept, context = context)
  } else {
    data <- call_handler(handlers$input_fn, body, content_type, context = context)
    prediction <- call_handler(handlers$predict_fn, data, model, context = context)
    call_handler(handlers$output_fn, prediction, accept, context = context)
  }
  headers <- list("Content-Type" = accept)
  if (!is.null(context$response_custom_attributes)) {
    headers[["X-Amzn-SageMaker-Custom-Attributes"]] <- paste(context$response_custom_attributes, collapse = ",")
  }
  list(status = 200L, headers = headers, body = response_body(result))
}

#' POST /invocations under a time limit: R stops the handlers at SAGEMAKER_MODEL_SERVER_TIMEOUT (at
#' its next interrupt check), so the worker is free again; nginx's own timeout, a little longer,
#' covers code that never checks.
#' @noRd
invoke_with_timeout <- function(handlers, model, req) {
  timeout <- request_timeout_seconds()
  started <- Sys.time()
  setTimeLimit(elapsed = timeout, transient = FALSE)
  on.exit(setTimeLimit(elapsed = Inf, transient = FALSE))
  # A calling handler (no second tryCatch per request): R's "reached elapsed time limit" error
  # becomes the 504 that serving_app's tryCatch answers.
  withCallingHandlers(invoke(handlers, model, req), error = function(e) {
    if (!inherits(e, "http_error") && as.numeric(difftime(Sys.time(), started, units = "secs")) >= timeout - 0.1) {
      http_error(504, sprintf("the model server timed out after %g s (SAGEMAKER_MODEL_SERVER_TIMEOUT)", timeout))
    }
  })
}

#' `extra_routes(req)`: more routes (the multi-model API, multi_model.R), tried first; NULL for a
#' request that is not one of them.
#' @noRd
serving_app <- function(handlers, model, extra_routes = NULL) {
  list(call = function(req) {
    route <- paste(req$REQUEST_METHOD, req$PATH_INFO)
    tryCatch(
      (if (!is.null(extra_routes)) extra_routes(req)) %||% switch(route,
        "GET /ping" = list(status = 200L, headers = list("Content-Type" = "text/plain"), body = ""),
        "POST /invocations" = capture_invocation(req, invoke_with_timeout(handlers, model, req)),
        "GET /execution-parameters" = list(
          status = 200L, headers = list("Content-Type" = "application/json"),
          body = as.character(jsonlite::toJSON(execution_parameters(), auto_unbox = TRUE))
        ),
        if (req$PATH_INFO %in% c("/ping", "/invocations", "/execution-parameters")) {
          json_response(405, paste("method", req$REQUEST_METHOD, "not allowed on", req$PATH_INFO))
        } else {
          json_response(404, paste("no route for", req$PATH_INFO))
        }
      ),
      http_error = function(e) {
        if (e$status >= 500) message("Error in ", route, ": ", conditionMessage(e))
        json_response(e$status, conditionMessage(e))
      },
      error = function(e) {
        message("Error in ", route, ": ", conditionMessage(e))
        json_response(500, paste("error in the model code:", conditionMessage(e)))
      }
    )
  })
}
