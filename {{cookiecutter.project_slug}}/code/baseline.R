# The monitoring baseline, kept with the model: train.R calls save_baseline(), code/monitor.R (make
# local-monitor, make monitor) compares what the endpoint receives and answers with it.
# baseline.json in the model folder holds, per feature of the training data, its missing rate and
#   numeric:     the cut points of its deciles and the share of rows in each bin (for PSI)
#   categorical: each level's share of the rows
# and the same for the model's predictions on the training data (plus its accuracy there, the
# reference of monitor.R's accuracy check when labels are given).

# The statistics of one column: numeric (deciles) or categorical (levels).
column_baseline <- function(x, bins = 10) {
  missing <- if (length(x) > 0) mean(is.na(x)) else 0
  present <- x[!is.na(x)]
  if (is.numeric(x)) {
    cuts <- unique(unname(stats::quantile(present, probs = seq_len(bins - 1) / bins, type = 7, names = FALSE)))
    counts <- tabulate(findInterval(present, cuts, left.open = TRUE) + 1L, nbins = length(cuts) + 1L)
    return(list(type = "numeric", missing_rate = missing, cuts = cuts,
      proportions = counts / max(1, length(present)), mean = mean(present), sd = stats::sd(present)))
  }
  counts <- table(as.character(present))
  list(type = "categorical", missing_rate = missing, levels = names(counts),
    proportions = as.numeric(counts) / max(1, length(present)))
}

# Write baseline.json into model_dir: data holds the training features (a data frame), predictions
# what the model predicts for those rows, accuracy (optional) its accuracy on them.
save_baseline <- function(data, predictions, model_dir, accuracy = NULL) {
  baseline <- list(
    version = 1L,
    rows = nrow(data),
    features = lapply(as.list(data), column_baseline),
    prediction = column_baseline(if (is.factor(predictions)) as.character(predictions) else predictions),
    accuracy = accuracy
  )
  path <- file.path(model_dir, "baseline.json")
  jsonlite::write_json(baseline, path, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null")
  cat("Monitoring baseline saved to", path, "\n")
  invisible(baseline)
}
