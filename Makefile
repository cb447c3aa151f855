# r-sagemaker: the cookiecutter template. `make` lists the targets.
.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

VENV := .venv
PYTHON := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-8s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: setup
setup: $(VENV)/.installed ## Install the host packages (Debian) and the Python environment
	@bash scripts/host-packages.sh

$(VENV)/.installed: pyproject.toml cli/pyproject.toml
	@echo "==> Creating $(VENV) with the suite's pinned dependencies and the checkout's CLI (cli/, editable)"
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e .
	$(VENV)/bin/pip install --quiet -e ./cli
	@touch $@

.PHONY: test
test: setup ## The whole suite: rsagemaker's R CMD check and fuzzers, then pytest: the CLI, bakes, lint, images (PYTEST_ARGS=...: pytest only)
	bash scripts/engine.sh run env PYTHON=$(PYTHON) bash scripts/test.sh $(PYTEST_ARGS)

.PHONY: lint
lint: setup ## Lint the template's own files (hooks, tests, scripts, workflows) and the CLI (cli/)
	$(VENV)/bin/ruff check hooks tests bench cli
	$(VENV)/bin/ruff format --check hooks tests bench cli
	$(VENV)/bin/shellcheck scripts/*.sh .ci/run
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(VENV)/bin/zizmor --offline --min-severity low .github/workflows

.PHONY: bench
bench: setup ## Bake the default project and benchmark its server against a single plumber (QUICK=1, BASE_IMAGE=...)
	bash scripts/engine.sh run $(PYTHON) bench/compare.py $(if $(QUICK),--quick --skip-build-times) \
	  $(if $(BASE_IMAGE),--base-image $(BASE_IMAGE))

.PHONY: demo
demo: setup ## Bake the default project into build/demo and run it: build, process, train, serve, predict
	bash scripts/engine.sh run bash scripts/demo.sh

.PHONY: dist
dist: ## Build the release packages into dist/ (rsagemaker tarball, CLI wheel, SHA256SUMS), reproducibly
	bash scripts/dist.sh

.PHONY: docs
docs: setup ## Build the documentation site into site/ (mkdocs, with rsagemaker's pkgdown reference)
	bash scripts/docs.sh
