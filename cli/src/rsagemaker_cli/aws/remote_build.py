"""`remote-build`: build and push the images in AWS CodeBuild, for a machine with no Docker
(SageMaker Studio, RStudio on SageMaker, a locked-down laptop).

1. The source: the build context as `docker build` sees it (core/context.py: .dockerignore honoured,
   so vendor/'s pinned rsagemaker and plumbing.sha256 are in, code/'s caches out), plus the three
   files the buildspec runs: the Makefile, config/aws.json and vendor/'s pinned CLI wheel. Zipped to
   build/remote-build/source.zip and uploaded to s3://<bucket>/<s3_prefix>/remote-build/source-<TAG>.zip.
2. The CodeBuild project <project>-images, created or brought to the settings (codebuild.*, vpc.*,
   kms.output_key_id, tags): privileged mode, because the build runs a Docker daemon.
3. A build whose buildspec (BUILDSPEC) checks vendor/ against plumbing.sha256, installs that CLI,
   then runs `make build` and `make push`: the same Dockerfiles, BASE_IMAGE, PLATFORM and TAG as a
   local `make build`, pushed as `make push` pushes (repositories, tags, lifecycle rule), with the
   resolved ECR settings of this machine.
4. Its phases and CloudWatch log lines followed; on failure the failed phase and its last log lines.
Every input is checked before anything is uploaded or created; running it again updates the project.
"""

import json
import re
import sys
import time
import zipfile
from collections import deque

from ..core.aws import check_bucket, find_in_ecr, open_aws, s3_key
from ..core.context import context_files
from ..core.errors import SetupError, ToolError
from .push import TAG_RULE, refuse_changed_tree

# PLATFORM -> (CodeBuild environment type, default build image).
BUILD_ENVIRONMENTS = {
    "linux/amd64": ("LINUX_CONTAINER", "aws/codebuild/standard:7.0"),
    "linux/arm64": ("ARM_CONTAINER", "aws/codebuild/amazonlinux2-aarch64-standard:3.0"),
}
EXTRA_FILES = ("Makefile", "config/aws.json")  # besides the context: what the buildspec runs
PHASE_FAILED = ("FAILED", "FAULT", "TIMED_OUT", "STOPPED", "CLIENT_ERROR")
POLL_SECONDS = 5
LAST_LINES = 20
# One venv for the pinned CLI (--system-site-packages: a build image's boto3/docker are reused).
# Each phase stops the build when a command fails (on-failure: ABORT), so its name is the failure's.
BUILDSPEC = """\
version: 0.2
env:
  shell: bash
  variables:
    CLI_VENV: /tmp/rsagemaker-cli
phases:
  install:
    on-failure: ABORT
    commands:
      - make --no-print-directory vendor
      - python3 -m venv --system-site-packages "$CLI_VENV"
      - '"$CLI_VENV/bin/pip" install --quiet --disable-pip-version-check --no-warn-script-location vendor/{wheel}'
  build:
    on-failure: ABORT
    commands:
      - make --no-print-directory build PYTHON="$CLI_VENV/bin/python"
  post_build:
    on-failure: ABORT
    commands:
      - make --no-print-directory push PYTHON="$CLI_VENV/bin/python"
"""


def codebuild_project_name(project):
    return f"{project.resource_name}-images"


def pinned_files(project):
    """The files plumbing.sha256 pins (vendor/<name>), each checked to be there."""
    pins = project.root / "plumbing.sha256"
    if not pins.is_file():
        raise SetupError("plumbing.sha256 is missing: the build pins the plumbing with it")
    names = re.findall(r"^[0-9a-f]{64}  (\S+)$", pins.read_text(), re.MULTILINE)  # as the Makefile reads it
    missing = [name for name in names if not (project.root / "vendor" / name).is_file()]
    if missing:
        raise SetupError(f"vendor/ lacks {', '.join(missing)}: run make vendor first")
    return names


def source_files(project):
    """What the build gets: the context, the Makefile, config/aws.json and the CLI wheel."""
    wheels = [name for name in pinned_files(project) if name.endswith(".whl")]
    if len(wheels) != 1:
        raise SetupError("plumbing.sha256 pins no rsagemaker-cli wheel: the build installs the CLI from it")
    files = set(context_files(project.root)) | set(EXTRA_FILES) | {f"vendor/{wheels[0]}"}
    missing = sorted(name for name in files if not (project.root / name).is_file())
    if missing:
        raise SetupError(f"the build needs {', '.join(missing)}, which the project lacks")
    return sorted(files), wheels[0]


def pack(project, files, path):
    """A zip of files (modes kept, times fixed: the same tree packs to the same bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in files:
            source = project.root / name
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (source.stat().st_mode & 0o777 | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, source.read_bytes())
    return path


def network(settings):
    """vpcConfig of the CodeBuild project ({} without a VPC); a half-given VPC is refused."""
    vpc_id, subnets = settings["vpc.id"], settings["vpc.subnets"]
    if vpc_id and not subnets:
        raise SetupError(
            f"vpc.id (from {settings.sources['vpc.id']}) needs vpc.subnets and vpc.security_group_ids: "
            "CodeBuild runs in subnets of that VPC (private ones with a NAT gateway or VPC endpoints)"
        )
    if subnets and not vpc_id:
        raise SetupError(
            f"vpc.subnets (from {settings.sources['vpc.subnets']}) is set but vpc.id is not: "
            "CodeBuild needs the VPC's ID too (set vpc.id, SAGEMAKER_VPC_ID)"
        )
    if not vpc_id:
        return {}
    return {"vpcId": vpc_id, "subnets": subnets, "securityGroupIds": settings["vpc.security_group_ids"]}


def project_request(project, settings, platform, location, buildspec):
    """The CreateProject / UpdateProject request."""
    kind, default_image = BUILD_ENVIRONMENTS[platform]
    name = codebuild_project_name(project)
    request = {
        "name": name,
        "description": f"Builds and pushes the images of {project.name} (rsagemaker remote-build)",
        "source": {"type": "S3", "location": location, "buildspec": buildspec},
        "artifacts": {"type": "NO_ARTIFACTS"},
        "environment": {
            "type": kind,
            "image": settings["codebuild.image"] or default_image,
            "computeType": settings["codebuild.compute_type"],
            "privilegedMode": True,  # the build runs a Docker daemon
            "imagePullCredentialsType": "CODEBUILD",
        },
        "serviceRole": settings["codebuild.role_arn"],
        "timeoutInMinutes": settings["codebuild.timeout_minutes"],
        "logsConfig": {"cloudWatchLogs": {"status": "ENABLED", "groupName": f"/aws/codebuild/{name}"}},
    }
    vpc = network(settings)
    if vpc:
        request["vpcConfig"] = vpc
    if settings["kms.output_key_id"]:
        request["encryptionKey"] = settings["kms.output_key_id"]
    if settings["tags"]:
        request["tags"] = [{"key": key, "value": value} for key, value in settings["tags"].items()]
    return request


def build_variables(settings, args):
    """The build's environment: make's variables, and this machine's resolved ECR settings (push
    reads them there as it reads them here)."""
    values = {
        "TAG": args.tag,
        "BASE_IMAGE": args.base_image,
        "PLATFORM": args.platform,
        "ECR_TAG_MUTABILITY": settings["ecr.tag_mutability"],
        "ECR_SCAN_ON_PUSH": str(settings["ecr.scan_on_push"]).lower(),
        "ECR_EXPIRE_UNTAGGED_AFTER_DAYS": str(settings["ecr.expire_untagged_after_days"]),
    }
    if settings["tags"]:
        values["SAGEMAKER_TAGS"] = json.dumps(settings["tags"])
    if args.r_repos:  # a renv bake's mirror: its make build passes it to the Dockerfiles
        values["R_REPOS"] = args.r_repos
    return [{"name": name, "value": value, "type": "PLAINTEXT"} for name, value in values.items()]


def ensure_project(codebuild, request):
    try:
        codebuild.create_project(**request)
        print(f"Created CodeBuild project {request['name']}")
    except codebuild.exceptions.ResourceAlreadyExistsException:
        codebuild.update_project(**request)
        print(f"CodeBuild project {request['name']} exists: updated to these settings")


class LogTail:
    """The build's CloudWatch log lines, printed as they come; keeps the last LAST_LINES."""

    def __init__(self, logs):
        self.logs = logs
        self.token = None
        self.last = deque(maxlen=LAST_LINES)

    def read(self, build):
        group, stream = build.get("logs", {}).get("groupName"), build.get("logs", {}).get("streamName")
        if not group or not stream:
            return
        while True:
            request = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
            try:
                page = self.logs.get_log_events(
                    **request, **({"nextToken": self.token} if self.token else {})
                )
            except self.logs.exceptions.ResourceNotFoundException:
                return  # the stream comes a little after the build starts
            for event in page["events"]:
                line = event["message"].rstrip("\n")
                self.last.append(line)
                print(f"    {line}", flush=True)
            if page.get("nextForwardToken") in (None, self.token):
                return
            self.token = page["nextForwardToken"]


def follow(codebuild, logs, build_id):
    """Poll the build until it completes, printing each phase as it starts and the log lines."""
    tail, seen = LogTail(logs), None
    started = time.monotonic()
    while True:
        (build,) = codebuild.batch_get_builds(ids=[build_id])["builds"]
        tail.read(build)
        phase = build.get("currentPhase")
        if phase != seen:
            elapsed = int(time.monotonic() - started)
            print(f"==> {phase}  [{elapsed // 60:02d}:{elapsed % 60:02d}]", flush=True)
            seen = phase
        if build.get("buildComplete") or build.get("buildStatus") not in (None, "IN_PROGRESS"):
            tail.read(build)
            return build, list(tail.last)
        time.sleep(POLL_SECONDS)


def failure(build, last_lines):
    """The one error line of a failed build (its last log lines go to stderr before it)."""
    failed = next((p for p in build.get("phases", []) if p.get("phaseStatus") in PHASE_FAILED), {})
    phase = failed.get("phaseType") or build.get("currentPhase", "?")
    reason = "; ".join(c.get("message", "") for c in failed.get("contexts", []) if c.get("message"))
    if last_lines:
        print(f"Last {len(last_lines)} log lines of the build:", file=sys.stderr)
        for line in last_lines:
            print(f"    {line}", file=sys.stderr)
    logs = build.get("logs", {})
    where = (
        f"; logs: aws logs tail {logs['groupName']} --log-stream-name-prefix {logs['streamName']}"
        if logs.get("groupName") and logs.get("streamName")
        else ""
    )
    return ToolError(
        f"CodeBuild build {build['id']} {build.get('buildStatus', 'FAILED').lower()} in phase {phase}"
        + (f" ({failed.get('phaseStatus')}: {reason})" if reason else "")
        + where
    )


def remote_build(args):
    project = args.project
    if not TAG_RULE.match(args.tag):
        raise SetupError(f"tag {args.tag!r} is invalid: up to 128 letters, digits, '_', '.', '-'")
    if args.tag.endswith("-dirty"):
        raise SetupError(
            f"TAG {args.tag} marks uncommitted changes and is never pushed: commit them, then make remote-build"
        )
    if args.platform not in BUILD_ENVIRONMENTS:
        raise SetupError(
            f"PLATFORM {args.platform} cannot be built in CodeBuild: {' or '.join(BUILD_ENVIRONMENTS)}"
        )
    files, wheel = source_files(project)
    refuse_changed_tree(project, args.tag)
    # Settings, VPC, credentials and the bucket: all checked before anything is uploaded or created.
    settings, session, account = open_aws(project, "bucket", "codebuild.role_arn")
    network(settings)
    bucket, region = settings["bucket"], settings["region"]
    s3, codebuild, logs = (session.client(name) for name in ("s3", "codebuild", "logs"))
    check_bucket(s3, bucket, region)

    archive = pack(project, files, project.build / "remote-build" / "source.zip")
    key = s3_key(settings["s3_prefix"], "remote-build", f"source-{args.tag}.zip")
    extra = {}
    if settings["kms.output_key_id"]:
        extra = {
            "ExtraArgs": {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": settings["kms.output_key_id"]}
        }
    s3.upload_file(str(archive), bucket, key, **extra)
    size_kb = archive.stat().st_size / 1024
    print(f"Uploaded {len(files)} file(s) of the build context, {size_kb:.0f} KB, to s3://{bucket}/{key}")

    buildspec = BUILDSPEC.format(wheel=wheel)
    request = project_request(project, settings, args.platform, f"{bucket}/{key}", buildspec)
    ensure_project(codebuild, request)
    build = codebuild.start_build(
        projectName=request["name"],
        sourceLocationOverride=f"{bucket}/{key}",
        buildspecOverride=buildspec,
        environmentVariablesOverride=build_variables(settings, args),
    )["build"]
    build_id = build["id"]
    args.result = {"build_id": build_id, "status": None, "images": []}  # --json (R's project_command)
    print(
        f"Started CodeBuild build {build_id}: {' and '.join(project.images)} for {args.platform}, TAG {args.tag}"
    )
    if args.no_wait:
        print(f"Follow it: aws codebuild batch-get-builds --ids {build_id}")
        return 0
    try:
        build, last_lines = follow(codebuild, logs, build_id)
    except KeyboardInterrupt:
        print(
            f"\nStopped following; the build goes on (aws codebuild stop-build --id {build_id})",
            file=sys.stderr,
        )
        raise
    args.result["status"] = build.get("buildStatus")
    if build.get("buildStatus") != "SUCCEEDED":
        raise failure(build, last_lines)
    return report(session, account, region, project, args.tag, args.result["images"])


def report(session, account, region, project, tag, pushed):
    """The pushed images by digest, read back from ECR (each also appended to `pushed`)."""
    registry = f"{account}.dkr.ecr.{region}.amazonaws.com"
    lines = []
    for image in project.images:
        found = find_in_ecr(session, f"{registry}/{project.name}-{image}:{tag}")
        if found is None:
            raise ToolError(f"the build succeeded but {registry}/{project.name}-{image}:{tag} is not in ECR")
        lines.append(found.described)
        pushed.append({"image": image, "pushed": found.by_tag, "by_digest": found.by_digest})
    print(f"Built and pushed {len(lines)} image(s):")
    for line in lines:
        print(f"  {line}")
    print(
        "Next: "
        + " / ".join(f"make remote-{'train' if i == 'training' else 'process'}" for i in project.images)
    )
    return 0


def remote_build_arguments(parser):
    parser.add_argument("--tag", required=True, help="the tag to build and push (the git short sha)")
    parser.add_argument("--base-image", required=True, help="BASE_IMAGE of the builds")
    parser.add_argument(
        "--platform", default="linux/amd64", help="linux/amd64 or linux/arm64 (an ARM build image)"
    )
    parser.add_argument(
        "--r-repos", default="", help="R_REPOS of the builds (renv: the CRAN-like mirror to restore from)"
    )
    parser.add_argument("--no-wait", action="store_true", help="start the build and return")
