# One entry point for people and CI. Every target sets up what it needs.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0
PIPELINE_VENV := build/pipeline-venv
PIPELINE_STAMP := $(PIPELINE_VENV)/.installed
CHECKOV_VENV := build/checkov-venv
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
LOCAL_PORT ?= 4566
API_PORT ?= 4567
CONSOLE_PORT ?= 4568
STACK_NAME ?= mlaas-local
FUNCTION_DIRS := $(sort $(dir $(wildcard functions/*/app.py)))

.PHONY: help setup browser demo local test unit lint format types template check clean iac pipeline-venv pipeline-definition bench openapi asl dashboard soak

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements/dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	@touch $(STAMP)

setup: $(STAMP) ## create .venv with every pinned dependency

# The SageMaker SDK 2.x lives only here (build time): its pins contradict the dev tools'.
$(PIPELINE_STAMP): requirements/pipeline-build.txt
	@test -x $(PIPELINE_VENV)/bin/python || $(PYTHON) -m venv $(PIPELINE_VENV)
	$(PIPELINE_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements/pipeline-build.txt
	@touch $(PIPELINE_STAMP)

# checkov lives in a venv of its own: its pins (boto3 among them) are not the dev tools'.
$(CHECKOV_STAMP): requirements/checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements/checkov.txt
	@touch $(CHECKOV_STAMP)

iac: $(CHECKOV_STAMP) ## IaC scan: checkov over template.yaml (.checkov.yaml lists every skipped check and why)
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml

pipeline-venv: $(PIPELINE_STAMP) ## create build/pipeline-venv (SageMaker SDK 2.x) that generates the pipeline definition

pipeline-definition: $(PIPELINE_STAMP) ## regenerate pipeline/definition.json from pipeline/build_definition.py (commit it)
	$(PIPELINE_VENV)/bin/python pipeline/build_definition.py

asl: $(STAMP) ## write the job-status conditions of the state machine from the transitions table (commit it)
	PYTHONPATH=layers/shared $(BIN)/python -m scripts.asl_conditions

dashboard: $(STAMP) ## write the CloudWatch dashboard body in template.yaml from its tiers, queues and functions (commit it)
	PYTHONPATH=layers/shared $(BIN)/python -m scripts.dashboard

openapi: $(STAMP) ## regenerate docs/openapi.json from the status API's routes and models (commit it)
	$(BIN)/python -m scripts.openapi

demo: $(STAMP) ## run the main job locally: deploy, onboard 3 tenants, upload datasets, print the summary (operator console on :4568)
	$(BIN)/python -m scripts.demo --console-port $(CONSOLE_PORT) $(DEMO_ARGS)

local: $(STAMP) ## the emulator on 127.0.0.1:4566, the status API on :4567/v1, the operator console on :4568/console/; until Ctrl-C
	$(BIN)/python -m localcloud serve --port $(LOCAL_PORT) --api-port $(API_PORT) --template template.yaml \
	  --stack-name $(STACK_NAME) --state-dir .localcloud/local --console-dir console --console-port $(CONSOLE_PORT) \
	  --on-deployed scripts.local:ready

# Debian's chromium for the console test (tests/console): installed once, as root, from the distribution.
browser: ## install headless Chromium (Debian's chromium package) if it is missing
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" != 0 ]; then echo "make browser: run as root, or: sudo apt-get install -y chromium" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@chromium --version 2>/dev/null

test: $(STAMP) $(PIPELINE_STAMP) template browser ## validate and build the template, then run every test (unit, emulator, integration, console)
	$(BIN)/pytest -q -n 2 tests/unit tests/template tests/pipeline
	@# Each emulator group gets a worker process of its own: moto's state is process-wide.
	$(BIN)/pytest -q -n 3 --dist loadgroup tests/localcloud tests/integration tests/permissions tests/pipeline_integration tests/soak tests/console

unit: $(STAMP) ## fast tests only (no emulator)
	$(BIN)/pytest -q tests/unit tests/template

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

types: $(STAMP) ## mypy, strict (each function folder separately, every module of it: they all define module `app`)
	$(BIN)/mypy layers/shared/controlplane localcloud scripts pipeline bench
	@for d in $(FUNCTION_DIRS); do echo "mypy $$d"; MYPYPATH=layers/shared $(BIN)/mypy $$d*.py || exit 1; done

template: $(STAMP) ## sam validate --lint, cfn-lint and sam build (no Docker needed)
	$(BIN)/sam validate --lint --template template.yaml
	$(BIN)/cfn-lint template.yaml
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/sam build --template template.yaml --build-dir .aws-sam/build --cached --parallel > build-sam.log 2>&1 || (cat build-sam.log; exit 1)
	@echo "sam build succeeded (.aws-sam/build)"

bench: $(STAMP) ## benchmarks: fair-share vs FIFO (1M jobs), decision time, the real stack in the emulator, the validator vs csv.reader; build/bench.json
	PYTHONPATH=layers/shared:. $(BIN)/python -m bench

soak: $(STAMP) ## fault-injection soak: >=1,000 uploads, 30 tenants, SIMULATED faults and pipelines; build/soak.json
	PYTHONPATH=layers/shared:. $(BIN)/python -m bench.soak --state-dir build/soak-state

check: lint types iac test ## everything CI runs: lint, types, the IaC scan, template validation and build, all tests

clean: ## remove build output and local emulator state
	rm -rf .aws-sam build .localcloud .pytest_cache .mypy_cache .ruff_cache build-sam.log
