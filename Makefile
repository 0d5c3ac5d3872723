# solar-mlops: the two commands a new machine needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
TOOLS := .cache/tools
# Use uv from PATH when present; otherwise install a pinned one into .cache/tools.
UV := $(or $(shell command -v uv 2>/dev/null),$(TOOLS)/bin/uv)
RUN := $(UV) run --locked
# Debian packages, by what needs them (each installed only when missing, root or sudo):
# the lab needs the Docker engine and debootstrap for hermetic images; the tests a real
# Postgres for the prediction store, Prometheus with promtool, its Pushgateway and
# Alertmanager, and Vagrant (with its libvirt provider) to validate the Vagrantfile;
# the benchmarks wrk.
APT_LAB := docker.io debootstrap
APT_TEST := postgresql prometheus prometheus-pushgateway prometheus-alertmanager vagrant vagrant-libvirt
APT_BENCH := wrk
# Each stage's wall time goes to one table (scripts/timing; .ci/run prints it).
TIMED := scripts/timing run
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(TOOLS)/bin/uv:
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

# The stamp inside .venv makes the sync run again only when the lock or pyproject.toml
# moved. No --compile-bytecode: compiling all 53,000 files of the venv took 71 s of an
# 83 s sync, while Python compiles (and caches) only what a run imports.
# Caches it: with PYTHONDONTWRITEBYTECODE set (as on the CI machine) every Python
# process of a run compiled its imports again; importing MLflow, pandas, scikit-learn,
# LightGBM, FastAPI and Prefect took 6.7 s each time, against 2.9 s from the cache.
unexport PYTHONDONTWRITEBYTECODE
VENV_STAMP := .venv/.synced

.PHONY: install
install: $(VENV_STAMP) ## create .venv from uv.lock (Python 3.11)

$(VENV_STAMP): uv.lock pyproject.toml | $(UV)
	@$(TIMED) venv $(UV) sync --locked
	@touch $@

.PHONY: lab-deps test-deps bench-deps
lab-deps: ## the Debian packages the lab needs (APT_LAB)
	@scripts/system-deps.sh $(APT_LAB)
test-deps: ## the Debian packages the tests need (APT_TEST)
	@scripts/system-deps.sh $(APT_TEST)
bench-deps:
	@scripts/system-deps.sh $(APT_BENCH)

.PHONY: docker-engine
docker-engine: lab-deps ## make sure a Docker engine answers (starts dockerd without systemd)
	@$(SUDO) scripts/start-dockerd.sh

.PHONY: train
train: install ## on this machine: train -> evaluate -> register -> gate, then list the registry
	$(RUN) solar train
	$(RUN) solar models

.PHONY: serve
serve: install ## run the prediction service on 127.0.0.1:8000 with the local registry's champion
	SOLAR_BIND=127.0.0.1:8000 $(RUN) gunicorn -c python:solar_mlops.service.gunicorn_conf

.PHONY: lint lint-python lint-ansible
lint: lint-python lint-ansible ## ruff, the type checker, the import contract, ansible-lint

lint-python: install
	@$(TIMED) "lint: ruff" $(RUN) ruff check .
	@$(TIMED) "lint: ruff format" $(RUN) ruff format --check .
	@$(TIMED) "lint: import contract" $(RUN) lint-imports
	@$(TIMED) "lint: mypy" $(RUN) mypy

lint-ansible: install
	@$(TIMED) "lint: ansible-lint" $(RUN) ansible-lint --profile production roles molecule inventory playbooks

# Test tiers, by the tools a test needs (pytest markers; tests/tiers.py keeps them honest).
TOOL_TESTS := postgres or prometheus or vagrant
FAST_TESTS := not (docker or $(TOOL_TESTS))

.PHONY: check
check: lint-python ## the fast tier: Python lint and every test that needs no Docker, Postgres, Prometheus, Vagrant or lab
	@$(TIMED) "pytest: fast tier" $(RUN) pytest -m "$(FAST_TESTS)"

.PHONY: test-tools
test-tools: install test-deps ## the tests that need Debian's Postgres, Prometheus tools or Vagrant
	@$(TIMED) "pytest: Postgres, Prometheus, Vagrant" $(RUN) pytest -m "$(TOOL_TESTS)"

.PHONY: test-docker
test-docker: install docker-engine ## the tests that build and run the service's image
	@$(TIMED) "pytest: Docker" $(RUN) pytest -m docker

.PHONY: lab-images
lab-images: docker-engine install ## build the lab's images (scripts/lab-images.sh), each only when missing or out of date
	scripts/lab-images.sh

.PHONY: lab-archives
lab-archives: lab-images ## save the lab images as the archives the lab, Vagrant and Molecule load (.cache/lab-images)
	@$(TIMED) "image archives" $(RUN) ansible-playbook playbooks/lab-images.yml

# The lab's inventory: inventory/lab (all-in-one) or inventory/lab-multi (five hosts).
LAB_INVENTORY ?= inventory/lab
export LAB_INVENTORY

.PHONY: lab-up
lab-up: lab-archives ## start the container lab's hosts (LAB_INVENTORY, default inventory/lab)
	scripts/lab.sh up

.PHONY: lab-site
lab-site: lab-up ## the whole platform on the lab: playbooks/site.yml (README, "Set up")
	$(RUN) ansible-playbook -i $(LAB_INVENTORY) playbooks/site.yml

# The API key comes from the inventory (SOLAR_API_KEY, else the demo value) into a
# root-only file; `solar demo` and the reliability suite read it from there, never from
# their command lines.
API_KEY_FILE := .cache/demo/api-key

.PHONY: api-key
api-key: install
	@install -d -m 700 $(dir $(API_KEY_FILE))
	@$(RUN) ansible -i $(LAB_INVENTORY) localhost -m ansible.builtin.copy \
	  -a 'content={{ solar_api_key }} dest=$(CURDIR)/$(API_KEY_FILE) mode=0600' >/dev/null

.PHONY: demo
demo: lab-site api-key ## the whole loop on the lab: champion, faulty traffic, drift, retraining, rollout under load
	$(RUN) solar demo --api-key-file $(API_KEY_FILE) --report .cache/demo/report.json

.PHONY: demo-down
demo-down: ## remove the lab's hosts and their engines' data (the images stay: make lab-clean)
	scripts/lab.sh down --volumes
	@echo "kept: the lab's images (make lab-clean removes them and their archives), .venv and .cache/"

.PHONY: lab-clean
lab-clean: demo-down ## remove the lab's hosts, volumes, images and image archives too
	@images=$$(docker image ls --filter 'reference=solar-mlops/*' --quiet | sort -u); \
	  if [ -n "$$images" ]; then docker image rm --force $$images >/dev/null; fi
	rm -rf .cache/lab-images
	@echo "removed the solar-mlops/* images and .cache/lab-images; kept .venv"

# Operator commands on the running lab (after make demo), from any shell: they go
# through the venv, so nothing needs activating. VERSION is a registered version.
LAB_MLFLOW := http://127.0.0.1:5000
LAB_PREFECT := http://127.0.0.1:4200/api

.PHONY: models
models: install ## the lab registry's versions with their aliases, scores and gate verdicts
	MLFLOW_TRACKING_URI=$(LAB_MLFLOW) $(RUN) solar models

.PHONY: deploy
deploy: install ## blue-green rollout of VERSION to the idle colour (playbooks/deploy_model.yml)
	@test -n "$(VERSION)" || { echo "usage: make deploy VERSION=N (make models lists them)" >&2; exit 2; }
	$(RUN) ansible-playbook -i $(LAB_INVENTORY) playbooks/deploy_model.yml -e model_version=$(VERSION)

.PHONY: rollback
rollback: install ## traffic back to the other colour (playbooks/rollback.yml)
	$(RUN) ansible-playbook -i $(LAB_INVENTORY) playbooks/rollback.yml

.PHONY: deployments
deployments: install ## who deployed what, when, and how it went (playbooks/deployments.yml)
	$(RUN) ansible-playbook -i $(LAB_INVENTORY) playbooks/deployments.yml

.PHONY: retrain
retrain: install ## train a quick challenger through the lab's Prefect; a winner is rolled out
	PREFECT_API_URL=$(LAB_PREFECT) $(RUN) prefect deployment run train/train \
	  -p tune=false -p backtest=false --watch

.PHONY: reliability
reliability: api-key ## faults under load on the running lab, after make demo (docs/reliability.md)
	$(RUN) python bench/reliability.py --inventory $(LAB_INVENTORY) \
	  --api-key-file $(API_KEY_FILE) --json .cache/demo/reliability.json

.PHONY: security-checks
security-checks: install ## read-only security checks of a running platform (LAB_INVENTORY; docs/security.md)
	$(RUN) ansible-playbook -i $(LAB_INVENTORY) playbooks/security_checks.yml

.PHONY: lab-down
lab-down: ## remove the lab's hosts (add ARGS=--volumes to drop their engines' data)
	scripts/lab.sh down $(ARGS)

# Molecule scenarios: the two longest first, so that neither ends alone, then cheapest
# first. Each one is a target, `make molecule-<name>`, so that make's job slots schedule
# the scenarios beside every other stage of `make test`.
MOLECULE_SCENARIOS := platform bluegreen deploy_access docker grafana postgres haproxy \
  prometheus mlflow model_server prefect
# Every folder of molecule/ with a molecule.yml must be named: a new scenario is never
# left out of make test.
MOLECULE_UNNAMED := $(filter-out $(MOLECULE_SCENARIOS),\
  $(patsubst molecule/%/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))
# Stages at a time: the machine's two cores. Each stage's output is printed whole when
# it ends (--output-sync), so stages that ran side by side read one after the other.
JOBS ?= 2
SLOTS = --no-print-directory -j$(JOBS) --output-sync=target
# One throwaway registry and model cache per run, trained by the first scenario that needs
# it (model_server, bluegreen: molecule/resources/seed_registry.py); a scenario run on its
# own seeds its own.
SEEDED = seed=$$(mktemp -d /tmp/solar-molecule-seed.XXXXXX) && trap 'rm -rf "$$seed"' EXIT && \
  SOLAR_MOLECULE_SEED=$$seed
MOLECULE_TEST = PATH=$(CURDIR)/.venv/bin:$$PATH $(TIMED) "molecule: $(1)" molecule test -s $(1)

.PHONY: molecule $(addprefix molecule-,$(MOLECULE_SCENARIOS)) molecule-named
molecule-named:
	@if [ -n "$(MOLECULE_UNNAMED)" ]; then \
	  echo "add to MOLECULE_SCENARIOS in the Makefile: $(MOLECULE_UNNAMED)" >&2; exit 2; fi

molecule: molecule-named ## every Molecule scenario, timed (JOBS at a time)
	@$(SEEDED) $(MAKE) $(SLOTS) $(addprefix molecule-,$(MOLECULE_SCENARIOS))

$(addprefix molecule-,$(MOLECULE_SCENARIOS)): molecule-%: install lab-archives
	@$(call MOLECULE_TEST,$*)

# Every test, JOBS stages at a time. make starts a stage when a slot is free and the
# stage is ready, in the order below, so make test adds two order-only constraints of its
# own (AFTER_CHECK, AFTER_IMAGES): the lab's images are built and saved while the fast
# tier runs, and ansible-lint, the image's tests (which wait for the image) and then
# platform, the longest scenario, take the other slot meanwhile. Nothing else starts
# before the fast tier has passed, so that a failure there shows within minutes and
# ends the run when platform does. Then bluegreen, the tool tier and the other
# scenarios in their order. The engine and the Debian packages are in place before the
# stages start, so no slot goes to them (-o).
TEST_STAGES := lab-archives check lint-ansible test-docker \
  $(addprefix molecule-,$(wordlist 1,2,$(MOLECULE_SCENARIOS))) test-tools \
  $(addprefix molecule-,$(wordlist 3,$(words $(MOLECULE_SCENARIOS)),$(MOLECULE_SCENARIOS)))
test-docker: | $(AFTER_IMAGES)
test-tools $(addprefix molecule-,$(filter-out platform,$(MOLECULE_SCENARIOS))): | $(AFTER_CHECK)

.PHONY: test
test: timing-reset molecule-named install lab-deps test-deps docker-engine ## every test: the fast tier, ansible-lint, tool tests, the image, Molecule
	@$(SEEDED) $(MAKE) $(SLOTS) -o lab-deps -o test-deps -o docker-engine \
	  AFTER_CHECK=check AFTER_IMAGES=lab-archives $(TEST_STAGES)

.PHONY: timing-reset
timing-reset:
	@scripts/timing reset

.PHONY: bench
bench: install bench-deps ## benchmarks (see docs/benchmarks.md)
	$(RUN) python bench/model_table.py
	$(RUN) python bench/service_throughput.py

.PHONY: clean
clean: ## remove the local MLflow store and caches (keeps .venv)
	rm -rf mlflow.db mlruns mlartifacts .pytest_cache .ruff_cache
