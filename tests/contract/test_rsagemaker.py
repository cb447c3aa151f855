"""The rsagemaker package's own testthat suite (rsagemaker/tests/testthat), run by
the training image's R against the package installed in it: the R of the base image, not the host's.
An image FROM the training image adds testthat (apt, as the packages of packages.txt come).

Not every test file belongs in the image: HOST_ONLY ones test what runs only in the user's R session
on the host (project_*() drive the project's make targets, the Python CLI and a moto server), which
the image neither has nor needs. scripts/check-rsagemaker.sh runs them with the rest of the suite
(R CMD check on the host, the CLI and moto from the template's .venv; in CI they may not skip)."""

import io
import re
from pathlib import Path

import pytest

PACKAGE_TESTS = Path(__file__).resolve().parents[2] / "rsagemaker" / "tests"
HOST_ONLY = ["project"]  # test-<name>.R files run on the host only (see above)

TESTTHAT_DOCKERFILE = """FROM {image}
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends r-cran-testthat \\
 && rm -rf /var/lib/apt/lists/*
"""

RUN_SUITE = """
results <- as.data.frame(testthat::test_dir(
  "/rsagemaker-tests/testthat", package = "rsagemaker", load_package = "installed",
  reporter = "summary", stop_on_failure = FALSE, filter = "^({host_only})$", invert = TRUE
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
        ["-e", RUN_SUITE.replace("{host_only}", "|".join(HOST_ONLY))],
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
    assert {f"test-{name}.R" for name in HOST_ONLY} <= {path.name for path in test_files}
    in_image = [path for path in test_files if path.stem.removeprefix("test-") not in HOST_ONLY]
    declared = sum(path.read_text().count("test_that(") for path in in_image)
    assert tests == declared and expectations > tests, logs
    assert (failed, skipped, errors) == (0, 0, 0), logs


def test_one_test_file_per_r_file():
    sources = {path.stem for path in (PACKAGE_TESTS.parent / "R").glob("*.R")}
    tested = {path.stem.removeprefix("test-") for path in PACKAGE_TESTS.glob("testthat/test-*.R")}
    assert tested == sources
