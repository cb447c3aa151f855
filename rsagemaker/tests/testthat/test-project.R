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
  prediction <- project_predict(project, quiet = TRUE)
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
  images <- c(processing = "r-on-sagemaker-processing:test", training = "r-on-sagemaker-training:test")
  expect_identical(project_images(project), images)
  expect_identical(project_images(project, tag = "dev"), sub(":test$", ":dev", images))
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

test_that("the output comes through R with processx: capture.output() (knitr) gets it; quiet hides it", {
  need_processx()
  project <- local_test_project()
  local_fake_cli(list(exit_status = 0, result = list(arn = "arn:aws:sagemaker:v1")),
    lines = c("==> Approving version 1", "Approved."), errors = "WARNING: the group has one version"
  )
  expect_message(
    output <- capture.output(arn <- project_approve(project, version = 1)),
    "^WARNING: the group has one version" # (a message's text ends in a newline)
  )
  expect_identical(output, c("==> Approving version 1", "Approved."))
  expect_identical(arn, "arn:aws:sagemaker:v1")
  expect_silent(project_approve(project, version = 1, quiet = TRUE))
})

test_that("without processx the output goes to the terminal; the outcome and error line are as with it", {
  project <- local_test_project()
  withr::local_options(rsagemaker.processx = FALSE)
  local_fake_cli(list(exit_status = 0, result = list(arn = "arn:aws:sagemaker:v1")),
    lines = "(the stand-in CLI, printing straight to the R process's terminal)"
  )
  expect_identical(capture.output(arn <- project_approve(project, version = 1)), character()) # around R
  expect_identical(arn, "arn:aws:sagemaker:v1")
  writeLines(c("#!/bin/sh", "echo 'Approving'", "echo 'error: no version 7' >&2", "exit 2"), getOption("rsagemaker.cli"))
  expect_error(project_approve(project, version = 7, quiet = TRUE), "^make approve: no version 7$", class = "rsagemaker_command_error")
})

test_that("an interrupted command gets SIGINT, as from a terminal, with its whole process group", {
  need_processx()
  # (sh's background job ignores SIGINT, as in any script: its output goes elsewhere, not to hold the pipe)
  script <- "trap 'echo stopped; exit 3' INT; sleep 30 >/dev/null & echo ready; wait"
  process <- processx::process$new("sh", c("-c", script), stdout = "|")
  withr::defer(process$kill_tree()) # the sleep too
  process$poll_io(5000)
  expect_identical(process$read_output_lines(), "ready")
  interrupt_group(process)
  expect_identical(process$get_exit_status(), 3L)
  expect_identical(process$read_all_output_lines(), "stopped")
})

test_that("the local runs: make's variables reach the CLI, the value is what the run makes (a stand-in CLI)", {
  project <- local_test_project()
  root <- normalizePath(project, winslash = "/")
  cli <- local_fake_cli(list(exit_status = 0, result = NULL))
  expect_identical(project_local_process(project, instances = 2, quiet = TRUE), file.path(root, "build", "processing", "output"))
  expect_identical(fake_cli_arguments(cli), c("local-process", "--image", "r-on-sagemaker-processing:test", "--instance-count", "2"))
  expect_identical(project_local_train(project, quiet = TRUE), file.path(root, "build", "model.tar.gz"))
  expect_identical(fake_cli_arguments(cli), c("local-train", "--image", "r-on-sagemaker-training:test"))
  expect_identical(project_local_serve(project, port = 8081, multi_model = TRUE, quiet = TRUE), "http://127.0.0.1:8081")
  expect_identical(fake_cli_arguments(cli), c("local-serve", "--image", "r-on-sagemaker-training:test", "--port", "8081", "--multi-model"))
  expect_identical(project_local_serve(project, quiet = TRUE), "http://127.0.0.1:8080")
  expect_identical(fake_cli_arguments(cli), c("local-serve", "--image", "r-on-sagemaker-training:test", "--port", "8080"))
  expect_null(project_local_stop(project, quiet = TRUE))
  expect_identical(fake_cli_arguments(cli), "local-stop")
  input <- file.path(root, "data", "train")
  expect_identical(project_local_transform(project, input = input, quiet = TRUE), file.path(root, "build", "transform", "output"))
  expect_identical(fake_cli_arguments(cli), c("local-transform", "--image", "r-on-sagemaker-training:test", "--input", input))
})

test_that("a local run's missing prerequisite or wrong argument is one line", {
  project <- local_test_project()
  local_fake_cli(list(exit_status = 2, error = "build/model.tar.gz does not exist: run `make local-train` first", result = NULL))
  for (run in list(project_local_serve, project_local_transform)) {
    error <- expect_error(run(project, quiet = TRUE), class = "rsagemaker_command_error")
    expect_match(conditionMessage(error), "^make local-(serve|transform): build/model.tar.gz does not exist: run `make local-train` first$")
  }
  expect_error(project_local_train(project, instances = 1:2), "^INSTANCES must be one string or number", class = "rsagemaker_usage_error")
  expect_error(project_local_process(project, instances = NA), "^INSTANCES must be one string or number", class = "rsagemaker_usage_error")
  expect_error(project_local_serve(project, port = "80\n80"), "^PORT must be one line$", class = "rsagemaker_usage_error")
  expect_error(project_local_stop(file.path(project, "nope")), "^no such project folder: ", class = "rsagemaker_usage_error")
})

test_that("build runs the engine's build of each image and returns their references at TAG (a stand-in docker)", {
  project <- local_test_project()
  dir <- withr::local_tempdir()
  docker <- file.path(dir, "docker")
  writeLines(c("#!/bin/sh", sprintf("echo \"$@\" >> %s", shQuote(file.path(dir, "calls")))), docker)
  Sys.chmod(docker, "755")
  withr::local_envvar(DOCKER = docker) # the Makefile's DOCKER ?= docker
  built <- project_build(project, base_image = "docker.io/library/r-base:4.5.1", tag = "dev", quiet = TRUE)
  expect_identical(built, c(processing = "r-on-sagemaker-processing:dev", training = "r-on-sagemaker-training:dev"))
  expect_identical(readLines(file.path(dir, "calls")), sprintf(
    "build --platform linux/amd64 --build-arg BASE_IMAGE=docker.io/library/r-base:4.5.1 -f images/%s/Dockerfile -t %s .",
    names(built), built
  ))
  writeLines(c("#!/bin/sh", "echo 'Error: pull access denied for nope/r' >&2", "exit 1"), docker)
  expect_error(project_build(project, base_image = "nope/r", quiet = TRUE), "^make build: Error: pull access denied for nope/r$", class = "rsagemaker_command_error")
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

  transform <- project_remote_transform(project, training_job = job, quiet = TRUE)
  expect_match(transform, "^r-on-sagemaker-transform-")
  expect_identical(attr(transform, "status"), "Completed")
  expect_match(attr(transform, "arn"), paste0(":transform-job/", transform, "$"))
  expect_identical(attr(transform, "output_uri"), sprintf("s3://r-test-bucket/r-on-sagemaker/output/%s/", transform))

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

test_that("remote-process against moto returns the job; no code/preprocess.R is one line", {
  tools <- need_cli_and_moto()
  project <- local_aws_project(tools)
  pushed(tools)
  expect_error(
    project_remote_process(project, quiet = TRUE),
    "^make remote-process: code/preprocess.R is missing: the processing job runs it$",
    class = "rsagemaker_command_error"
  )
  writeLines("cat('preprocessed\\n')", file.path(project, "code", "preprocess.R"))
  job <- project_remote_process(project, quiet = TRUE)
  expect_match(job, "^r-on-sagemaker-processing-")
  expect_identical(attr(job, "status"), "Completed")
  expect_match(attr(job, "arn"), paste0(":processing-job/", job, "$"))
  expect_identical(attr(job, "output_uri"), sprintf("s3://r-test-bucket/r-on-sagemaker/output/%s/", job))
  started <- project_remote_process(project, no_wait = TRUE, quiet = TRUE)
  expect_false(identical(as.vector(started), as.vector(job)))
  expect_null(attr(started, "status")) # created, not followed
})

# config/tuning.json as the template writes it.
TUNING <- '{"objective": {"metric": "train:accuracy", "type": "Maximize"}, "strategy": "Bayesian",
  "max_jobs": 6, "max_parallel_jobs": 2, "early_stopping": "Off",
  "ranges": {"maxdepth": {"type": "integer", "min": 1, "max": 6},
             "cp": {"type": "continuous", "min": 0.001, "max": 0.2, "scaling": "Logarithmic"}}}'

test_that("tune against moto: the training jobs best first as a data frame; no config/tuning.json is one line", {
  tools <- need_cli_and_moto()
  project <- local_aws_project(tools)
  pushed(tools)
  expect_error(project_tune(project, quiet = TRUE), "^make tune: config/tuning.json: missing: ", class = "rsagemaker_command_error")
  writeLines(TUNING, file.path(project, "config", "tuning.json"))
  started <- project_tune(project, no_wait = TRUE, quiet = TRUE)
  expect_match(started, "^r-on-sagemaker-[0-9]{6}-[0-9]{6}$")

  # moto completes a tuning job at once but has no ListTrainingJobsForHyperParameterTuningJob: the
  # CLI gets SageMaker's answer, unordered, one job without an objective (it failed).
  summary <- function(name, status, value, maxdepth, cp) {
    objective <- if (!is.null(value)) list(MetricName = "train:accuracy", Value = value)
    list(
      TrainingJobName = name, TrainingJobStatus = status, FinalHyperParameterTuningJobObjectiveMetric = objective,
      TunedHyperParameters = list(maxdepth = maxdepth, cp = cp)
    )
  }
  local_aws_answer("sagemaker", "ListTrainingJobsForHyperParameterTuningJob", list(TrainingJobSummaries = list(
    summary("job-b", "Completed", 0.93, "3", "0.01"),
    summary("job-c", "Failed", NULL, "1", "0.15"),
    summary("job-a", "Completed", 0.97, "5", "0.002")
  )))
  Sys.sleep(1) # a tuning job is named after the time, to the second
  results <- project_tune(project, quiet = TRUE)
  expect_s3_class(results, "data.frame")
  expect_named(results, c("name", "status", "objective", "maxdepth", "cp"))
  expect_identical(results$name, c("job-a", "job-b", "job-c"))
  expect_identical(results$objective, c(0.97, 0.93, NA))
  expect_identical(results$cp, c("0.002", "0.01", "0.15"))
  expect_match(attr(results, "tuning_job"), "^r-on-sagemaker-[0-9]{6}-[0-9]{6}$")
  expect_false(identical(attr(results, "tuning_job"), as.vector(started)))
  expect_identical(attr(results, "status"), "Completed")
  expect_identical(attr(results, "metric"), "train:accuracy")
})

test_that("pipeline against moto: no role is one line; it starts with the SageMaker SDK, else one line names it", {
  tools <- need_cli_and_moto()
  project <- local_aws_project(tools)
  withr::with_envvar(c(SAGEMAKER_ROLE_ARN = NA), expect_error(
    project_pipeline(project, quiet = TRUE),
    "^make pipeline: SageMaker execution role is not set: .*export SAGEMAKER_ROLE_ARN=",
    class = "rsagemaker_command_error"
  ))
  pushed(tools)
  for (script in c("preprocess.R", "evaluate.R")) writeLines("cat('done\\n')", file.path(project, "code", script))
  # The SDK is the CLI's optional `pipeline` extra: the venv of `make setup` (R CMD check's) has
  # none, scripts/sdk-venv.sh v3's has it.
  url <- Sys.getenv("AWS_ENDPOINT_URL")
  if (moto_python(tools, url, "import importlib.util; print(importlib.util.find_spec('sagemaker') is None)") == "True") {
    expect_error(
      project_pipeline(project, no_wait = TRUE, quiet = TRUE),
      "^make pipeline: the pipeline commands need sagemaker[.a-z]*, which is not installed: install the CLI's pipeline extra",
      class = "rsagemaker_command_error"
    )
  } else {
    execution <- project_pipeline(project, no_wait = TRUE, quiet = TRUE)
    expect_match(execution, "^arn:aws:sagemaker:us-east-1:123456789012:pipeline/r-on-sagemaker/execution/")
    expect_identical(attr(execution, "status"), NA_character_)
    expect_identical(moto_python(tools, url, c(
      "sm = client('sagemaker')",
      "print(sm.list_pipelines()['PipelineSummaries'][0]['PipelineName'])",
      "print(len(sm.list_pipeline_executions(PipelineName='r-on-sagemaker')['PipelineExecutionSummaries']))"
    )), c("r-on-sagemaker", "1"))
  }
})

test_that("remote-build against moto: built in CodeBuild, its output through R; no pinned plumbing is one line", {
  tools <- need_cli_and_moto()
  project <- local_aws_project(tools)
  expect_error(
    project_remote_build(project, quiet = TRUE),
    "^make remote-build: plumbing.sha256 is missing: the build pins the plumbing with it$",
    class = "rsagemaker_command_error"
  )
  # vendor/ as `make vendor` leaves it (remote-build reads the names; the build checks the sums), and
  # the bake's .dockerignore in short.
  vendor <- c("rsagemaker_0.3.0.tar.gz", "rsagemaker_cli-0.3.0-py3-none-any.whl")
  dir.create(file.path(project, "vendor"))
  file.create(file.path(project, "vendor", vendor))
  writeLines(paste0(strrep("0", 64), "  ", vendor), file.path(project, "plumbing.sha256"))
  writeLines(c("*", "!code/", "!images/", "!plumbing.sha256", "!vendor/rsagemaker_*.tar.gz"), file.path(project, ".dockerignore"))
  expect_error(
    project_remote_build(project, quiet = TRUE),
    "^make remote-build: CodeBuild service role is not set: ",
    class = "rsagemaker_command_error"
  )
  withr::local_envvar(CODEBUILD_ROLE_ARN = "arn:aws:iam::123456789012:role/r-test-codebuild")
  pushed(tools) # the bucket, and what the build's `make push` leaves in ECR (moto runs no build)
  output <- capture.output(built <- project_remote_build(project))
  ecr <- "123456789012.dkr.ecr.us-east-1.amazonaws.com/r-on-sagemaker-"
  expect_identical(as.vector(built), paste0(ecr, c("processing", "training"), ":test"))
  expect_named(built, c("processing", "training"))
  expect_match(attr(built, "by_digest"), paste0("^", ecr, "(processing|training)@sha256:[0-9a-f]{64}$"))
  expect_identical(attr(built, "status"), "SUCCEEDED")
  expect_match(attr(built, "build_id"), "^r-on-sagemaker-images:")
  expect_true("Built and pushed 2 image(s):" %in% output)
  # Again: moto has no UpdateProject, SageMaker's answer is given.
  local_aws_answer("codebuild", "UpdateProject", list(project = list(name = "r-on-sagemaker-images")))
  output <- capture.output(started <- project_remote_build(project, no_wait = TRUE))
  expect_length(started, 0)
  expect_match(attr(started, "build_id"), "^r-on-sagemaker-images:")
  expect_null(attr(started, "status"))
  expect_true("CodeBuild project r-on-sagemaker-images exists: updated to these settings" %in% output)
  expect_match(output, "^Follow it: aws codebuild batch-get-builds --ids r-on-sagemaker-images:", all = FALSE)
  expect_identical(moto_python(tools, Sys.getenv("AWS_ENDPOINT_URL"), c(
    "print(len(client('codebuild').list_builds_for_project(projectName='r-on-sagemaker-images')['ids']))",
    "print(client('s3').list_objects_v2(Bucket='r-test-bucket', Prefix='r-on-sagemaker/remote-build/')['Contents'][0]['Key'])"
  )), c("2", "r-on-sagemaker/remote-build/source-test.zip"))
})

test_that("pipeline's gate and approval, deploy's capture reach the CLI (a stand-in CLI)", {
  project <- local_test_project()
  arn <- "arn:aws:sagemaker:us-east-1:123456789012:pipeline/r-on-sagemaker/execution/x1"
  package <- "arn:aws:sagemaker:us-east-1:123456789012:model-package/r-on-sagemaker/1"
  cli <- local_fake_cli(list(exit_status = 0, result = list(
    pipeline = "r-on-sagemaker", execution_arn = arn, status = "Succeeded", model_package_arn = package
  )))
  execution <- project_pipeline(project, min_accuracy = 0.95, approval = "Approved", quiet = TRUE)
  expect_identical(execution, structure(arn, status = "Succeeded", model_package = package))
  arguments <- fake_cli_arguments(cli)
  expect_identical(arguments[which(arguments == "--min-accuracy") + 1], "0.95")
  expect_identical(arguments[which(arguments == "--approval-status") + 1], "Approved")
  expect_error(project_pipeline(project, min_accuracy = "high"), "^min_accuracy must be one number", class = "rsagemaker_usage_error")

  local_fake_cli(list(exit_status = 0, result = list(endpoint = "r-on-sagemaker", status = "InService")))
  project_deploy(project, capture = TRUE, quiet = TRUE)
  expect_true("--capture" %in% fake_cli_arguments(getOption("rsagemaker.cli")))
  project_local_serve(project, capture = TRUE, quiet = TRUE)
  expect_true("--capture" %in% fake_cli_arguments(getOption("rsagemaker.cli")))
})

test_that("local-monitor: drift is a result (the report and its violations), other failures are errors", {
  project <- local_test_project()
  report <- file.path(project, "build", "monitor", "output", "report", "report.html")
  violations <- list(
    list(feature = "Petal.Length", check = "psi", value = 0.8, threshold = 0.2, violation = TRUE),
    list(feature = "prediction", check = "level_distance", value = 0.4, threshold = 0.3, violation = TRUE)
  )
  cli <- local_fake_cli(list(exit_status = 2, error = NULL, result = list(
    status = "violations", rows = 120, violations = violations, report = report
  )))
  drifted <- project_local_monitor(project, quiet = TRUE)
  expect_identical(fake_cli_arguments(cli), c("local-monitor", "--image", "r-on-sagemaker-processing:test"))
  expect_identical(as.vector(drifted), report)
  expect_identical(attr(drifted, "status"), "violations")
  expect_identical(attr(drifted, "rows"), 120L)
  expect_identical(attr(drifted, "violations")$feature, c("Petal.Length", "prediction"))
  expect_identical(attr(drifted, "violations")$value, c(0.8, 0.4))

  local_fake_cli(list(exit_status = 0, result = list(status = "ok", rows = 120, violations = list(), report = report)))
  fine <- project_local_monitor(project, quiet = TRUE)
  expect_identical(attr(fine, "status"), "ok")
  expect_identical(nrow(attr(fine, "violations")), 0L)

  local_fake_cli(list(exit_status = 2, error = "build/capture/ is empty: make local-serve CAPTURE=1 and send requests first"))
  expect_error(project_local_monitor(project, quiet = TRUE), "^make local-monitor: build/capture/ is empty", class = "rsagemaker_command_error")
})

test_that("monitor, its schedule and the schedule's role against moto", {
  tools <- need_cli_and_moto()
  project <- local_aws_project(tools)
  writeLines("cat('monitoring\\n')", file.path(project, "code", "monitor.R"))
  expect_error(project_monitor(project, quiet = TRUE), "^make monitor: .*deploy", class = "rsagemaker_command_error")
  pushed(tools) # both images
  project_remote_train(project, quiet = TRUE)
  endpoint <- project_deploy(project, capture = TRUE, quiet = TRUE)
  expect_identical(attr(endpoint, "status"), "InService")

  job <- project_monitor(project, quiet = TRUE)
  expect_match(job, "^r-on-sagemaker-monitor-")
  expect_match(attr(job, "report"), paste0("^s3://r-test-bucket/.*", job, "/report.html$"))
  expect_identical(attr(job, "exit_status"), 0L)

  role <- project_monitor_schedule_role(project, quiet = TRUE)
  expect_identical(role, "arn:aws:iam::123456789012:role/r-on-sagemaker-monitor-scheduler")
  expect_error(project_monitor_schedule(project, quiet = TRUE), "^make monitor-schedule: .*role", class = "rsagemaker_command_error")
  withr::local_envvar(SAGEMAKER_MONITOR_SCHEDULER_ROLE_ARN = role)
  schedule <- project_monitor_schedule(project, quiet = TRUE)
  expect_identical(as.vector(schedule), "r-on-sagemaker-monitor")
  expect_identical(attr(schedule, "expression"), "rate(1 day)")
  expect_match(attr(schedule, "arn"), ":schedule/default/r-on-sagemaker-monitor$")
})

test_that("local-tune: the trials best first as tune-results gives them (a stand-in CLI)", {
  project <- local_test_project()
  cli <- local_fake_cli(list(exit_status = 0, result = list(
    tuning_job_name = "local", status = "Completed", metric = "validation:accuracy", type = "Maximize",
    training_jobs = list(
      list(name = "trial-2", status = "Completed", objective = 0.96, hyperparameters = list(maxdepth = 4, cp = 0.01)),
      list(name = "trial-1", status = "Completed", objective = 0.9, hyperparameters = list(maxdepth = 2, cp = 0.1))
    )
  )))
  trials <- project_local_tune(project, trials = 2, seed = 7, quiet = TRUE)
  expect_identical(fake_cli_arguments(cli), c("local-tune", "--image", "r-on-sagemaker-training:test", "--trials", "2", "--seed", "7"))
  expect_identical(trials$name, c("trial-2", "trial-1"))
  expect_identical(trials$objective, c(0.96, 0.9))
  expect_identical(trials$maxdepth, c("4", "2"))
  expect_identical(attr(trials, "metric"), "validation:accuracy")
})
