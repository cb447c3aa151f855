"""r_packages=renv: `make lock` writes code/renv.lock with the base image's R, both images restore it
with a real renv::restore() inside the build, training keeps the versions with the model and serving
warns about a model trained under others; `make pin-base` pins the base by digest.

No CRAN is reachable here, so the packages come from a real CRAN-like repository on loopback
(tools::write_PACKAGES over package sources: renv's from Debian's source package, and a tiny
package built here that no apt has, so one package really goes the repository way), and from the
stand-in base's apt (Debian's r-cran-* binaries) for the rest, as the restore prefers.
"""

import functools
import http.server
import json
import re
import shutil
import tarfile
import threading
import time
import urllib.request

import pytest
import requests
from conftest import TEMPLATE, TEST_TAG, bake, free_port, make

pytestmark = pytest.mark.slow

RENV_SOURCE = "http://deb.debian.org/debian/pool/main/r/r-cran-renv/r-cran-renv_1.1.2.orig.tar.gz"
TINY_DESCRIPTION = """Package: rsmtiny
Title: A Tiny Package Only the Loopback Repository Has
Version: 0.1.0
Description: Proves that a locked package apt lacks is restored from the lockfile's repository.
License: MIT
Encoding: UTF-8
"""


@pytest.fixture(scope="module")
def cran_repo(tmp_path_factory, engine, base_image):
    """A CRAN-like repository on 127.0.0.1 (src/contrib with PACKAGES): renv 1.1.2 and rsmtiny 0.1.0."""
    root = tmp_path_factory.mktemp("cran")
    contrib = root / "src/contrib"
    contrib.mkdir(parents=True)
    with urllib.request.urlopen(RENV_SOURCE, timeout=120) as answer:  # Debian's copy of CRAN's tarball
        (contrib / "renv_1.1.2.tar.gz").write_bytes(answer.read())
    tiny = root / "build/rsmtiny"
    (tiny / "R").mkdir(parents=True)
    (tiny / "DESCRIPTION").write_text(TINY_DESCRIPTION)
    (tiny / "NAMESPACE").write_text("export(tiny)\n")
    (tiny / "R/tiny.R").write_text("tiny <- function() 42\n")
    script = (
        "cd /repo/build && R CMD build rsmtiny && mv rsmtiny_0.1.0.tar.gz /repo/src/contrib/ && "
        'Rscript -e \'tools::write_PACKAGES("/repo/src/contrib", type = "source")\''
    )
    engine.containers.run(
        base_image, ["bash", "-c", script], remove=True, volumes={str(root): {"bind": "/repo", "mode": "rw"}}
    )
    assert "Package: rsmtiny" in (contrib / "PACKAGES").read_text()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def repo_variables(cran_repo, base_image):
    # Builds and `make lock` on the host's network, to reach the repository on loopback.
    return {"BASE_IMAGE": base_image, "NETWORK": "host", "R_REPOS": cran_repo}


@pytest.fixture(scope="module")
def locked_project(tmp_path_factory, cran_repo, base_image):
    """An renv bake whose code also uses rsmtiny, locked with `make lock` and built (both images)."""
    project = bake(tmp_path_factory.mktemp("renv"), r_packages="renv", project_slug="renv-project")
    (project / "code/tiny.R").write_text(
        "# Uses a package only the loopback repository has.\nlibrary(rsmtiny)\n"
    )
    locked = make(project, "lock", **repo_variables(cran_repo, base_image))
    built = make(project, "build", **repo_variables(cran_repo, base_image))
    return project, locked.stdout + locked.stderr, built.stdout + built.stderr


def test_the_bake_holds_renv_files_and_no_packages_txt(tmp_path):
    project = bake(tmp_path, r_packages="renv")
    for path in ("code/renv.lock", "code/.Rprofile", "code/renv/activate.R", "images/renv-lockfile.sh"):
        assert (project / path).is_file(), path
    assert not list(project.glob("images/*/packages.txt"))
    assert not (project / "images/install-r-packages.sh").exists()
    lock = json.loads((project / "code/renv.lock").read_text())
    # rsagemaker's Imports, from the pinned tarball in vendor/ (as images/renv-lockfile.R reads them).
    with tarfile.open(next((project / "vendor").glob("rsagemaker_*.tar.gz"))) as tarball:
        description = tarball.extractfile("rsagemaker/DESCRIPTION").read().decode()
    imports = re.search(r"^Imports:(.*?)(?=^\S|\Z)", description, re.MULTILINE | re.DOTALL).group(1)
    plumbing = {re.sub(r"\(.*", "", name).strip() for name in imports.split(",")}
    # The plumbing's packages (the non-base Imports) and the sample code's, each with a version.
    base = {"parallel", "stats", "tools", "utils"}
    assert (plumbing - base) | {"rpart", "renv"} <= set(lock["Packages"])
    assert all(record["Version"] for record in lock["Packages"].values())
    assert lock["R"]["Repositories"][0]["URL"].startswith("https://packagemanager.posit.co/cran/20")
    assert "renv" in (project / ".cruft.json").read_text()


def test_make_lock_writes_the_lockfile_with_the_base_images_r(locked_project, engine, base_image):
    project, locked, _ = locked_project
    assert "renv-lockfile: wrote" in locked
    lock = json.loads((project / "code/renv.lock").read_text())
    r_version = engine.containers.run(
        base_image, ["Rscript", "-e", "cat(format(getRversion()))"], remove=True
    ).decode()
    assert lock["R"]["Version"] == r_version
    # The code's packages (code/tiny.R's rsmtiny too), the plumbing's and renv, with versions.
    assert {"rsmtiny", "rpart", "jsonlite", "data.table", "renv"} <= set(lock["Packages"])
    assert lock["Packages"]["rsmtiny"]["Version"] == "0.1.0"
    # What the restore uses is recorded: a dated Posit Package Manager snapshot (R_REPOS only fetched).
    assert re.fullmatch(
        r"https://packagemanager.posit.co/cran/\d{4}-\d{2}-\d{2}", lock["R"]["Repositories"][0]["URL"]
    )
    # renv/activate.R is the one of the renv locked; with the template's renv (the stand-in base's
    # lock takes the loopback repository's 1.1.2), the template's files are byte for byte what it writes.
    renv_version = lock["Packages"]["renv"]["Version"]
    activate = (project / "code/renv/activate.R").read_text()
    assert f'version <- "{renv_version}"' in activate
    template_code = TEMPLATE / "{{cookiecutter.project_slug}}/code"
    if f'version <- "{renv_version}"' in (template_code / "renv/activate.R").read_text():
        for path in (".Rprofile", "renv/activate.R", "renv/.gitignore"):
            assert (project / "code" / path).read_bytes() == (template_code / path).read_bytes(), path


def test_both_images_restore_every_locked_version(locked_project, engine):
    project, _, built = locked_project
    assert "code/renv.lock and" in built and "have the same R" in built  # the build's R-version check
    assert built.count("renv-lockfile: restored") == 2
    lock = json.loads((project / "code/renv.lock").read_text())
    check = (
        "lock <- renv::lockfile_read('/opt/ml/code/renv.lock'); "
        "for (p in names(lock$Packages)) cat(p, format(packageVersion(p)), '\\n')"
    )
    listing = make(project, "images").stdout.split()
    images = dict(line.split("=", 1) for line in listing)
    mount = {str(project / "code"): {"bind": "/opt/ml/code", "mode": "ro"}}
    for name, ref in images.items():
        # Rscript is the processing image's entrypoint; the training image's is run.sh.
        output = engine.containers.run(
            ref, ["-e", check], entrypoint="Rscript", remove=True, volumes=mount
        ).decode()
        installed = dict(line.split() for line in output.strip().splitlines())
        assert installed == {name: record["Version"] for name, record in lock["Packages"].items()}, name
        env = engine.images.get(ref).attrs["Config"]["Env"]
        assert "RENV_CONFIG_AUTOLOADER_ENABLED=FALSE" in env
    # Without R_REPOS a restore uses the recorded snapshot URL in its binary form for this distro,
    # as renv::restore() rewrites it (no Package Manager here to download from: the URL is the proof).
    snapshot = lock["R"]["Repositories"][0]["URL"]
    transformed = engine.containers.run(
        images["processing"], ["-e", f"cat(renv:::renv_ppm_transform('{snapshot}'))"], remove=True
    ).decode()
    codename = engine.containers.run(
        images["processing"],
        ["-e", "cat(sub('.*=', '', grep('^VERSION_CODENAME=', readLines('/etc/os-release'), value = TRUE)))"],
        remove=True,
    ).decode()
    assert transformed == snapshot.replace("/cran/", f"/cran/__linux__/{codename}/")


def test_training_keeps_the_versions_and_serving_warns_about_others(locked_project, engine, tmp_path):
    from test_images import train_then_serve

    project, _, _ = locked_project
    training_image = f"renv-project-training:{TEST_TAG}"
    # The code folder with renv's .Rprofile and activate.R is /opt/ml/code: training runs it (renv's
    # activation off in the image) and serving answers.
    train_then_serve(engine, project, training_image, tmp_path)
    model = tmp_path / "opt_ml/model"
    kept = json.loads((model / "rsagemaker-versions.json").read_text())
    lock = json.loads((project / "code/renv.lock").read_text())
    assert kept["r"] == lock["R"]["Version"]
    assert kept["lockfile"] == "code/renv.lock"
    assert (model / "code/renv.lock").read_bytes() == (project / "code/renv.lock").read_bytes()
    for name, record in lock["Packages"].items():
        assert kept["packages"][name] == record["Version"], name
    assert kept["base_image"]  # the build's BASE_IMAGE

    # The same model, as if trained under another R and jsonlite: serving says so at start-up.
    kept["r"], kept["packages"]["jsonlite"] = "9.9.9", "0.0.1"
    (model / "rsagemaker-versions.json").write_text(json.dumps(kept))
    container = engine.containers.run(
        training_image,
        ["serve"],
        detach=True,
        ports={"8080/tcp": ("127.0.0.1", None)},
        volumes={str(model): {"bind": "/opt/ml/model", "mode": "ro"}},
    )
    try:
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, container.logs().decode()
            time.sleep(0.2)
        logs = container.logs().decode()
    finally:
        container.remove(force=True)
    assert "WARNING: this model was trained under other versions" in logs
    assert f"R: trained 9.9.9, here {lock['R']['Version']}" in logs
    assert f"jsonlite: trained 0.0.1, here {lock['Packages']['jsonlite']['Version']}" in logs


def test_a_locked_version_no_repository_has_fails_the_build_naming_it(
    locked_project, cran_repo, base_image, tmp_path
):
    project, _, _ = locked_project
    copy = tmp_path / "project"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns("build", ".venv"))
    lockfile = copy / "code/renv.lock"
    lock = json.loads(lockfile.read_text())
    lock["Packages"]["rsmtiny"]["Version"] = "9.9.9"
    lock["R"]["Version"] = "4.9.0"
    lockfile.write_text(json.dumps(lock, indent=2))
    result = make(
        copy,
        "build-processing",
        check=False,
        TAG=f"{TEST_TAG}-broken",
        **repo_variables(cran_repo, base_image),
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    # make build warns first: the lockfile's R is not the base's.
    assert "WARNING: code/renv.lock was written with R 4.9.0" in output
    assert "renv.lock not restored: rsmtiny 9.9.9 (found: not installed)" in output


def test_pin_base_writes_the_registry_digest(tmp_path, engine, registry, base_image):
    """`make pin-base` asks the registry (a real one, on loopback) for the tag's digest and writes
    image:tag@sha256:... into the Makefile and the Dockerfiles; a build then starts from it."""
    repository, tag = f"{registry}/r-sagemaker-standin", f"{TEST_TAG}-pin"
    pushed = f"{repository}:{tag}"
    engine.images.get(base_image).tag(repository, tag=tag)
    for line in engine.images.push(repository, tag=tag, stream=True, decode=True):
        assert "error" not in line, line
    project = bake(tmp_path, images="processing")
    result = make(project, "pin-base", BASE_IMAGE=pushed)
    # The registry's own answer, read here with the Registry API's GET (its digest is sha256 of the body).
    manifest = requests.get(
        f"http://{registry}/v2/r-sagemaker-standin/manifests/{TEST_TAG}-pin",
        headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
        },
        timeout=30,
    )
    digest = manifest.headers["Docker-Content-Digest"]
    pinned = f"{pushed}@{digest}"
    assert f"Pinned the base image: {pinned}" in result.stdout
    assert f"BASE_IMAGE ?= {pinned}\n" in (project / "Makefile").read_text()
    assert f"ARG BASE_IMAGE={pinned}\n" in (project / "images/processing/Dockerfile").read_text()
    # Without BASE_IMAGE on the command line the build uses the pinned default (pulled by digest).
    built = make(project, "build", TAG=f"{TEST_TAG}-pinned")
    assert f"from {pinned}" in built.stdout
