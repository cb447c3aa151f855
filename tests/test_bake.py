"""Bake every combination of the choice options and check what comes out."""

import json
import re

import pytest

TEMPLATE_CONFIG = json.loads((__import__("conftest").TEMPLATE / "cookiecutter.json").read_text())
BASE_IMAGES = TEMPLATE_CONFIG["base_image"]
IMAGE_CHOICES = TEMPLATE_CONFIG["images"]
R_PACKAGES_CHOICES = TEMPLATE_CONFIG["r_packages"]

# Every file of a bake with both images; the other choices drop the files of the image left out.
COMMON_FILES = {
    ".cruft.json",
    ".dockerignore",
    ".github/workflows/ci.yml",
    ".gitignore",
    ".hadolint.yaml",
    ".lintr",
    ".pre-commit-config.yaml",
    ".shellcheckrc",
    "Makefile",
    "README.md",
    "config/aws.json",
    "data/train/iris.csv",
    "images/rscript-profile.R",
    "images/rscript.sh",
    "pyproject.toml",
    "sagemaker_tools/__init__.py",
    "sagemaker_tools/__main__.py",
    "sagemaker_tools/async_inference.py",
    "sagemaker_tools/autoscaling.py",
    "sagemaker_tools/base_image.py",
    "sagemaker_tools/ecr.py",
    "sagemaker_tools/endpoints.py",
    "sagemaker_tools/engine.py",
    "sagemaker_tools/jobs.py",
    "sagemaker_tools/local.py",
    "sagemaker_tools/metric_definitions.py",
    "sagemaker_tools/multi_model.py",
    "sagemaker_tools/opt_ml.py",
    "sagemaker_tools/remote.py",
    "sagemaker_tools/settings.py",
    "tests/conftest.py",
    "tests/test_base_image.py",
    "tests/test_local.py",
}
PROCESSING_FILES = {
    "code/preprocess.R",
    "images/processing/Dockerfile",
    "tests/test_processing.py",
}
TRAINING_FILES = {
    "bench/wrk-report.lua",
    "code/deploy.R",
    "code/train.R",
    "config/hyperparameters.json",
    "images/training/Dockerfile",
    "images/training/entrypoint.R",
    "images/training/run.sh",
    "images/training/nginx.conf.template",
    "images/training/rsagemaker/DESCRIPTION",
    "images/training/rsagemaker/LICENSE",
    "images/training/rsagemaker/NAMESPACE",
    "images/training/rsagemaker/R/environment.R",
    "images/training/rsagemaker/R/errors.R",
    "images/training/rsagemaker/R/http.R",
    "images/training/rsagemaker/R/hyperparameters.R",
    "images/training/rsagemaker/R/json.R",
    "images/training/rsagemaker/R/main.R",
    "images/training/rsagemaker/R/memory.R",
    "images/training/rsagemaker/R/multi_model.R",
    "images/training/rsagemaker/R/prototype.R",
    "images/training/rsagemaker/R/server.R",
    "images/training/rsagemaker/R/serving.R",
    "images/training/rsagemaker/R/training.R",
    "images/training/rsagemaker/R/versions.R",
    "images/training/rsagemaker/inst/fetch_code.py",
    "images/training/rsagemaker/inst/user_profile.R",
    "images/training/rsagemaker/src/csv.c",
    "images/training/rsagemaker/src/http.c",
    "images/training/rsagemaker/src/init.c",
    "images/training/rsagemaker/src/memory.c",
    "images/training/rsagemaker/tests/testthat/helper-opt-ml.R",
    "images/training/rsagemaker/tests/testthat/test-environment.R",
    "images/training/rsagemaker/tests/testthat/test-errors.R",
    "images/training/rsagemaker/tests/testthat/test-http.R",
    "images/training/rsagemaker/tests/testthat/test-hyperparameters.R",
    "images/training/rsagemaker/tests/testthat/test-json.R",
    "images/training/rsagemaker/tests/testthat/test-main.R",
    "images/training/rsagemaker/tests/testthat/test-memory.R",
    "images/training/rsagemaker/tests/testthat/test-multi_model.R",
    "images/training/rsagemaker/tests/testthat/test-prototype.R",
    "images/training/rsagemaker/tests/testthat/test-server.R",
    "images/training/rsagemaker/tests/testthat/test-serving.R",
    "images/training/rsagemaker/tests/testthat/test-training.R",
    "images/training/rsagemaker/tests/testthat/test-versions.R",
    "sagemaker_tools/bench.py",
    "sagemaker_tools/registry.py",
    "sagemaker_tools/transform.py",
    "tests/serving_support.py",
    "tests/test_bench_smoke.py",
    "tests/test_multi_model.py",
    "tests/test_serving.py",
    "tests/test_serving_fuzz.py",
    "tests/test_payloads.py",
    "tests/test_transform.py",
    "tests/test_rsagemaker.py",
    "tests/test_serving_units.py",
    "tests/test_training.py",
    "tests/test_training_units.py",
    "tests/test_workers.py",
    "tests/training_support.py",
    "tests/training_toolkit_snapshot.py",
}

# The pipeline (process -> train -> evaluate -> register) runs both images.
PIPELINE_FILES = {
    "code/evaluate.R",
    "sagemaker_tools/pipeline.py",
    "sagemaker_tools/pipeline_definition.py",
    "sagemaker_tools/pipeline_local.py",
}


# How the R packages are chosen: package names per image, or one renv lockfile for both.
PACKAGES_TXT_FILES = {"images/install-r-packages.sh"}
RENV_FILES = {
    "images/renv-lockfile.sh",
    "images/renv-lockfile.R",
    "code/renv.lock",
    "code/.Rprofile",
    "code/renv/activate.R",
    "code/renv/.gitignore",
}


def expected_files(images, r_packages="packages.txt"):
    files = set(COMMON_FILES)
    files |= RENV_FILES if r_packages == "renv" else PACKAGES_TXT_FILES
    if images in ("both", "processing"):
        files |= PROCESSING_FILES
        if r_packages == "packages.txt":
            files.add("images/processing/packages.txt")
    if images in ("both", "training"):
        files |= TRAINING_FILES
        if r_packages == "packages.txt":
            files.add("images/training/packages.txt")
    if images == "both":
        files |= PIPELINE_FILES
    return files


def project_files(root):
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


# Every images x base_image with the default packages.txt, and renv with every images choice on
# each base: the r_packages files do not depend on the base, so the full product would add nothing.
COMBINATIONS = [
    pytest.param(images, base, r_packages, id=f"{images}-{base.split('/')[-1]}-{r_packages}")
    for r_packages in R_PACKAGES_CHOICES
    for images in IMAGE_CHOICES
    for base in (BASE_IMAGES if r_packages == "packages.txt" else BASE_IMAGES[:1])
]


@pytest.mark.parametrize(("images", "base_image", "r_packages"), COMBINATIONS)
def test_bake_combination(cookies, images, base_image, r_packages):
    result = cookies.bake(
        extra_context={"images": images, "base_image": base_image, "r_packages": r_packages}
    )
    assert result.exit_code == 0, result.exception
    # pytest-cookies drops unknown keys silently: the answers must show up in the context.
    assert result.context["images"] == images
    assert result.context["base_image"] == base_image
    assert result.context["r_packages"] == r_packages
    root = result.project_path
    assert root.name == "r-on-sagemaker"
    # The README is the quick start and the files to edit; the reference lives in docs/ (the site).
    readme_lines = len((root / "README.md").read_text().splitlines())
    assert readme_lines <= 200, f"README.md has {readme_lines} lines: at most 200 (move reference to docs/)"

    assert project_files(root) == expected_files(images, r_packages)
    if images == "training":
        assert not (root / "images/processing").exists()
    if images == "processing":
        assert not (root / "images/training").exists()

    makefile = (root / "Makefile").read_text()
    assert f"BASE_IMAGE ?= {base_image}" in makefile
    for dockerfile in root.glob("images/*/Dockerfile"):
        assert f"ARG BASE_IMAGE={base_image}" in dockerfile.read_text()
    # Make targets of the image left out are gone too.
    assert ("local-process:" in makefile) == (images != "training")
    assert ("local-train:" in makefile) == (images != "processing")
    assert ("local-pipeline:" in makefile) == (images == "both")
    # renv: make lock and the lockfile restore in every Dockerfile; packages.txt: neither.
    assert ("lock:" in makefile) == (r_packages == "renv")
    assert "pin-base:" in makefile
    for dockerfile in root.glob("images/*/Dockerfile"):
        text = dockerfile.read_text()
        assert ("renv-lockfile.sh restore" in text) == (r_packages == "renv")
        assert ("install-r-packages.sh" in text) == (r_packages == "packages.txt")


@pytest.mark.parametrize(("images", "base_image", "r_packages"), COMBINATIONS)
def test_no_template_syntax_left(cookies, images, base_image, r_packages):
    result = cookies.bake(
        extra_context={"images": images, "base_image": base_image, "r_packages": r_packages}
    )
    assert result.exit_code == 0, result.exception
    leftovers = re.compile(r"cookiecutter\.|\{%|%\}")
    for path in result.project_path.rglob("*"):
        if path.is_file() and path.suffix not in {".csv"}:
            text = path.read_text(errors="replace")
            found = leftovers.search(text)
            assert not found, f"{path.relative_to(result.project_path)}: unrendered {found.group()!r}"


def test_slug_is_derived_from_the_name(cookies):
    result = cookies.bake(extra_context={"project_name": "Churn Model_v2"})
    assert result.exit_code == 0, result.exception
    assert result.context["project_slug"] == "churn-model-v2"
    assert result.project_path.name == "churn-model-v2"
    assert "PROJECT := churn-model-v2" in (result.project_path / "Makefile").read_text()


def test_make_images_lists_each_chosen_image(cookies):
    import subprocess

    for images, expected in [("both", ["processing", "training"]), ("training", ["training"])]:
        result = cookies.bake(extra_context={"images": images, "project_slug": f"p-{images}"})
        out = subprocess.run(
            ["make", "-s", "-C", str(result.project_path), "images", "TAG=t1"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert out == [f"{image}=p-{images}-{image}:t1" for image in expected]
