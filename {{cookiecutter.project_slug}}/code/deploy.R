# Inference handlers, in the style of the SageMaker inference toolkit. Each serving worker sources
# this file once, then the serving plumbing (images/training/rsagemaker/R/serving.R) calls:
#   model_fn(model_dir)           once per worker; default: readRDS(file.path(model_dir, "model.rds"))
#   input_fn(body, content_type)  default: text/csv, application/json, application/jsonlines -> data.frame,
#                                 checked against the model's input prototype (input-prototype.json,
#                                 saved by train.R): 400 naming a missing or mistyped column, header-less
#                                 CSV columns checked by count and type and named as in training.
#                                 `check_input_prototype <- FALSE` here turns the check off.
#                                 `body` is a string for text types (text/*, JSON, JSON Lines, CSV) and
#                                 a raw vector, byte for byte, for any other Content-Type (images,
#                                 protobuf, parquet, gzip...): define input_fn to read those.
#   predict_fn(data, model)       required
#   output_fn(prediction, accept) default: the same three types; may return a raw vector (sent as is)
# (or transform_fn(model, body, content_type, accept) instead of the last three).
# Define only what differs. Raise http_error(status, message) for a client error (4xx); any other
# error answers 500. A handler with a `context` argument sees context$custom_attributes and may set
# context$response_custom_attributes (the X-Amzn-SageMaker-Custom-Attributes header).
library(rpart)

# The model is train.R's model.rds: list(fit = <rpart>, features = <column names>, target = <name>).
predict_fn <- function(data, model) {
  # CSV rows arrive without a header, as SageMaker sends them: name the columns in training order.
  if (!all(model$features %in% names(data))) {
    if (ncol(data) != length(model$features)) {
      http_error(400, sprintf(
        "expected %d feature columns (%s), got %d",
        length(model$features), paste(model$features, collapse = ", "), ncol(data)
      ))
    }
    names(data) <- model$features
  }
  as.character(predict(model$fit, newdata = data[model$features], type = "class"))
}
