"""Only files that need a value are rendered by Jinja, and a rendered file differs from its template
only where a cookiecutter value (or an option's block) goes: every other file of a bake is the
template's, byte for byte. (Jinja once rendered a Python regex's `{1,61}` into `(1, 61)`.)"""

import json
import re

import pytest
from conftest import TEMPLATE, bake

SOURCE = TEMPLATE / "{{cookiecutter.project_slug}}"
# `${{ }}` is a GitHub Actions expression, not Jinja.
JINJA = re.compile(r"(?<!\$)\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}")
# The files that hold a value of the answers (name, slug, region, base image, the plumbing's pins)
# or an option's blocks. Everything else must be copied as it is.
RENDERED = {
    "Makefile",
    "README.md",
    "pyproject.toml",
    "plumbing.sha256",
    "config/aws.json",
    "images/processing/Dockerfile",
    "images/training/Dockerfile",
}
COMBINATIONS = [
    {"images": "both", "r_packages": "packages.txt"},
    {"images": "training", "r_packages": "renv"},
    {"images": "processing", "r_packages": "packages.txt"},
]


def template_files():
    return sorted(path.relative_to(SOURCE).as_posix() for path in SOURCE.rglob("*") if path.is_file())


def line_rules(text):
    """What a rendering of this template may hold, line by line: the template's lines without Jinja,
    exactly; and for each line with Jinja, a pattern: its literal text as it is and each value as
    `.*`, where an option's block that opens or closes on the line leaves `.*` between its first and
    last tag (or from an unclosed tag to the end). A literal line changed in any other way (a `{1,61}`
    become `(1, 61)`) matches neither."""
    literal, patterns = set(), []
    for line in text.splitlines():
        has_block = "{%" in line or "%}" in line
        if not has_block and not JINJA.search(line):
            literal.add(line)
            continue
        if has_block:
            first = line.index("{%") if "{%" in line else 0
            last = line.rindex("%}") + 2 if "%}" in line else len(line)
            line = line[:first] + "{{ }}" + line[max(first, last) :]
        patterns.append(re.compile(".*".join(re.escape(piece) for piece in JINJA.split(line))))
    return literal, patterns


def test_only_the_files_that_need_values_hold_jinja():
    # A copied file may hold text that looks like Jinja (docker's --format '{{.Id}}'): what counts is
    # a cookiecutter value or a statement.
    uses_jinja = re.compile(r"\{\{-?\s*cookiecutter\.|\{%-?\s*(if|for|set|raw)\b")
    with_jinja = {
        name for name in template_files() if uses_jinja.search((SOURCE / name).read_text(errors="replace"))
    }
    assert with_jinja <= RENDERED, (
        f"Jinja outside the files that need values: {sorted(with_jinja - RENDERED)}"
    )
    copied = json.loads((TEMPLATE / "cookiecutter.json").read_text())["_copy_without_render"]
    from fnmatch import fnmatch

    for name in template_files():
        if name in RENDERED:
            assert not any(fnmatch(name, pattern) for pattern in copied), f"{name} needs rendering"
        else:
            assert any(fnmatch(name, pattern) for pattern in copied), f"{name} is not in _copy_without_render"


def test_every_expression_is_a_cookiecutter_value():
    for name in RENDERED:
        for expression in re.findall(r"\{\{.*?\}\}", (SOURCE / name).read_text()):
            assert "cookiecutter." in expression, f"{name}: {expression} is not a cookiecutter value"


@pytest.mark.parametrize("answers", COMBINATIONS, ids=lambda answers: "-".join(answers.values()))
def test_a_bake_differs_from_the_template_only_where_values_go(tmp_path, answers):
    project = bake(tmp_path, **answers)
    for name in template_files():
        baked = project / name
        if not baked.exists():
            continue  # left out for these answers by the post-gen hook
        if name == "plumbing.sha256":
            continue  # rewritten by the hook for a checkout's own builds (test_plumbing.py)
        if name not in RENDERED:
            assert baked.read_bytes() == (SOURCE / name).read_bytes(), f"{name} changed in the bake"
            continue
        literal, patterns = line_rules((SOURCE / name).read_text())
        for number, line in enumerate(baked.read_text().splitlines(), start=1):
            assert line in literal or any(pattern.fullmatch(line) for pattern in patterns), (
                f"{name}:{number} {line!r} comes from no line of the template"
            )
