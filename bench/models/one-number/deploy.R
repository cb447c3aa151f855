# The benchmark's plumbing-overhead handler (bench/compare.py), mounted as /opt/ml/model/code: the
# default model_fn (readRDS of model.rds, whatever it holds, e.g. the synthetic 300 MB model) and a
# predict_fn that returns one number per row, so a request measures the server, not a model.
predict_fn <- function(data, model) {
  rep(0, nrow(data))
}
