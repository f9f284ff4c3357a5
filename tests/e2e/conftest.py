"""End-to-end fixtures: one Prefect test server per session, and a fresh lab per test (a
failover changes the topology, so every test starts from DC primary / DRC standby)."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from observers import ClientPathWatcher, FrontDoorWriter
from roster_codes import approval_input

from drp.domain.outcomes import DrillOutcome
from drp.lab.core import Lab

E2E_PORT_BASE = int(os.environ.get("DRP_TEST_PORT_BASE", "26400")) + 400
RUNBOOK = str(Path(__file__).resolve().parents[2] / "runbooks" / "lab.yaml")


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    from prefect.settings import temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with (
        prefect_test_harness(server_startup_timeout=60),
        temporary_settings(updates={"flows.heartbeat_frequency": None}),
    ):
        yield


@pytest.fixture
def fresh_lab(monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    """A new lab (DC primary, DRC standby, synchronous), its own evidence directory, torn down
    after the test. The flow finds both through DRP_LAB_ROOT and DRP_EVIDENCE_DIR."""
    root = Path(tempfile.mkdtemp(prefix="drp-e2e-", dir="/tmp"))  # 0700: see drp.lab.placement
    lab = Lab.from_env(root=root / "lab", port_base=E2E_PORT_BASE)
    monkeypatch.setenv("DRP_LAB_ROOT", str(lab.cfg.root))
    monkeypatch.setenv("DRP_EVIDENCE_DIR", str(root / "evidence"))
    monkeypatch.setenv("DRP_APPROVAL_POLL_S", "1")
    try:
        lab.up(sync=True)
        yield lab
    finally:
        lab.down(purge=True)
        shutil.rmtree(root, ignore_errors=True)


# -- drills: one lab, every scenario in a row, a writer and a watcher throughout -----------------
DRILL_SCENARIOS = ("dc-db-crash", "dc-heat", "dc-power-loss", "national-network-loss")
INTERACTIVE_SCENARIO = "dc-heat"
"""Its gates are answered in the Prefect UI's way (resume with input), about a second late."""


def _answer_gates(evidence: Path, incident: str, stop: threading.Event, delay_s: float) -> None:
    """Answer every approval the drill's flows ask for, ``delay_s`` after it is asked, through
    Prefect's API with the form's fields (what the UI does), each with a valid one-time code."""
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import resume_flow_run

    from drp.ledger import read_records

    answered: set[str] = set()
    while not stop.is_set():
        for flow in ("failover", "failback"):
            directory = evidence / incident / flow
            if not (directory / "ledger.jsonl").exists():
                continue
            for _, rec in read_records(directory):
                if isinstance(rec, str) or rec.kind != "approval.requested":
                    continue
                run_id = rec.data.get("flow_run_id")
                if not run_id or run_id in answered or not rec.data.get("interactive"):
                    continue
                stop.wait(delay_s)
                try:
                    with get_client(sync_client=True) as client:
                        state = client.read_flow_run(run_id).state
                    if not (state and state.is_paused()):
                        continue  # not paused yet: a code handed out now would go to waste
                    resume_flow_run(run_id, run_input=approval_input("Sari"))
                    answered.add(run_id)
                except Exception:  # not paused yet: try again on the next round
                    pass
        stop.wait(0.2)


def _restore(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@dataclass
class Drilled:
    lab: Lab
    evidence: Path
    summaries: dict[str, DrillOutcome]
    errors: dict[str, str]
    writer: FrontDoorWriter
    watcher: ClientPathWatcher
    after: dict[str, dict[str, Any]]  # per scenario: lab status right after the drill
    scenarios: tuple[str, ...] = DRILL_SCENARIOS
    interactive: str = INTERACTIVE_SCENARIO


@pytest.fixture(scope="session")
def drilled(prefect_server) -> Iterator[Drilled]:
    """Every drill scenario in a row on one lab (the README's main job, four times), with a
    writer going through the front door and a watcher on the client paths the whole time."""
    from drp.flows import load

    root = Path(tempfile.mkdtemp(prefix="drp-drills-", dir="/tmp"))  # 0700, as fresh_lab's
    lab = Lab.from_env(root=root / "lab", port_base=E2E_PORT_BASE + 100)
    env = {
        "DRP_LAB_ROOT": str(lab.cfg.root),
        "DRP_EVIDENCE_DIR": str(root / "evidence"),
        "DRP_APPROVAL_POLL_S": "1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        lab.up(sync=True)
    except BaseException:
        lab.down(purge=True)
        _restore(saved)
        raise
    uplink_dsn = (
        lab.cluster("dc-db")
        .dsn("skp")
        .replace(f"port={lab.cfg.port('dc-db')}", f"port={lab.cfg.port('uplink-db')}")
    )
    watcher = ClientPathWatcher(
        (uplink_dsn + " connect_timeout=1", lab.cluster("drc-db").dsn("skp") + " connect_timeout=1")
    )
    writer = FrontDoorWriter(lab.url("frontdoor"))
    threads = [threading.Thread(target=w.run, daemon=True) for w in (watcher, writer)]
    for t in threads:
        t.start()
    summaries: dict[str, DrillOutcome] = {}
    errors: dict[str, str] = {}
    after: dict[str, dict[str, Any]] = {}
    try:
        for scenario in DRILL_SCENARIOS:
            interactive = scenario == INTERACTIVE_SCENARIO
            incident = f"drill-{scenario}-{uuid.uuid4().hex[:4]}"
            stop = threading.Event()
            answerer = threading.Thread(
                target=_answer_gates,
                args=(root / "evidence", incident, stop, 1.0),
                daemon=True,
            )
            if interactive:
                answerer.start()
            try:
                summaries[scenario] = load("drill").drill(
                    runbook=RUNBOOK,
                    scenario=scenario,
                    operator="Budi",
                    approved_by=None if interactive else "Budi",
                    confirm_dc_isolated_by="Budi",
                    incident_id=incident,
                    approval_timeout_s=120,
                )
            except Exception as exc:  # recorded; the tests say which drill failed and why
                errors[scenario] = f"{type(exc).__name__}: {exc}"
            finally:
                stop.set()
                if interactive:
                    answerer.join(timeout=10)
            after[scenario] = lab.status()
            if scenario in errors:
                break
    finally:
        writer.stop()
        watcher.stop()
        for t in threads:
            t.join(timeout=5)
        _restore(saved)  # the drills are over: other tests see their own settings
    try:
        yield Drilled(lab, root / "evidence", summaries, errors, writer, watcher, after)
    finally:
        lab.down(purge=True)
        shutil.rmtree(root, ignore_errors=True)
