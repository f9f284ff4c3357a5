# The README's commands. Set-up (Debian packages, .venv, Python packages) is a dependency of every
# target and is idempotent: it does nothing when everything is in place.
VENV := .venv
BIN := $(VENV)/bin
DRP := $(BIN)/drp
LAB_RUNBOOK ?= runbooks/lab.yaml

.PHONY: setup test lint format unit integration drill lab-up lab-status lab-down ui bench

setup:
	@bash scripts/setup.sh

test: setup lint
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

unit: setup
	$(BIN)/pytest -m unit

integration: setup
	$(BIN)/pytest -m integration

# The main job on the embedded lab. Until the failover flow lands this brings the lab up,
# checks the lab runbook and prints the recovery plan with its predicted RTO -- nothing more.
drill: setup
	$(DRP) lab up
	$(DRP) runbook check $(LAB_RUNBOOK)
	$(DRP) plan $(LAB_RUNBOOK)

lab-up: setup
	$(DRP) lab up

lab-status: setup
	$(DRP) lab status

lab-down: setup
	$(DRP) lab down

# Prefect's server and UI on loopback (http://127.0.0.1:4200).
ui: setup
	$(BIN)/prefect server start --host 127.0.0.1 --port 4200
