# solar-mlops: the two commands a new machine needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
TOOLS := .cache/tools
# Use uv from PATH when present; otherwise install a pinned one into .cache/tools.
UV := $(or $(shell command -v uv 2>/dev/null),$(TOOLS)/bin/uv)
# Compiled bytecode makes every later import fast, even where PYTHONDONTWRITEBYTECODE is set.
export UV_COMPILE_BYTECODE := 1
RUN := $(UV) run --locked

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(TOOLS)/bin/uv:
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

.PHONY: install
install: $(UV) ## create .venv from uv.lock (Python 3.11)
	$(UV) sync --locked

.PHONY: demo
demo: install ## train -> evaluate -> register -> gate, then list the registry
	$(RUN) solar train
	$(RUN) solar models

.PHONY: lint
lint: install ## ruff lint and format check
	$(RUN) ruff check .
	$(RUN) ruff format --check .

.PHONY: test
test: lint ## every test (unit, data, model, and integration against real servers)
	$(RUN) pytest

.PHONY: bench
bench: install ## benchmarks (see docs/benchmarks.md)
	$(RUN) python bench/model_table.py

.PHONY: clean
clean: ## remove the local MLflow store and caches (keeps .venv)
	rm -rf mlflow.db mlruns mlartifacts .pytest_cache .ruff_cache
