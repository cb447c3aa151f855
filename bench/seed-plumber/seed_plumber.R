# The seed's serving design, for the template's `make bench` only: ONE plumber process owns the port
# and answers /ping and /invocations itself, as the aws-samples workshop container did. It loads the
# same deploy.R handlers and model as the template's server and answers /invocations with the same
# code (the plumbing's serving_app), so the benchmark compares the two designs, not two parsers.
# The plumbing's internals, from the rsagemaker package the training image installs.
local({
  plumbing <- asNamespace("rsagemaker")
  for (name in c("sm_path", "load_handlers", "find_deploy_script", "call_handler", "serving_app")) {
    assign(name, get(name, envir = plumbing), envir = globalenv())
  }
})
library(plumber)

model_dir <- sm_path("model")
handlers <- load_handlers(find_deploy_script(model_dir))
model <- call_handler(handlers$model_fn, model_dir, context = new.env())
app <- serving_app(handlers, model)

# serving_app takes the request as the workers' HTTP server hands it over (rsagemaker's http.R): the
# CGI-style fields of plumber's request and the body's bytes, which plumber has read into bodyRaw.
answer_invocation <- function(req, res) {
  fields <- grep("^(HTTP_.*|REQUEST_METHOD|PATH_INFO|QUERY_STRING)$", ls(req), value = TRUE)
  response <- app$call(c(mget(fields, envir = req), list(body = if (is.null(req$bodyRaw)) raw(0) else req$bodyRaw)))
  res$status <- response$status
  for (name in names(response$headers)) res$setHeader(name, response$headers[[name]])
  res$body <- response$body
  res
}

port <- as.integer(Sys.getenv("SAGEMAKER_BIND_TO_PORT", "8080"))
router <- pr()
router <- pr_get(router, "/ping", function() "")
router <- pr_post(router, "/invocations", answer_invocation)
message("seed-style server: one plumber process on port ", port)
pr_run(router, host = "0.0.0.0", port = port, docs = FALSE, quiet = TRUE)
