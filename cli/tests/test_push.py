"""push: what it refuses before anything is sent, the ECR side of a push (against moto), and the
tree check of issue 25 items 8 and 12. Pushing real images to a registry is tested with built
images in the template's suite (tests/test_ship.py)."""

import json
import subprocess

import pytest
from cli_support import SLUG, TAG, fake_manifest

from rsagemaker_cli.aws import push
from rsagemaker_cli.core import git

PUSH = ("push", "--image", f"training={SLUG}-training:{TAG}", "--tag")


def commit_all(root):
    """The project as a git repository with everything committed."""
    config = ["-c", "user.name=test", "-c", "user.email=test@localhost", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "--quiet"], cwd=root, check=True)
    (root / ".gitignore").write_text("build/\n*.pyc\n.Rhistory\n")
    subprocess.run(["git", "add", "--all"], cwd=root, check=True)
    subprocess.run(["git", *config, "commit", "--quiet", "-m", "Bake"], cwd=root, check=True)


def test_a_tree_that_is_not_its_commit_is_never_pushed_whatever_the_tag(project, cli):
    """Issue 25 item 12: `make push TAG=x` from a changed tree is refused, not only the -dirty TAG."""
    commit_all(project)
    with open(project / "code" / "train.R", "a") as script:
        script.write("# changed\n")
    for registry in ((), ("--registry", "127.0.0.1:5000/team")):
        result = cli(*PUSH, "experiment-1", *registry)
        result.error("the project differs from its commit (code/train.R)", "TAG experiment-1", "commit")
        assert result.calls == []  # refused before AWS (and the engine) is asked anything
    subprocess.run(["git", "checkout", "--quiet", "--", "."], cwd=project, check=True)
    (project / "code" / "helpers.R").write_text("helper <- function() 1\n")
    cli(*PUSH, "experiment-1").error("the project differs from its commit (code/helpers.R)")


def test_ignored_files_that_are_packed_count_as_changes(project, cli):
    """Issue 25 item 8: a git-ignored file that goes into the image and sourcedir.tar.gz
    (code/build/, ignored by `build/`) is a change; ignored files that are not packed are not."""
    commit_all(project)
    assert git.changes(project) == []
    (project / "code" / "helpers.pyc").write_bytes(b"\0")  # ignored, and never packed
    (project / "code" / ".Rhistory").write_text("q()\n")  # ignored, a dotfile: never packed
    (project / "build").mkdir()
    (project / "build" / "model.tar.gz").write_bytes(b"")  # ignored, outside code/
    assert git.changes(project) == []
    (project / "code" / "build").mkdir()
    (project / "code" / "build" / "cache.R").write_text("x <- 1\n")  # ignored, but packed
    assert git.changes(project) == ["code/build/cache.R"]
    cli(*PUSH, "experiment-1").error("the project differs from its commit (code/build/cache.R)")


def test_a_project_outside_git_or_in_an_ignored_folder_has_no_commit_to_compare(project, tmp_path):
    assert git.changes(project) is None
    # A repository around the project that ignores its folder (a bake under a checkout's build/).
    config = ["-c", "user.name=test", "-c", "user.email=test@localhost", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "--quiet"], cwd=tmp_path, check=True)
    (tmp_path / ".gitignore").write_text("project/\n")
    subprocess.run(["git", "add", ".gitignore"], cwd=tmp_path, check=True)
    subprocess.run(["git", *config, "commit", "--quiet", "-m", "Outer"], cwd=tmp_path, check=True)
    assert git.changes(project) is None


def test_a_dirty_tag_is_refused_with_what_to_do(project, cli):
    cli(*PUSH, "abc123-dirty").error("TAG abc123-dirty marks uncommitted changes", "commit them")
    cli(*PUSH, "bad tag").error("tag 'bad tag' is invalid")
    cli(*PUSH, TAG, "--registry", "Not A Registry").error("registry 'Not A Registry' is invalid")
    cli("push", "--image", "training", "--tag", TAG).error("expected NAME=REF")


def test_credentials_are_checked_before_the_engine_or_any_repository(aws, cli, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    cli(*PUSH, TAG).error("no AWS credentials found", "AWS_ACCESS_KEY_ID")
    assert aws.client("ecr").describe_repositories()["repositories"] == []


def test_an_unknown_region_is_named(aws, cli, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "xx-nowhere-9")
    cli(*PUSH, TAG).error("unknown AWS region 'xx-nowhere-9'", "$AWS_REGION")


def test_credentials_aws_refuses_are_named(project, moto_url, cli, monkeypatch, tmp_path):
    """moto refuses unknown keys once its auth is on, as STS does: the error says what to check."""
    import requests

    requests.post(f"{moto_url}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWN000000000")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unknown")
        cli(*PUSH, TAG).error("AWS rejected the credentials", "InvalidClientTokenId", "AWS_PROFILE")
    finally:
        requests.post(f"{moto_url}/moto-api/reset-auth", data=b"inf", timeout=10).raise_for_status()


def test_a_repository_is_created_or_brought_to_the_settings(aws, capsys):
    ecr = aws.client("ecr")
    settings = {
        "ecr.tag_mutability": "IMMUTABLE",
        "ecr.scan_on_push": False,
        "ecr.expire_untagged_after_days": 7,
        "tags": {"team": "ml"},
    }
    ecr.create_repository(repositoryName=f"{SLUG}-training", imageScanningConfiguration={"scanOnPush": True})
    repository = push.ensure_repository(ecr, f"{SLUG}-training", settings)
    assert repository["imageTagMutability"] == "IMMUTABLE"
    assert "updated tags: IMMUTABLE, scan on push: False" in capsys.readouterr().out
    (described,) = ecr.describe_repositories(repositoryNames=[f"{SLUG}-training"])["repositories"]
    assert described["imageScanningConfiguration"]["scanOnPush"] is False
    policy = json.loads(ecr.get_lifecycle_policy(repositoryName=f"{SLUG}-training")["lifecyclePolicyText"])
    (rule,) = policy["rules"]
    # Only untagged images ever expire: every pushed image keeps its TAG.
    assert rule["selection"] == {
        "tagStatus": "untagged",
        "countType": "sinceImagePushed",
        "countUnit": "days",
        "countNumber": 7,
    }
    push.ensure_repository(ecr, f"{SLUG}-processing", settings)
    assert "Created ECR repository" in capsys.readouterr().out


@pytest.mark.parametrize("other_tag", [False, True])
def test_a_moving_tag_keeps_the_image_it_leaves(aws, other_tag):
    ecr = aws.client("ecr")
    repository = f"{SLUG}-training"
    ecr.create_repository(repositoryName=repository)
    for tag in (TAG, "latest", *(("kept-by-hand",) if other_tag else ())):
        ecr.put_image(repositoryName=repository, imageManifest=fake_manifest("1"), imageTag=tag)
    local_id = "sha256:" + "2" * 64  # another image is pushed under TAG and latest
    kept = push.keep_replaced_image(ecr, repository, TAG, [TAG, "latest"], local_id)
    if other_tag:
        assert kept is None  # it keeps a tag of its own
        return
    assert kept.startswith(f"{TAG}-replaced-")
    (image,) = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": kept}])["images"]
    assert json.loads(image["imageManifest"])["config"]["digest"] == "sha256:" + "1" * 64
    # The same image pushed again moves nothing.
    assert push.keep_replaced_image(ecr, repository, TAG, [TAG], "sha256:" + "1" * 64) is None
