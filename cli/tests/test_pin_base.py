"""pin-base (config/pin_base.py): names as docker reads them, the registry's anonymous bearer-token
handshake (as Docker Hub answers), and the lines it rewrites in a project."""

import http.server
import shutil
import threading

import pytest
from cli_support import FIXTURE

from rsagemaker_cli.config import pin_base as base_image
from rsagemaker_cli.core.errors import ToolError

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("docker.io/rocker/r2u:24.04", ("docker.io", "registry-1.docker.io", "rocker/r2u", "24.04")),
        ("r-base:4.5.1", ("docker.io", "registry-1.docker.io", "library/r-base", "4.5.1")),
        ("rocker/r-ver:4.5.1", ("docker.io", "registry-1.docker.io", "rocker/r-ver", "4.5.1")),
        ("127.0.0.1:5000/team/r:1@" + DIGEST, ("127.0.0.1:5000", "127.0.0.1:5000", "team/r", "1")),
        ("public.ecr.aws/x/r:2", ("public.ecr.aws", "public.ecr.aws", "x/r", "2")),
    ],
)
def test_references_are_read_as_docker_reads_them(reference, expected):
    assert base_image.parse(reference) == expected


def test_a_reference_without_a_tag_is_refused():
    with pytest.raises(ToolError, match="names no tag"):
        base_image.parse("docker.io/rocker/r2u@" + DIGEST)


class TokenRegistry(http.server.BaseHTTPRequestHandler):
    """A registry that, like Docker Hub, answers 401 with a Bearer challenge until given its token."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        assert self.path.startswith("/token?"), self.path
        assert "scope=repository%3Alibrary%2Fr-base%3Apull" in self.path
        body = b'{"token": "anonymous-token"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self):
        assert "application/vnd.oci.image.index.v1+json" in self.headers["Accept"]
        if self.path != "/v2/library/r-base/manifests/4.5.1":
            self.send_response(404)
        elif self.headers.get("Authorization") != "Bearer anonymous-token":
            port = self.server.server_address[1]
            self.send_response(401)
            self.send_header(
                "WWW-Authenticate",
                f'Bearer realm="http://127.0.0.1:{port}/token",service="registry.test",'
                'scope="repository:library/r-base:pull"',
            )
        else:
            self.send_response(200)
            self.send_header("Docker-Content-Digest", DIGEST)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def token_registry():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TokenRegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_digest_comes_through_the_token_handshake(token_registry):
    assert base_image.resolve_digest(f"{token_registry}/library/r-base:4.5.1") == DIGEST


def test_an_unknown_tag_is_a_clear_error(token_registry):
    with pytest.raises(ToolError, match="has no library/r-base:0.0"):
        base_image.resolve_digest(f"{token_registry}/library/r-base:0.0")


def test_the_pin_rewrites_the_makefile_and_every_dockerfile(tmp_path):
    for relative in ["Makefile", *[str(p.relative_to(FIXTURE)) for p in FIXTURE.glob("images/*/Dockerfile")]]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURE / relative, tmp_path / relative)
    reference = base_image.pinned("docker.io/rocker/r2u:24.04@sha256:" + "0" * 64, DIGEST)
    assert reference == f"docker.io/rocker/r2u:24.04@{DIGEST}"
    changed = base_image.write_pin(reference, project=tmp_path)
    assert "Makefile" in changed
    assert f"BASE_IMAGE ?= {reference}\n" in (tmp_path / "Makefile").read_text()
    for dockerfile in tmp_path.glob("images/*/Dockerfile"):
        assert f"ARG BASE_IMAGE={reference}\n" in dockerfile.read_text()
    assert base_image.write_pin(reference, project=tmp_path) == []  # pinning again changes nothing


def test_pin_base_pins_the_project_it_runs_in(project, token_registry, cli):
    result = cli("pin-base", "--image", f"{token_registry}/library/r-base:4.5.1")
    assert result.code == 0, result.err
    reference = f"{token_registry}/library/r-base:4.5.1@{DIGEST}"
    assert f"BASE_IMAGE ?= {reference}\n" in (project / "Makefile").read_text()
    assert "written to: Makefile, images/processing/Dockerfile, images/training/Dockerfile" in result.out
