# JSON with Python's types, for environment.R.
#
# The training toolkit is Python: it decodes hyperparameters with json.loads, writes SM_* variables
# with json.dumps(sort_keys=True, separators=(",", ":")) and command-line values with str(). To give
# byte-for-byte the same text, JSON is read here into values that remember their Python type
# (int or float, list or dict, None) and written back the way Python would; jsonlite cannot tell
# 1.0 from 1, nor a one-element list from a scalar.

# Values: a string is character(1), true/false logical(1); the rest carry a class:
# py_int (the digits, any size), py_float (a double), py_none, py_list and py_dict (a named list in
# the document's order: Python's str() of a dict keeps it).

py_none <- structure(list(), class = "py_none")
py_int <- function(digits) structure(digits, class = "py_int")
py_float <- function(x) structure(x, class = "py_float")
py_list <- function(x = list()) structure(unname(as.list(x)), class = "py_list")
py_dict <- function(x = list()) {
  x <- as.list(x)
  if (is.null(names(x))) names(x) <- character(length(x))
  structure(x, class = "py_dict")
}

json_token_pattern <- paste0(
  '"(?:[^"\\\\]++|\\\\.)*+"', "|-?(?:0|[1-9][0-9]*)(?:\\.[0-9]+)?(?:[eE][-+]?[0-9]+)?",
  "|true|false|null|NaN|-?Infinity|[][{},:]|[ \t\n\r]+"
)

# Parse JSON text as Python's json.loads does; stop() with a reason when it would raise.
parse_py_json <- function(text) { # nolint: cyclocomp_linter. One branch per JSON / Python type.
  if (!is.character(text) || length(text) != 1 || is.na(text) || !validUTF8(text)) stop("not UTF-8 text")
  matches <- gregexpr(json_token_pattern, text, perl = TRUE)[[1]]
  lengths <- attr(matches, "match.length")
  if (matches[[1]] == -1 || any(matches != cumsum(c(1L, utils::head(lengths, -1)))) ||
    sum(lengths) != nchar(text)) {
    stop("not JSON")
  }
  tokens <- regmatches(text, list(matches))[[1]]
  tokens <- tokens[!grepl("^[ \t\n\r]+$", tokens)]
  if (length(tokens) == 0) stop("empty")
  at <- 1L
  next_token <- function() {
    if (at > length(tokens)) stop("unexpected end")
    at <<- at + 1L
    tokens[[at - 1L]]
  }
  peek <- function() if (at <= length(tokens)) tokens[[at]] else ""
  value <- function() {
    token <- next_token()
    first <- substr(token, 1, 1)
    if (token == "{") {
      out <- list()
      keys <- character()
      if (peek() == "}") {
        next_token()
        return(py_dict())
      }
      repeat {
        key <- next_token()
        if (!startsWith(key, '"')) stop("expected a key")
        key <- json_string(key)
        if (next_token() != ":") stop("expected ':'")
        item <- value()
        seen <- match(key, keys)
        if (is.na(seen)) {
          keys <- c(keys, key)
          out[[length(out) + 1L]] <- item
        } else {
          out[[seen]] <- item # json.loads keeps the last value, at the first key's place
        }
        separator <- next_token()
        if (separator == "}") break
        if (separator != ",") stop("expected ',' or '}'")
      }
      return(py_dict(stats::setNames(out, keys)))
    }
    if (token == "[") {
      out <- list()
      if (peek() == "]") {
        next_token()
        return(py_list())
      }
      repeat {
        out[[length(out) + 1L]] <- value()
        separator <- next_token()
        if (separator == "]") break
        if (separator != ",") stop("expected ',' or ']'")
      }
      return(py_list(out))
    }
    if (first == '"') {
      return(json_string(token))
    }
    switch(token,
      true = TRUE,
      false = FALSE,
      null = py_none,
      "NaN" = py_float(NaN),
      "Infinity" = py_float(Inf),
      "-Infinity" = py_float(-Inf),
      if (grepl("^-?[0-9]+$", token)) {
        py_int(sub("^-0+$", "0", token))
      } else if (grepl("^-?[0-9]", token)) {
        py_float(as.numeric(token))
      } else {
        stop("unexpected '", token, "'")
      }
    )
  }
  result <- value()
  if (at <= length(tokens)) stop("extra data")
  result
}

# The text of a JSON string token, escapes resolved; control characters refused (json.loads is strict).
json_string <- function(token) { # nolint: cyclocomp_linter. One branch per JSON / Python type.
  body <- substr(token, 2, nchar(token) - 1)
  points <- utf8ToInt(body)
  if (any(points < 32)) stop("control character in string")
  if (!any(points == 92)) {
    return(body)
  }
  out <- integer()
  i <- 1L
  while (i <= length(points)) {
    point <- points[[i]]
    if (point != 92) {
      out <- c(out, point)
      i <- i + 1L
      next
    }
    escape <- intToUtf8(points[[i + 1L]])
    simple <- c('"' = 34L, "\\" = 92L, "/" = 47L, b = 8L, f = 12L, n = 10L, r = 13L, t = 9L)
    if (escape %in% names(simple)) {
      out <- c(out, simple[[escape]])
      i <- i + 2L
      next
    }
    hex <- intToUtf8(points[seq(i + 2L, length.out = 4L)])
    if (escape != "u" || !grepl("^[0-9a-fA-F]{4}$", hex)) stop("invalid escape")
    code <- strtoi(hex, 16L)
    i <- i + 6L
    low_hex <- if (i + 5L <= length(points)) intToUtf8(points[i:(i + 5L)]) else ""
    if (code >= 0xD800 && code <= 0xDBFF && grepl("^\\\\u[dD][c-fC-F][0-9a-fA-F]{2}$", low_hex)) {
      code <- 0x10000 + (code - 0xD800) * 1024 + (strtoi(substr(low_hex, 3, 6), 16L) - 0xDC00)
      i <- i + 6L
    }
    if (code == 0 || (code >= 0xD800 && code <= 0xDFFF)) stop("character R cannot hold")
    out <- c(out, code)
  }
  intToUtf8(out)
}

# A double as Python's repr(float): the shortest digits that read back the same, fixed notation
# for exponents -4..15, else d.dddde+XX.
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

# json.dumps(x, sort_keys=True, separators=(",", ":")): ASCII only, \uXXXX for the rest.
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

json_quote <- function(text) { # nolint: cyclocomp_linter. One branch per JSON / Python type.
  points <- utf8ToInt(enc2utf8(text))
  plain <- points >= 32 & points <= 126 & points != 34 & points != 92
  if (all(plain)) {
    return(paste0('"', text, '"'))
  }
  named <- c("34" = '\\"', "92" = "\\\\", "10" = "\\n", "13" = "\\r", "9" = "\\t", "8" = "\\b", "12" = "\\f")
  parts <- vapply(points, function(point) {
    if (point >= 32 && point <= 126 && point != 34 && point != 92) {
      return(intToUtf8(point))
    }
    if (as.character(point) %in% names(named)) {
      return(named[[as.character(point)]])
    }
    if (point >= 0x10000) {
      offset <- point - 0x10000
      return(sprintf("\\u%04x\\u%04x", 0xD800 + offset %/% 1024, 0xDC00 + offset %% 1024))
    }
    sprintf("\\u%04x", point)
  }, "")
  paste0('"', paste(parts, collapse = ""), '"')
}

# Python's repr() of a str: single quotes unless the text holds ' and no ", escapes for the rest.
# Non-ASCII letters are kept (printable); C0/C1 controls and U+00A0 are escaped as Python does.
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

# Python's str(): strings as they are, containers with repr() of their items.
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
