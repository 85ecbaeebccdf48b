# The two commands a newcomer needs: `make run` and `make test`. Everything else is here too.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help venv kafka chromium dovecot run test test-e2e test-tansu chaos lint format unit integration migrate seed keys bench eval-intent clean \
	container-tools wheelhouse debian-base image image-test

help:
	@echo "make run     - set up, migrate, seed, start the broker and all five services"
	@echo "make test    - set up, lint, and run the unit and integration tests"
	@echo "make test-e2e - the browser and end-to-end tests (CI runs them too)"
	@echo "make test-tansu - the tests marked tansu again, on the Tansu broker (CI runs it too)"
	@echo "make chaos  - the chaos suite: services killed, broker/PostgreSQL/Redis restarted under load"
	@echo "make kafka   - fetch Apache Kafka's jars from Maven Central (once)"
	@echo "make chromium - install Debian's chromium for the browser tests (once)"
	@echo "make dovecot - install Debian's dovecot-imapd for the mailbox tests (once)"
	@echo "make lint    - ruff and mypy"
	@echo "make migrate - apply every service's migrations"
	@echo "make seed    - load the demo data set (10,000 candidates, open jobs) if empty"
	@echo "make bench   - benchmarks against the running product's real parts"
	@echo "make eval-intent - score intent detection on the labelled sets"
	@echo "make image   - build the container image recruiter-assistant:dev (Podman; offline wheelhouse)"
	@echo "make image-test - build the image, run the five services in containers, smoke-test them"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed: set PYTHON=python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# Apache Kafka's jars from Maven Central, once (skipped, with a note, where Java 17+ is missing:
# the local stack then uses Tansu from its wheel).
kafka: $(STAMP)
	@$(PY) -m deploy.apache_kafka resolve

# Debian's chromium for the browser tests (tests/browser, Playwright drives /usr/bin/chromium;
# no browser download). Installed once, as root on a fresh Debian machine.
chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# Debian's dovecot IMAP server for the mailbox tests (tests/support/dovecot.py starts its own with
# its own config; the package's system service is not used). Installed once, as root.
dovecot:
	@test -x /usr/sbin/dovecot || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd)

run: $(STAMP) kafka
	$(PY) -m deploy.run_local

# The unit and integration tests on Apache Kafka (or KAFKA_BOOTSTRAP_SERVERS), against a real IMAP
# server (dovecot) and SMTP server; it prints the slowest tests (the budget is 10 minutes). CI
# (.ci/run) then runs the slower checks, each a target of its own: `make test-e2e` (the browser
# and end-to-end tests), `make test-tansu` (the tests marked `tansu` again on Tansu, so the
# Python-only path keeps working) and `make image-test`.
test: $(STAMP) lint kafka dovecot
	$(PY) -m pytest -m "not container and not browser and not e2e and not chaos" --durations=12

# The web app in a real Chromium (tests/browser, marked `browser`) and the product end to end
# (tests/e2e: `make run` and the README's examples, a chat message to inboxes; the product on a
# Kafka with SCRAM logins and ACLs, tests/integration/test_kafka_sasl.py).
test-e2e: $(STAMP) kafka chromium
	$(PY) -m pytest -m "browser or e2e" --durations=8

# The full chaos suite (tests/chaos, marked `chaos`): a 300-recipient campaign with a follow-up
# and 200 workflow runs while each service is SIGKILLed and the broker, PostgreSQL and Redis
# restart; prints the figures (docs/chaos.md); and the workflow engine's crash test (100 runs,
# SIGKILL mid-flight). A bounded version of the suite runs in `make test`.
chaos: $(STAMP) kafka
	$(PY) -m pytest -m chaos -p no:cacheprovider

test-tansu: $(STAMP)
	LOCAL_KAFKA=tansu KAFKA_BOOTSTRAP_SERVERS= $(PY) -m pytest -m tansu

unit: $(STAMP)
	$(PY) -m pytest tests/unit

integration: $(STAMP)
	$(PY) -m pytest tests/integration tests/e2e

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

migrate: $(STAMP)
	$(PY) -m deploy.run_local migrate

seed: $(STAMP)
	$(PY) -m deploy.run_local seed

bench: $(STAMP) kafka chromium
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) -m bench

eval-intent: $(STAMP)
	$(PY) -m services.intent.evaluate ../shared/eval/intent_dev.jsonl tests/data/intent_holdout.jsonl \
		--named-slots ../shared/eval/intent_dev_v2.jsonl \
		--named-slots tests/data/intent_holdout_v2.jsonl \
		--named-slots tests/data/intent_holdout_v3.jsonl \
		--named-slots tests/data/intent_holdout_v4.jsonl \
		--named-slots tests/data/intent_tuning.jsonl \
		--named-slots tests/data/intent_tuning_2.jsonl

# ---- Container image (deploy/Containerfile, deploy/compose.yaml; deploy/README.md "Containers") --
# BASE_IMAGE: a local Debian made with debootstrap (no registry is reachable here); on a machine
# that reaches Docker Hub: `make image BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm`.
BASE_IMAGE ?= localhost/debian:bookworm-min
APP_IMAGE ?= localhost/recruiter-assistant:dev
CONTAINER_DIR := .local/container
image image-test debian-base: export CONTAINERS_CONF ?= $(CURDIR)/$(CONTAINER_DIR)/containers.conf

# Podman, buildah, runc and debootstrap (Debian packages), and a containers.conf that this
# machine's hybrid cgroups and lowered ulimits need (runc, cgroupfs, explicit ulimits).
container-tools:
	@command -v podman >/dev/null && command -v buildah >/dev/null && command -v runc >/dev/null \
		&& command -v debootstrap >/dev/null \
		|| (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman buildah runc debootstrap)
	@mkdir -p $(CONTAINER_DIR)
	@printf '%s\n' '[containers]' 'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]' \
		'[engine]' 'runtime = "runc"' 'cgroup_manager = "cgroupfs"' > $(CONTAINER_DIR)/containers.conf

# The pinned dependencies as wheels, built on the host: the image installs from them with no index
# (pip inside a build cannot reach the index here). Git ignores the folder (its own .gitignore).
wheelhouse: $(STAMP)
	@mkdir -p deploy/wheelhouse $(CONTAINER_DIR) && printf '*\n' > deploy/wheelhouse/.gitignore
	$(PY) -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
		> $(CONTAINER_DIR)/requirements.txt
	$(PY) -m pip wheel --quiet --only-binary=:all: -w deploy/wheelhouse -r $(CONTAINER_DIR)/requirements.txt

# A Debian bookworm minbase from Debian's mirror, imported as localhost/debian:bookworm-min
# (the tarball is cached in .local/container).
debian-base: container-tools
	@test -f $(CONTAINER_DIR)/debian-bookworm-min.tar || ( \
		rm -rf $(CONTAINER_DIR)/rootfs && debootstrap --variant=minbase bookworm $(CONTAINER_DIR)/rootfs http://deb.debian.org/debian \
		&& tar -C $(CONTAINER_DIR)/rootfs -cf $(CONTAINER_DIR)/debian-bookworm-min.tar.tmp . \
		&& mv $(CONTAINER_DIR)/debian-bookworm-min.tar.tmp $(CONTAINER_DIR)/debian-bookworm-min.tar \
		&& rm -rf $(CONTAINER_DIR)/rootfs)
	@podman image exists localhost/debian:bookworm-min \
		|| podman import $(CONTAINER_DIR)/debian-bookworm-min.tar localhost/debian:bookworm-min

image: container-tools wheelhouse $(if $(filter localhost/debian:bookworm-min,$(BASE_IMAGE)),debian-base)
	podman build -f deploy/Containerfile --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(APP_IMAGE) .

# The image under podman-compose against the test's own Kafka, PostgreSQL and Redis
# (tests/container, marked `container`: not part of `make test`'s pytest run).
image-test: $(STAMP) kafka
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory image && \
	APP_IMAGE=$(APP_IMAGE) $(PY) -m pytest -m container tests/container -p no:cacheprovider; \
	code=$$?; echo "image-test: $$(( $$(date +%s) - start )) s"; exit $$code

clean:
	rm -rf $(VENV) .local .pytest_cache .mypy_cache .ruff_cache
