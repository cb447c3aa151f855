"""What the contract tests share that is not a fixture: the default bake they read and copy.

The bake is made once per session (tests/conftest.py's default_bake, the same folder as the
default_project fixture), so the contract tests and the template's tests read, build and run one
project. Its code/, data/ and images/ files are the template's, copied as they are."""

from conftest import default_bake

PROJECT_ROOT = default_bake()
