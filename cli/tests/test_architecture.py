"""The package's shape: grouped by where a command acts over a small core, no import cycle, no module
over 400 lines, nothing left of the Jinja that once rendered it, and the data it ships."""

import ast
import importlib
import re
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path

import pytest

import rsagemaker_cli
from rsagemaker_cli.cli import COMMANDS, build_parser
from rsagemaker_cli.core.project import IMAGE_NAMES

PACKAGE = Path(rsagemaker_cli.__file__).resolve().parent
SOURCES = sorted(PACKAGE.rglob("*.py"))
MAX_LINES = 400
# What each group may import, besides itself: the core stands alone; commands stand on the core
# (the pipeline commands also on pipeline/); cli.py, the command table, sees them all.
ALLOWED = {
    "core": {"core"},
    "config": {"config", "core"},
    "pipeline": {"pipeline", "core"},
    "local": {"local", "core", "pipeline"},
    "aws": {"aws", "core", "pipeline"},
}


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in SOURCES}


def imports_of(path):
    """The package's modules a module imports, at the top or inside a function alike."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            targets = [
                f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in MODULES else origin
                for alias in node.names
            ]
        else:
            continue
        found.update(target for target in targets if target in MODULES and target != name)
    return found


GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def group(name):
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED) else None


def test_no_import_cycle():
    done, path = set(), []

    def visit(name):
        if name in path:
            cycle = path[path.index(name) :] + [name]
            pytest.fail(f"import cycle: {' -> '.join(cycle)}")
        if name in done:
            return
        path.append(name)
        for imported in sorted(GRAPH[name]):
            visit(imported)
        path.pop()
        done.add(name)

    for name in sorted(GRAPH):
        visit(name)


@pytest.mark.parametrize("name", sorted(name for name in MODULES if group(name)))
def test_each_group_imports_only_what_it_stands_on(name):
    wrong = sorted(
        imported for imported in GRAPH[name] if group(imported) not in ALLOWED[group(name)] | {None}
    )
    assert not wrong or all(imported == "rsagemaker_cli" for imported in wrong), f"{name} imports {wrong}"
    assert "rsagemaker_cli.cli" not in GRAPH[name]


@pytest.mark.parametrize("path", SOURCES, ids=[module_name(path) for path in SOURCES])
def test_no_module_is_over_400_lines(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_nothing_is_left_of_jinja():
    """The sources were rendered by Jinja inside each bake (which broke a regex, issue 25 item 7);
    now they are a package, copied as they are."""
    for path in PACKAGE.rglob("*"):
        if path.is_file() and path.suffix in (".py", ".lua"):
            text = path.read_text()
            # (A `{{` alone is an f-string's brace; Jinja's statements and the answers are not.)
            assert not re.search(r"cookiecutter|\{%|%\}", text), path


def test_the_command_table_names_every_command_once_with_its_images():
    names = [command.name for command in COMMANDS]
    assert len(names) == len(set(names))
    for command in COMMANDS:
        assert set(command.images) <= set(IMAGE_NAMES), command
        module = importlib.import_module(f"rsagemaker_cli.{command.module}")
        assert callable(getattr(module, command.handler)), command
    assert build_parser().prog == "rsagemaker"


def test_the_package_ships_its_wrk_script_and_says_its_version():
    assert (files("rsagemaker_cli") / "wrk-report.lua").is_file()
    assert version("rsagemaker-cli") == rsagemaker_cli.__version__
