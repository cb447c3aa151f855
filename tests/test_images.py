"""Smoke-build the default bake on the base image and run each image the way SageMaker does."""

import json
import shutil
import time

import pytest
import requests

pytestmark = pytest.mark.slow


def test_processing_image_runs_rscript(engine, built_project):
    _, images = built_project
    output = engine.containers.run(
        images["processing"], ["-e", "cat(sum(1:10), R.version$major)"], remove=True
    )
    assert output.decode().split()[0] == "55"
    config = engine.images.get(images["processing"]).attrs["Config"]
    assert config["Entrypoint"] == ["Rscript"]


def train_then_serve(engine, project, image, work, startup_timeout=60):
    """`docker run IMAGE train` on the sample data in an emulated /opt/ml under work, then
    `docker run IMAGE serve` of the model it saved: /ping, then one CSV /invocations answer."""
    opt_ml = work / "opt_ml"
    (opt_ml / "input/config").mkdir(parents=True)
    shutil.copytree(project / "data/train", opt_ml / "input/data/train")
    (opt_ml / "input/config/hyperparameters.json").write_text(json.dumps({"maxdepth": "4"}))
    (opt_ml / "input/config/inputdataconfig.json").write_text(
        json.dumps({"train": {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"}})
    )
    (opt_ml / "input/config/resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"})
    )
    # SageMaker mounts input/, model/ and output/ but leaves the image's /opt/ml/code visible.
    for folder in ("model", "output"):
        (opt_ml / folder).mkdir()
    mounts = {
        str(opt_ml / folder): {"bind": f"/opt/ml/{folder}", "mode": "rw"}
        for folder in ("input", "model", "output")
    }
    engine.containers.run(image, ["train"], remove=True, volumes=mounts)
    assert (opt_ml / "model/model.rds").is_file()
    assert (opt_ml / "model/code/deploy.R").is_file()
    # train.R saves the input prototype the default input_fn checks requests against.
    prototype = json.loads((opt_ml / "model/input-prototype.json").read_text())
    assert [column["type"] for column in prototype["columns"]] == ["number"] * 4

    container = engine.containers.run(
        image,
        ["serve"],
        detach=True,
        ports={"8080/tcp": ("127.0.0.1", None)},
        volumes={str(opt_ml / "model"): {"bind": "/opt/ml/model", "mode": "ro"}},
    )
    try:
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + startup_timeout
        while True:
            try:
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, container.logs().decode()
            time.sleep(0.2)
        rows = (project / "data/train/iris.csv").read_text().splitlines()[1:]
        sample = "\n".join(",".join(row.split(",")[:4]) for row in (rows[0], rows[-1]))
        answer = requests.post(
            f"{url}/invocations", data=sample, headers={"Content-Type": "text/csv"}, timeout=60
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["Content-Type"].startswith("text/csv")
        assert [line.strip('"') for line in answer.text.split()] == ["setosa", "virginica"]
    finally:
        container.remove(force=True)


def test_training_image_trains_then_serves_predictions(engine, built_project, tmp_path):
    project, images = built_project
    train_then_serve(engine, project, images["training"], tmp_path)


@pytest.mark.arm64
def test_arm64_training_image_builds_trains_and_serves(engine, default_project, arm64_base_image, tmp_path):
    """Graviton: `make build-training PLATFORM=linux/arm64` of the default bake, run under qemu here.
    The image trains on the sample data and serves /ping and a prediction, and its Rscript (the
    wrapper ScriptProcessor runs) runs R for aarch64. Only the training image is built: the
    processing image is the same base, install-r-packages.sh and wrapper with fewer packages, and
    every build step under emulation costs minutes (the CI budget)."""
    from conftest import TEST_TAG, make

    tag = f"{TEST_TAG}-arm64"
    make(default_project, "build-training", PLATFORM="linux/arm64", BASE_IMAGE=arm64_base_image, TAG=tag)
    listing = make(default_project, "images", TAG=tag).stdout.split()
    image = dict(line.split("=", 1) for line in listing)["training"]
    assert engine.images.get(image).attrs["Architecture"] == "arm64", image
    output = engine.containers.run(image, ["-e", "cat(R.version$arch)"], entrypoint=["Rscript"], remove=True)
    assert output.decode() == "aarch64"
    # Under emulation R starts in seconds, not tenths of a second: give the workers time to load.
    train_then_serve(engine, default_project, image, tmp_path, startup_timeout=300)


def test_a_package_that_cannot_install_fails_the_build(built_project, base_image, tmp_path):
    """install-r-packages.sh: no apt binary and no CRAN package means a failed build, not a warning."""
    from conftest import make

    project, _ = built_project
    copy = tmp_path / "project"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns("build", ".venv"))
    packages = copy / "images/processing/packages.txt"
    packages.write_text(packages.read_text() + "surely.not.a.package\n")
    result = make(copy, "build-processing", check=False, BASE_IMAGE=base_image, TAG="broken")
    assert result.returncode != 0
    assert "R packages not installed: surely.not.a.package" in result.stdout + result.stderr


def test_demo_runs_the_whole_chain(built_project, base_image):
    """README's main job (`make demo` runs scripts/demo.sh): bake, build, process, train, serve, predict."""
    import os
    import subprocess

    from conftest import TEMPLATE, TEST_TAG, free_port

    # A free port: 8080, the demo's default, may be held by something else on this machine.
    env = {
        **os.environ,
        "DEMO_BASE_IMAGE": base_image,
        "DEMO_TAG": f"demo-{TEST_TAG}",
        "DEMO_PORT": str(free_port()),
    }
    result = subprocess.run(
        ["bash", str(TEMPLATE / "scripts/demo.sh")], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    for step in ("make build", "make local-process", "make local-train", "make local-serve", "make predict"):
        assert f"==> {step}" in result.stdout
    assert "==> 200 text/csv:" in result.stdout
    assert "Demo complete." in result.stdout
