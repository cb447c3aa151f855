"""The rsagemaker package's own testthat suite (rsagemaker/tests/testthat), run by
the training image's R against the package installed in it: the R of the base image, not the host's.
An image FROM the training image adds testthat (apt, as the packages of packages.txt come)."""

import io
import re
from pathlib import Path

import pytest

PACKAGE_TESTS = Path(__file__).resolve().parents[2] / "rsagemaker" / "tests"

TESTTHAT_DOCKERFILE = """FROM {image}
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends r-cran-testthat \\
 && rm -rf /var/lib/apt/lists/*
"""

RUN_SUITE = """
results <- as.data.frame(testthat::test_dir(
  "/rsagemaker-tests/testthat", package = "rsagemaker", load_package = "installed",
  reporter = "summary", stop_on_failure = FALSE
))
cat(sprintf("RESULT tests=%d expectations=%d failed=%d skipped=%d errors=%d\\n", nrow(results),
  sum(results$nb), sum(results$failed), sum(results$skipped), sum(results$error)))
"""


@pytest.fixture(scope="module")
def testthat_image(docker_client, training_image):
    name, _, tag = training_image.rpartition(":")
    if "/" in tag or not name:  # a reference without a tag
        name, tag = training_image, "latest"
    ref = f"{name}:{tag}-testthat"
    dockerfile = TESTTHAT_DOCKERFILE.format(image=training_image).encode()
    docker_client.images.build(fileobj=io.BytesIO(dockerfile), tag=ref, rm=True, pull=False)
    return ref


def test_package_suite_passes_in_the_training_image(docker_client, testthat_image):
    # Detached, then the logs of the ended container: a blocking run(remove=True) under podman can
    # return the log cut short once it is long (the suite's ends with the RESULT line).
    container = docker_client.containers.run(
        testthat_image,
        ["-e", RUN_SUITE],
        entrypoint=["Rscript"],
        volumes={str(PACKAGE_TESTS): {"bind": "/rsagemaker-tests", "mode": "ro"}},
        detach=True,
    )
    try:
        status = container.wait(timeout=600)["StatusCode"]
        logs = container.logs(stdout=True, stderr=True).decode(errors="replace")
    finally:
        container.remove(force=True)
    assert status == 0, logs
    found = re.search(r"RESULT tests=(\d+) expectations=(\d+) failed=(\d+) skipped=(\d+) errors=(\d+)", logs)
    assert found, logs
    tests, expectations, failed, skipped, errors = map(int, found.groups())
    test_files = sorted(PACKAGE_TESTS.glob("testthat/test-*.R"))
    declared = sum(path.read_text().count("test_that(") for path in test_files)
    assert tests == declared and expectations > tests, logs
    assert (failed, skipped, errors) == (0, 0, 0), logs


def test_one_test_file_per_r_file():
    sources = {path.stem for path in (PACKAGE_TESTS.parent / "R").glob("*.R")}
    tested = {path.stem.removeprefix("test-") for path in PACKAGE_TESTS.glob("testthat/test-*.R")}
    assert tested == sources
