"""The Model Registry: `make models`, `make approve VERSION=n`, and the package `make deploy` serves.

`make pipeline` registers each model that passes its accuracy gate as a new version of the model
package group named after the project (Project.resource_name), with its evaluation.json as the
package's model statistics. A version starts PendingManualApproval (the pipeline's
ModelApprovalStatus parameter); `make approve` approves one, and `make deploy` then serves the
latest Approved version with the image the package records (by digest, not the current TAG).
Only boto3 is needed here: the SageMaker Python SDK is for building the pipeline alone.
"""

import json
import sys

from ..core.aws import open_aws, split_s3_uri
from ..core.errors import SetupError
from .common import is_not_found

APPROVAL_STATUSES = ("Approved", "Rejected", "PendingManualApproval")


def group_exists(sagemaker, group):
    try:
        sagemaker.describe_model_package_group(ModelPackageGroupName=group)
    except sagemaker.exceptions.ClientError as error:
        if is_not_found(error):
            return False
        raise
    return True


def list_versions(sagemaker, group, status=None):
    """The group's packages, newest version first."""
    request = {"ModelPackageGroupName": group, "SortBy": "CreationTime", "SortOrder": "Descending"}
    if status:
        request["ModelApprovalStatus"] = status
    packages = []
    for page in sagemaker.get_paginator("list_model_packages").paginate(**request):
        packages.extend(page["ModelPackageSummaryList"])
    return sorted(packages, key=lambda package: package.get("ModelPackageVersion", 0), reverse=True)


def package_arn(account, region, group, version):
    return f"arn:aws:sagemaker:{region}:{account}:model-package/{group}/{version}"


def accuracy_of(description, read_s3_json):
    """The accuracy in the package's model statistics (evaluation.json on S3), or None."""
    statistics = description.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {})
    uri = statistics.get("S3Uri")
    if not uri:
        return None
    try:
        report = read_s3_json(uri)
        return float(report["multiclass_classification_metrics"]["accuracy"]["value"])
    except (KeyError, TypeError, ValueError):
        return None


def s3_json_reader(s3):
    def read(uri):
        bucket, key = split_s3_uri(uri)
        try:
            return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except s3.exceptions.ClientError:
            return None

    return read


def require_group(sagemaker, group):
    if not group_exists(sagemaker, group):
        raise SetupError(
            f"model package group {group} does not exist: `make pipeline` creates it with the first model "
            "that passes the accuracy gate"
        )


def models(args):
    settings, session, _account = open_aws(args.project)
    sagemaker = session.client("sagemaker")
    group = args.group or args.project.resource_name
    require_group(sagemaker, group)
    versions = list_versions(sagemaker, group)
    args.result = {"group": group, "versions": []}  # --json: one entry per version listed below
    if not versions:
        print(f"Model package group {group} has no versions yet. Next: make pipeline")
        return 0
    read_json = s3_json_reader(session.client("s3"))
    print(f"Model package group {group} ({settings['region']}), newest first:")
    print(f"  {'version':>7}  {'status':<21}  {'accuracy':>8}  created")
    for summary in versions:
        description = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        accuracy = accuracy_of(description, read_json)
        shown = f"{accuracy:.4f}" if accuracy is not None else "-"
        created = summary["CreationTime"]
        created = created.strftime("%Y-%m-%d %H:%M:%S %Z") if hasattr(created, "strftime") else created
        args.result["versions"].append(
            {
                "version": summary.get("ModelPackageVersion"),
                "status": summary["ModelApprovalStatus"],
                "accuracy": accuracy,
                "created": summary["CreationTime"].isoformat()
                if hasattr(summary["CreationTime"], "isoformat")
                else summary["CreationTime"],
                "arn": summary["ModelPackageArn"],
            }
        )
        print(
            f"  {summary.get('ModelPackageVersion', '?'):>7}  {summary['ModelApprovalStatus']:<21}  "
            f"{shown:>8}  {created}"
        )
    print("Next: make approve VERSION=<n>, then make deploy (serves the latest Approved version)")
    return 0


def approve(args):
    _settings, session, _account = open_aws(args.project)
    sagemaker = session.client("sagemaker")
    group = args.group or args.project.resource_name
    require_group(sagemaker, group)
    known = {summary.get("ModelPackageVersion"): summary for summary in list_versions(sagemaker, group)}
    if args.version not in known:
        listed = ", ".join(str(version) for version in sorted(known)) or "none"
        raise SetupError(
            f"model package group {group} has no version {args.version} (versions: {listed}); see `make models`"
        )
    arn = known[args.version]["ModelPackageArn"]
    sagemaker.update_model_package(
        ModelPackageArn=arn,
        ModelApprovalStatus=args.status,
        ApprovalDescription=f"{args.status} with `make approve` (rsagemaker)",
    )
    print(f"Model package {group} version {args.version} is now {args.status}: {arn}")
    args.result = {"group": group, "version": args.version, "status": args.status, "arn": arn}
    if args.status == "Approved":
        print("Next: make deploy (serves the latest Approved version)")
    return 0


def approved_package(sagemaker, group, named=""):
    """The package to deploy: the one named (an ARN), else the group's latest Approved version.

    Returns None when the project does not use the registry (no group and no package named), so that
    deploy falls back to the last training job; a group without an Approved version is an error.
    """
    if named:
        try:
            description = sagemaker.describe_model_package(ModelPackageName=named)
        except sagemaker.exceptions.ClientError as error:
            if is_not_found(error):
                raise SetupError(f"model package {named} does not exist in this account and region") from None
            raise
    else:
        if not group_exists(sagemaker, group):
            return None
        approved = list_versions(sagemaker, group, status="Approved")
        if not approved:
            raise SetupError(
                f"model package group {group} has no Approved version: `make models`, then "
                "`make approve VERSION=<n>` (or deploy a training job: make deploy TRAINING_JOB=<name>)"
            )
        description = sagemaker.describe_model_package(ModelPackageName=approved[0]["ModelPackageArn"])
    if description.get("ModelApprovalStatus") != "Approved":
        print(
            f"warning: model package {description['ModelPackageArn']} is "
            f"{description.get('ModelApprovalStatus')}, not Approved",
            file=sys.stderr,
        )
    container = description["InferenceSpecification"]["Containers"][0]
    return {
        "arn": description["ModelPackageArn"],
        "image": container["Image"],
        "model_data": container.get("ModelDataUrl", ""),
    }


def models_arguments(parser):
    parser.add_argument("--group", help="model package group name (default: the project's name)")


def approve_arguments(parser):
    parser.add_argument("--version", type=int, required=True, help="the version number (see `make models`)")
    parser.add_argument("--group", help="model package group name (default: the project's name)")
    parser.add_argument("--status", choices=APPROVAL_STATUSES, default="Approved")
