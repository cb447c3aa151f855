"""AWS for the commands: the checked session, images in ECR (by digest), S3 uploads.

open_aws() loads and checks the settings, then region and credentials (STS GetCallerIdentity), before
anything is uploaded or created, and returns the boto3 session every client comes from: so
AWS_ENDPOINT_URL (boto3 >= 1.28) sends STS, ECR, S3 and SageMaker alike to another endpoint, e.g. a
moto server in tests. Uploads go to s3://<bucket>/<s3_prefix>/jobs/<job name>/.

Images are named by digest wherever SageMaker keeps them (jobs, models, model packages): a tag can
be pushed again and name other bytes, a digest cannot. ImageInEcr holds both names of a pushed image.
put_service_role() creates or updates the roles the commands make for AWS services (CodeBuild,
EventBridge Scheduler).
"""

import json
from dataclasses import dataclass
from pathlib import Path

from . import settings as project_settings
from .errors import SetupError

# Test seam, not a user setting: push creates the ECR repositories and fetches the ECR token as
# usual, but sends the images to this registry host (e.g. 127.0.0.1:5000) instead of
# <account>.dkr.ecr.<region>.amazonaws.com, because a moto server's ECR has no registry behind it.
REGISTRY_OVERRIDE_VARIABLE = "RSAGEMAKER_ECR_REGISTRY_OVERRIDE"


def known_regions(session):
    """Every region botocore knows for SageMaker, in every partition (aws, aws-cn, aws-us-gov...)."""
    regions = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("sagemaker", partition_name=partition))
    return regions


def connect(settings):
    """Check region and credentials, before anything is created; returns (boto3 session, account id)."""
    import boto3
    import botocore.exceptions

    settings.require("region")
    region = settings["region"]
    try:
        session = boto3.Session(region_name=region)
        regions = known_regions(session)
        if region not in regions:
            raise SetupError(
                f"unknown AWS region {region!r} (from {settings.sources['region']}): "
                f"SageMaker regions known to botocore include {', '.join(sorted(regions)[:6])}, ... "
                "(a brand-new region needs a newer boto3)"
            )
        if session.get_credentials() is None:
            raise SetupError(
                "no AWS credentials found: run `aws configure` or `aws sso login`, or set AWS_PROFILE, "
                "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        identity = session.client("sts").get_caller_identity()
    except botocore.exceptions.ProfileNotFound as error:
        raise SetupError(f"{error}: fix AWS_PROFILE or add the profile to ~/.aws/config") from None
    except botocore.exceptions.PartialCredentialsError as error:
        raise SetupError(f"incomplete AWS credentials: {error}") from None
    except botocore.exceptions.NoCredentialsError:
        raise SetupError("no AWS credentials found: run `aws configure` or set AWS_PROFILE") from None
    except botocore.exceptions.ClientError as error:
        details = error.response.get("Error", {})
        raise SetupError(
            f"AWS rejected the credentials ({details.get('Code', '')}: {details.get('Message', '')}): "
            "check AWS_PROFILE / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or renew them (`aws sso login`)"
        ) from None
    except botocore.exceptions.EndpointConnectionError as error:
        raise SetupError(f"cannot reach AWS STS in {region}: {error}") from None
    return session, identity["Account"]


def open_aws(project, *required):
    """Settings (with the required ones set), boto3 session and account: everything checked up front."""
    settings = project_settings.load(project)
    settings.require("region", *required)
    session, account = connect(settings)
    return settings, session, account


def ecr_registry(account, region):
    return f"{account}.dkr.ecr.{region}.amazonaws.com"


def split_ref(ref):
    """'name:tag' -> ('name', 'tag'); a ':' in a registry port is not a tag separator."""
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:
        return ref, ""
    return name, tag


# --- images in ECR -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageInEcr:
    repository_uri: str  # <registry>/<repository>
    tag: str  # "" when named by digest alone
    digest: str  # sha256:...

    @property
    def by_tag(self):
        return f"{self.repository_uri}:{self.tag}" if self.tag else self.by_digest

    @property
    def by_digest(self):
        """What SageMaker is given: the bytes that were pushed, whatever the tag names later."""
        return f"{self.repository_uri}@{self.digest}"

    @property
    def described(self):
        """repository:tag@digest: both names, for the output and for the model's record."""
        return f"{self.repository_uri}:{self.tag}@{self.digest}" if self.tag else self.by_digest


def parse_image_uri(uri):
    """(registry, repository, tag, digest) of registry/repository[:tag][@sha256:...]."""
    registry, _, path = uri.partition("/")
    path, _, digest = path.partition("@")
    repository, tag = split_ref(path)
    return registry, repository, tag, digest


def find_in_ecr(session, uri):
    """The ECR image an URI names (by its digest if it has one, else its tag), or None."""
    registry, repository, tag, digest = parse_image_uri(uri)
    image_id = {"imageDigest": digest} if digest else {"imageTag": tag or "latest"}
    ecr = session.client("ecr")
    try:
        (detail,) = ecr.describe_images(repositoryName=repository, imageIds=[image_id])["imageDetails"]
    except (ecr.exceptions.RepositoryNotFoundException, ecr.exceptions.ImageNotFoundException):
        return None
    return ImageInEcr(f"{registry}/{repository}", tag, detail["imageDigest"])


def pushed_image(session, account, region, ref, tag):
    """The image `make push` sent for a local image ref at tag; fails unless it is in ECR."""
    if tag.endswith("-dirty"):
        raise SetupError(
            f"TAG {tag} marks uncommitted changes and is never pushed: commit them (then make push), "
            "or build and push under a name of your own (make build push TAG=<name>)"
        )
    uri = f"{ecr_registry(account, region)}/{split_ref(ref)[0]}:{tag}"
    image = find_in_ecr(session, uri)
    if image is None:
        raise SetupError(f"{uri} is not in ECR: run `make push` first (with the same TAG)")
    return image


def pin_to_digest(session, account, region, uri):
    """An image URI as SageMaker should get it: an image of this account's ECR by digest (None when
    it is not there any more); an image of another registry as it is."""
    if not uri.startswith(f"{ecr_registry(account, region)}/"):
        return uri
    image = find_in_ecr(session, uri)
    return image.by_digest if image else None


# --- S3 ----------------------------------------------------------------------------------------


def check_bucket(s3, bucket, region):
    try:
        s3.head_bucket(Bucket=bucket)
    except s3.exceptions.ClientError as error:
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404:
            raise SetupError(
                f"S3 bucket {bucket} does not exist: create it (aws s3 mb s3://{bucket} --region {region}) "
                'or set SAGEMAKER_BUCKET / config/aws.json "bucket" to one that does'
            ) from None
        raise SetupError(
            f"S3 bucket {bucket} is not accessible with these credentials (HTTP {status})"
        ) from None


def s3_key(*parts):
    return "/".join(part.strip("/") for part in parts if part and part.strip("/"))


def split_s3_uri(uri):
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def upload_file(s3, path, bucket, key):
    s3.upload_file(str(path), bucket, key)
    return f"s3://{bucket}/{key}"


def upload_directory(s3, directory, bucket, prefix, shown=None):
    """Upload every file under directory to s3://bucket/prefix/; returns the prefix URI."""
    files = sorted(path for path in Path(directory).rglob("*") if path.is_file())
    if not files:
        raise SetupError(f"{shown or directory} holds no files to upload")
    for path in files:
        s3.upload_file(str(path), bucket, s3_key(prefix, path.relative_to(directory).as_posix()))
    uri = f"s3://{bucket}/{s3_key(prefix)}/"
    size_kb = sum(path.stat().st_size for path in files) / 1024
    print(f"Uploaded {len(files)} file(s), {size_kb:.0f} KB, from {shown or directory} to {uri}")
    return uri


def put_service_role(session, account, name, service, description, policy_name, policy, policy_source=""):
    """Create the IAM role `name` that `service` (e.g. codebuild.amazonaws.com) may assume for this
    account only, or bring an existing one's trust up to date; then put its inline policy. Running it
    again updates both. Returns the role (GetRole's Role)."""
    iam = session.client("iam")
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": service},
                    "Action": "sts:AssumeRole",
                    "Condition": {"StringEquals": {"aws:SourceAccount": account}},
                }
            ],
        }
    )
    try:
        role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust, Description=description)["Role"]
        print(f"Created IAM role {name}")
    except iam.exceptions.EntityAlreadyExistsException:
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=trust)
        role = iam.get_role(RoleName=name)["Role"]
        print(f"IAM role {name} exists: trust policy updated")
    iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(policy))
    sids = ", ".join(statement.get("Sid", "?") for statement in policy["Statement"])
    print(f"  inline policy {policy_name}{f' from {policy_source}' if policy_source else ''}: {sids}")
    return role
