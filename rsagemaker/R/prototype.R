#' The model's input prototype
#'
#' The feature columns a model was trained on (names, types, factor levels), saved with the model by
#' [save_input_prototype()] and checked against every request by the default `input_fn`, so a
#' request with a missing or mistyped column gets a 400 that names it instead of a 500 from deep
#' inside `predict()`. The file, `input-prototype.json`, is JSON, so it can be read without R:
#'
#' ```
#' {"columns": [{"name": "Sepal.Length", "type": "number"}, ...,
#'              {"name": "Species", "type": "string", "levels": ["setosa", ...]}]}
#' ```
#'
#' Types: `number` (double or integer), `integer` (whole numbers), `boolean`, `string` (any text; a
#' factor's levels are recorded, not enforced).
#' @name prototype
#' @keywords internal
#' @concept serving
NULL

INPUT_PROTOTYPE_FILE <- "input-prototype.json"
PROTOTYPE_TYPES <- c("number", "integer", "boolean", "string")

column_type <- function(column) {
  if (is.factor(column) || is.character(column)) {
    return("string")
  }
  if (is.logical(column)) {
    return("boolean")
  }
  if (is.integer(column)) {
    return("integer")
  }
  if (is.numeric(column)) {
    return("number")
  }
  stop("cannot describe a column of class ", class(column)[[1]], " in an input prototype")
}

#' Save the model's input prototype with the model
#'
#' Call it from train.R with the feature columns the model reads (not the target), e.g.
#' `rsagemaker::save_input_prototype(data[features])`. It writes `input-prototype.json` into the
#' model directory; the default input_fn of the serving image then checks every request against it
#' (400 naming a missing or mistyped column; header-less CSV rows by count and type, and they get
#' the prototype's column names). A deploy.R that sets `check_input_prototype <- FALSE` turns the
#' check off; one that defines its own input_fn does its own checking.
#' @param data a data frame with the model's feature columns, in the order the model expects them.
#' @param model_dir where the model is saved (default: SM_MODEL_DIR, as the training job sets it).
#' @return the path of the file written, invisibly.
#' @concept training
#' @examples
#' model_dir <- file.path(tempdir(), "model")
#' # in train.R: the feature columns, not the target (the training job sets model_dir)
#' path <- save_input_prototype(iris[c("Sepal.Length", "Sepal.Width", "Species")], model_dir)
#' cat(readLines(path), sep = "\n")
#' unlink(model_dir, recursive = TRUE)
#' @export
save_input_prototype <- function(data, model_dir = Sys.getenv("SM_MODEL_DIR", sm_path("model"))) {
  if (!is.data.frame(data) || ncol(data) == 0 || is.null(names(data)) || any(!nzchar(names(data)))) {
    stop("save_input_prototype() needs a data frame of the named feature columns")
  }
  columns <- lapply(names(data), function(name) {
    column <- list(name = name, type = column_type(data[[name]]))
    if (is.factor(data[[name]])) column$levels <- I(levels(data[[name]]))
    column
  })
  path <- file.path(model_dir, INPUT_PROTOTYPE_FILE)
  dir.create(model_dir, recursive = TRUE, showWarnings = FALSE)
  writeLines(jsonlite::toJSON(list(columns = columns), auto_unbox = TRUE, pretty = TRUE), path)
  message("Input prototype (", ncol(data), " columns) saved to ", path)
  invisible(path)
}

#' The prototype saved with the model, or NULL when the model has none. A malformed file stops the
#' model from loading (a clear error at start-up rather than wrong answers later).
#' @noRd
read_input_prototype <- function(model_dir) {
  path <- file.path(model_dir, INPUT_PROTOTYPE_FILE)
  if (!file.exists(path)) {
    return(NULL)
  }
  prototype <- tryCatch(jsonlite::read_json(path), error = function(e) {
    stop(path, " is not valid JSON: ", conditionMessage(e), call. = FALSE)
  })
  columns <- prototype$columns
  valid <- is.list(columns) && length(columns) > 0 && all(vapply(columns, function(column) {
    is.character(column$name) && length(column$name) == 1 && isTRUE(column$type %in% PROTOTYPE_TYPES)
  }, logical(1)))
  if (!valid) {
    stop(path, " must hold {\"columns\": [{\"name\": ..., \"type\": one of ",
      paste(PROTOTYPE_TYPES, collapse = ", "), "}, ...]}",
      call. = FALSE
    )
  }
  list(
    names = vapply(columns, function(column) column$name, character(1)),
    types = vapply(columns, function(column) column$type, character(1))
  )
}

#' Whether a column holds values of the prototype's type (missing values fit every type).
#' @noRd
fits_type <- function(column, type) {
  if (!is.atomic(column)) {
    return(FALSE) # a nested JSON object or array in a cell
  }
  present <- column[!is.na(column)]
  if (length(present) == 0) {
    return(TRUE)
  }
  switch(type,
    number = is.numeric(present),
    integer = is.numeric(present) && all(present == round(present)),
    boolean = is.logical(present),
    string = is.atomic(present)
  )
}

describe_value <- function(column) {
  if (!is.atomic(column)) {
    return("a nested value")
  }
  present <- column[!is.na(column)]
  kind <- if (is.factor(present) || is.character(present)) "text" else if (is.logical(present)) "boolean" else "number"
  sprintf("%s (e.g. %s)", kind, encodeString(as.character(present[[1]]), quote = "'"))
}

#' Check parsed request data against the prototype; returns the data, header-less columns named.
#' `positional`: the columns carry no names of their own (CSV rows, JSON arrays).
#' @noRd
check_against_prototype <- function(data, prototype, positional) {
  expected <- prototype$names
  if (positional) {
    if (ncol(data) != length(expected)) {
      http_error(400, sprintf(
        "expected %d column%s (%s), got %d", length(expected), if (length(expected) > 1) "s" else "",
        paste(expected, collapse = ", "), ncol(data)
      ))
    }
    names(data) <- expected
  } else {
    missing <- setdiff(expected, names(data))
    if (length(missing) > 0) {
      http_error(400, sprintf(
        "missing column%s %s (the model's input columns: %s)", if (length(missing) > 1) "s" else "",
        paste0("'", missing, "'", collapse = ", "), paste(expected, collapse = ", ")
      ))
    }
  }
  for (i in seq_along(expected)) {
    column <- data[[expected[[i]]]]
    if (!fits_type(column, prototype$types[[i]])) {
      http_error(400, sprintf(
        "column '%s' should be %s, got %s", expected[[i]], prototype$types[[i]], describe_value(column)
      ))
    }
    if (prototype$types[[i]] == "string" && !is.factor(column)) data[[expected[[i]]]] <- as.character(column)
  }
  data
}

#' Columns that carry no names of their own: as.data.frame() names them V1, V2, ...
#' @noRd
unnamed_columns <- function(data) identical(names(data), paste0("V", seq_len(ncol(data))))

#' The default input_fn, checking each request against the prototype when the model has one.
#' @noRd
prototype_input_fn <- function(prototype) {
  if (is.null(prototype)) {
    return(default_input_fn)
  }
  function(body, content_type) {
    data <- default_input_fn(body, content_type)
    positional <- normalise_type(media_type(content_type)) == "text/csv" || unnamed_columns(data)
    check_against_prototype(data, prototype, positional)
  }
}
