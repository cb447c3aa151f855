# Inference handlers, in the style of the SageMaker inference toolkit. The serving plumbing
# (images/training/sagemaker/serving.R) calls them for each POST /invocations:
#   model_fn(model_dir)           once per worker: load the model
#   input_fn(body, content_type)  default: text/csv, application/json, application/jsonlines -> data.frame
#   predict_fn(data, model)       required
#   output_fn(prediction, accept) default: the same three types
# Define only what differs. Raise http_error(status, message) for a client error (4xx).
library(rpart)

model_fn <- function(model_dir) {
  readRDS(file.path(model_dir, "model.rds"))
}

predict_fn <- function(data, model) {
  # CSV rows arrive without a header, as SageMaker sends them: name the columns in training order.
  if (!all(model$features %in% names(data))) {
    if (ncol(data) != length(model$features)) {
      http_error(400, sprintf("expected %d feature columns (%s), got %d",
        length(model$features), paste(model$features, collapse = ", "), ncol(data)))
    }
    names(data) <- model$features
  }
  as.character(predict(model$fit, newdata = data[model$features], type = "class"))
}
