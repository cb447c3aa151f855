"""The documentation site: `mkdocs build --strict` passes, and fails on a broken link, a broken anchor
or a missing example file (a temp copy of the site with one fault each); the SDK examples are all shown;
the settings page names every setting the CLI knows. Seconds: no image, no R, no network."""

import ast
import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TEMPLATE

MKDOCS = Path(sys.executable).parent / "mkdocs"
DOCS = TEMPLATE / "docs"


def mkdocs_build(root, site):
    """mkdocs build --strict of the site whose mkdocs.yml is in root; returns the finished process."""
    return subprocess.run(
        [
            str(MKDOCS),
            "build",
            "--strict",
            "--config-file",
            str(root / "mkdocs.yml"),
            "--site-dir",
            str(site),
        ],
        cwd=root,
        env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_site_builds_strictly(tmp_path):
    result = mkdocs_build(TEMPLATE, tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    sdk_page = html.unescape(re.sub(r"<[^>]+>", "", (tmp_path / "site/sdk/index.html").read_text()))
    assert "--8<--" not in sdk_page, "an example was not included"
    assert "ModelTrainer" in sdk_page and "estimator.fit" in sdk_page and "use_virtualenv" in sdk_page


@pytest.mark.parametrize(
    ("fault", "reported"),
    [
        ("[a page that is not there](no-such-page.md)", "no-such-page.md"),
        ("[a heading that is not there](settings.md#no-such-heading)", "no-such-heading"),
        ('```python\n--8<-- "examples/no_such_example.py"\n```', "no_such_example.py"),
    ],
    ids=["link", "anchor", "example"],
)
def test_a_broken_reference_fails_the_build(tmp_path, fault, reported):
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(TEMPLATE / "mkdocs.yml", copy)
    shutil.copytree(DOCS, copy / "docs")
    page = copy / "docs/getting-started.md"
    page.write_text(page.read_text() + f"\n{fault}\n")
    result = mkdocs_build(copy, tmp_path / "site")
    assert result.returncode != 0, f"mkdocs build --strict passed with {fault!r}"
    assert reported in result.stdout + result.stderr


def test_the_build_script_puts_the_r_reference_where_the_site_links(tmp_path):
    """scripts/docs.sh puts the R reference at the path the R package page links to. The reference is a
    stand-in (R_REFERENCE): scripts/check-rsagemaker.sh builds and checks the real one with pkgdown."""
    reference = tmp_path / "reference"
    (reference / "reference").mkdir(parents=True)
    (reference / "index.html").write_text("<title>rsagemaker</title>")
    site = tmp_path / "site"
    result = subprocess.run(
        ["bash", str(TEMPLATE / "scripts/docs.sh"), str(site)],
        env=dict(os.environ, MKDOCS=str(MKDOCS), R_REFERENCE=str(reference)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    page = site / "r-package/index.html"
    links = re.findall(r'href="(\.\./rsagemaker/[^"]*)"', page.read_text())
    assert links, "the R package page does not link to the reference"
    for link in links:
        target = (page.parent / link).resolve()
        assert (target / "index.html" if link.endswith("/") else target).is_file(), link


def test_every_example_file_is_shown_on_a_page():
    pages = "\n".join(page.read_text() for page in DOCS.glob("*.md"))
    examples = sorted(path.name for path in (DOCS / "examples").iterdir())
    assert examples, "docs/examples/ is empty"
    for name in examples:
        assert f'--8<-- "examples/{name}' in pages, f"docs/examples/{name} is included in no page"


def cli_settings():
    """{key: [environment variables]} of the CLI's SETTINGS table, read from its source (no import)."""
    for path in sorted((TEMPLATE / "cli/src/rsagemaker_cli").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Assign)
                and any(isinstance(target, ast.Name) and target.id == "SETTINGS" for target in node.targets)
                and isinstance(node.value, ast.Tuple | ast.List)
            ):
                table = {}
                for entry in node.value.elts:
                    strings = [
                        n.value
                        for n in ast.walk(entry)
                        if isinstance(n, ast.Constant) and isinstance(n.value, str)
                    ]
                    table[strings[0]] = [
                        s for s in strings[1:] if re.fullmatch(r"[A-Z][A-Z0-9]*_[A-Z0-9_]+", s)
                    ]
                return table
    raise AssertionError("no SETTINGS table found under cli/src/rsagemaker_cli: update cli_settings()")


def test_the_settings_page_names_every_setting_and_its_variable():
    page = (DOCS / "settings.md").read_text()
    table = cli_settings()
    assert len(table) > 40, table
    for key, variables in table.items():
        assert f"`{key}`" in page, f"docs/settings.md does not describe {key}"
        assert variables, f"{key} has no environment variable in the CLI"
        for variable in variables:
            assert f"`{variable}`" in page, f"docs/settings.md does not name ${variable} ({key})"
