# solar-mlops: the two commands a new machine needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
TOOLS := .cache/tools
# Use uv from PATH when present; otherwise install a pinned one into .cache/tools.
UV := $(or $(shell command -v uv 2>/dev/null),$(TOOLS)/bin/uv)
RUN := $(UV) run --locked
# Debian packages the tests and the lab need: a real Postgres for the prediction store,
# the Docker engine and debootstrap for hermetic images, wrk for the benchmarks, Vagrant
# (with its libvirt provider) to validate the Vagrantfile, Prometheus, its Pushgateway
# and Alertmanager for the alerting and dashboard tests.
APT_PACKAGES := postgresql docker.io debootstrap wrk vagrant vagrant-libvirt prometheus-pushgateway prometheus prometheus-alertmanager
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(TOOLS)/bin/uv:
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

# Compiled bytecode keeps imports fast even where PYTHONDONTWRITEBYTECODE is set.
.PHONY: install
install: $(UV) ## create .venv from uv.lock (Python 3.11)
	$(UV) sync --locked --compile-bytecode

.PHONY: system-deps
system-deps: ## install the Debian packages above when missing (root, or sudo)
	@missing=""; for pkg in $(APT_PACKAGES); do \
	  dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

.PHONY: docker-engine
docker-engine: system-deps ## make sure a Docker engine answers (starts dockerd without systemd)
	@$(SUDO) scripts/start-dockerd.sh

.PHONY: train
train: install ## on this machine: train -> evaluate -> register -> gate, then list the registry
	$(RUN) solar train
	$(RUN) solar models

.PHONY: serve
serve: install ## run the prediction service on 127.0.0.1:8000 with the local registry's champion
	SOLAR_BIND=127.0.0.1:8000 $(RUN) gunicorn -c python:solar_mlops.service.gunicorn_conf

.PHONY: lint
lint: install ## ruff (Python) and ansible-lint (roles, scenarios, inventories)
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) lint-imports
	$(RUN) mypy
	$(RUN) ansible-lint --profile production roles molecule inventory playbooks

.PHONY: lab-images
lab-images: docker-engine install ## build the lab's images (base, lab host, HAProxy), only when missing
	scripts/lab-images.sh

.PHONY: lab-archives
lab-archives: lab-images ## save the lab images as the archives the lab and Vagrant inventories load
	$(RUN) ansible-playbook playbooks/lab-images.yml

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
demo-down: ## remove the lab the demo made, with its engines' data
	scripts/lab.sh down --volumes

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

.PHONY: molecule
molecule: lab-images ## every Molecule scenario (molecule/<name>), one after the other, timed
	@for scenario in $$(ls molecule/*/molecule.yml | xargs -n1 dirname | xargs -n1 basename); do \
	  echo "== molecule test -s $$scenario"; started=$$(date +%s); \
	  PATH=$(CURDIR)/.venv/bin:$$PATH $(RUN) molecule test -s $$scenario || exit 1; \
	  echo "== $$scenario passed in $$(( $$(date +%s) - started )) s"; \
	done

.PHONY: test
test: lint docker-engine ## every test: unit, data, model, integration against real servers, Molecule
	$(RUN) pytest
	$(MAKE) molecule

.PHONY: bench
bench: install system-deps ## benchmarks (see docs/benchmarks.md)
	$(RUN) python bench/model_table.py
	$(RUN) python bench/service_throughput.py

.PHONY: clean
clean: ## remove the local MLflow store and caches (keeps .venv)
	rm -rf mlflow.db mlruns mlartifacts .pytest_cache .ruff_cache
