"""The buildspec `make remote-build` sends to AWS CodeBuild, run here: its phases' commands in a
shell, in the default bake packed and unpacked as CodeBuild gets it (the same source_files() and
pack() the command uses), against the local engine and the loopback registry (REGISTRY=..., as
`make push` accepts it; in CodeBuild the push goes to ECR). The bake's images are built already
(built_project), so the builds hit the layer cache. What the command sends to AWS (the project,
StartBuild with this buildspec, the archive's files) is tested against moto in
cli/tests/test_remote_build.py."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml
from conftest import TEST_TAG
from rsagemaker_cli.aws import remote_build
from rsagemaker_cli.core.project import load_project

pytestmark = pytest.mark.slow
MANIFESTS = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"


def test_the_buildspec_builds_and_pushes_both_images(built_project, base_image, registry, tmp_path):
    project = load_project(built_project[0])
    files, wheel = remote_build.source_files(project)
    archive = remote_build.pack(project, files, tmp_path / "source.zip")
    source = tmp_path / "source"
    subprocess.run(["unzip", "-q", str(archive), "-d", str(source)], check=True)  # modes kept, as CodeBuild
    spec = yaml.safe_load(remote_build.BUILDSPEC.format(wheel=wheel))
    assert spec["env"]["shell"] == "bash"
    # CodeBuild's environment: the buildspec's variables, then StartBuild's (remote_build.build_variables).
    env = {
        **os.environ,
        **spec["env"]["variables"],
        "CLI_VENV": str(tmp_path / "cli"),
        "TAG": TEST_TAG,
        "BASE_IMAGE": base_image,
        "PLATFORM": "linux/amd64",
        "REGISTRY": registry,
    }
    env.pop("PYTHON", None)  # the buildspec's own CLI runs make's commands
    env["PATH"] = os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if Path(p) != Path(sys.prefix) / "bin"
    )
    output = []
    for phase in ("install", "pre_build", "build", "post_build"):
        for command in spec["phases"].get(phase, {}).get("commands", []):
            result = subprocess.run(
                ["bash", "-c", command], cwd=source, env=env, capture_output=True, text=True, check=False
            )
            output.append(result.stdout + result.stderr)
            assert result.returncode == 0, f"{phase}: {command}\n{result.stdout}\n{result.stderr}"
    pushed = "".join(output)
    for image in project.images:
        repository = f"{project.name}-{image}"
        response = requests.get(
            f"http://{registry}/v2/{repository}/manifests/{TEST_TAG}",
            headers={"Accept": MANIFESTS},
            timeout=10,
        )
        assert response.status_code == 200, f"{repository}:{TEST_TAG} is not in the registry"
        digest = response.headers["Docker-Content-Digest"]
        assert f"{registry}/{repository}:{TEST_TAG} ({digest})" in pushed  # digests printed, as make push
