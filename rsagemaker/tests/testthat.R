# The runner R CMD check calls: every tests/testthat/test-*.R, against the installed package
# (internals included: test_check evaluates the tests in the package's namespace).
library(testthat)
library(rsagemaker)

test_check("rsagemaker")
