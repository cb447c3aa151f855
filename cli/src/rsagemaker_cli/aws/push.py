"""`push`: send the built images to Amazon ECR, or with --registry to any other registry.

ECR: the account comes from STS; each image goes to the repository <project>-<image> (created if
missing, with scan on push, the configured tag mutability, the `tags` setting and a lifecycle policy
that expires only untagged images) under the tag TAG, plus `latest` when tags are mutable.
The lifecycle policy never touches a tagged image: every pushed image keeps its TAG (the commit's
sha), which is what training jobs and models name, so a deployed model's image stays. Before a push
moves a tag off an image that has no other tag (a rebuild pushed under the same TAG), that image is
tagged <TAG>-replaced-<UTC time>; only images untagged by other means expire, after
ecr.expire_untagged_after_days days.
Nothing is pushed from a project whose files differ from its commit (core/git.py: uncommitted or
new files, and git-ignored files that go into the images), whatever the TAG: a pushed TAG always
names its commit's images. A TAG ending in -dirty (see the Makefile) is refused too. The ECR token is
handed to the engine with each push request through the Docker API (X-Registry-Auth): it is never
stored, printed or put on a command line. Settings: config/aws.json "ecr" (core/settings.py).
"""

import base64
import json
import os
import re
from datetime import datetime, timezone

from ..core import engine, git
from ..core.aws import REGISTRY_OVERRIDE_VARIABLE, open_aws, split_ref
from ..core.errors import SetupError

# host[:port] with an optional path prefix, e.g. ghcr.io/me or 127.0.0.1:5000/team.
REGISTRY_RULE = re.compile(
    r"^[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]+)?(?:/[a-z0-9]+(?:[._/-][a-z0-9]+)*)?$"
)
DIGEST_RULE = re.compile(r"sha256:[0-9a-f]{64}")
MANIFEST_TYPES = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
]
TAG_RULE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def lifecycle_policy(days):
    """Expire untagged images `days` days after their push; tagged images are never expired."""
    rule = {
        "rulePriority": 1,
        "description": f"expire untagged images {days} days after their push (tagged images stay)",
        "selection": {
            "tagStatus": "untagged",
            "countType": "sinceImagePushed",
            "countUnit": "days",
            "countNumber": days,
        },
        "action": {"type": "expire"},
    }
    return json.dumps({"rules": [rule]})


def ensure_repository(ecr, name, settings):
    """Create the repository, or bring an existing one to the configured settings; returns it."""
    mutability = settings["ecr.tag_mutability"]
    scan = settings["ecr.scan_on_push"]
    tags = [{"Key": key, "Value": value} for key, value in settings["tags"].items()]
    try:
        repository = ecr.create_repository(
            repositoryName=name,
            imageTagMutability=mutability,
            imageScanningConfiguration={"scanOnPush": scan},
            **({"tags": tags} if tags else {}),
        )["repository"]
        print(f"Created ECR repository {name} (scan on push: {scan}, tags: {mutability})")
    except ecr.exceptions.RepositoryAlreadyExistsException:
        repository = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
        changes = []
        if repository["imageTagMutability"] != mutability:
            ecr.put_image_tag_mutability(repositoryName=name, imageTagMutability=mutability)
            changes.append(f"tags: {mutability}")
        if repository.get("imageScanningConfiguration", {}).get("scanOnPush") != scan:
            ecr.put_image_scanning_configuration(
                repositoryName=name, imageScanningConfiguration={"scanOnPush": scan}
            )
            changes.append(f"scan on push: {scan}")
        if tags:
            ecr.tag_resource(resourceArn=repository["repositoryArn"], tags=tags)
        print(f"ECR repository {name} exists" + (f"; updated {', '.join(changes)}" if changes else ""))
        repository = {**repository, "imageTagMutability": mutability}
    ecr.put_lifecycle_policy(
        repositoryName=name, lifecyclePolicyText=lifecycle_policy(settings["ecr.expire_untagged_after_days"])
    )
    return repository


def ecr_auth_config(ecr):
    """The engine's credentials for ECR (valid 12 hours), from GetAuthorizationToken."""
    data = ecr.get_authorization_token()["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return {"username": username, "password": password, "serveraddress": data["proxyEndpoint"]}


def tag_exists(ecr, repository_name, tag):
    try:
        ecr.describe_images(repositoryName=repository_name, imageIds=[{"imageTag": tag}])
        return True
    except ecr.exceptions.ImageNotFoundException:
        return False


def keep_replaced_image(ecr, repository_name, tag, moving_tags, local_id):
    """Before TAG moves to another image, tag the image it names now <TAG>-replaced-<UTC time>, if
    that image would be left with no tag (moving_tags: every tag this push moves).

    An untagged image expires (lifecycle policy), and an endpoint still serving it (SageMaker resolved
    TAG to it when the endpoint was made) could then no longer scale out. Returns the new tag, or None
    when nothing would be left untagged.
    """
    try:
        (detail,) = ecr.describe_images(repositoryName=repository_name, imageIds=[{"imageTag": tag}])[
            "imageDetails"
        ]
    except (ecr.exceptions.ImageNotFoundException, ecr.exceptions.RepositoryNotFoundException):
        return None  # no image under TAG yet
    if set(detail.get("imageTags", [])) - set(moving_tags):
        return None  # it keeps another tag
    (current,) = ecr.batch_get_image(
        repositoryName=repository_name, imageIds=[{"imageTag": tag}], acceptedMediaTypes=MANIFEST_TYPES
    )["images"]
    if json.loads(current["imageManifest"]).get("config", {}).get("digest") == local_id:
        return None  # the same image again: nothing moves
    kept = f"{tag[:100]}-replaced-{datetime.now(timezone.utc).strftime('%Y%m%d%H%M%S')}"
    ecr.put_image(repositoryName=repository_name, imageManifest=current["imageManifest"], imageTag=kept)
    return kept


def push_one(client, image, repository, tag, auth_config):
    """Tag the local image as repository:tag and push it, printing the engine's progress; returns the digest."""
    image.tag(repository, tag)
    seen = set()
    digest = None
    stream = client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth_config)
    for event in stream:
        if "error" in event or "errorDetail" in event:
            message = event.get("error") or event["errorDetail"].get("message")
            raise SetupError(f"push of {repository}:{tag} failed: {message}")
        # Docker reports the digest in "aux", podman only in the status text.
        found = DIGEST_RULE.search(str(event.get("status", "")))
        digest = event.get("aux", {}).get("Digest") or (found.group(0) if found else digest)
        # One line per layer and state; the byte counters in between would flood a CI log.
        line = " ".join(str(event[key]) for key in ("id", "status") if event.get(key))
        if line and line not in seen:
            seen.add(line)
            print(f"    {line}", flush=True)
    return digest


def parse_images(pairs):
    images = []
    for pair in pairs:
        name, _, ref = pair.partition("=")
        if not name or not ref:
            raise SetupError(f"--image {pair!r}: expected NAME=REF, e.g. training=myproject-training:abc1234")
        images.append((name, ref))
    return images


def refuse_changed_tree(project, tag):
    """Nothing leaves a tree that is not its commit: TAG would name images no commit has."""
    changed = git.changes(project.root)
    if changed:
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        raise SetupError(
            f"the project differs from its commit ({shown}): images built from it are not the commit's, "
            f"so nothing is pushed as TAG {tag}; commit the changes (or remove them), then make build push"
        )


def push(args):
    project = args.project
    if not TAG_RULE.match(args.tag):
        raise SetupError(f"tag {args.tag!r} is invalid: up to 128 letters, digits, '_', '.', '-'")
    if args.tag.endswith("-dirty"):
        raise SetupError(
            f"TAG {args.tag} marks uncommitted changes and is never pushed: commit them, then make build push"
        )
    if args.registry and not REGISTRY_RULE.match(args.registry):
        raise SetupError(
            f"registry {args.registry!r} is invalid: expected host[:port][/prefix], e.g. ghcr.io/me"
        )
    images = parse_images(args.image)
    refuse_changed_tree(project, args.tag)
    # Credentials before the engine (nothing is created yet); every image must exist before any
    # repository is created or any layer is sent.
    aws = None if args.registry else open_aws(project)
    try:
        client = engine.connect()
        local = {name: engine.check_image(client, ref) for name, ref in images}
    except engine.EngineError as error:
        raise SetupError(str(error)) from None
    for name, ref in images:
        architecture = local[name].attrs.get("Architecture", "")
        if architecture not in ("amd64", ""):
            print(
                f"Note: {ref} is {architecture}; SageMaker jobs need amd64 (arm64 serves on Graviton endpoints only)"
            )

    targets = []  # (name, local ref, repository to push to, tags, auth_config)
    if args.registry:
        print(
            f"Pushing to {args.registry} (no AWS involved; log in to it with your engine beforehand if it needs it)"
        )
        for name, ref in images:
            repository = f"{args.registry}/{split_ref(ref)[0]}"
            targets.append((name, ref, repository, unique([args.tag, "latest"]), None))
        next_step = "Pull them elsewhere with: docker pull " + targets[0][2] + ":" + args.tag
    else:
        settings, session, account = aws
        ecr = session.client("ecr")
        print(f"Pushing to Amazon ECR, account {account}, region {settings['region']}")
        registry_override = os.environ.get(REGISTRY_OVERRIDE_VARIABLE, "")
        if registry_override:
            print(
                f"Test seam {REGISTRY_OVERRIDE_VARIABLE}: images go to {registry_override}, not to ECR's registry"
            )
        auth_config = ecr_auth_config(ecr)
        for name, ref in images:
            repository_name = split_ref(ref)[0]
            repository = ensure_repository(ecr, repository_name, settings)
            days = settings["ecr.expire_untagged_after_days"]
            print(
                f"  lifecycle policy: untagged images expire {days} days after their push; tagged ones stay"
            )
            mutable = repository["imageTagMutability"] == "MUTABLE"
            tags = unique([args.tag, "latest"]) if mutable else [args.tag]
            if not mutable and tag_exists(ecr, repository_name, args.tag):
                print(
                    f"  {repository['repositoryUri']}:{args.tag} is already in ECR and its tags are immutable: "
                    "skipped (commit and rebuild for a new TAG)"
                )
                continue
            for moving in tags if mutable else []:
                kept = keep_replaced_image(ecr, repository_name, moving, tags, local[name].id)
                if kept:
                    print(
                        f"  {repository_name}:{moving} named another image: kept as {repository_name}:{kept}, "
                        "so an endpoint still serving it keeps its image (delete that tag once none does)"
                    )
            uri = repository["repositoryUri"]
            if registry_override:
                uri = f"{registry_override}/{repository_name}"
            targets.append((name, ref, uri, tags, auth_config))
        next_step = "Next: " + " / ".join(
            f"make {'remote-train' if name == 'training' else 'remote-process'}" for name, _ in images
        )

    pushed = []
    args.result = []
    for name, ref, repository, tags, auth_config in targets:
        for tag in tags:
            print(f"==> Pushing {ref} as {repository}:{tag}", flush=True)
            digest = push_one(client, local[name], repository, tag, auth_config)
            pushed.append(f"{repository}:{tag}" + (f" ({digest})" if digest else ""))
            args.result.append(
                {"image": name, "local": ref, "pushed": f"{repository}:{tag}", "digest": digest}
            )
    print(f"Pushed {len(pushed)} image tag(s):")
    for line in pushed:
        print(f"  {line}")
    print(next_step)
    return 0


def unique(items):
    return list(dict.fromkeys(items))


def push_arguments(parser):
    parser.add_argument(
        "--image", action="append", required=True, metavar="NAME=REF", help="an image to push"
    )
    parser.add_argument("--tag", required=True, help="the tag to push (the git short sha)")
    parser.add_argument(
        "--registry", default="", help="host[:port][/prefix]: push there instead of ECR; no AWS"
    )
