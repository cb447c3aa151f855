# The container's R entry point, called by run.sh:
#   Rscript entrypoint.R train                       one training job
#   Rscript entrypoint.R serve [--socket PATH | --port N] [--ready FILE ...]
#                                                    one serving worker
# The work is done by the rsagemaker package (images/training/rsagemaker), installed in the image.
rsagemaker::main(commandArgs(trailingOnly = TRUE))
