# The container's R entry point, called by run.sh:
#   Rscript entrypoint.R train                       one training job
#   Rscript entrypoint.R serve --run-dir DIR --cpus N [--workers N]
#                                                    the serving master: loads the model once,
#                                                    forks the workers (rsagemaker's server.R)
#   Rscript entrypoint.R serve [--socket PATH | --port N] [--ready FILE ...]
#                                                    one serving worker in this process
# The work is done by the rsagemaker package (images/training/rsagemaker), installed in the image.
rsagemaker::main(commandArgs(trailingOnly = TRUE))
