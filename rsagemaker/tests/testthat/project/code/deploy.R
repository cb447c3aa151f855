# deploy.R of the test project: the CLI only packs and uploads it.
invisible(NULL)
