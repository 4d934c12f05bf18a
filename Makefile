# Two commands do all set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
LINT_VENV := .venv-lint
SAM_VENV := .venv-sam
CLIENTS_VENV := .venv-clients
PY := $(VENV)/bin/python
PIP_FLAGS := --disable-pip-version-check --quiet
# Our own code is installed in editable mode (the function package and the client distribution), so
# nothing here juggles PYTHONPATH. Build isolation fetches the pinned setuptools from the package index.
EDITABLE := -e . -e ./layers/token_client

.PHONY: run test unit lint format bench build build-check test-built client-check simulate soak deploy lock clean

$(VENV)/.installed: requirements-dev.txt requirements.txt layers/dependencies/requirements.txt pyproject.toml layers/token_client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -r requirements-dev.txt
	$(PY) -m pip install $(PIP_FLAGS) --no-deps $(EDITABLE)
	touch $@

$(LINT_VENV)/.installed: requirements-lint.txt
	$(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/pip install $(PIP_FLAGS) -r requirements-lint.txt
	touch $@

# SigV4 clients we did not write (aws CLI v1, awscurl) and the Node.js example's locked packages, for the tests.
$(CLIENTS_VENV)/.installed: requirements-clients.txt
	$(PYTHON) -m venv $(CLIENTS_VENV)
	$(CLIENTS_VENV)/bin/pip install $(PIP_FLAGS) -r requirements-clients.txt
	touch $@

examples/node/node_modules/.installed: examples/node/package-lock.json
	cd examples/node && npm ci --no-audit --no-fund --silent
	touch $@

$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install $(PIP_FLAGS) aws-sam-cli==1.170.0
	touch $@

## run: start the local stack, vend a token and use it (ONCE=1 exits after the demo; KEYLESS=1: the keyless story)
run: $(VENV)/.installed
	$(PY) -m $(if $(KEYLESS),local.keyless_demo,local.demo) $(if $(ONCE),--once)

## test: unit, integration, e2e and template tests, with coverage
test: $(VENV)/.installed $(LINT_VENV)/.installed $(SAM_VENV)/.installed $(CLIENTS_VENV)/.installed examples/node/node_modules/.installed
	$(PY) -m pytest --cov --cov-report=term $(PYTEST_ARGS)

unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

## lint: ruff, mypy --strict, cfn-lint (informational checks too), checkov, and `sam validate --lint` (as samconfig.toml asks) on the source and transformed template
# The transformed template is linted too, once per deployment variant (tools/transform_template.py):
# what SAM generates (stages, roles, permissions) is what gets deployed. I3042 (hard-coded partition) is
# ignored there only: SAM itself writes arn:aws:... into the permissions and policies it generates.
# W1030 is ignored in template.yaml's own cfn-lint metadata (the reason is there), so `sam validate --lint`
# agrees; the transformed variants drop that metadata, hence the flag here.
CFN_LINT_IGNORE := W1030
lint: $(VENV)/.installed $(LINT_VENV)/.installed $(SAM_VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(LINT_VENV)/bin/cfn-lint --include-checks I --ignore-checks $(CFN_LINT_IGNORE) -- template.yaml
	BC_SKIP_MAPPING=TRUE $(LINT_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation -f template.yaml
	AWS_DEFAULT_REGION=eu-west-2 SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam validate --lint --template template.yaml
	rm -rf .aws-sam/lint && $(SAM_VENV)/bin/python tools/transform_template.py .aws-sam/lint
	$(LINT_VENV)/bin/cfn-lint --include-checks I --ignore-checks I3042 $(CFN_LINT_IGNORE) -- .aws-sam/lint/*.json
	BC_SKIP_MAPPING=TRUE $(LINT_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation -d .aws-sam/lint

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## bench: side-by-side figures, written to benchmarks/results.md
bench: build
	$(PY) -m benchmarks.run

## build: deployable artefacts in .aws-sam/build (no Docker), with bytecode for CPython 3.13 when one is found
build: $(SAM_VENV)/.installed $(VENV)/.installed
	PIP=$(CURDIR)/$(VENV)/bin/pip $(SAM_VENV)/bin/sam build --template template.yaml --build-dir .aws-sam/build
	$(PY) tools/compile_build.py
	$(PY) -m pip wheel --disable-pip-version-check --quiet --no-deps --wheel-dir dist ./layers/token_client

## build-check: build, then verify the artefacts (function package, aarch64 layer, 3.13 bytecode >= 95%)
build-check: build
	$(PY) tools/check_build.py

## test-built: run the built function + layer under CPython 3.13, read-only, against the local stack
test-built: $(if $(SKIP_BUILD),$(VENV)/.installed,build)
	$(PY) -m pytest tests/built -p no:cacheprovider $(PYTEST_ARGS)

## simulate: 10,000 seeded histories of the fleet over the real vendor code, plus every interleaving of a small one
simulate: $(VENV)/.installed
	$(PY) -m tests.simulation.simulate --workers 2 $(SIMULATE_ARGS)

## soak: 50,000 histories (SOAK_HISTORIES) from a random first seed, printed so a failure replays; run it
## before resolving any change to the protocol (CI keeps make simulate's fixed seeds)
SOAK_HISTORIES ?= 50000
soak: $(VENV)/.installed
	$(PY) -m tests.simulation.simulate --workers 2 --random-start --histories $(SOAK_HISTORIES) $(SOAK_ARGS)

## client-check: pip install ./layers/token_client in a clean venv outside the repo; aic-token works
client-check:
	PYTHON=$(PYTHON) bash tools/check_client_install.sh

## deploy: `make deploy ENV=prod` deploys samconfig.toml's environment; without ENV, guided (never run by CI)
# SAM looks for samconfig.toml beside --template-file (.aws-sam/build/), so name it: the repository's.
DEPLOY_ARGS = $(if $(ENV),--config-env $(ENV) --config-file $(CURDIR)/samconfig.toml --template-file .aws-sam/build/template.yaml,--guided --config-file $(CURDIR)/samconfig.toml)
deploy: build
	$(SAM_VENV)/bin/sam deploy $(DEPLOY_ARGS)

## lock: re-resolve the pinned requirement files from the .in files
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install $(PIP_FLAGS) -r layers/dependencies/requirements.in
	( echo "# Runtime dependencies (the dependencies layer), pinned by 'make lock'."; .venv-lock/bin/pip freeze ) > layers/dependencies/requirements.txt
	.venv-lock/bin/pip install $(PIP_FLAGS) -r requirements-dev.in
	( echo "# Development and test dependencies, pinned by 'make lock' (includes the runtime pins)."; .venv-lock/bin/pip freeze ) > requirements-dev.txt
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) $(LINT_VENV) $(SAM_VENV) $(CLIENTS_VENV) examples/node/node_modules .aws-sam dist .pytest_cache .mypy_cache .ruff_cache .coverage
