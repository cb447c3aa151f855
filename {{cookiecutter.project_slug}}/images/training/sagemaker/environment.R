# What SageMaker gives a training container: the /opt/ml layout, the JSON files under
# /opt/ml/input/config, and the SM_* variables that aws/sagemaker-training-toolkit computes from them
# (SageMaker itself sets none). Names and encodings follow the toolkit so that scripts written for it
# run unchanged.

# Only tests move the root: SAGEMAKER_BASE_DIR is the toolkit's own name for this override.
sm_base_dir <- function() Sys.getenv("SAGEMAKER_BASE_DIR", "/opt/ml")
sm_path <- function(...) file.path(sm_base_dir(), ...)

# Hyperparameter keys the SDK sets for the container rather than for the user's script.
SAGEMAKER_HYPERPARAMETERS <- c(
  "sagemaker_program", "sagemaker_submit_directory", "sagemaker_enable_cloudwatch_metrics",
  "sagemaker_container_log_level", "sagemaker_job_name", "sagemaker_region",
  "sagemaker_distributed_dataparallel_enabled", "sagemaker_distributed_dataparallel_custom_mpi_options",
  "sagemaker_mpi_enabled", "sagemaker_mpi_num_of_processes_per_host",
  "sagemaker_mpi_custom_mpi_options", "sagemaker_parameter_server_enabled",
  "sagemaker_pytorch_xla_multi_worker_enabled", "sagemaker_pytorch_ddp_enabled",
  "sagemaker_torch_distributed_enabled", "sagemaker_multi_worker_mirrored_strategy_enabled",
  "sagemaker_s3_output", "sagemaker_instance_type", "sagemaker_distribution_instance_groups",
  "sagemaker_network_interface_name"
)

read_config_json <- function(name, default = NULL) {
  path <- sm_path("input", "config", name)
  if (!file.exists(path)) {
    if (!is.null(default)) {
      return(default)
    }
    fail("MissingConfig", path, " does not exist")
  }
  tryCatch(
    jsonlite::fromJSON(path, simplifyVector = FALSE),
    error = function(e) fail("InvalidConfig", path, " is not valid JSON: ", conditionMessage(e))
  )
}

# Every value in hyperparameters.json is a string. In script mode the SDK JSON-encodes each one
# ("\"train.R\"", "10", "true"); without it the user's raw text arrives ("abc"). Decode as the
# toolkit does: JSON first, the raw string when that fails.
decode_hyperparameter <- function(value) {
  if (!is.character(value) || length(value) != 1) {
    return(value)
  }
  tryCatch(jsonlite::parse_json(value, simplifyVector = FALSE), error = function(e) value)
}

read_hyperparameters <- function() {
  raw <- read_config_json("hyperparameters.json", default = structure(list(), names = character()))
  if (!is.list(raw) || (length(raw) > 0 && is.null(names(raw)))) {
    fail("InvalidHyperparameters", "hyperparameters.json must hold a JSON object of strings")
  }
  not_strings <- names(raw)[!vapply(raw, function(v) is.character(v) && length(v) == 1, logical(1))]
  if (length(not_strings) > 0) {
    fail(
      "InvalidHyperparameters", "hyperparameters.json values must be strings; not a string: ",
      paste(not_strings, collapse = ", ")
    )
  }
  lapply(raw, decode_hyperparameter)
}

# JSON as the toolkit writes it: sorted keys, no spaces, every digit kept.
to_compact_json <- function(value) {
  sort_keys <- function(x) {
    if (is.list(x)) {
      if (!is.null(names(x))) x <- x[order(names(x), method = "radix")]
      x[] <- lapply(x, sort_keys)
    }
    x
  }
  as.character(jsonlite::toJSON(sort_keys(value), auto_unbox = TRUE, digits = NA, null = "null"))
}

is_empty_object <- function(x) is.list(x) && length(x) == 0 && !is.null(names(x))

# A value as an environment variable: strings as they are, anything else as compact JSON.
env_value <- function(value) {
  if (is.null(value)) {
    return("")
  }
  if (is.character(value) && length(value) == 1) {
    return(value)
  }
  to_compact_json(value)
}

# The value of a hyperparameter as a command-line argument, as the toolkit's to_cmd_args writes it.
arg_value <- function(value) {
  if (is.list(value) && !is.null(names(value))) {
    keys <- sort(names(value), method = "radix")
    return(paste0(keys, "=", vapply(value[keys], arg_value, character(1)), collapse = ","))
  }
  if (is.logical(value) && length(value) == 1) {
    return(if (value) "True" else "False")
  }
  if (is.character(value) && length(value) == 1) {
    return(value)
  }
  if (is.null(value)) {
    return("")
  }
  to_compact_json(value)
}

user_args <- function(hyperparameters) {
  keys <- sort(names(hyperparameters), method = "radix")
  unlist(lapply(keys, function(key) {
    c(if (nchar(key) > 1) paste0("--", key) else paste0("-", key), arg_value(hyperparameters[[key]]))
  }), use.names = FALSE)
}

# Everything a training job's code may ask about, gathered once.
training_environment <- function() {
  all_hyperparameters <- read_hyperparameters()
  is_sagemaker <- startsWith(names(all_hyperparameters), "sagemaker_")
  input_data_config <- read_config_json("inputdataconfig.json", default = structure(list(), names = character()))
  resource_config <- read_config_json("resourceconfig.json", default = list(
    current_host = "algo-1", hosts = list("algo-1"), network_interface_name = "eth0"
  ))
  hosts <- sort(unlist(resource_config$hosts), method = "radix")
  current_host <- resource_config$current_host
  if (is.null(current_host) || !current_host %in% hosts) {
    fail("InvalidConfig", "resourceconfig.json: current_host must be one of hosts")
  }
  channels <- sort(names(input_data_config), method = "radix")
  list(
    base_dir = sm_base_dir(),
    code_dir = sm_path("code"),
    model_dir = sm_path("model"),
    input_dir = sm_path("input"),
    input_config_dir = sm_path("input", "config"),
    output_dir = sm_path("output"),
    output_data_dir = sm_path("output", "data"),
    output_intermediate_dir = sm_path("output", "intermediate"),
    checkpoint_dir = sm_path("checkpoints"),
    failure_file = sm_path("output", "failure"),
    hyperparameters = all_hyperparameters[!is_sagemaker],
    sagemaker_parameters = all_hyperparameters[is_sagemaker],
    input_data_config = input_data_config,
    channels = channels,
    channel_dirs = stats::setNames(as.list(sm_path("input", "data", channels)), channels),
    resource_config = resource_config,
    hosts = hosts,
    current_host = current_host,
    host_rank = match(current_host, hosts) - 1L,
    network_interface_name = resource_config$network_interface_name %||% "eth0",
    program = all_hyperparameters$sagemaker_program %||% "train.R",
    num_cpus = parallel::detectCores(),
    num_gpus = count_gpus()
  )
}

`%||%` <- function(a, b) if (is.null(a)) b else a

count_gpus <- function() {
  if (!nzchar(Sys.which("nvidia-smi"))) {
    return(0L)
  }
  out <- suppressWarnings(tryCatch(system2("nvidia-smi", "--list-gpus", stdout = TRUE, stderr = FALSE),
    error = function(e) character()
  ))
  sum(startsWith(out, "GPU "))
}

# The SM_* variables the training toolkit exports for the same /opt/ml (environment.py, mapping.py).
toolkit_env_vars <- function(env) {
  framework_params <- env$sagemaker_parameters[!names(env$sagemaker_parameters) %in% SAGEMAKER_HYPERPARAMETERS]
  program <- env$program
  module_name <- if (endsWith(program, ".py")) sub("\\.py$", "", program) else program
  values <- list(
    hosts = as.list(env$hosts),
    network_interface_name = env$network_interface_name,
    hps = named_list(env$hyperparameters),
    user_entry_point = program,
    framework_params = named_list(framework_params),
    resource_config = env$resource_config,
    input_data_config = named_list(env$input_data_config),
    output_data_dir = env$output_data_dir,
    channels = as.list(env$channels),
    current_host = env$current_host,
    module_name = module_name,
    log_level = 20L,
    input_dir = env$input_dir,
    input_config_dir = env$input_config_dir,
    output_dir = env$output_dir,
    num_cpus = env$num_cpus,
    num_gpus = env$num_gpus,
    model_dir = env$model_dir,
    module_dir = env$sagemaker_parameters$sagemaker_submit_directory %||% env$code_dir,
    user_args = as.list(user_args(env$hyperparameters)),
    output_intermediate_dir = env$output_intermediate_dir
  )
  for (name in env$channels) values[[paste0("channel_", name)]] <- env$channel_dirs[[name]]
  for (name in names(env$hyperparameters)) values[[paste0("hp_", name)]] <- env$hyperparameters[[name]]
  vars <- vapply(values, env_value, character(1))
  names(vars) <- paste0("SM_", toupper(names(values)))
  vars["SM_TRAINING_ENV"] <- to_compact_json(values[!startsWith(names(values), "channel_") &
    !startsWith(names(values), "hp_")])
  # Not the toolkit's: where Spot training keeps checkpoints (synced with checkpoint_s3_uri).
  vars["SM_CHECKPOINT_DIR"] <- env$checkpoint_dir
  vars
}

named_list <- function(x) if (length(x) == 0) structure(list(), names = character()) else x
