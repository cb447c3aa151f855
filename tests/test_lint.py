"""Each bake passes its own `make lint`: hadolint, shellcheck, R parse + lintr, workflow checks."""

import subprocess

import pytest
from conftest import TEMPLATE, bake, make


@pytest.mark.parametrize(
    ("images", "r_packages"),
    [
        ("both", "packages.txt"),
        ("training", "packages.txt"),
        ("processing", "packages.txt"),
        ("both", "renv"),
    ],
)
def test_generated_project_passes_its_own_lint(tmp_path, images, r_packages):
    project = bake(tmp_path, images=images, r_packages=r_packages)
    result = make(project, "lint")
    for linter in ("hadolint", "shellcheck", "lintr", "workflows"):
        assert f"==> {linter}" in result.stdout
    assert "==> ruff" not in result.stdout  # the bake has no Python of its own to lint
    assert "==> lint passed" in result.stdout


def test_lint_catches_a_bad_dockerfile(tmp_path):
    """The lint target really fails: a Dockerfile with a floating base tag is refused."""
    project = bake(tmp_path, images="processing")
    dockerfile = project / "images/processing/Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "\nRUN cd /tmp && apt-get install -y curl\n")
    result = make(project, "lint", check=False)
    assert result.returncode != 0
    assert "DL3003" in result.stdout + result.stderr


def test_template_passes_its_own_lint():
    """The template's own files: hooks, tests, scripts, .ci/run, workflows (`make lint` here)."""
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(TEMPLATE), "lint"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr
