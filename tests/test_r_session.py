"""The R session's way, on the host's R with no container: a default bake's `make test-r` installs the
rsagemaker it vendors (this checkout's build, scripts/dist.sh) into a library of its own and runs the
bake's testthat file, whose train_local() trains on the sample data and invoke_local() answers it."""

import re
import shutil

from conftest import bake, make, unavailable


def test_bake_tests_its_model_in_r(tmp_path):
    if shutil.which("Rscript") is None:
        unavailable("no host R (bash scripts/host-packages.sh installs it)")
    project = bake(tmp_path / "bake")
    library = tmp_path / "r-library"
    result = make(project, "test-r", R_LIBRARY=library)
    output = result.stdout + result.stderr
    assert (library / "rsagemaker" / "DESCRIPTION").is_file()
    summary = re.search(r"\[ FAIL (\d+) \| WARN (\d+) \| SKIP (\d+) \| PASS (\d+) \]", output)
    assert summary, output
    assert summary.groups()[:3] == ("0", "0", "0") and int(summary.group(4)) > 0, output
    model = project / "build" / "local-r" / "model"
    assert {"model.rds", "input-prototype.json", "code"} <= {path.name for path in model.iterdir()}
    assert (model / "code" / "deploy.R").is_file()
