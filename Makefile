# stackyard: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
# The peers of bench/jobs.py (arq, saq, rq, Celery, Dramatiq) live apart: arq pins redis<6.
BENCH_VENV ?= .venv-bench
PACKAGES := core operator images/api images/worker hack/harness
PYTEST_ARGS ?=
# Images: <REGISTRY>/stackyard-{operator,api,worker}:<VERSION> (the Stack's and the chart's default registry).
REGISTRY ?= ghcr.io/stackyard
VERSION ?= $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' core/pyproject.toml)

.PHONY: help install constraints tools images crds lint test bench bench-constraints up servers clean
.PHONY: cluster cluster-down e2e e2e-kind

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-18s %s\n", $$1, $$2}'

$(PY):
	@echo "==> creating $(VENV) with $$(python3 --version)"
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q "uv==$(UV_VERSION)"

install: $(PY) ## a .venv with every package editable, pinned by constraints.txt
	@echo "==> installing $(PACKAGES) (pinned by constraints.txt)"
	$(UV) pip install --python $(PY) -q --compile-bytecode -c constraints.txt -r requirements.in
	@touch $(VENV)/.installed

$(VENV)/.installed: constraints.txt requirements.in $(addsuffix /pyproject.toml,$(PACKAGES)) | $(PY)
	@$(MAKE) --no-print-directory install

constraints: $(PY) ## re-pin every dependency into constraints.txt (no index URLs are written)
	$(UV) pip compile --python $(PY) --python-version 3.11 -q --no-header --no-annotate \
	  requirements.in | grep -v '^-e ' > constraints.txt.new
	{ echo "# Pins for every Python dependency of the repository. Regenerate: make constraints"; cat constraints.txt.new; } > constraints.txt
	rm -f constraints.txt.new

tools: ## build the real servers used by tests and `make up` (cached under ~/.cache/stackyard)
	@bash hack/tools.sh all

images: $(VENV)/.installed ## build the operator, api and worker images (starts the engine, makes the base image)
	@REGISTRY=$(REGISTRY) VERSION=$(VERSION) bash hack/images.sh

crds: $(VENV)/.installed ## generate crds/, the chart's CRDs and docs/reference/crds.md from the pydantic models
	$(VENV)/bin/stackyard-crds --out crds --out charts/stack/crds --reference docs/reference/crds.md

lint: $(VENV)/.installed ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: $(VENV)/.installed tools images lint ## lint, then every test against real servers
	$(VENV)/bin/stackyard-crds --check --out crds --out charts/stack/crds --reference docs/reference/crds.md
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed $(BENCH_VENV)/.installed tools ## benchmarks against their peers (bench/), each printing its ratio
	@for b in bench/*.py; do echo "==> $$b"; $(PY) $$b || exit 1; done

$(BENCH_VENV)/.installed: bench/peers/constraints.txt bench/peers/requirements.in | $(PY)
	@echo "==> installing the bench peers into $(BENCH_VENV) (pinned by bench/peers/constraints.txt)"
	test -x $(BENCH_VENV)/bin/python || python3 -m venv --without-pip $(BENCH_VENV)
	$(UV) pip install --python $(BENCH_VENV)/bin/python -q -c bench/peers/constraints.txt -r bench/peers/requirements.in
	@touch $@

bench-constraints: $(PY) ## re-pin the bench peers into bench/peers/constraints.txt (no index URLs are written)
	$(UV) pip compile --python $(PY) --python-version 3.11 -q --no-header --no-annotate \
	  bench/peers/requirements.in > bench/peers/constraints.txt.new
	{ echo "# Pins for the peers of bench/jobs.py and bench/auth.py (.venv-bench). Regenerate: make bench-constraints"; cat bench/peers/constraints.txt.new; } > bench/peers/constraints.txt
	rm -f bench/peers/constraints.txt.new

up: $(VENV)/.installed tools ## run the whole stack locally (no cluster needed); Ctrl-C stops it
	$(PY) -m stackyard_harness up

servers: $(VENV)/.installed tools ## only the servers (kube-apiserver, Redis, FerretDB, collector); Ctrl-C stops them
	$(PY) -m stackyard_harness servers

# End-to-end (docs/e2e.md): the chart and the images on a real cluster.
E2E_IMAGES = $(foreach n,operator api worker,$(REGISTRY)/stackyard-$(n):$(VERSION)) \
  $(foreach n,redis otelcol ferretdb,stackyard-e2e/$(n):e2e)
E2E_PYTEST = E2E_REGISTRY=$(REGISTRY) E2E_TAG=$(VERSION) $(VENV)/bin/pytest tests/e2e $(PYTEST_ARGS)

cluster: tools ## a single-node cluster that runs pods on this machine (root; hack/cluster.sh up)
	@bash hack/tools.sh cluster
	@bash hack/cluster.sh up

cluster-down: ## stop the cluster of `make cluster` and remove its pods (imported images stay)
	@bash hack/cluster.sh down

e2e: $(VENV)/.installed tools ## tests/e2e on the cluster of E2E_KUBECONFIG or KUBECONFIG (its images loaded by you), else of `make cluster`
	@if [ -n "$${E2E_KUBECONFIG:-$${KUBECONFIG:-}}" ]; then \
	  echo "==> [e2e] on the cluster of $${E2E_KUBECONFIG:-$$KUBECONFIG}"; \
	else \
	  $(MAKE) --no-print-directory cluster images && bash hack/cluster.sh images && \
	  bash hack/cluster.sh import $(E2E_IMAGES); \
	fi
	$(E2E_PYTEST)

e2e-kind: $(VENV)/.installed tools ## tests/e2e on a kind cluster (Docker and kind needed; not in this sandbox)
	@REGISTRY=$(REGISTRY) VERSION=$(VERSION) E2E_IMAGES="$(E2E_IMAGES)" bash hack/cluster/e2e-kind.sh
	E2E_KUBECONFIG=$${STACKYARD_CACHE:-$$HOME/.cache/stackyard}/kind-e2e.kubeconfig $(E2E_PYTEST)

clean: ## remove the venv, caches and run directories (not the tools cache)
	rm -rf $(VENV) $(BENCH_VENV) .stackyard .wheelhouse .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
