# One serving worker: loads deploy.R and the model once, then answers HTTP on a unix socket (behind
# nginx, see run.sh) or on a TCP port. deploy.R defines handlers in the SageMaker inference
# toolkit's style; every one but predict_fn has a default here:
#   model_fn(model_dir)                -> the model
#   input_fn(body, content_type)       -> data   (body: the raw request body as a character string)
#   predict_fn(data, model)            -> prediction
#   output_fn(prediction, accept)      -> character string (or raw vector) of type `accept`
# or transform_fn(model, body, content_type, accept) instead of the last three. A handler that
# declares a `context` argument also gets the request context (custom attributes in and out).

SUPPORTED_TYPES <- c("text/csv", "application/json", "application/jsonlines")
REALTIME_MAX_PAYLOAD_BYTES <- 6 * 1024 * 1024

# An error with an HTTP status; handlers may raise it too, e.g. http_error(422, "age must be > 0").
http_error <- function(status, message) {
  stop(structure(
    class = c("http_error", "error", "condition"),
    list(message = message, call = NULL, status = as.integer(status))
  ))
}

max_payload_bytes <- function() {
  batch_mb <- suppressWarnings(as.numeric(Sys.getenv("SAGEMAKER_MAX_PAYLOAD_IN_MB", "")))
  if (identical(Sys.getenv("SAGEMAKER_BATCH"), "true") && !is.na(batch_mb) && batch_mb > 0) {
    return(batch_mb * 1024 * 1024)
  }
  REALTIME_MAX_PAYLOAD_BYTES
}

media_type <- function(header) tolower(trimws(sub(";.*$", "", header)))

normalise_type <- function(type) {
  switch(type,
    "application/x-jsonlines" = ,
    "application/jsonl" = "application/jsonlines",
    "text/x-csv" = "text/csv",
    type
  )
}

# The response type: the first supported entry of Accept; a missing or */* Accept means
# SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT when set, else the request's own content type.
choose_accept <- function(accept, content_type, supported = SUPPORTED_TYPES) {
  fallback <- Sys.getenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", content_type)
  if (is.null(accept) || !nzchar(trimws(accept))) {
    return(normalise_type(media_type(fallback)))
  }
  for (entry in strsplit(accept, ",", fixed = TRUE)[[1]]) {
    type <- normalise_type(media_type(entry))
    if (type %in% c("*/*", "")) {
      return(normalise_type(media_type(fallback)))
    }
    if (is.null(supported) || type %in% supported) {
      return(type)
    }
  }
  http_error(415, paste0("Accept '", accept, "' is not supported; use one of ", paste(supported, collapse = ", ")))
}

parse_csv <- function(body) {
  if (!nzchar(trimws(body))) http_error(400, "empty text/csv body")
  tryCatch(
    utils::read.csv(text = body, header = FALSE, stringsAsFactors = FALSE, strip.white = TRUE),
    error = function(e) http_error(400, paste("malformed text/csv body:", conditionMessage(e)))
  )
}

as_frame <- function(x) {
  if (is.data.frame(x)) {
    return(x)
  }
  if (is.matrix(x)) {
    return(as.data.frame(x, stringsAsFactors = FALSE))
  }
  if (is.atomic(x)) {
    return(as.data.frame(t(x), stringsAsFactors = FALSE))
  }
  http_error(400, "JSON body must be a list of records (objects or arrays) or {\"instances\": [...]}")
}

parse_json_body <- function(body) {
  value <- tryCatch(jsonlite::fromJSON(body, simplifyVector = TRUE),
    error = function(e) http_error(400, paste("malformed application/json body:", conditionMessage(e)))
  )
  if (is.list(value) && !is.data.frame(value) && !is.null(value$instances)) value <- value$instances
  as_frame(value)
}

parse_jsonlines <- function(body) {
  lines <- strsplit(body, "\r?\n")[[1]]
  lines <- lines[nzchar(trimws(lines))]
  if (length(lines) == 0) http_error(400, "empty application/jsonlines body")
  rows <- lapply(seq_along(lines), function(i) {
    tryCatch(as_frame(jsonlite::fromJSON(lines[[i]], simplifyVector = TRUE)),
      error = function(e) http_error(400, paste0("malformed application/jsonlines line ", i, ": ", conditionMessage(e)))
    )
  })
  tryCatch(do.call(rbind, rows), error = function(e) http_error(400, "jsonlines records differ in shape"))
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

default_output_fn <- function(prediction, accept) {
  switch(accept,
    "text/csv" = {
      con <- textConnection("out", "w", local = TRUE)
      utils::write.table(as.data.frame(prediction), con, sep = ",", row.names = FALSE, col.names = FALSE, qmethod = "double")
      close(con)
      paste0(paste(out, collapse = "\n"), "\n")
    },
    "application/json" = as.character(jsonlite::toJSON(list(predictions = prediction), digits = NA, dataframe = "rows")),
    "application/jsonlines" = {
      rows <- if (is.data.frame(prediction)) split(prediction, seq_len(nrow(prediction))) else as.list(prediction)
      lines <- vapply(rows, function(r) {
        as.character(jsonlite::toJSON(if (is.data.frame(r)) as.list(r) else r, auto_unbox = TRUE, digits = NA))
      }, character(1))
      paste0(paste(lines, collapse = "\n"), "\n")
    },
    http_error(415, paste0("Accept '", accept, "' is not supported by the default output_fn"))
  )
}

# deploy.R from the model (so a retrained model carries its serving code), else from the image.
find_deploy_script <- function(model_dir) {
  candidates <- c(file.path(model_dir, "code", "deploy.R"), file.path(sm_path("code"), "deploy.R"))
  found <- candidates[file.exists(candidates)]
  if (length(found) == 0) stop("no deploy.R in ", paste(dirname(candidates), collapse = " or "))
  found[[1]]
}

load_handlers <- function(deploy_script) {
  handlers <- new.env(parent = globalenv())
  handlers$http_error <- http_error
  owd <- setwd(dirname(deploy_script)) # deploy.R may source its helpers by relative path
  on.exit(setwd(owd))
  sys.source(deploy_script, envir = handlers)
  pick <- function(name, default = NULL) {
    if (exists(name, envir = handlers, inherits = FALSE)) get(name, envir = handlers) else default
  }
  h <- list(
    model_fn = pick("model_fn", default_model_fn),
    input_fn = pick("input_fn", default_input_fn),
    predict_fn = pick("predict_fn"),
    output_fn = pick("output_fn", default_output_fn),
    transform_fn = pick("transform_fn"),
    custom_types = !is.null(pick("input_fn")) || !is.null(pick("transform_fn"))
  )
  if (is.null(h$predict_fn) && is.null(h$transform_fn)) stop(deploy_script, " defines neither predict_fn nor transform_fn")
  h
}

call_handler <- function(fn, ..., context) {
  if ("context" %in% names(formals(fn))) fn(..., context = context) else fn(...)
}

json_response <- function(status, message) {
  list(
    status = as.integer(status), headers = list("Content-Type" = "application/json"),
    body = as.character(jsonlite::toJSON(list(error = message), auto_unbox = TRUE))
  )
}

execution_parameters <- function() {
  workers <- suppressWarnings(as.integer(Sys.getenv("SAGEMAKER_MODEL_SERVER_WORKERS", "1")))
  list(
    MaxConcurrentTransforms = if (is.na(workers) || workers < 1) 1L else workers,
    BatchStrategy = Sys.getenv("SAGEMAKER_BATCH_STRATEGY", "MULTI_RECORD"),
    MaxPayloadInMB = max(1L, as.integer(max_payload_bytes() / (1024 * 1024)))
  )
}

invoke <- function(handlers, model, req) {
  body_raw <- req$rook.input$read()
  if (length(body_raw) > max_payload_bytes()) {
    http_error(413, sprintf("payload of %d bytes exceeds the limit of %d bytes", length(body_raw), as.integer(max_payload_bytes())))
  }
  content_type <- req$HTTP_CONTENT_TYPE %||% req$CONTENT_TYPE %||% "application/json"
  if (!handlers$custom_types && !normalise_type(media_type(content_type)) %in% SUPPORTED_TYPES) {
    default_input_fn("", content_type) # raises the 415
  }
  accept <- choose_accept(req$HTTP_ACCEPT, content_type, if (handlers$custom_types) NULL else SUPPORTED_TYPES)
  body <- rawToChar(body_raw)
  Encoding(body) <- "UTF-8"
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
    headers[["X-Amzn-SageMaker-Custom-Attributes"]] <- as.character(context$response_custom_attributes)
  }
  list(status = 200L, headers = headers, body = result)
}

serving_app <- function(handlers, model) {
  list(call = function(req) {
    route <- paste(req$REQUEST_METHOD, req$PATH_INFO)
    tryCatch(
      switch(route,
        "GET /ping" = list(status = 200L, headers = list("Content-Type" = "text/plain"), body = ""),
        "POST /invocations" = invoke(handlers, model, req),
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
      http_error = function(e) json_response(e$status, conditionMessage(e)),
      error = function(e) {
        message("Error in /invocations: ", conditionMessage(e))
        json_response(500, paste("model error:", conditionMessage(e)))
      }
    )
  })
}

# Load deploy.R and the model, then serve until killed. A model that fails to load ends the worker
# with a non-zero status before it ever answers, so /ping never says 200 for it.
serve <- function(socket = NULL, port = NULL, ready_file = NULL) {
  model_dir <- sm_path("model")
  started <- Sys.time()
  model <- tryCatch(
    {
      deploy_script <- find_deploy_script(model_dir)
      handlers <- load_handlers(deploy_script)
      call_handler(handlers$model_fn, model_dir, context = new.env())
    },
    error = function(e) {
      message("Model failed to load: ", conditionMessage(e))
      quit(save = "no", status = 1)
    }
  )
  app <- serving_app(handlers, model)
  if (!is.null(socket)) {
    httpuv::startPipeServer(socket, 0L, app)
    where <- socket
  } else {
    httpuv::startServer("0.0.0.0", as.integer(port), app)
    where <- paste0("0.0.0.0:", port)
  }
  message(sprintf(
    "Worker %d serving %s from %s on %s (loaded in %.2f s)", Sys.getpid(), model_dir, deploy_script,
    where, as.numeric(difftime(Sys.time(), started, units = "secs"))
  ))
  for (path in ready_file) file.create(path)
  repeat httpuv::service(1000)
}
