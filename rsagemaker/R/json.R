#' JSON with Python's types
#'
#' The training toolkit is Python: it decodes hyperparameters with `json.loads`, writes `SM_*`
#' variables with `json.dumps(sort_keys=True, separators=(",", ":"))` and command-line values with
#' `str()`. To give byte for byte the same text, JSON is read (by jsonlite) into values that remember
#' their Python type and is written back the way Python would.
#'
#' Values: a string is `character(1)`, true/false `logical(1)`; the rest carry a class: `py_int` (the
#' digits, any size), `py_float` (a double), `py_none`, `py_list` and `py_dict` (a named list in the
#' document's order: Python's `str()` of a dict keeps it).
#' @name python_json
#' @keywords internal
#' @concept utilities
NULL

py_none <- structure(list(), class = "py_none")
py_int <- function(digits) structure(digits, class = "py_int")
py_float <- function(x) structure(x, class = "py_float")
py_list <- function(x = list()) structure(unname(as.list(x)), class = "py_list")
py_dict <- function(x = list()) {
  x <- as.list(x)
  if (is.null(names(x))) names(x) <- character(length(x))
  structure(x, class = "py_dict")
}

# A JSON string token (escapes included), possessive so that long strings cannot exhaust PCRE.
json_string_pattern <- '"(?:[^"\\\\]++|\\\\.)*+"'
# Escapes json.loads accepts but an R string cannot hold: \u0000 and UTF-16 surrogates outside a
# valid pair (a backslash itself escaped, \\u0000, is no escape).
unholdable_escape_patterns <- c(
  nul = "(?<!\\\\)(?:\\\\\\\\)*\\\\u0000",
  lone_high = "(?<!\\\\)(?:\\\\\\\\)*\\\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\\\u[dD][c-fC-F])",
  lone_low = "(?<!\\\\)(?:\\\\\\\\)*(?<!\\\\u[dD][89abAB][0-9a-fA-F]{2})\\\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
python_only_constants <- c("NaN" = NaN, "Infinity" = Inf, "-Infinity" = -Inf)

#' Parse JSON text as Python's `json.loads` does
#'
#' jsonlite parses; the number tokens of the text (jsonlite gives 3000000000 and 3000000000.0 the
#' same double, and rounds integers beyond 2^53) then tell `py_int` from `py_float`. A duplicate
#' key keeps its last value at its first place, as a Python dict does.
#' @param text one string of JSON.
#' @return the value, with the classes above; stop()s with a reason where `json.loads` would raise.
#' @noRd
parse_py_json <- function(text) {
  if (!is.character(text) || length(text) != 1 || is.na(text) || !validUTF8(text)) stop("not UTF-8 text")
  bare <- trimws(text, whitespace = "[ \t\n\r]")
  if (bare %in% names(python_only_constants)) {
    return(py_float(python_only_constants[[bare]])) # json.loads accepts these; jsonlite does not
  }
  outside_strings <- gsub(json_string_pattern, '""', text, perl = TRUE)
  if (grepl("/", outside_strings, fixed = TRUE)) stop("comments are not JSON") # jsonlite allows them
  if (any(vapply(unholdable_escape_patterns, grepl, NA, x = text, perl = TRUE))) {
    stop("a character R cannot hold (NUL or a lone surrogate)")
  }
  numbers <- regmatches(outside_strings, gregexpr("-?[0-9][-+.0-9eE]*", outside_strings))[[1]]
  with_python_types(jsonlite::parse_json(text, simplifyVector = FALSE), numbers)
}

#' jsonlite's value with Python's types. Depth-first in document order, the n-th number met is the
#' n-th number token of the text: its digits say int or float.
#' @noRd
with_python_types <- function(parsed, numbers) {
  seen <- 0L
  typed <- function(x) {
    if (is.null(x)) {
      return(py_none)
    }
    if (is.numeric(x)) {
      seen <<- seen + 1L
      token <- numbers[[seen]]
      return(if (grepl("^-?[0-9]+$", token)) py_int(sub("^-0+$", "0", token)) else py_float(as.double(x)))
    }
    if (!is.list(x)) {
      return(x)
    }
    items <- lapply(x, typed)
    if (is.null(names(x))) {
      return(py_list(items))
    }
    keys <- unique(names(x))
    last <- vapply(keys, function(key) max(which(names(x) == key)), 0L)
    py_dict(stats::setNames(items[last], keys))
  }
  typed(parsed)
}

#' A double as Python's repr(float): the shortest digits that read back the same, fixed notation
#' for exponents -4..15, else d.dddde+XX.
#' @noRd
py_float_repr <- function(x) { # nolint: cyclocomp_linter. One branch per JSON / Python type.
  if (is.nan(x)) {
    return("nan")
  }
  if (is.infinite(x)) {
    return(if (x > 0) "inf" else "-inf")
  }
  sign <- if (x < 0 || (x == 0 && 1 / x < 0)) "-" else ""
  x <- abs(x)
  if (x == 0) {
    return(paste0(sign, "0.0"))
  }
  for (precision in 1:17) {
    text <- sprintf("%.*e", precision - 1L, x)
    if (as.numeric(text) == x) break
  }
  mantissa <- sub("e.*$", "", text)
  digits <- sub("0+$", "", sub(".", "", mantissa, fixed = TRUE))
  if (!nzchar(digits)) digits <- "0"
  point <- as.integer(sub("^.*e", "", text)) + 1L # digits are 0.DIGITS x 10^point
  n <- nchar(digits)
  zeros <- function(k) strrep("0", k)
  body <- if (point > -4 && point <= 16) {
    if (point <= 0) {
      paste0("0.", zeros(-point), digits)
    } else if (point >= n) {
      paste0(digits, zeros(point - n), ".0")
    } else {
      paste0(substr(digits, 1, point), ".", substr(digits, point + 1, n))
    }
  } else {
    exponent <- point - 1L
    paste0(
      substr(digits, 1, 1), if (n > 1) paste0(".", substr(digits, 2, n)) else "",
      "e", if (exponent < 0) "-" else "+", sprintf("%02d", abs(exponent))
    )
  }
  paste0(sign, body)
}

#' json.dumps(x, sort_keys=True, separators=(",", ":")): ASCII only, \uXXXX for the rest.
#' @noRd
to_py_json <- function(x) { # nolint: cyclocomp_linter. One branch per JSON / Python type.
  if (inherits(x, "py_dict")) {
    keys <- names(x)
    if (length(keys) == 0) {
      return("{}")
    }
    order <- order(keys, method = "radix")
    return(paste0("{", paste0(vapply(keys[order], json_quote, ""), ":",
      vapply(x[order], to_py_json, ""),
      collapse = ","
    ), "}"))
  }
  if (inherits(x, "py_list")) {
    return(paste0("[", paste0(vapply(x, to_py_json, ""), collapse = ","), "]"))
  }
  if (inherits(x, "py_none") || is.null(x)) {
    return("null")
  }
  if (inherits(x, "py_int")) {
    return(unclass(x))
  }
  if (inherits(x, "py_float")) {
    x <- unclass(x)
    if (is.nan(x)) {
      return("NaN")
    }
    if (is.infinite(x)) {
      return(if (x > 0) "Infinity" else "-Infinity")
    }
    return(py_float_repr(x))
  }
  if (is.logical(x) && length(x) == 1) {
    return(if (x) "true" else "false")
  }
  if (is.character(x) && length(x) == 1) {
    return(json_quote(x))
  }
  if (is.numeric(x) && length(x) == 1) {
    return(if (is.integer(x)) as.character(x) else py_float_repr(x))
  }
  stop("cannot write ", class(x)[[1]], " as JSON")
}

#' A string as json.dumps writes it: jsonlite's escapes (the same as Python's for ASCII), then
#' \uXXXX (UTF-16, as ensure_ascii does) for every character above "~".
#' @noRd
json_quote <- function(text) {
  quoted <- as.character(jsonlite::toJSON(enc2utf8(text), auto_unbox = TRUE))
  points <- utf8ToInt(quoted)
  if (all(points <= 126)) {
    return(quoted)
  }
  paste(vapply(points, function(point) if (point <= 126) intToUtf8(point) else utf16_escape(point), ""),
    collapse = ""
  )
}

utf16_escape <- function(point) {
  if (point < 0x10000) {
    return(sprintf("\\u%04x", point))
  }
  offset <- point - 0x10000
  sprintf("\\u%04x\\u%04x", 0xD800 + offset %/% 1024, 0xDC00 + offset %% 1024)
}

#' Python's repr() of a str: single quotes unless the text holds ' and no ", escapes for the rest.
#' Non-ASCII letters are kept (printable); C0/C1 controls and U+00A0 are escaped as Python does.
#' @noRd
py_str_repr <- function(text) { # nolint: cyclocomp_linter. One branch per JSON / Python type.
  points <- utf8ToInt(enc2utf8(text))
  quote <- if (39 %in% points && !34 %in% points) 34L else 39L
  parts <- vapply(points, function(point) {
    if (point == 92) {
      return("\\\\")
    }
    if (point == quote) {
      return(paste0("\\", intToUtf8(quote)))
    }
    if (point == 9) {
      return("\\t")
    }
    if (point == 10) {
      return("\\n")
    }
    if (point == 13) {
      return("\\r")
    }
    if (point < 32 || (point >= 127 && point <= 160) || point == 0xAD) {
      return(sprintf("\\x%02x", point))
    }
    intToUtf8(point)
  }, "")
  paste0(intToUtf8(quote), paste(parts, collapse = ""), intToUtf8(quote))
}

#' Python's str(): strings as they are, containers with repr() of their items.
#' @noRd
py_str <- function(x, top = TRUE) { # nolint: cyclocomp_linter. One branch per JSON / Python type.
  if (is.character(x) && length(x) == 1 && !inherits(x, "py_int")) {
    return(if (top) x else py_str_repr(x))
  }
  if (inherits(x, "py_dict")) {
    items <- vapply(seq_along(x), function(i) {
      paste0(py_str_repr(names(x)[[i]]), ": ", py_str(x[[i]], top = FALSE))
    }, "")
    return(paste0("{", paste(items, collapse = ", "), "}"))
  }
  if (inherits(x, "py_list")) {
    return(paste0("[", paste(vapply(x, py_str, "", top = FALSE), collapse = ", "), "]"))
  }
  if (inherits(x, "py_none") || is.null(x)) {
    return("None")
  }
  if (inherits(x, "py_int")) {
    return(unclass(x))
  }
  if (inherits(x, "py_float")) {
    return(py_float_repr(unclass(x)))
  }
  if (is.logical(x) && length(x) == 1) {
    return(if (x) "True" else "False")
  }
  if (is.numeric(x) && length(x) == 1) {
    return(if (is.integer(x)) as.character(x) else py_float_repr(x))
  }
  stop("cannot write ", class(x)[[1]], " as Python text")
}
