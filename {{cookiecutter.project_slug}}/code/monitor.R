#!/usr/bin/env Rscript
# Monitoring script: the processing image runs it (make local-monitor here, make monitor and the
# daily make monitor-schedule as SageMaker processing jobs) as
#   Rscript /opt/ml/processing/input/code/monitor.R
# Inputs under /opt/ml/processing/input/data/:
#   capture/   the endpoint's data capture (JSON Lines, SageMaker's format; any folder depth)
#   baseline/  the model's baseline.json (train.R writes it with code/baseline.R), or its model.tar.gz
#   labels/    optional ground truth: CSV files with columns eventId, label (and row, 1-based, for a
#              request of several rows): the accuracy of the captured predictions is checked too
# It keeps the records of the last MONITOR_WINDOW_HOURS hours (default 24; 0: all) and compares them
# with the baseline: per numeric feature the PSI of its decile bins, per categorical feature the
# total variation distance of its level shares, each feature's missing rate, the predictions'
# distribution, and the accuracy against labels. It writes to /opt/ml/processing/output/report/:
#   report.html      a table of every check and a plot of each drifted feature (PNG inside the file)
#   violations.json  the status (ok, violations, insufficient_data) and each violation
# With violations it writes them to /opt/ml/output/message (SageMaker's FailureReason) and exits 2,
# so a scheduled job fails and can alert (MONITOR_FAIL_ON_VIOLATIONS=false: exit 0 all the same).
# Thresholds: MONITOR_PSI (0.2), MONITOR_DISTANCE (0.2), MONITOR_MISSING (0.05: the rise of a
# missing rate), MONITOR_ACCURACY_DROP (0.1 below the training accuracy), MONITOR_MIN_ROWS (30: fewer
# rows give no verdict).
base_dir <- Sys.getenv("SAGEMAKER_BASE_DIR", "/opt/ml")
input_dir <- file.path(base_dir, "processing", "input", "data")
report_dir <- file.path(base_dir, "processing", "output", "report")

setting <- function(name, default) {
  value <- suppressWarnings(as.numeric(Sys.getenv(name, as.character(default))))
  if (is.na(value)) stop(name, " must be a number, not '", Sys.getenv(name), "'")
  value
}

thresholds <- function() {
  list(psi = setting("MONITOR_PSI", 0.2), distance = setting("MONITOR_DISTANCE", 0.2),
    missing = setting("MONITOR_MISSING", 0.05), accuracy_drop = setting("MONITOR_ACCURACY_DROP", 0.1),
    min_rows = setting("MONITOR_MIN_ROWS", 30))
}

# The baseline: baseline.json in dir, or the one inside a model.tar.gz there.
load_baseline <- function(dir) {
  found <- list.files(dir, pattern = "^baseline[.]json$", recursive = TRUE, full.names = TRUE)
  if (length(found) == 0) {
    tarballs <- list.files(dir, pattern = "[.]tar[.]gz$", recursive = TRUE, full.names = TRUE)
    if (length(tarballs) == 0) stop("no baseline.json or model.tar.gz in ", dir)
    unpacked <- tempfile("model")
    utils::untar(tarballs[[1]], exdir = unpacked)
    found <- list.files(unpacked, pattern = "^baseline[.]json$", recursive = TRUE, full.names = TRUE)
    if (length(found) == 0) stop(basename(tarballs[[1]]), " holds no baseline.json: train again (train.R saves one)")
  }
  jsonlite::read_json(found[[1]], simplifyVector = TRUE)
}

# A captured payload's text (BASE64 decoded).
payload_text <- function(payload) {
  if (identical(payload$encoding, "BASE64")) rawToChar(jsonlite::base64_dec(payload$data)) else payload$data
}

# The feature rows of one request, columns named and typed as in the baseline.
parse_input <- function(payload, baseline) {
  text <- payload_text(payload)
  features <- names(baseline$features)
  numeric <- vapply(baseline$features, function(f) f$type == "numeric", NA)
  if (grepl("json", payload$observedContentType, fixed = TRUE)) {
    lines <- strsplit(text, "\n", fixed = TRUE)[[1]]
    rows <- if (length(lines) > 1) lapply(lines[nzchar(lines)], jsonlite::fromJSON) else jsonlite::fromJSON(text)
    rows <- as.data.frame(if (is.data.frame(rows)) rows else do.call(rbind, lapply(rows, as.data.frame)))
    if (!all(features %in% names(rows))) names(rows)[seq_along(features)] <- features
    rows <- rows[features]
  } else {
    rows <- utils::read.csv(text = text, header = FALSE, na.strings = c("", "NA"), stringsAsFactors = FALSE,
      colClasses = "character")
    if (ncol(rows) != length(features)) {
      stop("a captured row has ", ncol(rows), " columns, the baseline ", length(features))
    }
    names(rows) <- features
    if (nrow(rows) > 0 && isTRUE(all(unlist(rows[1, ]) == features))) rows <- rows[-1, , drop = FALSE] # a header
  }
  for (name in features[numeric]) rows[[name]] <- suppressWarnings(as.numeric(rows[[name]]))
  for (name in features[!numeric]) rows[[name]] <- as.character(rows[[name]])
  rows
}

# The predictions of one response, one per row.
parse_output <- function(payload) {
  text <- payload_text(payload)
  if (grepl("json", payload$observedContentType, fixed = TRUE)) {
    value <- jsonlite::fromJSON(text)
    if (is.data.frame(value)) value <- value[[1]]
    return(as.character(unlist(value)))
  }
  lines <- strsplit(text, "\n", fixed = TRUE)[[1]]
  sub("^\"(.*)\"$", "\\1", sub(",.*$", "", lines[nzchar(lines)]))
}

# The captured records of the window: list(inputs, predictions, event, row, records).
read_capture <- function(dir, baseline, since = NULL) {
  files <- list.files(dir, pattern = "[.]jsonl$", recursive = TRUE, full.names = TRUE)
  records <- lapply(unlist(lapply(files, readLines, warn = FALSE)), jsonlite::fromJSON)
  if (!is.null(since)) {
    times <- vapply(records, function(r) r$eventMetadata$inferenceTime, "")
    records <- records[as.POSIXct(times, format = "%Y-%m-%dT%H:%M:%SZ", tz = "UTC") >= since]
  }
  inputs <- list()
  predictions <- list()
  for (record in records) {
    rows <- parse_input(record$captureData$endpointInput, baseline)
    output <- record$captureData$endpointOutput
    predicted <- if (is.null(output)) rep(NA_character_, nrow(rows)) else parse_output(output)
    if (length(predicted) != nrow(rows)) predicted <- rep(NA_character_, nrow(rows))
    rows$.event <- rep(record$eventMetadata$eventId, nrow(rows))
    rows$.row <- seq_len(nrow(rows))
    inputs[[length(inputs) + 1]] <- rows
    predictions[[length(predictions) + 1]] <- predicted
  }
  empty <- as.data.frame(lapply(baseline$features, function(f) if (f$type == "numeric") numeric() else character()))
  data <- if (length(inputs) > 0) do.call(rbind, inputs) else cbind(empty, .event = character(), .row = integer())
  list(data = data, predictions = unlist(predictions), records = length(records))
}

# Shares of x in the baseline's bins (numeric) or levels (categorical, plus one for unseen values).
current_shares <- function(x, stats) {
  x <- x[!is.na(x)]
  if (stats$type == "numeric") {
    counts <- tabulate(findInterval(as.numeric(x), stats$cuts, left.open = TRUE) + 1L, nbins = length(stats$cuts) + 1L)
  } else {
    counts <- c(vapply(stats$levels, function(l) sum(x == l), 0), sum(!x %in% stats$levels))
  }
  counts / max(1, length(x))
}

psi <- function(expected, actual, floor = 1e-4) {
  expected <- pmax(expected, floor)
  actual <- pmax(actual, floor)
  sum((actual - expected) * log(actual / expected))
}

distance <- function(expected, actual) 0.5 * sum(abs(c(expected, 0) - actual))

# One check: a row of the checks table.
check_row <- function(feature, check, value, threshold) {
  data.frame(feature = feature, check = check, value = round(value, 4), threshold = threshold,
    violation = !is.na(value) && value > threshold, stringsAsFactors = FALSE)
}

# The drift checks of one column against its baseline statistics.
column_checks <- function(name, x, stats, limits) {
  actual <- current_shares(x, stats)
  drift <- if (stats$type == "numeric") {
    check_row(name, "psi", psi(stats$proportions, actual), limits$psi)
  } else {
    check_row(name, "distance", distance(stats$proportions, actual), limits$distance)
  }
  missing <- if (length(x) > 0) mean(is.na(x)) else NA_real_
  rbind(drift, check_row(name, "missing_rate_increase", missing - stats$missing_rate, limits$missing))
}

# Accuracy against the labels (eventId, label[, row]); NULL without labels.
accuracy_check <- function(capture, labels_dir, baseline, limits) {
  files <- if (dir.exists(labels_dir)) list.files(labels_dir, pattern = "[.]csv$", recursive = TRUE, full.names = TRUE)
  if (length(files) == 0 || is.null(baseline$accuracy)) return(NULL)
  labels <- do.call(rbind, lapply(files, utils::read.csv, stringsAsFactors = FALSE, colClasses = "character"))
  if (is.null(labels$row)) labels$row <- "1"
  key <- paste(capture$data$.event, capture$data$.row)
  truth <- labels$label[match(key, paste(labels$eventId, labels$row))]
  known <- !is.na(truth)
  if (!any(known)) return(NULL)
  accuracy <- mean(capture$predictions[known] == truth[known])
  row <- check_row("(predictions)", "accuracy_drop", baseline$accuracy - accuracy, limits$accuracy_drop)
  row$note <- sprintf("accuracy %.4f on %d labelled rows (training %.4f)", accuracy, sum(known), baseline$accuracy)
  row
}

# Every check: the features, the predictions, the accuracy.
run_checks <- function(capture, baseline, limits, labels_dir = "") {
  checks <- lapply(names(baseline$features), function(name) {
    column_checks(name, capture$data[[name]], baseline$features[[name]], limits)
  })
  predicted <- capture$predictions
  if (baseline$prediction$type == "numeric") predicted <- suppressWarnings(as.numeric(predicted))
  checks[[length(checks) + 1]] <- column_checks("(predictions)", predicted, baseline$prediction, limits)
  checks <- do.call(rbind, checks)
  checks$note <- ""
  accuracy <- accuracy_check(capture, labels_dir, baseline, limits)
  if (!is.null(accuracy)) checks <- rbind(checks, accuracy)
  checks
}

# A bar plot of the baseline's and the current shares, as a data: URI (PNG; SVG without PNG support).
plot_uri <- function(name, x, stats) {
  actual <- current_shares(x, stats)
  expected <- if (stats$type == "numeric") stats$proportions else c(stats$proportions, 0)
  labels <- if (stats$type == "numeric") {
    edges <- format(signif(stats$cuts, 3), trim = TRUE)
    c(paste0("<=", edges[1]), paste0(edges[-length(edges)], "-", edges[-1]), paste0(">", edges[length(edges)]))
  } else {
    c(stats$levels, "(other)")
  }
  use_png <- capabilities("png") || capabilities("cairo")
  path <- tempfile(fileext = if (use_png) ".png" else ".svg")
  if (use_png) grDevices::png(path, width = 720, height = 360, type = if (capabilities("cairo")) "cairo" else "Xlib")
  if (!use_png) grDevices::svg(path, width = 7.2, height = 3.6)
  graphics::barplot(rbind(expected, actual), beside = TRUE, names.arg = labels, col = c("#9e9e9e", "#d95f02"),
    border = NA, las = 2, cex.names = 0.7, main = name, ylab = "share of rows",
    ylim = c(0, 1.3 * max(expected, actual, 0.01)),
    legend.text = c("baseline (training)", "captured"), args.legend = list(x = "topright", bty = "n"))
  grDevices::dev.off()
  bytes <- readBin(path, "raw", file.size(path))
  paste0("data:image/", if (use_png) "png" else "svg+xml", ";base64,", jsonlite::base64_enc(bytes))
}

html_escape <- function(x) {
  x <- gsub("&", "&amp;", as.character(x), fixed = TRUE)
  gsub(">", "&gt;", gsub("<", "&lt;", x, fixed = TRUE), fixed = TRUE)
}

write_report <- function(path, checks, capture, baseline, status, window) {
  cells <- apply(checks[c("feature", "check", "value", "threshold", "note")], 1, function(r) {
    paste0("<td>", html_escape(r), "</td>", collapse = "")
  })
  rows <- paste0("<tr class=\"", ifelse(checks$violation, "bad", "ok"), "\">", cells,
    "<td>", ifelse(checks$violation, "VIOLATION", "ok"), "</td></tr>")
  drifted <- unique(checks$feature[checks$violation & checks$check %in% c("psi", "distance")])
  plots <- vapply(drifted, function(name) {
    x <- if (name == "(predictions)") capture$predictions else capture$data[[name]]
    stats <- if (name == "(predictions)") baseline$prediction else baseline$features[[name]]
    sprintf("<h3>%s</h3><img alt=\"%s\" src=\"%s\">", html_escape(name), html_escape(name), plot_uri(name, x, stats))
  }, "")
  html <- c("<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\"><title>Model monitoring report</title>",
    "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;",
    "padding:4px 8px}tr.bad{background:#fde0d0}img{display:block;max-width:100%;}</style></head><body>",
    "<h1>Model monitoring report</h1>",
    sprintf("<p>Status: <strong>%s</strong>. %d captured request(s), %d row(s), %s.</p>",
      status, capture$records, nrow(capture$data), html_escape(window)),
    "<table><tr><th>feature</th><th>check</th><th>value</th><th>threshold</th><th>note</th><th>result</th></tr>",
    rows, "</table>", if (length(plots) > 0) c("<h2>Drifted features</h2>", plots), "</body></html>")
  writeLines(html, path)
}

main <- function() {
  limits <- thresholds()
  hours <- setting("MONITOR_WINDOW_HOURS", 24)
  since <- if (hours > 0) Sys.time() - hours * 3600 else NULL
  window <- "all records"
  if (hours > 0) window <- sprintf("the last %g hour(s) before %s UTC", hours, format(Sys.time(), tz = "UTC"))
  baseline <- load_baseline(file.path(input_dir, "baseline"))
  capture <- read_capture(file.path(input_dir, "capture"), baseline, since)
  checks <- run_checks(capture, baseline, limits, file.path(input_dir, "labels"))
  violations <- checks[checks$violation, ]
  status <- if (nrow(violations) > 0) "violations" else "ok"
  if (nrow(capture$data) < limits$min_rows) status <- "insufficient_data"
  dir.create(report_dir, recursive = TRUE, showWarnings = FALSE)
  write_report(file.path(report_dir, "report.html"), checks, capture, baseline, status, window)
  jsonlite::write_json(list(status = status, window = window, records = capture$records, rows = nrow(capture$data),
    violations = violations), file.path(report_dir, "violations.json"), auto_unbox = TRUE, digits = NA, pretty = TRUE)
  summary <- paste0(status, ": ", nrow(violations), " violation(s) in ", nrow(capture$data), " row(s) of ",
    window, if (nrow(violations) > 0) paste0(": ", paste(violations$feature, violations$check, collapse = ", ")))
  cat(summary, "\nReport:", file.path(report_dir, "report.html"), "\n")
  if (status == "violations" && tolower(Sys.getenv("MONITOR_FAIL_ON_VIOLATIONS", "true")) != "false") {
    dir.create(file.path(base_dir, "output"), recursive = TRUE, showWarnings = FALSE)
    writeLines(substr(summary, 1, 1000), file.path(base_dir, "output", "message"))
    quit(status = 2)
  }
}

if (sys.nframe() == 0L) main()
