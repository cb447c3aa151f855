"""What the CLI's tests share besides fixtures: the AWS names of the test project, moto helpers,
the outcome of a command (Run). Fixtures are in conftest.py."""

import json
from dataclasses import dataclass, field
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent / "project"
ACCOUNT = "123456789012"  # moto's account
REGION = "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/cli-test"
BUCKET = "cli-test-bucket"
SLUG = "r-on-sagemaker"  # the fixture project's PROJECT
TAG = "test"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
# The environment the commands read: cleared so that the developer's own cannot leak in.
PREFIXES = ("SAGEMAKER_", "ECR_", "AWS_", "RSAGEMAKER_", "CODEBUILD_")


def edit_json(path, **changes):
    document = json.loads(Path(path).read_text())
    document.update(changes)
    Path(path).write_text(json.dumps(document, indent=2))


def fake_manifest(digit="0"):
    """An image manifest for moto's ECR (it stores manifests, no layers); the digit tells images apart."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 2,
                "digest": "sha256:" + digit * 64,
            },
            # moto's digest of an image is its layers' digests hashed: one layer per digit.
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 1,
                    "digest": "sha256:" + digit * 64,
                }
            ],
        }
    )


def digest_of(session, image, tag=TAG):
    (detail,) = session.client("ecr").describe_images(
        repositoryName=f"{SLUG}-{image}", imageIds=[{"imageTag": tag}]
    )["imageDetails"]
    return detail["imageDigest"]


@dataclass
class Run:
    """One command's outcome: exit code, output, and every AWS request it made as botocore sent it."""

    code: int
    out: str
    err: str
    calls: list = field(default_factory=list)

    def requests(self, operation):
        return [call["params"] for call in self.calls if call["operation"] == operation]

    def request(self, operation):
        (params,) = self.requests(operation)
        return params

    def error(self, *expected):
        """The one `error:` line of a failed command (no traceback), holding each expected text."""
        assert self.code != 0, self.out
        lines = [line for line in self.err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1, self.err
        assert "Traceback" not in self.err
        for text in expected:
            assert text in lines[0], lines[0]
        return lines[0]


def s3_objects(session, prefix=""):
    listing = session.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


def s3_read(session, uri):
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return session.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def the_only(items):
    assert len(items) == 1, items
    return items[0]
