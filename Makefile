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

# The main job on the embedded lab: a DR drill, the whole cycle. The lab is rebuilt fresh (DC
# primary, DRC synchronous standby), the DC overheats (Pasal 7(1)(b)), the failover flow
# classifies it, fences the DC, promotes the DRC, switches users and verifies; the heat is
# cleared; resync rebuilds the DC as a standby of the DRC; failback switches back to the DC with
# zero data loss. Each phase prints its achieved RTO and where its evidence is.
DRILL_OPERATOR ?= drill-operator
DRILL_INCIDENT ?= drill-$(shell date -u +%Y%m%d-%H%M%S)
drill: setup
	$(DRP) lab down --purge
	$(DRP) lab up --sync
	$(DRP) runbook check $(LAB_RUNBOOK)
	$(DRP) lab break dc-heat --percent 60 --celsius 34
	$(DRP) failover --runbook $(LAB_RUNBOOK) --mode drill --incident-id $(DRILL_INCIDENT) \
		--declared-by $(DRILL_OPERATOR) --approved-by $(DRILL_OPERATOR)
	$(DRP) lab repair
	$(DRP) resync --runbook $(LAB_RUNBOOK) --mode drill --incident-id $(DRILL_INCIDENT)
	$(DRP) failback --runbook $(LAB_RUNBOOK) --mode drill --incident-id $(DRILL_INCIDENT) \
		--declared-by $(DRILL_OPERATOR) --approved-by $(DRILL_OPERATOR)
	$(DRP) lab status

lab-up: setup
	$(DRP) lab up

lab-status: setup
	$(DRP) lab status

lab-down: setup
	$(DRP) lab down

# Prefect's server and UI on loopback (http://127.0.0.1:4200).
ui: setup
	$(BIN)/prefect server start --host 127.0.0.1 --port 4200
