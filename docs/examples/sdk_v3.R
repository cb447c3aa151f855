# The SageMaker Python SDK v3 from R, through reticulate: the calls of sdk_v3.py's train and deploy
# sections. docs/sdk.md shows the part between the markers; tests/test_sdk.py runs this file with
# Rscript in the folder of a default bake (use_virtualenv() pointed at its SDK v3 environment) and
# checks that every SDK call and argument here is one sdk_v3.py makes.

# --8<-- [start:r]
library(reticulate)
use_virtualenv("~/.venvs/sagemaker")
train <- import("sagemaker.train")
configs <- import("sagemaker.train.configs")
local <- import("sagemaker.core.local.local_session")
Mode <- import("sagemaker.train.model_trainer")$Mode

dir.create("build/sdk-v3", recursive = TRUE, showWarnings = FALSE)
trainer <- train$ModelTrainer(
  training_image = Sys.getenv("TRAINING_IMAGE"),
  training_mode = Mode$LOCAL_CONTAINER,
  compute = configs$Compute(instance_type = "local_cpu", instance_count = 1L),
  source_code = configs$SourceCode(source_dir = "code", command = "exec /opt/sagemaker/run.sh train"),
  hyperparameters = list(maxdepth = 4L),
  local_container_root = file.path(getwd(), "build/sdk-v3")
)
trainer$train(input_data_config = list(configs$InputData(channel_name = "train", data_source = "data/train")))
model_data <- paste0("file://", file.path(getwd(), "build/sdk-v3/compressed_artifacts/model.tar.gz"))

session <- local$LocalSession(default_bucket = Sys.getenv("SAGEMAKER_BUCKET"))
session$config <- list(local = list(local_code = TRUE, serving_port = as.integer(Sys.getenv("PORT", "8080"))))
sm <- session$sagemaker_client
container <- list(Image = Sys.getenv("TRAINING_IMAGE"), ModelDataUrl = model_data, Environment = dict())
sm$create_model(ModelName = "r-model", PrimaryContainer = container)
variant <- list(VariantName = "main", ModelName = "r-model", InitialInstanceCount = 1L, InstanceType = "local")
sm$create_endpoint_config(EndpointConfigName = "r-endpoint", ProductionVariants = list(variant))
sm$create_endpoint(EndpointName = "r-endpoint", EndpointConfigName = "r-endpoint")
answer <- session$sagemaker_runtime_client$invoke_endpoint(
  EndpointName = "r-endpoint", ContentType = "text/csv", Accept = "text/csv", Body = "5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"
)
predictions <- strsplit(answer$Body$read()$decode(), "\n")[[1]]
sm$delete_endpoint(EndpointName = "r-endpoint")
# --8<-- [end:r]
