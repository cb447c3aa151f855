"""Asynchronous endpoints: `make deploy ASYNC=1` and `make invoke-async`.

An asynchronous endpoint queues each request, reads its body from S3 (up to 1 GB), runs it for up to
async.invocation_timeout_seconds (at most 3600) and writes the answer to async.output_s3_uri, or the
error to async.failure_s3_uri, optionally announcing either on an SNS topic. deploy puts
async_inference_config() into the endpoint config, and async_model_environment() on the model:
SageMaker does not tell a container that its endpoint is asynchronous, so the model carries
SAGEMAKER_ASYNC_INFERENCE=true, which raises the serving image's payload limit from 6 MB to 1 GB
(run.sh and serving.R), and SAGEMAKER_MODEL_SERVER_TIMEOUT, the handlers' time limit.

invoke-async uploads the request to s3://<bucket>/<s3_prefix>/async/input/, calls
InvokeEndpointAsync and waits for the output object (or the failure object), then prints it.
"""

import sys
import time

from ..core.aws import check_bucket, open_aws, s3_key, split_s3_uri
from ..core.data import request_body
from ..core.opt_ml import unique_name

ASYNC_VARIABLE = "SAGEMAKER_ASYNC_INFERENCE"
POLL_SECONDS = 2


def async_locations(settings):
    """Where answers and errors go: the configured S3 URIs, else under the project's prefix."""
    base = f"s3://{settings['bucket']}/{s3_key(settings['s3_prefix'], 'async')}"
    output = settings["async.output_s3_uri"] or f"{base}/output/"
    failure = settings["async.failure_s3_uri"] or f"{base}/failures/"
    return output, failure


def async_inference_config(settings):
    """The endpoint config's AsyncInferenceConfig."""
    output, failure = async_locations(settings)
    output_config = {"S3OutputPath": output, "S3FailurePath": failure}
    if settings["kms.output_key_id"]:
        output_config["KmsKeyId"] = settings["kms.output_key_id"]
    notification = {}
    if settings["async.success_topic_arn"]:
        notification["SuccessTopic"] = settings["async.success_topic_arn"]
    if settings["async.error_topic_arn"]:
        notification["ErrorTopic"] = settings["async.error_topic_arn"]
    if notification:
        output_config["NotificationConfig"] = notification
    return {
        "ClientConfig": {
            "MaxConcurrentInvocationsPerInstance": settings["async.max_concurrent_invocations_per_instance"]
        },
        "OutputConfig": output_config,
    }


def async_model_environment(settings):
    """What the serving container of an asynchronous endpoint needs to know (see the module's doc)."""
    return {
        ASYNC_VARIABLE: "true",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": str(settings["async.invocation_timeout_seconds"]),
    }


def describe_async(settings):
    """One line for deploy's output."""
    config = async_inference_config(settings)
    output = config["OutputConfig"]
    topics = output.get("NotificationConfig", {})
    line = (
        f"asynchronous, {config['ClientConfig']['MaxConcurrentInvocationsPerInstance']} concurrent invocation(s) "
        f"per instance; answers to {output['S3OutputPath']}, errors to {output['S3FailurePath']}"
    )
    if topics:
        line += "; SNS " + ", ".join(f"{kind} {arn}" for kind, arn in topics.items())
    return line


def object_exists(s3, uri):
    bucket, key = split_s3_uri(uri)
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def wait_for_result(s3, output_uri, failure_uri, timeout, clock=time.monotonic, sleep=time.sleep):
    """Poll until the output or the failure object exists; returns (kind, uri) or None at the timeout."""
    started = clock()
    on_terminal = sys.stdout.isatty()
    last_report = None
    while True:
        for kind, uri in (("output", output_uri), ("failure", failure_uri)):
            if uri and object_exists(s3, uri):
                if on_terminal:
                    print()
                return kind, uri
        elapsed = int(clock() - started)
        if elapsed >= timeout:
            if on_terminal:
                print()
            return None
        line = f"  waiting for {output_uri}  [{elapsed // 60:02d}:{elapsed % 60:02d}]"
        if on_terminal:
            print(f"\r{line}\033[K", end="", flush=True)
        elif last_report is None or elapsed - last_report >= 30:
            print(line, flush=True)
            last_report = elapsed
        sleep(POLL_SECONDS)


def invoke_async(args):
    project = args.project
    settings, session, _account = open_aws(project, "bucket")
    endpoint, bucket = settings["endpoint.name"], settings["bucket"]
    s3 = session.client("s3")
    check_bucket(s3, bucket, settings["region"])
    body, what = request_body(project, args.file, args.rows)
    key = s3_key(settings["s3_prefix"], "async", "input", unique_name("request"))
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=args.content_type)
    input_uri = f"s3://{bucket}/{key}"
    print(f"Uploaded {what} ({len(body)} bytes, {args.content_type}) to {input_uri}")
    timeout = settings["async.invocation_timeout_seconds"]
    response = session.client("sagemaker-runtime").invoke_endpoint_async(
        EndpointName=endpoint,
        InputLocation=input_uri,
        ContentType=args.content_type,
        Accept=args.accept,
        InvocationTimeoutSeconds=timeout,
    )
    output_uri, failure_uri = response["OutputLocation"], response.get("FailureLocation", "")
    print(f"Queued inference {response.get('InferenceId', '?')} on endpoint {endpoint}")
    print(f"  answer: {output_uri}")
    if failure_uri:
        print(f"  errors: {failure_uri}")
    if args.no_wait:
        print(f"Next: aws s3 cp {output_uri} -")
        return 0
    # The request may wait in the queue before it runs for up to the invocation timeout.
    result = wait_for_result(s3, output_uri, failure_uri, args.wait_seconds or timeout + 60)
    if result is None:
        print(
            f"No answer yet after {args.wait_seconds or timeout + 60} s; it may still be queued. "
            f"Later: aws s3 cp {output_uri} -",
            file=sys.stderr,
        )
        return 1
    kind, uri = result
    bucket_name, result_key = split_s3_uri(uri)
    text = s3.get_object(Bucket=bucket_name, Key=result_key)["Body"].read().decode(errors="replace")
    if kind == "failure":
        print(f"The inference failed ({uri}):", file=sys.stderr)
        print(text.rstrip(), file=sys.stderr)
        print(f"Logs: CloudWatch log group /aws/sagemaker/Endpoints/{endpoint}", file=sys.stderr)
        return 1
    print(f"Response ({uri}):")
    print(text.rstrip())
    print("Next: make undeploy when done")
    return 0


def invoke_async_arguments(parser):
    parser.add_argument("--rows", type=int, default=5, help="how many rows of data/ to send")
    parser.add_argument("--file", default="", help="send this file instead")
    parser.add_argument("--content-type", default="text/csv")
    parser.add_argument("--accept", default="text/csv")
    parser.add_argument(
        "--wait-seconds",
        type=int,
        default=0,
        help="how long to wait for the answer (default: async.invocation_timeout_seconds + 60)",
    )
    parser.add_argument("--no-wait", action="store_true", help="return once the request is queued")
