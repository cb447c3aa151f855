#' The training job's environment
#'
#' What SageMaker gives a training container: the `/opt/ml` layout, the JSON files under
#' `/opt/ml/input/config`, and the `SM_*` variables that aws/sagemaker-training-toolkit computes from
#' them (SageMaker itself sets none). Names and encodings follow the toolkit (`environment.py`,
#' `mapping.py`) so that scripts written for it run unchanged. JSON is read and written with Python's
#' types ([python_json]) so the text is the toolkit's, byte for byte.
#'
#' Besides the toolkit's variables the program gets `SM_HOST_RANK` (this host's 0-based position in
#' `SM_HOSTS`) and `SM_CHECKPOINT_DIR` (where Spot training keeps checkpoints:
#' `SAGEMAKER_CHECKPOINT_DIR` when the launcher passes the job's `CheckpointConfig` on, else
#' `/opt/ml/checkpoints`). `SAGEMAKER_BASE_DIR` moves the `/opt/ml` root (tests only).
#' @name environment
#' @keywords internal
#' @concept training
NULL

#' Only tests move the root: SAGEMAKER_BASE_DIR is the toolkit's own name for this override.
#' @noRd
sm_base_dir <- function() {
  base <- sub("(.)/+$", "\\1", Sys.getenv("SAGEMAKER_BASE_DIR", "/opt/ml"))
  if (nzchar(base)) base else "/opt/ml"
}
sm_path <- function(...) file.path(sm_base_dir(), ...)

#' Shared by every module of the plumbing (base R has it only from 4.4).
#' @noRd
`%||%` <- function(a, b) if (is.null(a)) b else a

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

#' Where the program keeps checkpoints: the job's CheckpointConfig LocalPath when the launcher passes
#' it on (SAGEMAKER_CHECKPOINT_DIR), else SageMaker's default, /opt/ml/checkpoints.
#' @noRd
checkpoint_dir <- function() {
  dir <- Sys.getenv("SAGEMAKER_CHECKPOINT_DIR")
  if (nzchar(dir)) dir else sm_path("checkpoints")
}

# ---- the toolkit's view of the job ---------------------------------------------------------------

#' A value as an environment variable (mapping.to_env_vars): strings as they are, None as "",
#' anything else as compact JSON.
#' @noRd
env_value <- function(value) {
  if (inherits(value, "py_none") || is.null(value)) {
    return("")
  }
  if (is.character(value) && length(value) == 1 && !inherits(value, "py_int")) {
    return(value)
  }
  to_py_json(value)
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

#' Everything a training job's code may ask about, gathered once: the toolkit's Environment
#' properties (`toolkit`, its dict(self)) plus what the R plumbing needs.
#' @noRd
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
    checkpoint_dir = checkpoint_dir(),
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

#' The SM_* variables the training toolkit exports for the same /opt/ml (Environment.to_env_vars),
#' and the variables it sets in its own process, which the user's program inherits.
#' @noRd
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
