# project_*(): the project CLI (rsagemaker) against a moto server on loopback, as cli/tests does.
# Both are found next to each other: RSAGEMAKER_CLI, else `rsagemaker` on the PATH, with moto_server
# in the same folder (a venv with rsagemaker-cli and moto[server]). Where they are missing the
# tests are skipped, except in CI (CI=true), where that is a failure.

test_cli <- function() {
  cli <- Sys.getenv("RSAGEMAKER_CLI")
  if (!nzchar(cli)) cli <- Sys.which("rsagemaker")
  if (nzchar(cli) && file.exists(cli)) normalizePath(cli) else ""
}

skip_or_fail <- function(message) {
  if (identical(tolower(Sys.getenv("CI")), "true")) testthat::fail(paste(message, "(CI: nothing may be skipped)"))
  testthat::skip(message)
}

# processx (it runs moto, and project_command() writes the output through R with it); skips
# (fails in CI) without it.
need_processx <- function() {
  if (!requireNamespace("processx", quietly = TRUE)) skip_or_fail("the R package processx is not installed")
}

# The CLI and its venv's moto_server; skips (fails in CI) without them, or without processx.
need_cli_and_moto <- function() {
  cli <- test_cli()
  if (!nzchar(cli)) skip_or_fail("no rsagemaker CLI (set RSAGEMAKER_CLI or put it on the PATH)")
  moto <- file.path(dirname(cli), "moto_server")
  if (!file.exists(moto)) skip_or_fail(paste("no moto_server next to", cli))
  need_processx()
  list(cli = cli, moto = moto, python = file.path(dirname(cli), "python"))
}

# Whether a URL answers (with anything).
answers <- function(address) {
  con <- url(address)
  on.exit(try(close(con), silent = TRUE))
  tryCatch(suppressWarnings(length(readLines(con, warn = FALSE)) > 0), error = function(e) FALSE)
}

# One moto server for the file that calls this; returns its URL (stopped when the file ends).
moto_env <- new.env()
start_moto <- function(tools, env = parent.frame()) {
  if (!is.null(moto_env$url) && moto_env$process$is_alive()) return(moto_env$url)
  port <- NA
  for (attempt in 1:5) {
    port <- sample(20000:60000, 1)
    process <- processx::process$new(tools$moto, c("-H", "127.0.0.1", "-p", port),
      stdout = NULL, stderr = file.path(tempdir(), "moto.log"), env = c("current", LD_LIBRARY_PATH = child_library_path())
    )
    url <- sprintf("http://127.0.0.1:%d", port)
    deadline <- Sys.time() + 30
    while (process$is_alive() && Sys.time() < deadline) {
      up <- answers(paste0(url, "/moto-api/data.json"))
      if (up) {
        moto_env$url <- url
        moto_env$process <- process
        withr::defer(process$kill(), envir = env)
        return(url)
      }
      Sys.sleep(0.2)
    }
    process$kill()
  }
  log <- file.path(tempdir(), "moto.log")
  testthat::fail(paste(c("moto_server did not come up:", if (file.exists(log)) tail(readLines(log), 5)), collapse = "\n"))
}

# Python with boto3 against moto: the tests' own view (seeding what a test needs).
moto_python <- function(tools, url, code) {
  script <- tempfile(fileext = ".py")
  on.exit(unlink(script))
  writeLines(c(
    "import json, boto3, urllib.request",
    sprintf("URL = '%s'", url),
    "s = boto3.Session(region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')",
    "def client(name): return s.client(name, endpoint_url=URL)",
    code
  ), script)
  withr::local_envvar(LD_LIBRARY_PATH = child_library_path())
  output <- system2(tools$python, script, stdout = TRUE, stderr = TRUE)
  if (!is.null(attr(output, "status"))) stop(paste(output, collapse = "\n"))
  output
}

# A fresh moto, this test's AWS environment pointing at it, and a copy of the test project; returns
# the project's folder.
local_aws_project <- function(tools, env = parent.frame()) {
  url <- start_moto(tools, env = testthat::teardown_env())
  moto_python(tools, url, "urllib.request.urlopen(urllib.request.Request(URL + '/moto-api/reset', method='POST'))")
  withr::local_envvar(
    AWS_ENDPOINT_URL = url, AWS_ACCESS_KEY_ID = "testing", AWS_SECRET_ACCESS_KEY = "testing",
    AWS_REGION = NA, AWS_DEFAULT_REGION = NA, AWS_PROFILE = NA, AWS_SESSION_TOKEN = NA,
    AWS_CONFIG_FILE = "/nonexistent/aws-config", AWS_SHARED_CREDENTIALS_FILE = "/nonexistent/aws-credentials",
    AWS_EC2_METADATA_DISABLED = "true",
    SAGEMAKER_ROLE_ARN = "arn:aws:iam::123456789012:role/r-test", SAGEMAKER_BUCKET = "r-test-bucket",
    RSAGEMAKER_CLI = tools$cli,
    .local_envir = env
  )
  withr::local_options(rsagemaker.cli = NULL, .local_envir = env)
  local_test_project(env)
}

# A copy of the test project (its Makefile is project/Makefile.txt: R CMD check refuses a GNU
# Makefile in a package); returns its folder.
local_test_project <- function(env = parent.frame()) {
  root <- withr::local_tempdir(.local_envir = env)
  file.copy(testthat::test_path("project"), root, recursive = TRUE)
  project <- file.path(root, "project")
  file.rename(file.path(project, "Makefile.txt"), file.path(project, "Makefile"))
  project
}

# The state after `make push`: the bucket and both images (a manifest each) in moto's ECR.
MANIFEST <- paste0(
  "json.dumps({'schemaVersion': 2, 'mediaType': 'application/vnd.docker.distribution.manifest.v2+json',",
  " 'config': {'mediaType': 'application/vnd.docker.container.image.v1+json', 'size': 2, 'digest': 'sha256:' + '0' * 64},",
  " 'layers': [{'mediaType': 'application/vnd.docker.image.rootfs.diff.tar.gzip', 'size': 1, 'digest': 'sha256:' + '0' * 64}]})"
)
pushed <- function(tools) {
  moto_python(tools, Sys.getenv("AWS_ENDPOINT_URL"), c(
    "client('s3').create_bucket(Bucket='r-test-bucket')",
    "for image in ('processing', 'training'):",
    "    client('ecr').create_repository(repositoryName='r-on-sagemaker-' + image)",
    paste0("    client('ecr').put_image(repositoryName='r-on-sagemaker-' + image, imageTag='test', imageManifest=", MANIFEST, ")")
  ))
}

# The CLI's answer to an AWS operation moto lacks, e.g. ("sagemaker", "ListTrainingJobsFor..."):
# `answer` (a list, as JSON), given in the CLI's own process by a botocore hook that Python loads at
# start-up (sitecustomize.py on PYTHONPATH), as the template's suite does (tests/test_pipeline.py).
local_aws_answer <- function(service, operation, answer, env = parent.frame()) {
  dir <- withr::local_tempdir(.local_envir = env)
  jsonlite::write_json(answer, file.path(dir, "answer.json"), auto_unbox = TRUE, null = "null", digits = NA)
  writeLines(c(
    "import json, os, botocore.awsrequest, botocore.session",
    "with open(os.path.join(os.path.dirname(__file__), 'answer.json')) as file: ANSWER = json.load(file)",
    "def answer(**_):",
    "    return botocore.awsrequest.AWSResponse('http://127.0.0.1/', 200, {}, None), ANSWER",
    "create_client = botocore.session.Session.create_client",
    "def hooked(self, service_name, *args, **kwargs):",
    "    client = create_client(self, service_name, *args, **kwargs)",
    sprintf("    client.meta.events.register('before-call.%s.%s', answer)", service, operation),
    "    return client",
    "botocore.session.Session.create_client = hooked"
  ), file.path(dir, "sitecustomize.py"))
  withr::local_envvar(PYTHONPATH = dir, .local_envir = env)
}

# A stand-in CLI that writes `outcome` (a list) as its --json outcome, prints `lines` (and `errors`
# on stderr) and records its arguments (fake_cli_arguments()).
local_fake_cli <- function(outcome, lines = "working...", errors = character(), env = parent.frame()) {
  dir <- withr::local_tempdir(.local_envir = env)
  json <- file.path(dir, "outcome.json")
  jsonlite::write_json(outcome, json, auto_unbox = TRUE, null = "null", digits = NA)
  cli <- file.path(dir, "rsagemaker")
  printed <- function(text) sprintf("printf '%%s\\n' %s", paste(shQuote(text), collapse = " "))
  writeLines(c(
    "#!/bin/sh",
    sprintf("printf '%%s\\n' \"$@\" > %s", shQuote(file.path(dir, "arguments"))),
    printed(lines),
    if (length(errors) > 0) paste(printed(errors), ">&2"),
    sprintf("cp %s \"$2\"", shQuote(json)),
    sprintf("exit %d", outcome$exit_status %||% 0L)
  ), cli)
  Sys.chmod(cli, "755")
  withr::local_options(rsagemaker.cli = cli, .local_envir = env)
  cli
}

# The arguments the stand-in CLI `cli` was last called with, less `--json FILE`: the command and
# what make passed it.
fake_cli_arguments <- function(cli) {
  readLines(file.path(dirname(cli), "arguments"))[-(1:2)]
}
