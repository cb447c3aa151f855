"""The SageMaker Python SDK v2 (`pip install 'sagemaker<3'`) driving a bake's images in local mode.

docs/sdk.md shows the part between the markers. tests/test_sdk.py runs this file whole, as it is, in the
folder of a default bake, with TRAINING_IMAGE, PROCESSING_IMAGE, PORT and SAGEMAKER_BUCKET set, against
a fake AWS on loopback.
"""

# --8<-- [start:v2]
import os

from sagemaker.deserializers import CSVDeserializer
from sagemaker.estimator import Estimator
from sagemaker.local import LocalSession
from sagemaker.processing import ProcessingInput, ProcessingOutput, ScriptProcessor
from sagemaker.s3 import S3Downloader
from sagemaker.serializers import CSVSerializer

session = LocalSession(default_bucket=os.environ["SAGEMAKER_BUCKET"])
session.config = {"local": {"local_code": True, "serving_port": int(os.environ.get("PORT", "8080"))}}
role = "arn:aws:iam::111111111111:role/local"  # any role ARN locally
estimator = Estimator(
    image_uri=os.environ["TRAINING_IMAGE"], role=role, instance_count=1, instance_type="local",
    hyperparameters={"maxdepth": 4}, output_path="file://" + os.path.abspath("build/sdk-v2"),
    sagemaker_session=session,
)
estimator.fit({"train": "file://" + os.path.abspath("data/train")})

predictor = estimator.deploy(1, "local", serializer=CSVSerializer(), deserializer=CSVDeserializer())
predictions = predictor.predict([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])  # [['setosa'], ['virginica']]
predictor.delete_endpoint()

rows = [",".join(line.split(",")[:4]) for line in open("data/train/iris.csv").read().splitlines()[1::10]]
os.makedirs("build/sdk-v2/batch", exist_ok=True)
with open("build/sdk-v2/batch/rows.csv", "w") as batch:
    batch.write("\n".join(rows) + "\n")
for strategy in ("MultiRecord", "SingleRecord"):
    transformer = estimator.transformer(
        1, "local", strategy=strategy, assemble_with="Line", accept="text/csv",
        output_path="file://" + os.path.abspath(f"build/sdk-v2/transform-{strategy}"),
    )
    transformer.transform("file://" + os.path.abspath("build/sdk-v2/batch"), content_type="text/csv", split_type="Line")

processor = ScriptProcessor(
    image_uri=os.environ["PROCESSING_IMAGE"], command=["Rscript"], role=role,
    instance_count=1, instance_type="local", sagemaker_session=session,
)
processor.run(
    code="code/preprocess.R",
    inputs=[ProcessingInput(source=os.path.abspath("data/train"), destination="/opt/ml/processing/input/data")],
    outputs=[ProcessingOutput(source="/opt/ml/processing/output")],
)
# v2 sends processing outputs to S3 even locally (it replaces a file:// destination): fetch them.
splits = processor.latest_job.outputs[0].destination
S3Downloader.download(splits, os.path.abspath("build/sdk-v2/processing"), sagemaker_session=session)
# --8<-- [end:v2]
