"""The project the CLI acts on: one way to find its root, its name and images from its Makefile,
and a command for an image the project does not build refused with one line."""

import pytest

from rsagemaker_cli.core.errors import SetupError
from rsagemaker_cli.core.project import find_project, model_tarballs


def set_images(project, images):
    makefile = project / "Makefile"
    makefile.write_text(makefile.read_text().replace("IMAGES := processing training", f"IMAGES := {images}"))


def test_the_root_is_found_from_any_folder_inside_it(project, monkeypatch):
    monkeypatch.chdir(project / "data" / "train")
    found = find_project()
    assert found.root == project.resolve()
    assert (found.name, found.images, found.resource_name) == (
        "r-on-sagemaker",
        ("processing", "training"),
        "r-on-sagemaker",
    )
    assert found.show(project / "data" / "train" / "iris.csv") == "data/train/iris.csv"


def test_outside_a_project_the_error_says_where_to_run(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    cli("settings").error(f"{tmp_path} is not in a project", "Makefile and config/aws.json")


def test_a_makefile_without_project_or_images_is_named(project, cli):
    makefile = project / "Makefile"
    text = makefile.read_text()
    makefile.write_text(text.replace("PROJECT := r-on-sagemaker\n", ""))
    cli("settings").error("sets no PROJECT := <name> line")
    makefile.write_text(text.replace("IMAGES := processing training", "IMAGES := scoring"))
    cli("settings").error("IMAGES := scoring should name processing and/or training")


@pytest.mark.parametrize(
    ("images", "command", "missing"),
    [
        ("processing", ("deploy",), "training"),
        ("processing", ("local-train", "--image", "x"), "training"),
        ("processing", ("models",), "training"),
        ("training", ("remote-process", "--image", "x", "--tag", "t"), "processing"),
        ("training", ("local-process", "--image", "x"), "processing"),
        (
            "training",
            ("pipeline", "--processing-image", "x", "--training-image", "y", "--tag", "t"),
            "processing",
        ),
    ],
)
def test_a_command_for_an_image_the_project_does_not_build_is_refused(project, cli, images, command, missing):
    set_images(project, images)
    result = cli(*command)
    result.error(f"`rsagemaker {command[0]}` needs the {missing} image", f"IMAGES := {images}")
    assert result.calls == []


def test_commands_of_any_project_run_in_a_processing_only_one(project, cli):
    set_images(project, "processing")
    assert cli("settings").code == 0


def test_the_models_of_a_multi_model_endpoint(tmp_path, capsys):
    with pytest.raises(SetupError, match="no model in build/models/: put model.tar.gz files there"):
        model_tarballs(tmp_path)
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "model.tar.gz").write_bytes(b"m")
    assert model_tarballs(tmp_path) == [tmp_path / "build" / "models" / "model.tar.gz"]
    assert "Copied build/model.tar.gz to build/models/model.tar.gz" in capsys.readouterr().out
    (tmp_path / "build" / "models" / "b.tar.gz").write_bytes(b"b")
    assert [path.name for path in model_tarballs(tmp_path)] == ["b.tar.gz", "model.tar.gz"]


def test_local_serve_multi_model_without_models_says_where_to_put_them(project, cli):
    cli("local-serve", "--image", "x", "--multi-model").error("no model in build/models/", "make local-train")
