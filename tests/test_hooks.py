"""Each pre-generation rule, tried with a bad answer: generation stops with one line naming the
value and the rule, and leaves no folder behind."""

import json
import shutil

import pytest
from conftest import NOT_TEMPLATE_FILES, TEMPLATE
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter


def bake_fails(tmp_path, capfd, template=TEMPLATE, **answers):
    """Bake with answers that must be refused; returns what the hook printed on stderr."""
    output = tmp_path / "out"
    output.mkdir()
    with pytest.raises(FailedHookException):
        cookiecutter(str(template), no_input=True, output_dir=str(output), extra_context=answers)
    left = sorted(output.rglob("*"))
    if "/" in answers.get("project_slug", ""):
        # Cookiecutter itself creates the parents of a nested folder name before any hook runs and
        # removes only the project folder: empty parents may stay, nothing else.
        assert [path for path in left if not path.is_dir()] == []
    else:
        assert left == [], "a refused bake must leave no folder behind"
    return capfd.readouterr().err


@pytest.mark.parametrize(
    ("slug", "rule"),
    [
        pytest.param("My Project", "lowercase letters and digits", id="spaces-and-capitals"),
        pytest.param("-leading", "lowercase letters and digits", id="leading-separator"),
        pytest.param("a..b", "lowercase letters and digits", id="double-separator"),
        pytest.param("a/b", "lowercase letters and digits", id="slash"),
        pytest.param("x", "2-245", id="too-short"),
        pytest.param("a" * 246, "2-245", id="too-long"),
    ],
)
def test_bad_slug_stops_generation(tmp_path, capfd, slug, rule):
    err = bake_fails(tmp_path, capfd, project_slug=slug)
    assert f"project_slug {slug!r} is invalid" in err
    assert rule in err


@pytest.mark.parametrize("region", ["us-east", "US-EAST-1", "useast1", "us-east-1a"])
def test_bad_region_stops_generation(tmp_path, capfd, region):
    err = bake_fails(tmp_path, capfd, aws_region=region)
    assert f"aws_region {region!r} is invalid" in err


@pytest.mark.parametrize("region", ["us-east-1", "eu-central-2", "us-gov-west-1", "ap-southeast-4"])
def test_good_regions_bake(cookies, region):
    result = cookies.bake(extra_context={"aws_region": region})
    assert result.exit_code == 0, result.exception
    assert result.context["aws_region"] == region


def test_quotes_in_answers_can_neither_break_nor_inject(tmp_path, capfd):
    marker = tmp_path / "injected"
    slug = f'x"""); open("{marker}", "w"); ("""'
    err = bake_fails(tmp_path, capfd, project_slug=slug)
    assert "project_slug" in err and "is invalid" in err
    assert not marker.exists()


def test_quotes_in_the_name_are_kept(cookies):
    name = 'Bob\'s "quoted" \\ model'
    result = cookies.bake(extra_context={"project_name": name, "project_slug": "bobs-model"})
    assert result.exit_code == 0, result.exception
    assert result.context["project_name"] == name
    assert name in (result.project_path / "README.md").read_text()


@pytest.fixture
def template_with_choices(tmp_path):
    """A copy of the template whose choice lists carry extra (bad) entries as their defaults,
    to reach the hook's rules that cookiecutter's own choice check would otherwise pre-empt."""

    def make(**choices):
        copy = tmp_path / "template"
        shutil.copytree(TEMPLATE, copy, ignore=NOT_TEMPLATE_FILES)
        config = json.loads((copy / "cookiecutter.json").read_text())
        for key, value in choices.items():
            config[key] = [value, *config[key]]
        (copy / "cookiecutter.json").write_text(json.dumps(config))
        return copy

    return make


@pytest.mark.parametrize(
    ("ref", "rule"),
    [
        pytest.param("docker.io/rocker/r2u", "is not pinned", id="no-tag"),
        pytest.param("docker.io/rocker/r2u:latest", "is not pinned", id="latest"),
        pytest.param("Rocker/R2U:24.04", "is invalid", id="uppercase-path"),
        pytest.param("rocker/r2u:24.04 ; rm -rf /", "is invalid", id="shell"),
    ],
)
def test_bad_base_image_stops_generation(tmp_path, capfd, template_with_choices, ref, rule):
    err = bake_fails(tmp_path, capfd, template=template_with_choices(base_image=ref))
    assert f"base_image {ref!r} {rule}" in err


def test_pinned_base_image_by_digest_bakes(cookies, template_with_choices):
    ref = "docker.io/library/r-base@sha256:" + "a" * 64
    result = cookies.bake(template=str(template_with_choices(base_image=ref)))
    assert result.exit_code == 0, result.exception
    assert f"BASE_IMAGE ?= {ref}" in (result.project_path / "Makefile").read_text()


def test_no_image_stops_generation(tmp_path, capfd, template_with_choices):
    err = bake_fails(tmp_path, capfd, template=template_with_choices(images="none"))
    assert "images 'none' is invalid" in err
    assert "at least one image" in err


def test_unknown_r_packages_way_stops_generation(tmp_path, capfd, template_with_choices):
    err = bake_fails(tmp_path, capfd, template=template_with_choices(r_packages="conda"))
    assert "r_packages 'conda' is invalid: choose one of packages.txt, renv" in err
