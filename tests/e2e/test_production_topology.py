"""The production topology on the lab: Prefect's server on PostgreSQL, a process worker per site,
flows deployed from prefect.yaml — and losing the DC does not lose the orchestrator.

One lab, one server and two workers for the whole module (they cost about 20 s to bring up). The
server's database is the lab's ops-db (database ``prefect``); the workers are started with
``drp workers up``'s code and stopped by ``drp lab break dc-power-loss`` as the DC's processes
are.
"""

from __future__ import annotations

import contextvars
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from drp.adapters import postgres as pg
from drp.flows import load
from drp.lab.config import repo_root
from drp.lab.core import Lab
from drp.lab.procs import pid_alive
from drp.ledger import read_records, verify_ledger
from drp.prefect_server import Orchestrator

pytestmark = pytest.mark.e2e

BASE = int(os.environ.get("DRP_TEST_PORT_BASE", "26400"))
LAB_PORT_BASE = BASE + 400  # the e2e labs' ports (one lab at a time in a session)
SERVER_PORT = BASE + 870  # this module's Prefect server (tests/conftest.py lists the ranges)
USED_DEPLOYMENTS = ("failover",)


@dataclass(frozen=True)
class Topology:
    lab: Lab
    orchestrator: Orchestrator
    api: str
    evidence: Path


def _deploy(api: str, names: tuple[str, ...]) -> str:
    """``prefect --no-prompt deploy`` of the named deployments of the repository's prefect.yaml,
    as an operator runs it (only those whose flow file exists: some land later)."""
    spec = yaml.safe_load((repo_root() / "prefect.yaml").read_text())
    present = [
        d["name"]
        for d in spec["deployments"]
        if d["name"] in names and (repo_root() / d["entrypoint"].split(":")[0]).exists()
    ]
    assert present == list(names), f"missing flow files for {set(names) - set(present)}"
    args = [sys.executable, "-m", "prefect", "--no-prompt", "deploy"]
    for name in present:
        args += ["--name", name]
    env = {**os.environ, "PREFECT_API_URL": api}
    proc = subprocess.run(
        args, cwd=repo_root(), env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def topology() -> Iterator[Topology]:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    root = Path(tempfile.mkdtemp(prefix="drp-e2e-topology-", dir="/tmp"))
    os.chmod(root, 0o755)
    lab = Lab.from_env(root=root / "lab", port_base=LAB_PORT_BASE)
    evidence = root / "evidence"
    with pytest.MonkeyPatch.context() as mp:
        # Workers pass their environment to their flow runs: the lab and evidence are found
        # through these, as on a real worker host.
        mp.setenv("DRP_LAB_ROOT", str(lab.cfg.root))
        mp.setenv("DRP_EVIDENCE_DIR", str(evidence))
        # The real path: every lab host over SSH with host-key checking (inventory/lab-ssh.yml).
        mp.setenv("DRP_LAB_INVENTORY", "ssh")
        mp.delenv("PREFECT_API_URL", raising=False)
        mp.delenv("PREFECT_SERVER_DATABASE_CONNECTION_URL", raising=False)
        orch = Orchestrator(lab)
        try:
            lab.up()
            server = orch.server_up(port=SERVER_PORT)
            orch.workers_up(poll_s=1.0)
            _deploy(server["api"], USED_DEPLOYMENTS)
            with temporary_settings(updates={PREFECT_API_URL: server["api"]}):
                yield Topology(lab, orch, server["api"], evidence)
        finally:
            orch.workers_down()
            orch.server_down()
            lab.down()
            shutil.rmtree(root, ignore_errors=True)


def test_the_server_keeps_its_state_in_postgresql_and_each_site_has_a_worker(
    topology: Topology,
) -> None:
    status = topology.orchestrator.server_status()
    assert status["healthy"] and status["version"] == "3.8.8"
    assert status["database"].startswith("postgresql+asyncpg://drp:***@127.0.0.1:")
    pools = {pool: [w["name"] for w in ws] for pool, ws in status["pools"].items()}
    assert pools == {"dc": ["dc-worker"], "drc": ["drc-worker"]}
    prefect_db = topology.lab.cluster("ops-db").dsn("prefect")
    rows = pg.query(
        prefect_db,
        "SELECT d.name, wp.name FROM deployment d JOIN work_queue wq ON wq.id = d.work_queue_id"
        " JOIN work_pool wp ON wp.id = wq.work_pool_id",
    )
    assert ("failover", "drc") in rows
    assert pg.query(prefect_db, "SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
    # The password never reaches the state file, the logs or the orchestrator's ledger.
    password = topology.lab.password()
    places = [topology.lab.cfg.state_file, *topology.lab.cfg.logs.glob("*.log")]
    places += list((topology.evidence / "platform").rglob("*.jsonl"))
    assert all(password not in p.read_text(errors="replace") for p in places)
    assert verify_ledger(topology.evidence / "platform" / "orchestrator").ok


def test_the_cli_reports_the_server_and_the_workers(topology: Topology) -> None:
    from typer.testing import CliRunner

    from drp.cli import app

    root = ["--root", str(topology.lab.cfg.root), "--json"]
    server = CliRunner().invoke(app, ["server", "status", *root])
    assert server.exit_code == 0, server.output
    assert json.loads(server.output)["api"] == topology.api
    again = CliRunner().invoke(app, ["server", "up", "--port", str(SERVER_PORT), *root])
    assert (
        again.exit_code == 0 and json.loads(again.output)["pid"] == json.loads(server.output)["pid"]
    )
    workers = CliRunner().invoke(app, ["workers", "status", *root])
    assert workers.exit_code == 0, workers.output
    assert {s: (w["running"], w["pool"]) for s, w in json.loads(workers.output).items()} == {
        "dc": (True, "dc"),
        "drc": (True, "drc"),
    }


def test_ten_replication_checks_at_once_complete_without_database_is_locked(
    topology: Topology,
) -> None:
    """Ten flow runs write to the server at the same moment (the SQLite failure mode)."""
    flow = load("replication").replication_check
    start = threading.Barrier(10)

    def one(_: int) -> dict[str, Any]:
        start.wait(timeout=60)
        return flow(runbook="runbooks/lab.yaml")

    # Each thread gets the test's Prefect settings (a context variable): the server's address.
    with ThreadPoolExecutor(max_workers=10) as pool:
        futures = [pool.submit(contextvars.copy_context().run, one, i) for i in range(10)]
        results = [f.result(timeout=300) for f in futures]
    assert [r["status"] for r in results] == ["ready"] * 10

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["replication-check"])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED]))
            ),
        )
    assert len(runs) >= 10
    prefect_db = topology.lab.cluster("ops-db").dsn("prefect")
    ids = [str(r.id) for r in runs]
    stored = pg.query(prefect_db, "SELECT count(*) FROM flow_run WHERE id::text = ANY(%s)", (ids,))
    assert stored[0][0] == len(ids)  # the history is in PostgreSQL
    server_log = (topology.lab.cfg.logs / "prefect-server.log").read_text(errors="replace")
    assert "database is locked" not in server_log


def _flow_runs_of(deployment: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment])),
            sort=FlowRunSort.START_TIME_ASC,
        )


def test_with_the_dc_lost_the_drc_worker_runs_the_failover_and_a_crashed_run_is_finished(
    topology: Topology,
) -> None:
    from prefect.deployments import run_deployment

    lab, orch = topology.lab, topology.orchestrator
    before = orch.workers_status()
    assert before["dc"]["running"] and before["drc"]["running"]

    lab.break_("dc-power-loss")
    after = orch.workers_status()
    assert not after["dc"]["running"] and not pid_alive(before["dc"]["pid"])
    assert after["drc"]["running"]

    incident = f"inc-topology-{uuid.uuid4().hex[:6]}"
    parameters = {
        "mode": "drill",  # no default: whoever starts a failover chooses
        "declared_by": "Budi",
        "approved_by": "Budi",
        "confirm_dc_isolated_by": "Sari",
        "incident_id": incident,
    }
    # First attempt: the flow-run process dies right after promotion (as when the host running
    # it goes down); the DRC worker sees it exit and Prefect marks the run crashed.
    crashed = run_deployment(
        "failover/failover",
        parameters=parameters,
        job_variables={"env": {"DRP_CRASH_AFTER_STEP": "promote-drc-db"}},
        timeout=240,
    )
    assert crashed.state is not None and crashed.state.is_crashed(), crashed.state
    st = lab.status()
    assert st["components"]["drc-db"]["role"] == "primary" and st["active_site"] == "dc"

    # Re-running the incident finishes it: the steps already done are not done twice.
    finished = run_deployment("failover/failover", parameters=parameters, timeout=240)
    assert finished.state is not None and finished.state.is_completed(), finished.state
    st = lab.status()
    assert st["active_site"] == "drc" and st["components"]["drc-db"]["writable"]

    ledger = topology.evidence / incident / "failover"
    assert verify_ledger(ledger).ok
    records = [r for _, r in read_records(ledger) if not isinstance(r, str)]
    starts = [r.data for r in records if r.kind == "attempt.start"]
    assert [s["flow_run_id"] for s in starts] == [str(crashed.id), str(finished.id)]
    ends = [r.data for r in records if r.kind == "step.end"]
    assert [e["status"] for e in ends if e["step_id"] == "promote-drc-db"] == [
        "done",
        "already_done",
    ]
    assert records[-1].kind == "ledger.close"

    # The run history on the server shows both, on the DRC's pool, run by the DRC's worker.
    history = [r for r in _flow_runs_of("failover") if r.parameters["incident_id"] == incident]
    assert [(r.state_type.value, r.work_pool_name) for r in history] == [
        ("CRASHED", "drc"),
        ("COMPLETED", "drc"),
    ]
    drc_log = (lab.cfg.logs / "worker-drc.log").read_text(errors="replace")
    dc_log = (lab.cfg.logs / "worker-dc.log").read_text(errors="replace")
    for run in history:
        assert str(run.id) in drc_log and str(run.id) not in dc_log
