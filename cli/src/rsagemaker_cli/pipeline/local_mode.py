"""Running the pipeline on this machine with the SDK's LocalPipelineSession (SDK v3, local mode).

What local mode lacks, and what this module adds on top of it (only local/pipeline.py uses it):
- A property file (evaluation.json) read by a JsonGet must be on S3 in SDK 3.27: local mode parses
  its URI as s3:// and fails on a file:// output with "Invalid json path". The executor below reads
  file:// property files from disk, so the condition works with local files and no AWS account.
- docker-compose 1.29 can report a failed container as success, so each step's outputs are checked
  after it ends (a processing output folder with no file, a model.tar.gz with no member fail it).
- The executor reports every step as it starts and ends (the SDK logs them at INFO among much else).
"""

import json
import tarfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from sagemaker.core.local.utils import get_using_dot_notation
from sagemaker.core.workflow.pipeline_context import LocalPipelineSession as StepArgumentsSession
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.local import LocalPipelineSession
from sagemaker.mlops.local.exceptions import StepExecutionException
from sagemaker.mlops.local.pipeline import LocalPipelineExecutor
from sagemaker.mlops.local.pipeline_entities import _generate_execution_id, _LocalPipelineExecution
from sagemaker.mlops.workflow.steps import StepTypeEnum


def file_path(uri):
    """The local path of a file:// URI, or None for any other URI."""
    parsed = urlparse(str(uri))
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.netloc + parsed.path))


class StepChecks:
    """The checks after a step's container ended: its outputs must exist (see the module docstring)."""

    @staticmethod
    def problem(step, properties):
        if step.step_type == StepTypeEnum.PROCESSING:
            outputs = properties.get("ProcessingOutputConfig", {}).get("Outputs", {})
            for name, output in outputs.items():
                folder = file_path(output["S3Output"]["S3Uri"])
                if folder is not None and not (folder.is_dir() and any(folder.iterdir())):
                    return f"output {name} is empty ({folder}): the container failed, see its log above"
        if step.step_type == StepTypeEnum.TRAINING:
            tarball = file_path(properties.get("ModelArtifacts", {}).get("S3ModelArtifacts", ""))
            if tarball is not None:
                try:
                    with tarfile.open(tarball) as archive:
                        if not archive.getmembers():
                            return f"{tarball} is empty: the training container failed, see its log above"
                except (OSError, tarfile.TarError) as error:
                    return f"no model archive ({error}): the training container failed, see its log above"
        return None


class ReportingExecutor(LocalPipelineExecutor):
    """The SDK's local executor, plus file:// property files, output checks and a report per step."""

    def __init__(self, execution, session, report):
        super().__init__(execution, session)
        self.report = report

    def _execute_step(self, step):
        self.report.started(step)
        try:
            super()._execute_step(step)
            properties = self.execution.step_execution[step.name].properties
            problem = StepChecks.problem(step, properties)
            if problem:
                self.execution.update_step_failure(step.name, problem)
        except StepExecutionException as error:
            self.report.finished(step, "Failed", {"FailureReason": error.message})
            raise
        self.report.finished(step, "Succeeded", properties)

    def _evaluate_json_get_function(self, pipeline_variable, step_name):
        path = self._local_property_file(pipeline_variable)
        if path is None:
            return super()._evaluate_json_get_function(pipeline_variable, step_name)
        try:
            return get_using_dot_notation(json.loads(path.read_text()), pipeline_variable.json_path)
        except OSError as error:
            self.execution.update_step_failure(step_name, f"cannot read {path}: {error}")
        except json.JSONDecodeError as error:
            self.execution.update_step_failure(step_name, f"{path} is not JSON: {error}")
        except ValueError:
            self.execution.update_step_failure(
                step_name, f"{path} has no {pipeline_variable.json_path} (see code/evaluate.R)"
            )

    def _local_property_file(self, json_get):
        property_file = json_get.property_file
        if property_file is None:
            return None
        if not isinstance(property_file, PropertyFile):
            step = self.pipeline_dag.step_map[json_get.step_name]
            property_file = next(item for item in step.property_files if item.name == property_file)
        properties = self.execution.step_execution[json_get.step_name].properties
        outputs = properties.get("ProcessingOutputConfig", {}).get("Outputs", {})
        output = outputs.get(property_file.output_name)
        folder = file_path(output["S3Output"]["S3Uri"]) if output else None
        return None if folder is None else folder / property_file.path


class ReportingPipelineSession(LocalPipelineSession):
    """LocalPipelineSession whose executions run on ReportingExecutor."""

    def __init__(self, report, **kwargs):
        super().__init__(**kwargs)
        self.report = report

    def start_pipeline_execution(self, PipelineName, **kwargs):
        # As _LocalPipeline.start() in SDK 3.27, with this module's executor.
        local_pipeline = self._local_pipelines[PipelineName]
        execution = _LocalPipelineExecution(
            execution_id=_generate_execution_id(),
            pipeline=local_pipeline.pipeline,
            local_session=self,
            **kwargs,
        )
        local_pipeline._executions[execution.pipeline_execution_name] = execution
        return ReportingExecutor(execution, self, self.report).execute()


def sessions(boto_session, serving_port, report):
    """(session that builds the steps' requests, session that runs them), both in local mode.

    SDK 3.27 has two LocalPipelineSession classes: the core one is also a PipelineSession, so
    processor.run() and trainer.train() return step arguments instead of starting jobs; the mlops one
    runs a pipeline. Local code is used in place (no upload), the serving container of the batch
    transform listens on serving_port.
    """
    config = {"local": {"local_code": True, "serving_port": serving_port}}
    steps = StepArgumentsSession(boto_session=boto_session)
    steps.config = config
    runner = ReportingPipelineSession(report, boto_session=boto_session)
    runner.config = config
    return steps, runner
