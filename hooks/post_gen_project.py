"""Prune what the answers did not choose, record where the bake came from, then print the next steps.

Deterministic and offline (no git init, no timestamps, no network), so `cruft update` can re-run it.
Make targets and workflow jobs of an image that was not chosen are left out by the templates
themselves (Jinja if-blocks); this removes the files.

The record is cruft's `.cruft.json`, so that a project baked with plain `cookiecutter` can be checked
and updated with cruft like one made with `cruft create`; it names the template's location and the
commit of its checkout (read-only local git queries). When cruft itself bakes (create, and the bakes
behind update and diff), cruft writes that file after the hooks, and this hook leaves it to cruft:
the trees cruft compares never carry a second, possibly different, .cruft.json.
"""

from __future__ import annotations  # the `X | None` annotations on the Pythons of older cookiecutters

import hashlib
import json
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Files that belong to one image only, relative to the project root.
ONLY_FOR = {
    "processing": ["images/processing", "code/preprocess.R", "tests/test_processing.py"],
    "training": [
        "images/training",
        "code/train.R",
        "code/deploy.R",
        "code/baseline.R",  # the monitoring baseline train.R saves with the model
        "config/hyperparameters.json",
        "config/tuning.json",
        "tests/testthat",  # the model's R tests (train_local, invoke_local)
        "tests/test_training.py",
        "tests/test_training_units.py",
        "tests/test_rsagemaker.py",
        "tests/test_serving.py",
        "tests/test_serving_units.py",
        "tests/test_serving_fuzz.py",
        "tests/test_workers.py",
        "tests/test_multi_model.py",
        "tests/test_bench_smoke.py",
        "tests/serving_support.py",
        "tests/training_support.py",
        "tests/training_toolkit_snapshot.py",
        "tests/test_payloads.py",
        "tests/test_transform.py",
    ],
}
# The pipeline runs both images: without one of them it is left out. (The CLI is no longer in the
# bake: it refuses a command for an image the project does not build, reading the Makefile's IMAGES.)
NEEDS_BOTH = [
    "code/evaluate.R",
    "code/monitor.R",  # the processing image compares the served model's capture with its baseline
]

# How the R packages are chosen (r_packages): the files of the other way go.
ONLY_FOR_R_PACKAGES = {
    "packages.txt": [
        "images/install-r-packages.sh",
        "images/processing/packages.txt",
        "images/training/packages.txt",
    ],
    "renv": [
        "images/renv-lockfile.sh",
        "images/renv-lockfile.R",
        "code/renv.lock",
        "code/.Rprofile",
        "code/renv",
    ],
}


def remove(path):
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def prune(project, images, r_packages="packages.txt"):
    for way, paths in ONLY_FOR_R_PACKAGES.items():
        if way != r_packages:
            for relative in paths:
                remove(project / relative)
    chosen = {"processing", "training"} if images == "both" else {images}
    for image, paths in ONLY_FOR.items():
        if image not in chosen:
            for relative in paths:
                remove(project / relative)
    if images != "both":
        for relative in NEEDS_BOTH:
            remove(project / relative)


# ---- The record of the template: .cruft.json -------------------------------------------------

CRUFT_FILE = ".cruft.json"
# Entries plain cookiecutter adds to the context that cruft's context does not have; cruft adds
# `_commit` (and its own `_template`), which is how this hook knows that cruft is baking.
COOKIECUTTER_ONLY = ("_output_dir", "_repo_dir", "_checkout")


@dataclass
class TemplateOrigin:
    """Where a bake came from, as cruft needs it: a location it can `git clone`, and a commit."""

    template: str  # a clone URL, or the absolute path of a local checkout (as `cruft create` records it)
    commit: str | None  # None: not a git checkout, so there is nothing cruft could compare with
    directory: str | None  # cookiecutter.json's folder inside the repository (cruft's `directory`)
    folder: Path | None  # the template folder this bake was rendered from, when it could be found
    dirty: bool = False  # the checkout had uncommitted changes: the bake may differ from `commit`


def git(folder, *arguments):
    """A local git query (never the network); None when it fails or git is missing."""
    try:
        result = subprocess.run(
            ["git", "-C", str(folder), *arguments], capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def expand_template(template):
    """`gh:org/r-sagemaker` -> `https://github.com/org/r-sagemaker.git`, with cookiecutter's own
    abbreviations (built-in and the user's config), as cookiecutter expanded it to clone."""
    from cookiecutter.config import BUILTIN_ABBREVIATIONS, get_user_config
    from cookiecutter.repository import expand_abbreviations

    try:
        abbreviations = get_user_config()["abbreviations"]
    except Exception:  # noqa: BLE001 - a broken user config: cookiecutter would have failed first
        abbreviations = BUILTIN_ABBREVIATIONS
    expanded = expand_abbreviations(template, abbreviations)
    # cookiecutter's "git+URL" names the VCS; git (and so cruft) clones the URL itself.
    return expanded.removeprefix("git+")


def template_folder(repo_dir):
    """The absolute template folder of this bake. Cookiecutter passes `_repo_dir` as it was given,
    possibly relative to where it was started; while it runs this hook it works inside that folder,
    so its working directory (Linux: /proc) or the starting shell's ($PWD) resolves a relative one."""
    given = Path(repo_dir)
    if given.is_absolute():
        candidates = [given]
    else:
        candidates = [Path(f"/proc/{os.getppid()}/cwd"), Path(os.environ.get("PWD", "")) / given]
    # The last real parts of the given path ("../tpl/sub" -> tpl, sub) must match, so that a
    # stale $PWD cannot name another folder.
    tail = [part for part in given.parts if part not in (".", "..")]
    for candidate in candidates:
        try:
            resolved = candidate.resolve(strict=True)
        except OSError:
            continue
        matches = not tail or list(resolved.parts[-len(tail) :]) == tail
        if matches and (resolved / "cookiecutter.json").is_file():
            return resolved
    return None


def locate_template(context):
    """The template's location and commit for a plain cookiecutter bake."""
    expanded = expand_template(context.get("_template") or "")
    folder = template_folder(context.get("_repo_dir") or "")
    from cookiecutter.repository import is_repo_url, is_zip_file

    remote = is_repo_url(expanded) and not is_zip_file(expanded)
    top = git(folder, "rev-parse", "--show-toplevel") if folder else None
    # The folder must be tracked by that repository, not merely lie inside some other checkout.
    if top and git(folder, "ls-files", "--error-unmatch", "cookiecutter.json") is not None:
        inner = os.path.relpath(folder, top)
        return TemplateOrigin(
            template=expanded if remote else top,
            commit=git(folder, "rev-parse", "HEAD"),
            directory=None if inner == "." else Path(inner).as_posix(),
            folder=folder,
            dirty=bool(git(folder, "status", "--porcelain", "--", ".")),
        )
    # Not a git checkout (a plain folder, a zip, a Mercurial clone): record what is known.
    location = expanded if remote or folder is None else str(folder)
    return TemplateOrigin(template=location, commit=None, directory=None, folder=folder)


def cruft_record(context, origin):
    """The .cruft.json cruft writes for this template and these answers, field by field and in
    cruft's order: template, commit, checkout, context (the answers, `_template`, `_commit`),
    directory."""
    answers = {key: value for key, value in context.items() if key not in COOKIECUTTER_ONLY}
    answers["_template"] = origin.template
    answers["_commit"] = origin.commit
    return {
        "template": origin.template,
        "commit": origin.commit,
        "checkout": context.get("_checkout"),
        "context": {"cookiecutter": answers},
        "directory": origin.directory,
    }


def write_cruft_file(project, record):
    # cruft's own formatting (cruft/_commands/utils/cruft.py json_dumps), so that the file it
    # rewrites on `cruft update` differs from this one only where the update changes something.
    text = json.dumps(record, ensure_ascii=False, indent=2, separators=(",", ": ")) + "\n"
    (project / CRUFT_FILE).write_text(text, encoding="utf-8")


def record_template(project, context):
    """Write .cruft.json for a plain cookiecutter bake; returns the origin it records, or None when
    cruft is baking (it writes its own file after the hooks: one writer, no two versions)."""
    if "_commit" in context:
        return None
    origin = locate_template(context)
    write_cruft_file(project, cruft_record(context, origin))
    return origin


def update_steps(context, origin):
    """The closing lines about template updates."""
    if origin is None:  # cruft is baking: it records `_template` and `_commit`
        template, commit = context.get("_template"), context.get("_commit")
    else:
        template, commit = origin.template, origin.commit
    if commit is None:
        answers = {key: value for key, value in context.items() if not key.startswith("_")}
        link = f"cruft link --no-input --extra-context {shlex.quote(json.dumps(answers, ensure_ascii=False))}"
        where = origin.folder if origin is not None and origin.folder else template
        return [
            f"Not updatable yet: the template {where} is not a committed git checkout, so {CRUFT_FILE} records",
            "the template and your answers but no commit for cruft to compare with. To link it later,",
            "put the template in git (this folder after `git init`, add, commit; or its clone URL), then:",
            f"  rm {CRUFT_FILE}",
            f"  {link} {shlex.quote(str(where))}",
        ]
    lines = [
        f"Template updates: {CRUFT_FILE} records {template} at {commit[:12]} and your answers.",
        "Commit the project to git first (cruft update needs a clean work tree), then (pip install cruft):",
        "  cruft check       # is the template ahead of this project?",
        "  cruft diff        # how the project differs from the template at that commit",
        "  cruft update      # take the template's changes in (review them with git diff)",
    ]
    if origin is not None and origin.dirty:
        lines.append(
            f"Note: {origin.folder} has uncommitted changes, so this bake may differ from {commit[:12]}"
            " (cruft diff shows how); commit the template and bake again for an exact record."
        )
    return lines


# ---- The plumbing of a bake from a local checkout -------------------------------------------

PLUMBING_PINS = "plumbing.sha256"


def vendor_local_builds(project, folder, version):
    """A bake from a checkout whose packages are built (`make dist` there: dist/SHA256SUMS) runs on
    those builds: they are copied into vendor/ and plumbing.sha256 pins their sums instead of the
    release's. Returns the dist folder used, or None (a release bake: `make vendor` fetches)."""
    sums = folder / "dist" / "SHA256SUMS" if folder is not None else None
    if sums is None or not sums.is_file():
        return None
    wanted = [f"rsagemaker_{version}.tar.gz", f"rsagemaker_cli-{version}-py3-none-any.whl"]
    pins = dict(reversed(line.split(maxsplit=1)) for line in sums.read_text().splitlines() if line.strip())
    missing = [name for name in wanted if name not in pins]
    if missing:
        raise SystemExit(
            f"error: {sums} does not list {', '.join(missing)} (this template is version {version}):"
            f" run `make dist` in {folder} again"
        )
    vendor = project / "vendor"
    vendor.mkdir(exist_ok=True)
    for name in wanted:
        data = (sums.parent / name).read_bytes()
        if hashlib.sha256(data).hexdigest() != pins[name]:
            raise SystemExit(
                f"error: {sums.parent / name} does not match {sums}: run `make dist` in {folder}"
            )
        (vendor / name).write_bytes(data)
    header = [line for line in (project / PLUMBING_PINS).read_text().splitlines() if line.startswith("#")]
    header.append(
        f"# Baked from the local checkout {folder}: these sums are its builds (dist/), not a release's."
    )
    lines = [f"{pins[name]}  {name}" for name in wanted]
    (project / PLUMBING_PINS).write_text("\n".join(header + lines) + "\n")
    return sums.parent


def main():
    project = Path.cwd()
    slug = json.loads(r""" {{ cookiecutter.project_slug | tojson }} """)
    images = json.loads(r""" {{ cookiecutter.images | tojson }} """)
    r_packages = json.loads(r""" {{ cookiecutter.r_packages | tojson }} """)
    # Every entry, as [key, value] pairs: a list keeps cookiecutter.json's order, which cruft's
    # record keeps too (tojson would sort the keys of a mapping).
    context = dict(json.loads(r""" {{ cookiecutter.items() | list | tojson }} """))
    prune(project, images, r_packages)
    origin = record_template(project, context)
    folder = origin.folder if origin is not None else template_folder(context.get("_repo_dir") or "")
    local_dist = vendor_local_builds(project, folder, context["_plumbing_version"])
    first = "make local-train" if images != "processing" else "make local-process"
    print(f"\nCreated {slug}/ ({images} image{'s' if images == 'both' else ''}). Next:")
    print(f"  cd {slug}")
    if r_packages == "renv":
        print(
            "  make lock         # write code/renv.lock with YOUR base image's R (the bake's is an example)"
        )
    if local_dist is not None:
        print(f"  (vendor/ holds the plumbing built in {local_dist}: this checkout's packages)")
    print("  make build        # build the image(s)")
    print(f"  {first}  # run it locally against an emulated /opt/ml")
    print("  make help         # every target")
    print()
    print("\n".join(update_steps(context, origin)))


if __name__ == "__main__":
    main()
