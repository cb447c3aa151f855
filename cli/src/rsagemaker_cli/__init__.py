"""rsagemaker: the project CLI of r-sagemaker (build, run locally and ship R code on Amazon SageMaker).

The package is grouped by where a command acts, over a small core:
  core/      settings, the project's paths, AWS and container-engine clients, SageMaker's files
  local/     commands that run the project's images on this machine (no AWS account)
  aws/       commands that push images and create SageMaker jobs, models and endpoints
  pipeline/  the SageMaker pipeline's definition (the optional `pipeline` extra)
  config/    commands that read or write the project's own configuration
cli.py holds the command table; `rsagemaker --help` lists the commands.
"""

__version__ = "0.3.1"
