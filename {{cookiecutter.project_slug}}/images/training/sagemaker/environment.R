# What SageMaker gives a training container: the /opt/ml layout, the JSON files under
# /opt/ml/input/config, and the SM_* variables that aws/sagemaker-training-toolkit computes from them
# (SageMaker itself sets none). Names and encodings follow the toolkit (environment.py, mapping.py)
# so that scripts written for it run unchanged.
#
# The toolkit is Python: it decodes values with json.loads, writes variables with
# json.dumps(sort_keys=True, separators=(",", ":")) and command-line values with str(). To give
# byte-for-byte the same text, JSON is read here into values that remember their Python type
# (int or float, list or dict, None) and written back the way Python would.

# Only tests move the root: SAGEMAKER_BASE_DIR is the toolkit's own name for this override.
sm_base_dir <- function() {
  base <- sub("(.)/+$", "\\1", Sys.getenv("SAGEMAKER_BASE_DIR", "/opt/ml"))
  if (nzchar(base)) base else "/opt/ml"
}
sm_path <- function(...) file.path(sm_base_dir(), ...)

`%||%` <- function(a, b) if (is.null(a)) b else a

# Hyperparameters the SDK sets for the container (the toolkit's params.SAGEMAKER_HYPERPARAMETERS).
# They and every other `sagemaker_` key are kept from the user's script; the other `sagemaker_`
# keys are the "framework parameters".
SAGEMAKER_HYPERPARAMETERS <- c(
  "sagemaker_program", "sagemaker_submit_directory", "sagemaker_enable_cloudwatch_metrics",
  "sagemaker_region", "sagemaker_container_log_level", "sagemaker_job_name",
  "default_user_module_name", "_tuning_objective_metric", "sagemaker_s3_output"
)

# ---- JSON with Python's types --------------------------------------------------------------------
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

# ---- configuration files -------------------------------------------------------------------------

read_config_json <- function(name, default = NULL) {
  path <- sm_path("input", "config", name)
  if (!file.exists(path)) {
    if (!is.null(default)) {
      return(default)
    }
    fail("MissingConfig", path, " does not exist")
  }
  text <- paste(readLines(path, warn = FALSE, encoding = "UTF-8"), collapse = "\n")
  tryCatch(
    parse_py_json(text),
    error = function(e) fail("InvalidConfig", path, " is not valid JSON: ", conditionMessage(e))
  )
}

# Every value in hyperparameters.json is a string. In script mode the SDK JSON-encodes each one
# ("\"train.R\"", "10", "true"); without it the user's raw text arrives ("abc"). Decode as the
# toolkit does: JSON first, the raw string when that fails.
decode_hyperparameter <- function(value) {
  tryCatch(parse_py_json(value), error = function(e) value)
}

read_hyperparameters <- function() {
  path <- sm_path("input", "config", "hyperparameters.json")
  raw <- read_config_json("hyperparameters.json", default = py_dict())
  if (!inherits(raw, "py_dict")) {
    fail("InvalidHyperparameters", path, " must hold a JSON object whose values are strings")
  }
  not_strings <- names(raw)[!vapply(raw, function(v) is.character(v) && !inherits(v, "py_int"), logical(1))]
  if (length(not_strings) > 0) {
    fail(
      "InvalidHyperparameters", path, ": every value must be a string, as SageMaker writes them; not a string: ",
      paste(not_strings, collapse = ", "),
      ". Encode values as strings, e.g. \"epochs\": \"10\" (JSON-encoded, as the SageMaker SDK does)."
    )
  }
  py_dict(lapply(raw, decode_hyperparameter))
}

# ---- the toolkit's view of the job ---------------------------------------------------------------

# A value as an environment variable (mapping.to_env_vars): strings as they are, None as "",
# anything else as compact JSON.
env_value <- function(value) {
  if (inherits(value, "py_none") || is.null(value)) {
    return("")
  }
  if (is.character(value) && length(value) == 1 && !inherits(value, "py_int")) {
    return(value)
  }
  to_py_json(value)
}

# The hyperparameters as command-line arguments (mapping.to_cmd_args): sorted keys, "--key" (or
# "-k"), values as Python's str() ("True", "[1, 'a']"), a dict as "k1=v1,k2=v2".
user_args <- function(hyperparameters) {
  keys <- sort(names(hyperparameters), method = "radix")
  unlist(lapply(keys, function(key) {
    name <- if (nchar(key) > 1) paste0("--", key) else if (nzchar(key)) paste0("-", key) else ""
    value <- hyperparameters[[key]]
    text <- if (inherits(value, "py_dict")) {
      inner <- sort(names(value), method = "radix")
      paste(vapply(inner, function(k) paste0(k, "=", py_str(value[[k]])), ""), collapse = ",")
    } else if (inherits(value, "py_none")) {
      ""
    } else {
      py_str(value)
    }
    c(name, text)
  }), use.names = FALSE)
}

config_string <- function(value, what) {
  if (!is.character(value) || length(value) != 1 || inherits(value, "py_int") || !nzchar(value)) {
    fail("InvalidConfig", what, " must be a non-empty string")
  }
  value
}

config_strings <- function(value, what) {
  if (!inherits(value, "py_list") || length(value) == 0) fail("InvalidConfig", what, " must be a non-empty list")
  vapply(value, config_string, "", what = what)
}

count_gpus <- function() {
  if (!nzchar(Sys.which("nvidia-smi"))) {
    return(0L)
  }
  out <- suppressWarnings(tryCatch(system2("nvidia-smi", "--list-gpus", stdout = TRUE, stderr = FALSE),
    error = function(e) character()
  ))
  sum(startsWith(out, "GPU "))
}

count_neuron_cores <- function(instance_type) {
  if (grepl("trn2.48xlarge", instance_type, fixed = TRUE)) {
    return(64L)
  }
  if (!nzchar(Sys.which("neuron-ls"))) {
    return(0L)
  }
  devices <- tryCatch(
    parse_py_json(paste(suppressWarnings(system2("neuron-ls", "-j", stdout = TRUE, stderr = FALSE)), collapse = "")),
    error = function(e) py_list()
  )
  sum(vapply(devices, function(d) as.integer(unclass(d[["nc_count"]] %||% py_int("0"))), 0L))
}

# Everything a training job's code may ask about, gathered once: the toolkit's Environment
# properties (`toolkit`, its dict(self)) plus what the R plumbing needs.
training_environment <- function() {
  all_hyperparameters <- read_hyperparameters()
  keys <- names(all_hyperparameters)
  is_sagemaker <- keys %in% SAGEMAKER_HYPERPARAMETERS | startsWith(keys, "sagemaker_")
  sagemaker_parameters <- all_hyperparameters[is_sagemaker]
  framework_parameters <- py_dict(sagemaker_parameters[!names(sagemaker_parameters) %in% SAGEMAKER_HYPERPARAMETERS])
  hyperparameters <- py_dict(all_hyperparameters[!is_sagemaker])

  input_data_config <- read_config_json("inputdataconfig.json", default = py_dict())
  if (!inherits(input_data_config, "py_dict")) fail("InvalidConfig", "inputdataconfig.json must hold a JSON object")
  resource_config <- read_config_json("resourceconfig.json", default = py_dict(list(
    current_host = "algo-1", hosts = py_list(list("algo-1")), network_interface_name = "eth0"
  )))
  if (!inherits(resource_config, "py_dict")) fail("InvalidConfig", "resourceconfig.json must hold a JSON object")
  hosts <- config_strings(resource_config[["hosts"]], "resourceconfig.json hosts")
  current_host <- config_string(resource_config[["current_host"]], "resourceconfig.json current_host")
  if (!current_host %in% hosts) {
    fail("InvalidConfig", "resourceconfig.json: current_host '", current_host, "' is not one of hosts (",
      paste(hosts, collapse = ", "), ")")
  }

  program <- Sys.getenv("SAGEMAKER_PROGRAM")
  program <- if (nzchar(program)) program else sagemaker_parameters[["sagemaker_program"]] %||% "train.R"
  submit_directory <- sagemaker_parameters[["sagemaker_submit_directory"]]
  instance_type <- resource_config[["current_instance_type"]] %||% "local"
  instance_group <- resource_config[["current_group_name"]] %||% "homogeneousCluster"
  group_configs <- resource_config[["instance_groups"]] %||% py_list()
  group_names <- vapply(group_configs, function(g) g[["instance_group_name"]], "")
  distribution_flags <- c(
    "sagemaker_mpi_enabled", "sagemaker_parameter_server_enabled", "sagemaker_distributed_dataparallel_enabled",
    "sagemaker_pytorch_ddp_enabled", "sagemaker_pytorch_xla_multi_worker_enabled",
    "sagemaker_multi_worker_mirrored_strategy_enabled", "sagemaker_torch_distributed_enabled"
  )
  distributed <- any(vapply(distribution_flags, function(f) isTRUE(framework_parameters[[f]]), logical(1)))
  distribution_groups <- framework_parameters[["sagemaker_distribution_instance_groups"]] %||%
    py_list(if (distributed) list(instance_group) else list())
  distribution_hosts <- if (length(group_configs) > 0) {
    in_distribution <- Filter(function(g) g[["instance_group_name"]] %in% unlist(distribution_groups), group_configs)
    unlist(lapply(in_distribution, function(g) unlist(g[["hosts"]])))
  } else {
    hosts
  }
  master_hostname <- if (length(distribution_hosts) > 0) distribution_hosts[[1]] else hosts[[1]]
  current_group <- Filter(function(g) identical(g[["instance_group_name"]], instance_group), group_configs)
  model_parallel <- Sys.getenv("SM_HP_MP_PARAMETERS", NA)
  # The toolkit's `mp and mp != "{}"`: None when unset, "" when empty, else a boolean.
  model_parallel_flag <- function(mp) if (is.na(mp)) py_none else if (!nzchar(mp)) "" else mp != "{}"
  channels <- names(input_data_config)
  optional_env <- function(name) {
    value <- Sys.getenv(name, NA)
    if (is.na(value)) py_none else value
  }

  toolkit <- py_dict(list(
    additional_framework_parameters = framework_parameters,
    channel_input_dirs = py_dict(stats::setNames(as.list(sm_path("input", "data", channels)), channels)),
    current_host = current_host,
    current_instance_group = instance_group,
    current_instance_group_hosts = if (length(current_group) > 0) current_group[[1]][["hosts"]] else py_list(),
    current_instance_type = instance_type,
    distribution_hosts = py_list(as.list(distribution_hosts)),
    distribution_instance_groups = distribution_groups,
    framework_module = optional_env("SAGEMAKER_TRAINING_MODULE"),
    hosts = resource_config[["hosts"]],
    hyperparameters = hyperparameters,
    input_config_dir = sm_path("input", "config"),
    input_data_config = input_data_config,
    input_dir = sm_path("input"),
    instance_groups = py_list(as.list(group_names)),
    instance_groups_dict = py_dict(stats::setNames(as.list(group_configs), group_names)),
    is_hetero = length(group_names) > 1,
    is_master = identical(current_host, master_hostname),
    is_modelparallel_enabled = model_parallel_flag(model_parallel),
    is_smddpmprun_installed = nzchar(Sys.which("smddpmprun")),
    is_smddprun_installed = nzchar(Sys.which("smddprun")),
    job_name = optional_env("TRAINING_JOB_NAME"),
    log_level = sagemaker_parameters[["sagemaker_container_log_level"]] %||% py_int("20"),
    master_hostname = master_hostname,
    model_dir = sm_path("model"),
    module_dir = if (is.null(submit_directory)) sm_path("code") else py_str(submit_directory),
    module_name = sub("\\.py$", "", py_str(program)),
    network_interface_name = resource_config[["network_interface_name"]] %||% "eth0",
    num_cpus = parallel::detectCores(),
    num_gpus = count_gpus(),
    num_neurons = count_neuron_cores(instance_type),
    output_data_dir = sm_path("output", "data"),
    output_dir = sm_path("output"),
    output_intermediate_dir = sm_path("output", "intermediate"),
    resource_config = resource_config,
    topology = resource_config[["topology"]] %||% py_list(),
    user_entry_point = program
  ))

  list(
    toolkit = toolkit,
    code_dir = sm_path("code"),
    model_dir = toolkit$model_dir,
    output_data_dir = toolkit$output_data_dir,
    checkpoint_dir = sm_path("checkpoints"),
    failure_file = sm_path("output", "failure"),
    hyperparameters = hyperparameters,
    sagemaker_parameters = sagemaker_parameters,
    input_data_config = input_data_config,
    channels = sort(channels, method = "radix"),
    channel_dirs = toolkit$channel_input_dirs,
    hosts = hosts,
    current_host = current_host,
    host_rank = match(current_host, hosts) - 1L,
    program = program,
    submit_directory = submit_directory
  )
}

# The SM_* variables the training toolkit exports for the same /opt/ml (Environment.to_env_vars),
# and the variables it sets in its own process, which the user's program inherits.
toolkit_env_vars <- function(env) {
  t <- env$toolkit
  values <- list(
    hosts = t$hosts,
    network_interface_name = t$network_interface_name,
    hps = t$hyperparameters,
    user_entry_point = t$user_entry_point,
    framework_params = t$additional_framework_parameters,
    resource_config = t$resource_config,
    input_data_config = t$input_data_config,
    output_data_dir = t$output_data_dir,
    channels = py_list(as.list(env$channels)),
    current_host = t$current_host,
    current_instance_type = t$current_instance_type,
    current_instance_group = t$current_instance_group,
    current_instance_group_hosts = t$current_instance_group_hosts,
    instance_groups = t$instance_groups,
    instance_groups_dict = t$instance_groups_dict,
    distribution_instance_groups = t$distribution_instance_groups,
    is_hetero = t$is_hetero,
    module_name = t$module_name,
    log_level = t$log_level,
    framework_module = t$framework_module,
    input_dir = t$input_dir,
    input_config_dir = t$input_config_dir,
    output_dir = t$output_dir,
    num_cpus = t$num_cpus,
    num_gpus = t$num_gpus,
    num_neurons = t$num_neurons,
    model_dir = t$model_dir,
    module_dir = t$module_dir,
    training_env = t,
    user_args = py_list(as.list(user_args(env$hyperparameters))),
    output_intermediate_dir = t$output_intermediate_dir
  )
  if (length(t$topology) > 0) values$topology <- t$topology
  for (name in names(t$channel_input_dirs)) values[[paste0("channel_", name)]] <- t$channel_input_dirs[[name]]
  for (name in names(env$hyperparameters)) values[[paste0("hp_", name)]] <- env$hyperparameters[[name]]
  vars <- vapply(values, env_value, character(1))
  names(vars) <- paste0("SM_", toupper(names(values)))
  job_name <- env$sagemaker_parameters[["sagemaker_job_name"]]
  region <- env$sagemaker_parameters[["sagemaker_region"]]
  default_region <- Sys.getenv("AWS_REGION", Sys.getenv("AWS_DEFAULT_REGION"))
  c(
    vars,
    # Set by the toolkit in its own environment (Environment.__init__), so inherited by the program.
    CURRENT_HOST = env$current_host,
    SAGEMAKER_JOB_NAME = if (is.null(job_name)) "" else py_str(job_name),
    SAGEMAKER_REGION = if (is.null(region)) default_region else py_str(region),
    # Not the toolkit's: this host's 0-based position in SM_HOSTS, and where Spot training keeps
    # checkpoints (synced with checkpoint_s3_uri both ways).
    SM_HOST_RANK = as.character(env$host_rank),
    SM_CHECKPOINT_DIR = env$checkpoint_dir
  )
}
