"""Bake every combination of the choice options and check what comes out."""

import json
import re

import pytest

TEMPLATE_CONFIG = json.loads((__import__("conftest").TEMPLATE / "cookiecutter.json").read_text())
BASE_IMAGES = TEMPLATE_CONFIG["base_image"]
IMAGE_CHOICES = TEMPLATE_CONFIG["images"]
R_PACKAGES_CHOICES = TEMPLATE_CONFIG["r_packages"]
PLUMBING_VERSION = TEMPLATE_CONFIG["_plumbing_version"]

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
    "config/codebuild-role-policy.json",
    "data/train/iris.csv",
    "images/rscript-profile.R",
    "images/rscript.sh",
    "pyproject.toml",
    # The pinned plumbing; a bake from a checkout with dist/ (the suite's) has the files too.
    "plumbing.sha256",
    f"vendor/rsagemaker_{PLUMBING_VERSION}.tar.gz",
    f"vendor/rsagemaker_cli-{PLUMBING_VERSION}-py3-none-any.whl",
}
PROCESSING_FILES = {
    "code/preprocess.R",
    "images/processing/Dockerfile",
}
TRAINING_FILES = {
    "code/baseline.R",
    "code/deploy.R",
    "code/train.R",
    "config/hyperparameters.json",
    "config/tuning.json",
    "images/training/Dockerfile",
    "images/training/entrypoint.R",
    "images/training/run.sh",
    "images/training/nginx.conf.template",
    "tests/testthat/test-model.R",
}

# The pipeline (process -> train -> evaluate -> register) runs both images.
PIPELINE_FILES = {
    "code/evaluate.R",
    "code/monitor.R",  # monitoring: the processing image reads the training image's capture
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
        # vendor/ holds the packages' archives (binary), checked by their sums instead.
        if path.is_file() and path.suffix not in {".csv"} and path.parent.name != "vendor":
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
