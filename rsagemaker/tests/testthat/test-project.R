# project_*(): the project's make targets from R, the CLI's --json outcome read back as R data.

test_that("a wrong argument is one line naming it, before anything runs", {
  project <- withr::local_tempdir()
  expect_error(project_models(file.path(project, "nope")), "^no such project folder: \".*nope\"$", class = "rsagemaker_usage_error")
  expect_error(project_models(project), "^not a project made from the r-sagemaker template \\(no Makefile or config/aws.json\\)", class = "rsagemaker_usage_error")
  copy <- local_test_project()
  expect_error(project_command("Deploy now", path = copy), "^no such make target: \"Deploy now\"$", class = "rsagemaker_usage_error")
  expect_error(project_command("deploy", "x", path = copy), "named in capitals", class = "rsagemaker_usage_error")
  expect_error(project_command("deploy", NO_WAIT = 1:2, path = copy), "^NO_WAIT must be one string", class = "rsagemaker_usage_error")
  expect_error(project_approve(copy, version = "two"), "^version must be one number", class = "rsagemaker_usage_error")
  withr::local_options(rsagemaker.cli = file.path(copy, "no-such-cli"))
  expect_error(project_models(copy), "^no rsagemaker CLI at \".*no-such-cli\"", class = "rsagemaker_usage_error")
  withr::local_options(rsagemaker.cli = NULL)
  withr::local_envvar(RSAGEMAKER_CLI = NA, PATH = R.home("bin"))
  expect_error(project_models(copy), "is not installed: run `make venv` in .*pip install rsagemaker-cli", class = "rsagemaker_usage_error")
})

test_that("the CLI's outcome comes back as R data (a stand-in CLI)", {
  project <- local_test_project()
  local_fake_cli(list(exit_status = 0, error = NULL, result = list(
    url = "http://127.0.0.1:8080", status = 200, content_type = "text/csv", body = "setosa\nvirginica\n"
  )), lines = "==> POST http://127.0.0.1:8080/invocations")
  prediction <- project_predict(project, quiet = TRUE) # (the output goes to the console, not through R)
  expect_identical(prediction, structure(data.frame(prediction = c("setosa", "virginica")), body = "setosa\nvirginica\n", content_type = "text/csv"))

  local_fake_cli(list(exit_status = 0, result = list(
    tuning_job_name = "tj", status = "Completed", metric = "train:accuracy", type = "Maximize",
    training_jobs = list(
      list(name = "b", status = "Completed", objective = 0.9, hyperparameters = list(cp = "0.01", maxdepth = "3")),
      list(name = "c", status = "Failed", objective = NULL, hyperparameters = list(cp = "0.1"))
    )
  )))
  results <- project_tune_results(project, tuning_job = "tj", quiet = TRUE)
  expect_identical(results$name, c("b", "c"))
  expect_identical(results$objective, c(0.9, NA))
  expect_identical(results$maxdepth, c("3", NA))
  expect_identical(attr(results, "metric"), "train:accuracy")

  local_fake_cli(list(exit_status = 0, result = list(
    list(image = "training", local = "r-on-sagemaker-training:test", pushed = "1.dkr.ecr/r-on-sagemaker-training:test")
  )))
  expect_identical(project_push(project, quiet = TRUE), "1.dkr.ecr/r-on-sagemaker-training:test")
  expect_identical(project_images(project), c(training = "r-on-sagemaker-training:test"))
})

test_that("a failed command is one R error line: the CLI's error, or its last line on stderr", {
  project <- local_test_project()
  local_fake_cli(list(exit_status = 2, error = "no local endpoint is running: run `make local-serve` first", result = NULL))
  error <- expect_error(project_predict(project, quiet = TRUE), class = "rsagemaker_command_error")
  expect_identical(conditionMessage(error), "make predict: no local endpoint is running: run `make local-serve` first")
  expect_identical(error$status, 2L)
  writeLines(c("#!/bin/sh", "echo 'Training job x failed: AlgorithmError: boom' >&2", "exit 1"), getOption("rsagemaker.cli"))
  error <- expect_error(project_remote_train(project, quiet = TRUE), class = "rsagemaker_command_error")
  expect_identical(conditionMessage(error), "make remote-train: Training job x failed: AlgorithmError: boom")
})

test_that("remote-train, deploy, invoke, undeploy against moto return the job, endpoint and prediction", {
  tools <- need_cli_and_moto()
  project <- local_aws_project(tools)
  error <- expect_error(project_remote_train(project, quiet = TRUE), class = "rsagemaker_command_error")
  expect_match(conditionMessage(error), "^make remote-train: S3 bucket r-test-bucket does not exist: [^\n]*$", perl = TRUE)
  pushed(tools)
  job <- project_remote_train(project, quiet = TRUE)
  expect_match(job, "^r-on-sagemaker-training-")
  expect_identical(attr(job, "status"), "Completed")
  expect_match(attr(job, "arn"), paste0(":training-job/", job, "$"))
  expect_match(attr(job, "model_data"), "^s3://r-test-bucket/.*model.tar.gz$")
  expect_s3_class(attr(job, "metrics"), "data.frame")
  expect_named(attr(job, "metrics"), c("name", "value", "timestamp"))

  endpoint <- project_deploy(project, training_job = job, quiet = TRUE)
  expect_identical(as.vector(endpoint), "r-on-sagemaker")
  expect_identical(attr(endpoint, "status"), "InService")
  moto_python(tools, Sys.getenv("AWS_ENDPOINT_URL"), paste0(
    "urllib.request.urlopen(urllib.request.Request(URL + '/moto-api/static/sagemaker/endpoint-results', ",
    "data=json.dumps({'results': [{'Body': 'setosa\\nvirginica\\n', 'ContentType': 'text/csv'}]}).encode(), ",
    "headers={'Content-Type': 'application/json'}, method='POST'))"
  ))
  prediction <- project_invoke(project, quiet = TRUE)
  expect_identical(prediction$prediction, c("setosa", "virginica"))
  expect_null(project_undeploy(project, quiet = TRUE))
})

test_that("models and approve against moto: the versions as a data frame, the approved ARN", {
  tools <- need_cli_and_moto()
  project <- local_aws_project(tools)
  expect_error(project_models(project, quiet = TRUE), "^make models: .*r-on-sagemaker", class = "rsagemaker_command_error")
  arns <- moto_python(tools, Sys.getenv("AWS_ENDPOINT_URL"), c(
    "sm = client('sagemaker')",
    "sm.create_model_package_group(ModelPackageGroupName='r-on-sagemaker')",
    "for v in (1, 2):",
    "    print(sm.create_model_package(ModelPackageGroupName='r-on-sagemaker', ModelApprovalStatus='PendingManualApproval',",
    "        InferenceSpecification={'Containers': [{'Image': 'x', 'ModelDataUrl': 's3://b/m.tar.gz'}],",
    "        'SupportedContentTypes': ['text/csv'], 'SupportedResponseMIMETypes': ['text/csv']})['ModelPackageArn'])"
  ))
  models <- project_models(project, quiet = TRUE)
  expect_identical(models$version, 2:1)
  expect_identical(models$status, rep("PendingManualApproval", 2))
  expect_identical(models$accuracy, c(NA_real_, NA_real_))
  expect_identical(models$arn, rev(arns))
  expect_s3_class(models$created, "POSIXct")
  expect_false(anyNA(models$created))
  expect_identical(project_approve(project, version = 1, quiet = TRUE), arns[[1]])
  expect_identical(project_models(project, quiet = TRUE)$status, c("PendingManualApproval", "Approved"))
  expect_error(project_approve(project, version = 7, quiet = TRUE), "^make approve: model package group r-on-sagemaker has no version 7", class = "rsagemaker_command_error")
})
