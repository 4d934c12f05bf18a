# Two commands do all set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
LINT_VENV := .venv-lint
SAM_VENV := .venv-sam
PY := $(VENV)/bin/python
PIP_FLAGS := --disable-pip-version-check --quiet
# The function imports with its own folder and each layer's python/ on the path, as on Lambda.
FUNCTION_PATH := functions/token_vendor:layers/token_client/python:.

.PHONY: run test unit lint format bench build build-check deploy lock clean

$(VENV)/.installed: requirements-dev.txt requirements.txt layers/dependencies/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -r requirements-dev.txt
	touch $@

$(LINT_VENV)/.installed: requirements-lint.txt
	$(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/pip install $(PIP_FLAGS) -r requirements-lint.txt
	touch $@

$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install $(PIP_FLAGS) aws-sam-cli==1.170.0
	touch $@

## run: start the local stack, vend a token and use it (ONCE=1 exits after the demo)
run: $(VENV)/.installed
	PYTHONPATH=$(FUNCTION_PATH) $(PY) -m local.demo $(if $(ONCE),--once)

## test: unit, integration, e2e and template tests, with coverage
test: $(VENV)/.installed $(LINT_VENV)/.installed
	$(PY) -m pytest --cov --cov-report=term $(PYTEST_ARGS)

unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

## lint: ruff, mypy --strict, cfn-lint, checkov
lint: $(VENV)/.installed $(LINT_VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy functions/token_vendor layers/token_client/python
	$(LINT_VENV)/bin/cfn-lint template.yaml
	BC_SKIP_MAPPING=TRUE $(LINT_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation -f template.yaml

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## bench: side-by-side figures, written to benchmarks/results.md
bench: $(VENV)/.installed
	PYTHONPATH=$(FUNCTION_PATH) $(PY) -m benchmarks.run

## build: deployable artefacts in .aws-sam/build (no Docker, no local Python 3.13)
build: $(SAM_VENV)/.installed $(VENV)/.installed
	PIP=$(CURDIR)/$(VENV)/bin/pip $(SAM_VENV)/bin/sam build --template template.yaml --build-dir .aws-sam/build

## build-check: build, then verify the artefacts (function modules, aarch64 layer with PyJWT and cryptography)
build-check: build
	$(PY) tools/check_build.py

## deploy: guided deployment to your AWS account (never run by CI)
deploy: build
	$(SAM_VENV)/bin/sam deploy --guided

## lock: re-resolve the pinned requirement files from the .in files
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install $(PIP_FLAGS) -r layers/dependencies/requirements.in
	( echo "# Runtime dependencies (the dependencies layer), pinned by 'make lock'."; .venv-lock/bin/pip freeze ) > layers/dependencies/requirements.txt
	.venv-lock/bin/pip install $(PIP_FLAGS) -r requirements-dev.in
	( echo "# Development and test dependencies, pinned by 'make lock' (includes the runtime pins)."; .venv-lock/bin/pip freeze ) > requirements-dev.txt
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) $(LINT_VENV) $(SAM_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .coverage
