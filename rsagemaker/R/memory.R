#' The container's memory
#'
#' What the server sizes itself by: the memory limit (cgroup v2 `memory.max`, v1
#' `memory.limit_in_bytes`, else `MemTotal`) for the worker count ([server]) and the multi-model
#' budget ([multi_model]), the memory in use (without the page cache), and this process's share
#' (`VmRSS`).
#' @name memory
#' @keywords internal
#' @concept multi-model
NULL

read_number <- function(path) {
  if (!file.exists(path)) {
    return(NA_real_)
  }
  suppressWarnings(as.numeric(readLines(path, n = 1, warn = FALSE)[1]))
}

#' One field of a "key value" file (memory.stat) or of /proc/meminfo ("Key:   123 kB", in bytes).
#' @noRd
read_field <- function(path, key) {
  if (!file.exists(path)) {
    return(NA_real_)
  }
  lines <- readLines(path, warn = FALSE)
  line <- grep(paste0("^", key, ":?[[:space:]]"), lines, value = TRUE)
  if (length(line) == 0) {
    return(NA_real_)
  }
  fields <- strsplit(trimws(line[[1]]), "[[:space:]]+")[[1]]
  value <- as.numeric(fields[[2]])
  if (length(fields) > 2 && fields[[3]] == "kB") value * 1024 else value
}

#' The memory this container may use, in bytes, and where the figure comes from: the cgroup limit
#' (v2 memory.max, else v1 memory.limit_in_bytes) when it is below the machine's memory, else
#' MemTotal (cgroup v2 says "no limit" with "max", v1 with a number near 2^63).
#' @noRd
memory_limit <- function(root = "/") {
  total <- read_field(file.path(root, "proc/meminfo"), "MemTotal")
  cgroup <- file.path(root, "sys/fs/cgroup")
  limits <- c(
    "cgroup v2 memory.max" = read_number(file.path(cgroup, "memory.max")), # "max" reads as NA
    "cgroup v1 memory.limit_in_bytes" = read_number(file.path(cgroup, "memory", "memory.limit_in_bytes"))
  )
  limits <- limits[!is.na(limits) & (is.na(total) | limits < total)]
  if (length(limits) > 0) {
    return(list(bytes = limits[[1]], source = names(limits)[[1]]))
  }
  list(bytes = total, source = "MemTotal")
}

#' The memory the container uses in bytes, without the page cache (reclaimable: model files read
#' from disk stay cached there).
#' @noRd
memory_used_bytes <- function(root = "/") {
  v2 <- file.path(root, "sys/fs/cgroup")
  current <- read_number(file.path(v2, "memory.current"))
  if (!is.na(current)) {
    return(current - (read_field(file.path(v2, "memory.stat"), "file") %||% 0))
  }
  v1 <- file.path(root, "sys/fs/cgroup/memory")
  usage <- read_number(file.path(v1, "memory.usage_in_bytes"))
  if (!is.na(usage)) {
    cache <- read_field(file.path(v1, "memory.stat"), "total_cache")
    if (is.na(cache)) cache <- read_field(file.path(v1, "memory.stat"), "cache")
    return(usage - (if (is.na(cache)) 0 else cache))
  }
  meminfo <- file.path(root, "proc/meminfo")
  read_field(meminfo, "MemTotal") - read_field(meminfo, "MemAvailable")
}

#' This process's resident memory in bytes (VmRSS): e.g. the master with the model loaded.
#' @noRd
resident_bytes <- function() read_field("/proc/self/status", "VmRSS")

#' Hand the C library's free memory back to the system (glibc's malloc_trim, src/memory.c): the
#' master calls it before forking, so that no worker inherits the buffers readRDS freed. TRUE when
#' memory was released.
#' @noRd
release_free_memory <- function() .Call(rsm_release_free_memory)
