# The README's commands. Set-up (Debian packages, .venv, Python packages) is a dependency of every
# target and is idempotent: it does nothing when everything is in place.
VENV := .venv
BIN := $(VENV)/bin
DRP := $(BIN)/drp
LAB_RUNBOOK ?= runbooks/lab.yaml
# The lab's Prefect server: 4200 for the default lab, port base + 70 for a lab moved with
# DRP_LAB_PORT_BASE; `make ui PREFECT_PORT=N` chooses.
PREFECT_PORT ?=

.PHONY: setup test lint format unit integration drill drill-site lab-up lab-status lab-down ui bench
.PHONY: server workers deploy server-down lock

setup:
	@bash scripts/setup.sh

# Regenerate requirements.lock from pyproject.toml on purpose (docs/dependencies.md): current
# pins stay where they still fit; `make lock UPGRADE=1` moves everything to the newest allowed,
# `make lock UPGRADE_PACKAGE="sqlalchemy alembic"` only those. Then set-up installs the new lock.
LOCK_ARGS = $(if $(UPGRADE),--upgrade) $(foreach p,$(UPGRADE_PACKAGE),--upgrade-package $(p))
lock:
	@bash scripts/setup.sh --tools
	$(BIN)/python scripts/lockfile.py compile $(strip $(LOCK_ARGS))
	@bash scripts/setup.sh

# Two processes (pytest-xdist): most of the suite waits on servers, Ansible and Prefect. A module's
# tests stay in one process, and so do the drill and report tests (tests/conftest.py).
test: setup lint
	$(BIN)/pytest -n 2

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

# The main job on the embedded lab: a DR drill (Pasal 15), the whole cycle. The lab's sites are
# rebuilt fresh (DC primary, DRC synchronous standby); `drp lab reset` keeps ops-db, so the
# Prefect server on it, and the history of earlier drills, stay. The drill runs on that server
# (started when it does not run) and stays in its UI afterwards. The drill flow injects the
# scenario's fault (by default the DC overheats, Pasal 7(1)(b)), fails over (classify, approve,
# fence, promote, switch, verify), repairs the fault, resyncs the DC as a standby of the DRC,
# fails back with zero data loss, checks that the topology and the data are as before, and
# prints the achieved RTO of each phase, the response measurements, where the evidence is and
# the run's page in the UI; then the regulation's documents are written from the evidence
# (evidence/<incident>/reports/: md, html, xlsx, pdf). Other scenarios:
# make drill DRILL_SCENARIO=dc-db-crash | dc-power-loss | national-network-loss
# `make drill-site` drills the whole site of runbooks/lab-site.yaml instead (five services in
# three priority groups over three database pairs; the lab is rebuilt in that shape and stays
# so for later targets until `make drill` rebuilds the lab of one service); it prints every
# service's achieved RTO.
DRILL_OPERATOR ?= drill-operator
DRILL_SCENARIO ?= dc-heat
ifndef DRILL_INCIDENT  # expanded once: every line of the recipe names the same incident
DRILL_INCIDENT := drill-$(shell date -u +%Y%m%d-%H%M%S)
endif
drill: setup
	$(DRP) lab reset --sync --runbook $(LAB_RUNBOOK)
	$(DRP) runbook check $(LAB_RUNBOOK)
	$(DRP) drill --runbook $(LAB_RUNBOOK) --scenario $(DRILL_SCENARIO) --incident-id $(DRILL_INCIDENT) \
		--operator $(DRILL_OPERATOR) --approved-by $(DRILL_OPERATOR) --confirm-dc-isolated $(DRILL_OPERATOR)
	$(DRP) report $(DRILL_INCIDENT)
	$(DRP) lab status
	@echo "The drill stays in the Prefect UI (the run page above); drp server status names the UI and the file its login asks for."

drill-site:
	$(MAKE) drill LAB_RUNBOOK=runbooks/lab-site.yaml

lab-up: setup
	$(DRP) lab up

lab-status: setup
	$(DRP) lab status

lab-down: setup
	$(DRP) lab down

# The production topology on the lab (docs/production.md). `make ui`: Prefect's server on
# PostgreSQL (database `prefect` in the lab's ops-db) with its UI on http://127.0.0.1:4200, in the
# background, behind Prefect's basic auth (the credential: .lab/secrets/prefect-api-auth);
# `make workers`: a process worker per site (pools dc, drc); `make deploy`: every deployment of
# prefect.yaml (`drp server exec` gives prefect the address and credential); `make server-down`
# stops workers and server.
ui: setup
	$(DRP) lab up
	$(DRP) server up $(if $(PREFECT_PORT),--port $(PREFECT_PORT))

server: ui

workers: server
	$(DRP) workers up

deploy: workers
	$(DRP) server exec -- $(BIN)/prefect --no-prompt deploy --all

server-down: setup
	$(DRP) workers down
	$(DRP) server down
