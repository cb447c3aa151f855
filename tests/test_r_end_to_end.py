"""Issue 26's loop driven from R, in one Rscript run on the default bake with its built images
(built_project: no rebuild): train_local -> invoke_local -> project_local_train -> local serve ->
project_predict -> (moto, a loopback registry) project_push, project_remote_train, project_deploy,
project_invoke. The R package is this checkout's rsagemaker, installed into a library of its own."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from conftest import TEST_TAG, unavailable
from test_ship import BUCKET, REGISTRY_OVERRIDE, ROLE, aws, moto, push_to_moto  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "rsagemaker"

SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
library(rsagemaker, lib.loc = args[[1]])
project <- args[[2]]
port <- as.integer(args[[3]])
step <- function(what) cat(sprintf("\n== R: %s\n", what))

step("train_local, invoke_local")
model <- train_local(project, quiet = TRUE)
answer <- invoke_local(project, head(iris[1:4]))
stopifnot(length(answer$prediction) == 6)

step("local train, serve, predict")
project_local_train(project)
url <- project_local_serve(project, port = port)
on.exit(project_local_stop(project, quiet = TRUE))
predicted <- project_predict(project)
stopifnot(is.data.frame(predicted), nrow(predicted) == 5)
project_local_stop(project)

step("push, remote-train, deploy, invoke (moto)")
pushed <- project_push(project)
stopifnot(length(pushed) >= 2)
job <- project_remote_train(project)
stopifnot(attr(job, "status") == "Completed")
endpoint <- project_deploy(project)
stopifnot(attr(endpoint, "status") == "InService")
invoked <- project_invoke(project)
stopifnot(identical(invoked$prediction, c("setosa", "virginica")))
cat("R END TO END OK\n")
"""


@pytest.mark.slow
def test_the_loop_from_r(built_project, aws, moto, registry, tmp_path):  # noqa: F811
    if shutil.which("Rscript") is None:
        unavailable("no host R (bash scripts/host-packages.sh installs it)")
    project, _images = built_project
    library = tmp_path / "r-library"
    library.mkdir()
    subprocess.run(
        ["R", "CMD", "INSTALL", f"--library={library}", str(ROOT / "rsagemaker")],
        check=True,
        capture_output=True,
    )
    requests.post(
        f"{moto}/moto-api/static/sagemaker/endpoint-results",
        json={"results": [{"Body": "setosa\nvirginica\n", "ContentType": "text/csv"}]},
        timeout=10,
    ).raise_for_status()
    # moto's ECR has no registry behind it (the pushes go to the loopback one): the images the remote
    # commands look up are put there beforehand, as test_ship.py does.
    push_to_moto(aws)
    from rsagemaker_cli.core.net import free_port

    env = {
        **os.environ,
        "TAG": TEST_TAG,
        "R_LIBS": str(library),  # train_local()'s child R process loads rsagemaker from there too
        "PYTHON": sys.executable,
        "RSAGEMAKER_CLI": str(CLI),
        REGISTRY_OVERRIDE: registry,
        "SAGEMAKER_ROLE_ARN": ROLE,
        "SAGEMAKER_BUCKET": BUCKET,
    }
    script = tmp_path / "loop.R"
    script.write_text(SCRIPT)
    result = subprocess.run(
        ["Rscript", str(script), str(library), str(project), str(free_port())],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "R END TO END OK" in result.stdout, output
