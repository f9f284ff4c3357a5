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

# The main job on the embedded lab: a DR drill. The lab is rebuilt fresh (DC primary, DRC
# synchronous standby) -- resync and failback are not built yet, so a drill cannot reuse a lab
# that has already failed over -- then the DC overheats (Pasal 7(1)(b)) and the failover flow
# classifies it, fences the DC, promotes the DRC, switches users and verifies the service.
DRILL_OPERATOR ?= drill-operator
drill: setup
	$(DRP) lab down --purge
	$(DRP) lab up --sync
	$(DRP) runbook check $(LAB_RUNBOOK)
	$(DRP) lab break dc-heat --percent 60 --celsius 34
	$(DRP) failover --runbook $(LAB_RUNBOOK) --mode drill \
		--declared-by $(DRILL_OPERATOR) --approved-by $(DRILL_OPERATOR)

lab-up: setup
	$(DRP) lab up

lab-status: setup
	$(DRP) lab status

lab-down: setup
	$(DRP) lab down

# Prefect's server and UI on loopback (http://127.0.0.1:4200).
ui: setup
	$(BIN)/prefect server start --host 127.0.0.1 --port 4200
