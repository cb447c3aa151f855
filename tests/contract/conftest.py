"""Fixtures of the container-contract tests: the images under test and a host R with rsagemaker.

The images are the default bake's, built once per session by tests/conftest.py's built_project
(on the stand-in base here, on R_SAGEMAKER_TEST_BASE elsewhere). The fast tests of the R plumbing
run rsagemaker from this checkout (rsagemaker/) on the host's R against a temporary /opt/ml.
"""

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import TEMPLATE, unavailable


@pytest.fixture(scope="session")
def docker_client(engine):
    return engine


@pytest.fixture(scope="session")
def training_image(built_project):
    _, images = built_project
    return images["training"]


@pytest.fixture(scope="session")
def processing_image(built_project):
    _, images = built_project
    return images["processing"]


RSAGEMAKER_SOURCE = TEMPLATE / "rsagemaker"


@pytest.fixture(scope="session")
def rscript(tmp_path_factory):
    """Rscript on the host, for the fast tests of the R plumbing against a temporary /opt/ml.

    The rsagemaker package is installed from this checkout (rsagemaker/) into a library of this test
    session, and R_LIBS points every R process the tests start (and their children) at it."""
    path = shutil.which("Rscript")
    if not path:
        unavailable(
            "Rscript is not installed on this machine (apt-get install r-base-core r-cran-jsonlite r-cran-data.table)"
        )
    library = tmp_path_factory.mktemp("r-library")
    install = subprocess.run(
        [
            str(Path(path).with_name("R")),
            "CMD",
            "INSTALL",
            "--no-docs",
            "--preclean",
            "--clean",  # no objects left in the source folder
            "-l",
            str(library),
            str(RSAGEMAKER_SOURCE),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, f"R CMD INSTALL rsagemaker failed:\n{install.stdout}\n{install.stderr}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("R_LIBS", str(library))
        yield path
