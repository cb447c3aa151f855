"""pin-base: pin the base image to the current digest of its tag.

A tag such as rocker/r2u:24.04 moves as its publisher rebuilds it; `image:tag@sha256:...` names
bytes that never change (the tag stays only for the reader: a digest wins). The digest comes from
the registry itself, through the Docker Registry HTTP API v2 (a HEAD of the manifest; the digest of a
multi-architecture index, so amd64 and arm64 builds stay possible), anonymously with the registry's
bearer-token handshake as Docker Hub and public ECR use it. A registry on loopback (127.0.0.1,
localhost) is spoken to over plain HTTP, as Docker itself does.

The pinned reference is written where the base image's defaults live: the Makefile's
`BASE_IMAGE ?=` line (what every make target builds on) and each Dockerfile's `ARG BASE_IMAGE=`
line (what a bare `docker build` and `make studio-build` use). Run it again to move to the tag's
newest digest.
"""

import hashlib
import re

import requests

from ..core.errors import ToolError

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
REFERENCE = re.compile(
    r"^(?:(?P<registry>[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]+)?)/)?"
    r"(?P<path>[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def parse(reference):
    """(registry as written, API host, repository path, tag) of an image reference."""
    match = REFERENCE.match(reference)
    if not match:
        raise ToolError(f"{reference!r} is not an image reference such as docker.io/rocker/r2u:24.04")
    registry, path, tag = match.group("registry"), match.group("path"), match.group("tag")
    # As docker reads a name: a first part with a dot or a port, or localhost, is a registry.
    if registry and not ("." in registry or ":" in registry or registry == "localhost"):
        path, registry = f"{registry}/{path}", None
    registry = registry or "docker.io"
    host = "registry-1.docker.io" if registry == "docker.io" else registry
    if registry == "docker.io" and "/" not in path:
        path = f"library/{path}"
    if not tag:
        raise ToolError(f"{reference!r} names no tag to resolve (give image:tag, e.g. {reference}:24.04)")
    return registry, host, path, tag


def bearer_token(challenge, session):
    """The anonymous token a `WWW-Authenticate: Bearer realm=...,service=...,scope=...` asks for."""
    fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    if not challenge.lower().startswith("bearer") or "realm" not in fields:
        return None
    params = {key: fields[key] for key in ("service", "scope") if key in fields}
    answer = session.get(fields["realm"], params=params, timeout=30)
    if answer.status_code != 200:
        return None
    body = answer.json()
    return body.get("token") or body.get("access_token")


def resolve_digest(reference, session=None):
    """The sha256 digest the registry gives for reference's tag now."""
    _, host, path, tag = parse(reference)
    scheme = "http" if host.split(":")[0] in LOOPBACK or host.startswith("[::1]") else "https"
    url = f"{scheme}://{host}/v2/{path}/manifests/{tag}"
    session = session or requests.Session()
    headers = {"Accept": ", ".join(MANIFEST_TYPES)}
    try:
        answer = session.head(url, headers=headers, timeout=30)
        if answer.status_code == 401:
            token = bearer_token(answer.headers.get("WWW-Authenticate", ""), session)
            if token:
                headers["Authorization"] = f"Bearer {token}"
                answer = session.head(url, headers=headers, timeout=30)
        digest = answer.headers.get("Docker-Content-Digest") if answer.status_code == 200 else None
        if answer.status_code == 200 and not digest:  # not every registry sends it on HEAD
            answer = session.get(url, headers=headers, timeout=60)
            digest = "sha256:" + hashlib.sha256(answer.content).hexdigest() if answer.ok else None
    except requests.RequestException as error:
        raise ToolError(f"cannot reach the registry of {reference} ({url}): {error}") from error
    if answer.status_code in (401, 403):
        raise ToolError(
            f"{host} refused an anonymous look-up of {path}:{tag} ({answer.status_code}). For a private "
            "registry: docker pull the image, read its digest with docker image inspect (RepoDigests) "
            "and set BASE_IMAGE=image:tag@sha256:... in the Makefile"
        )
    if answer.status_code == 404:
        raise ToolError(f"{reference}: the registry {host} has no {path}:{tag}")
    if not digest or not re.fullmatch(r"sha256:[a-f0-9]{64}", digest):
        raise ToolError(f"{reference}: {host} answered {answer.status_code} without a sha256 digest ({url})")
    return digest


def pinned(reference, digest):
    """image:tag@digest (any digest the reference had is replaced)."""
    return f"{reference.split('@', 1)[0]}@{digest}"


def write_pin(reference, project):
    """Rewrite the Makefile's BASE_IMAGE default and the Dockerfiles' ARG under the project folder;
    returns the files changed."""
    changed = []
    targets = [
        (project / "Makefile", re.compile(r"^BASE_IMAGE \?= .*$", re.MULTILINE), f"BASE_IMAGE ?= {reference}")
    ]
    for dockerfile in sorted(project.glob("images/*/Dockerfile")):
        targets.append(
            (dockerfile, re.compile(r"^ARG BASE_IMAGE=.*$", re.MULTILINE), f"ARG BASE_IMAGE={reference}")
        )
    for path, pattern, line in targets:
        text = path.read_text(encoding="utf-8")
        if not pattern.search(text):
            raise ToolError(f"{path.relative_to(project)} has no {pattern.pattern.strip('^$')} line to pin")
        new = pattern.sub(line.replace("\\", "\\\\"), text, count=1)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(str(path.relative_to(project)))
    return changed


def pin_base(args):
    digest = resolve_digest(args.image)
    reference = pinned(args.image, digest)
    changed = write_pin(reference, args.project.root)
    where = ", ".join(changed) if changed else "nothing changed: already pinned to it"
    print(f"Pinned the base image: {reference}\n  written to: {where}")
    print(
        "Next: make build (every build starts from these bytes), commit the change; make pin-base again to update."
    )
    return 0


def pin_base_arguments(parser):
    parser.add_argument("--image", required=True, help="the base image reference, image:tag[@sha256:...]")
