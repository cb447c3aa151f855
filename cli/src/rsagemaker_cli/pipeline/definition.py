"""The pipeline, written with the SageMaker Python SDK v3 (sagemaker.mlops.workflow):

    Preprocess -> Train -> Evaluate -> CheckAccuracy --(accuracy >= MinAccuracy)--> Register
                                                    \\--(otherwise)--> AccuracyTooLow (Fail)

Locally (LocalPipelineSession) SageMaker's local mode cannot register a model, so the passing branch
is CreateModel -> TransformTest instead: the model is created and batch-transforms the test split.

Only the pipeline commands import this module (common.load_sdk()), so the other commands run
without the SDK installed. Every URI and image comes from a PipelinePlan that aws/pipeline.py fills
for SageMaker (s3://, ECR images by digest) or local/pipeline.py
for this machine (file://, local images); nothing here uploads or calls AWS except where the SDK
itself does (ModelBuilder.register() looks up the session's default bucket, set to the project's).
"""

import os
from dataclasses import dataclass, field

# The SDK checks a role's IAM permissions with iam:SimulatePrincipalPolicy when a ModelTrainer is
# built, which many users may not call; the commands check role and bucket themselves. Export
# SAGEMAKER_VALIDATE_ROLE=true to have the SDK check anyway.
os.environ.setdefault("SAGEMAKER_VALIDATE_ROLE", "false")

from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
from sagemaker.core.processing import Processor
from sagemaker.core.shapes import (
    MetricDefinition,
    OutputDataConfig,
    ProcessingInput,
    ProcessingOutput,
    ProcessingS3Input,
    ProcessingS3Output,
    S3DataSource,
)
from sagemaker.core.training.configs import Compute, InputData
from sagemaker.core.transformer import Transformer
from sagemaker.core.workflow.conditions import ConditionGreaterThanOrEqualTo
from sagemaker.core.workflow.execution_variables import ExecutionVariables
from sagemaker.core.workflow.functions import Join, JsonGet
from sagemaker.core.workflow.parameters import ParameterFloat, ParameterString
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.workflow.condition_step import ConditionStep
from sagemaker.mlops.workflow.fail_step import FailStep
from sagemaker.mlops.workflow.model_step import ModelStep
from sagemaker.mlops.workflow.pipeline import Pipeline
from sagemaker.mlops.workflow.steps import ProcessingStep, TrainingStep, TransformStep
from sagemaker.serve.model_builder import ModelBuilder
from sagemaker.train.model_trainer import ModelTrainer

PROCESSING_DIR = "/opt/ml/processing"
CODE_PATH = f"{PROCESSING_DIR}/input/code"
# preprocess.R's outputs: train and validation feed Train, test feeds Evaluate, test-features the
# local batch transform (the test rows without the target and header, as SageMaker sends CSV).
SPLITS = ("train", "validation", "test", "test-features")
TRAINING_CHANNELS = ("train", "validation")
EVALUATION_FILE = "evaluation.json"
ACCURACY_PATH = "multiclass_classification_metrics.accuracy.value"
TEST_FRACTION = "0.2"

# Step names: the lines the commands print and the definition's property paths use them.
PREPROCESS, TRAIN, EVALUATE, CHECK = "Preprocess", "Train", "Evaluate", "CheckAccuracy"
REGISTER, FAIL = "Register", "AccuracyTooLow"
CREATE_MODEL, TRANSFORM = "CreateModel", "TransformTest"


@dataclass
class PipelinePlan:
    """Everything the definition depends on; s3:// and ECR for SageMaker, file:// and local images here."""

    name: str
    role_arn: str
    processing_image: str
    training_image: str
    preprocess_code_uri: str  # the object or folder holding preprocess.R
    evaluate_code_uri: str  # the object or folder holding evaluate.R
    input_data_uri: str  # default of the InputData parameter
    output_uri: str  # every step's outputs go under <output_uri>/<execution id>/
    hyperparameters: dict  # as encode_hyperparameters() returns them, sagemaker_submit_directory included
    target: str
    model_package_group: str
    metric_definitions: list  # the setting training.metric_definitions: [{"Name": ..., "Regex": ...}]
    processing_instance_type: str
    training_instance_type: str
    serving_instance_type: str = "ml.m5.large"
    min_accuracy: float = 0.9
    approval_status: str = "PendingManualApproval"
    local: bool = False
    # Instances of Preprocess and Train (Evaluate runs on one: one accuracy over the whole test split),
    # and how their inputs reach them (the settings processing.data_distribution for Preprocess's
    # data, training.channel_distribution for Train's channels).
    processing_instance_count: int = 1
    training_instance_count: int = 1
    data_distribution: str = "FullyReplicated"
    channel_distribution: dict = field(default_factory=dict)


def parameters(plan):
    """The pipeline's parameters, named as `make pipeline` and the SageMaker console show them."""
    return {
        "InputData": ParameterString("InputData", default_value=plan.input_data_uri),
        "ProcessingInstanceType": ParameterString(
            "ProcessingInstanceType", default_value=plan.processing_instance_type
        ),
        "TrainingInstanceType": ParameterString(
            "TrainingInstanceType", default_value=plan.training_instance_type
        ),
        "MinAccuracy": ParameterFloat("MinAccuracy", default_value=plan.min_accuracy),
        "ModelApprovalStatus": ParameterString("ModelApprovalStatus", default_value=plan.approval_status),
    }


def _input(name, uri, local_path, distribution="FullyReplicated"):
    if isinstance(uri, str) and uri.startswith("file://"):
        # The SDK uploads every input that is not s3:// to a default bucket (found through STS),
        # even in local mode; a pipeline expression is passed through and evaluated at run time.
        uri = Join(on="", values=[uri])
    return ProcessingInput(
        input_name=name,
        s3_input=ProcessingS3Input(
            s3_uri=uri,
            local_path=local_path,
            s3_data_type="S3Prefix",
            s3_input_mode="File",
            s3_data_distribution_type=distribution,
        ),
    )


def _output(plan, name, local_path):
    uri = Join(on="/", values=[plan.output_uri, ExecutionVariables.PIPELINE_EXECUTION_ID, name])
    return ProcessingOutput(
        output_name=name,
        s3_output=ProcessingS3Output(s3_uri=uri, local_path=local_path, s3_upload_mode="EndOfJob"),
    )


def _processor(plan, session, params, script, instance_count=1):
    return Processor(
        role=plan.role_arn,
        image_uri=plan.processing_image,
        instance_count=instance_count,
        instance_type=params["ProcessingInstanceType"],
        # As ScriptProcessor(command=["Rscript"]) would: the script arrives as the `code` input.
        entrypoint=["Rscript", f"{CODE_PATH}/{script}"],
        env={"TARGET": plan.target, "TEST_FRACTION": TEST_FRACTION},
        base_job_name=f"{plan.name}-{script.split('.')[0]}",
        sagemaker_session=session,
    )


def split_uri(step, name):
    return step.properties.ProcessingOutputConfig.Outputs[name].S3Output.S3Uri


def build(plan, session):
    """The Pipeline object; session is a PipelineSession (SageMaker) or the core LocalPipelineSession."""
    params = parameters(plan)

    preprocess = ProcessingStep(
        name=PREPROCESS,
        description="code/preprocess.R: split the input data into train, validation and test",
        step_args=_processor(
            plan, session, params, "preprocess.R", instance_count=plan.processing_instance_count
        ).run(
            inputs=[
                _input("code", plan.preprocess_code_uri, CODE_PATH),
                _input("data", params["InputData"], f"{PROCESSING_DIR}/input/data", plan.data_distribution),
            ],
            outputs=[_output(plan, split, f"{PROCESSING_DIR}/output/{split}") for split in SPLITS],
        ),
    )

    trainer = ModelTrainer(
        training_image=plan.training_image,
        role=plan.role_arn,
        compute=Compute(
            instance_type=params["TrainingInstanceType"], instance_count=plan.training_instance_count
        ),
        hyperparameters=plan.hyperparameters,
        input_data_config=[
            InputData(
                channel_name=channel,
                data_source=S3DataSource(
                    s3_data_type="S3Prefix",
                    s3_uri=split_uri(preprocess, channel),
                    s3_data_distribution_type=plan.channel_distribution.get(channel, "FullyReplicated"),
                ),
            )
            for channel in TRAINING_CHANNELS
        ],
        output_data_config=OutputDataConfig(
            s3_output_path=Join(
                on="/", values=[plan.output_uri, ExecutionVariables.PIPELINE_EXECUTION_ID, "training"]
            )
        ),
        base_job_name=f"{plan.name}-train",
        sagemaker_session=session,
    ).with_metric_definitions(
        [MetricDefinition(name=item["Name"], regex=item["Regex"]) for item in plan.metric_definitions]
    )
    train = TrainingStep(
        name=TRAIN, description="code/train.R in the training image", step_args=trainer.train()
    )
    model_data = train.properties.ModelArtifacts.S3ModelArtifacts

    evaluation = PropertyFile(name="Evaluation", output_name="evaluation", path=EVALUATION_FILE)
    evaluate = ProcessingStep(
        name=EVALUATE,
        description="code/evaluate.R: the model's accuracy on the test split (evaluation.json)",
        step_args=_processor(plan, session, params, "evaluate.R").run(
            inputs=[
                _input("code", plan.evaluate_code_uri, CODE_PATH),
                _input("model", model_data, f"{PROCESSING_DIR}/input/model"),
                _input("test", split_uri(preprocess, "test"), f"{PROCESSING_DIR}/input/test"),
            ],
            outputs=[_output(plan, "evaluation", f"{PROCESSING_DIR}/evaluation")],
        ),
        property_files=[evaluation],
    )
    accuracy = JsonGet(step_name=EVALUATE, property_file=evaluation, json_path=ACCURACY_PATH)

    builder = ModelBuilder(
        image_uri=plan.training_image,
        s3_model_data_url=model_data,
        role_arn=plan.role_arn,
        sagemaker_session=session,
    )
    if plan.local:
        passing = _create_and_transform(plan, session, builder, preprocess)
    else:
        statistics = Join(on="/", values=[split_uri(evaluate, "evaluation"), EVALUATION_FILE])
        register_args = builder.register(
            model_package_group_name=plan.model_package_group,
            content_types=["text/csv", "application/json"],
            response_types=["text/csv", "application/json"],
            inference_instances=[plan.serving_instance_type],
            transform_instances=[plan.serving_instance_type],
            approval_status=params["ModelApprovalStatus"],
            model_metrics=ModelMetrics(
                model_statistics=MetricsSource(s3_uri=statistics, content_type="application/json")
            ),
        )
        passing = [ModelStep(name=REGISTER, step_args=register_args)]

    fail = FailStep(
        name=FAIL,
        error_message=Join(
            on=" ",
            values=[
                f"{ACCURACY_PATH} =",
                accuracy,
                "is below the threshold MinAccuracy =",
                params["MinAccuracy"],
            ],
        ),
    )
    check = ConditionStep(
        name=CHECK,
        conditions=[ConditionGreaterThanOrEqualTo(left=accuracy, right=params["MinAccuracy"])],
        if_steps=passing,
        else_steps=[fail],
    )
    return Pipeline(
        name=plan.name,
        parameters=list(params.values()),
        steps=[preprocess, train, evaluate, check],
        sagemaker_session=session,
    )


def _create_and_transform(plan, session, builder, preprocess):
    """Local stand-in for Register: create the model, batch-transform the test features with it.

    ModelBuilder.build() fails under the local session in SDK 3.27 (it reads a user-agent attribute
    the local client lacks), so the CreateModel request is captured from the session's own
    create_model(), the call ModelBuilder would make: PipelineSession intercepts it as step arguments.
    """
    session.init_model_step_arguments(builder)
    session.create_model(
        name=f"{plan.name}-model",
        role=plan.role_arn,
        # Local transform jobs read the container's Environment (KeyError without one).
        primary_container={
            "Image": plan.training_image,
            "ModelDataUrl": builder.s3_model_data_url,
            "Environment": {},
        },
    )
    step_args, session.context = session.context, None
    create = ModelStep(name=CREATE_MODEL, step_args=step_args)
    transformer = Transformer(
        model_name=create.properties.ModelName,
        instance_count=1,
        instance_type="local",
        strategy="MultiRecord",
        accept="text/csv",
        assemble_with="Line",
        output_path=Join(
            on="/", values=[plan.output_uri, ExecutionVariables.PIPELINE_EXECUTION_ID, "transform"]
        ),
        sagemaker_session=session,
    )
    transform = TransformStep(
        name=TRANSFORM,
        step_args=transformer.transform(
            data=split_uri(preprocess, "test-features"), content_type="text/csv", split_type="Line"
        ),
    )
    return [create, transform]
