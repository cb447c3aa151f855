"""`remote-build-role`: create (or update) the service role of `make remote-build`'s CodeBuild project.

Its permissions are the project's config/codebuild-role-policy.json, least privilege: the build's
own log group, reading the uploaded source under s3://<bucket>/<s3_prefix>/remote-build/, pushing
to the <project>-* ECR repositories, and, only when they are set, the VPC network interfaces in
vpc.subnets (Sid Vpc*) and kms.output_key_id (Sid KmsKey). The <placeholders> in it are filled in
here from the settings and the account. The role trusts codebuild.amazonaws.com, for this account's
builds only. Running it again updates the trust and the policy.
"""

import json
import re

from ..core.aws import open_aws, put_service_role
from ..core.errors import SetupError
from .remote_build import codebuild_project_name

POLICY_FILE = "config/codebuild-role-policy.json"
POLICY_NAME = "rsagemaker-remote-build"


def key_arn(key, partition, region, account):
    """kms.output_key_id as the key's ARN (an alias names no key ARN: every key of the account)."""
    if key.startswith("arn:"):
        return key
    return f"arn:{partition}:kms:{region}:{account}:key/{'*' if key.startswith('alias/') else key}"


def render_policy(project, settings, partition, account):
    """The policy document with the placeholders filled in and the unused statements left out."""
    path = project.root / POLICY_FILE
    if not path.is_file():
        raise SetupError(f"{POLICY_FILE} is missing: the role's permissions are read from it")
    region = settings["region"]
    values = {
        "partition": partition,
        "region": region,
        "account": account,
        "bucket": settings["bucket"],
        "s3_prefix": settings["s3_prefix"].strip("/"),
        "project": project.name,
        "codebuild_project": codebuild_project_name(project),
        "kms_key_arn": key_arn(settings["kms.output_key_id"], partition, region, account),
    }
    subnets = [
        f"arn:{partition}:ec2:{region}:{account}:subnet/{subnet}" for subnet in settings["vpc.subnets"]
    ]

    def fill(value):
        if value == "<subnet_arns>":
            return subnets
        if isinstance(value, str):
            return re.sub(r"<(\w+)>", lambda match: values.get(match[1], match[0]), value).replace("//", "/")
        if isinstance(value, list):
            return [fill(item) for item in value]
        if isinstance(value, dict):
            return {key: fill(item) for key, item in value.items()}
        return value

    document = json.loads(path.read_text())
    wanted = []
    for statement in document["Statement"]:
        sid = statement.get("Sid", "")
        if (sid.startswith("Vpc") and not settings["vpc.id"]) or (
            sid.startswith("Kms") and not settings["kms.output_key_id"]
        ):
            continue
        wanted.append(fill(statement))
    left = re.findall(r"<\w+>", json.dumps(wanted))
    if left:
        raise SetupError(f"{POLICY_FILE} has placeholders no setting fills: {', '.join(sorted(set(left)))}")
    return {**document, "Statement": wanted}


def remote_build_role(args):
    project = args.project
    settings, session, account = open_aws(project, "bucket")
    name = args.role_name or f"{project.resource_name}-codebuild"
    partition = session.get_partition_for_region(settings["region"])
    policy = render_policy(project, settings, partition, account)  # checked before the role exists
    role = put_service_role(
        session,
        account,
        name,
        "codebuild.amazonaws.com",
        f"CodeBuild service role of {project.name}'s remote-build",
        POLICY_NAME,
        policy,
        POLICY_FILE,
    )
    args.result = {"role_arn": role["Arn"]}
    setting = json.dumps({"codebuild": {"role_arn": role["Arn"]}})
    print(f"Next: put it in config/aws.json ({setting}), then make remote-build")
    return 0


def remote_build_role_arguments(parser):
    parser.add_argument("--role-name", default="", help="the role's name (default: <project>-codebuild)")
