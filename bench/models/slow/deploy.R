# The benchmark's slow model (bench/compare.py), mounted as /opt/ml/model/code over a trained
# model: the sample rpart model whose predict_fn takes ~50 ms more, as a heavier model would. A
# request with the custom attribute `sleep=SECONDS` (X-Amzn-SageMaker-Custom-Attributes) holds its
# worker that long, to measure /ping while a long invocation runs.
library(rpart)

model_fn <- function(model_dir) {
  readRDS(file.path(model_dir, "model.rds"))
}

predict_fn <- function(data, model, context) {
  attributes <- if (is.null(context$custom_attributes)) "" else context$custom_attributes
  asked <- regmatches(attributes, regexec("sleep=([0-9.]+)", attributes))[[1]]
  Sys.sleep(if (length(asked) == 2) as.numeric(asked[[2]]) else 0.05)
  names(data) <- model$features
  as.character(predict(model$fit, newdata = data, type = "class"))
}
