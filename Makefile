# detectflow: `make up` runs the platform on this machine, `make test` runs every test tier.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
export DETECTFLOW_CACHE ?= $(HOME)/.cache/detectflow

.PHONY: help bootstrap up models test test-unit test-deps chart-test chaos fuzz overload bench lint cluster-build servers-build browser cluster-up cluster-down clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

bootstrap: $(VENV)/.installed  ## create the virtualenv and install detectflow with every extra

$(VENV)/.installed: pyproject.toml scripts/bootstrap.sh
	scripts/bootstrap.sh $(VENV)
	@touch $@

models: bootstrap  ## build the ONNX models (cached under ~/.cache/detectflow/models)
	$(BIN)/detectflow models build

up: bootstrap models  ## run Redis, the API and the workers on 127.0.0.1:8000 (Ctrl-C stops)
	$(BIN)/detectflow up --no-build-models

test: bootstrap models test-deps  ## every test tier: unit, Redis + models, Kubernetes + KEDA, S3, Prometheus, browser
	scripts/test.sh

chaos: bootstrap models  ## the chaos run: 10,000 jobs under worker and Redis SIGKILLs; writes docs/reliability.md
	$(BIN)/python -m tests.chaos.harness --jobs 10000 --write docs/reliability.md

test-deps: cluster-build servers-build browser  ## everything the tiers run besides Python (cached)

test-unit: bootstrap  ## the fast tier only
	scripts/test.sh tests/unit

bench: bootstrap models  ## benchmarks (detectflow, the Celery stack, the model alone); writes docs/performance.md
	$(BIN)/python -m bench.run --write docs/performance.md
	$(BIN)/python -m bench.batching --write docs/performance.md
	$(BIN)/python -m bench.nms --write docs/performance.md
	$(BIN)/python -m bench.roundtrips --write docs/performance.md
	$(BIN)/python -m bench.apicpu --write docs/performance.md

lint: bootstrap  ## static checks: ruff (errors), hadolint on the Dockerfiles, helm lint on the chart
	$(BIN)/ruff check src tests bench
	scripts/lint.sh

fuzz: bootstrap models  ## the fuzz tier at full size: schemathesis 200 cases per operation and mode, 2,000 mutated images
	DETECTFLOW_FUZZ_SCHEMA_CASES=200 DETECTFLOW_FUZZ_MEDIA_CASES=2000 scripts/test.sh tests/fuzz/test_schema.py tests/fuzz/test_media.py

overload: bootstrap models  ## 3x the measured worker capacity for 60 s: only 202 and 429, nothing lost
	DETECTFLOW_OVERLOAD_SECONDS=60 scripts/test.sh tests/fuzz/test_overload.py

chart-test: bootstrap models cluster-build  ## the chart, KEDA and image tiers only
	scripts/test.sh tests/chart tests/keda tests/images

cluster-build:  ## build the loopback Kubernetes binaries (cached)
	scripts/cluster/build.sh

servers-build:  ## build the S3 server (versitygw), prometheus and promtool from Go modules (cached)
	scripts/servers/build.sh

browser:  ## install Debian's chromium and chromium-driver when missing (needs root)
	scripts/install-browser.sh

cluster-up: cluster-build  ## start etcd, apiserver, controller-manager, scheduler, kwok and KEDA on 127.0.0.1
	scripts/cluster/up.sh --with-keda

cluster-down:  ## stop the loopback cluster
	scripts/cluster/down.sh

clean:  ## remove the virtualenv and local state (keeps ~/.cache/detectflow)
	-scripts/cluster/down.sh
	rm -rf $(VENV) .cluster .pytest_cache
