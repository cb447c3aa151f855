"""The SageMaker Python SDK v3 (`pip install sagemaker`, 3.x) driving a bake's images in local mode.

docs/sdk.md shows this file section by section. tests/test_sdk.py runs it whole, as it is, in the folder
of a default bake, with TRAINING_IMAGE and PROCESSING_IMAGE (the refs `make images` prints), PORT (a
free port for the local endpoint) and SAGEMAKER_BUCKET set, against a fake AWS on loopback.
"""

# --8<-- [start:train]
import os

from sagemaker.train import ModelTrainer
from sagemaker.train.configs import Compute, InputData, SourceCode
from sagemaker.train.model_trainer import Mode

os.makedirs("build/sdk-v3", exist_ok=True)  # local_container_root must exist
trainer = ModelTrainer(
    training_image=os.environ["TRAINING_IMAGE"],
    training_mode=Mode.LOCAL_CONTAINER,
    compute=Compute(instance_type="local_cpu", instance_count=1),
    source_code=SourceCode(source_dir="code", command="exec /opt/sagemaker/run.sh train"),
    hyperparameters={"maxdepth": 4},
    local_container_root=os.path.abspath("build/sdk-v3"),
)
trainer.train(input_data_config=[InputData(channel_name="train", data_source="data/train")])
model_data = "file://" + os.path.abspath("build/sdk-v3/compressed_artifacts/model.tar.gz")
# --8<-- [end:train]

# --8<-- [start:deploy]
from sagemaker.core.local.local_session import LocalSession

session = LocalSession(default_bucket=os.environ["SAGEMAKER_BUCKET"])
session.config = {"local": {"local_code": True, "serving_port": int(os.environ.get("PORT", "8080"))}}
sm = session.sagemaker_client
container = {"Image": os.environ["TRAINING_IMAGE"], "ModelDataUrl": model_data, "Environment": {}}
sm.create_model(ModelName="r-model", PrimaryContainer=container)
variant = {"VariantName": "main", "ModelName": "r-model", "InitialInstanceCount": 1, "InstanceType": "local"}
sm.create_endpoint_config(EndpointConfigName="r-endpoint", ProductionVariants=[variant])
sm.create_endpoint(EndpointName="r-endpoint", EndpointConfigName="r-endpoint")
answer = session.sagemaker_runtime_client.invoke_endpoint(
    EndpointName="r-endpoint", ContentType="text/csv", Accept="text/csv", Body="5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"
)
predictions = answer["Body"].read().decode().splitlines()  # ['setosa', 'virginica']
sm.delete_endpoint(EndpointName="r-endpoint")
# --8<-- [end:deploy]

# --8<-- [start:transform]
from sagemaker.core.transformer import Transformer

rows = [",".join(line.split(",")[:4]) for line in open("data/train/iris.csv").read().splitlines()[1::10]]
os.makedirs("build/sdk-v3/batch", exist_ok=True)
with open("build/sdk-v3/batch/rows.csv", "w") as batch:
    batch.write("\n".join(rows) + "\n")
transformer = Transformer(
    model_name="r-model", instance_count=1, instance_type="local", strategy="MultiRecord",
    assemble_with="Line", accept="text/csv", base_transform_job_name="r-transform",
    output_path="file://" + os.path.abspath("build/sdk-v3/transform"), sagemaker_session=session,
)
transformer.transform("file://" + os.path.abspath("build/sdk-v3/batch"), content_type="text/csv", split_type="Line")
# --8<-- [end:transform]

# --8<-- [start:process]
from sagemaker.core.processing import ScriptProcessor
from sagemaker.core.shapes import ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output

processor = ScriptProcessor(
    role="arn:aws:iam::111111111111:role/local", image_uri=os.environ["PROCESSING_IMAGE"],
    command=["Rscript"], instance_count=1, instance_type="local", sagemaker_session=session,
)
data = ProcessingS3Input(
    s3_uri=os.path.abspath("data/train"), local_path="/opt/ml/processing/input/data",
    s3_data_type="S3Prefix", s3_input_mode="File",
)
splits = ProcessingS3Output(
    s3_uri="file://" + os.path.abspath("build/sdk-v3/processing"), local_path="/opt/ml/processing/output",
    s3_upload_mode="EndOfJob",
)
processor.run(
    code="code/preprocess.R",
    inputs=[ProcessingInput(input_name="data", s3_input=data)],
    outputs=[ProcessingOutput(output_name="splits", s3_output=splits)],
)
# --8<-- [end:process]
