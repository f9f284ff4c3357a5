"""The failover flow end to end: real lab, real Ansible, the Prefect test server.

Every scenario runs with a watcher that polls both databases every 50 ms and a writer that
commits continuously (synchronous replication) — never two writable primaries, and every
acknowledged write survives at the DRC.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from drp.flows import load
from drp.lab.core import Lab
from drp.lab.procs import wait_until
from drp.ledger import read_records, verify_ledger

pytestmark = pytest.mark.e2e
RUNBOOK = str(Path(__file__).resolve().parents[2] / "runbooks" / "lab.yaml")


def _direct_dsn(lab: Lab, name: str) -> str:
    return lab.cluster(name).dsn("skp") + " connect_timeout=1"


@dataclass
class Watcher:
    """Polls both databases every 50 ms; records every moment both accepted writes."""

    lab: Lab
    both_writable: list[float] = field(default_factory=list)
    polls: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def _writable(self, name: str) -> bool:
        try:
            with psycopg.connect(_direct_dsn(self.lab, name), autocommit=True) as conn:
                row = conn.execute(
                    "SELECT NOT pg_is_in_recovery()"
                    " AND current_setting('default_transaction_read_only') = 'off'"
                ).fetchone()
                return bool(row and row[0])
        except psycopg.Error:
            return False

    def run(self) -> None:
        while not self._stop.is_set():
            if self._writable("dc-db") and self._writable("drc-db"):
                self.both_writable.append(time.time())
            self.polls += 1
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()


@dataclass
class Writer:
    """Commits declarations at the DC as fast as it can; remembers each acknowledged one."""

    lab: Lab
    acknowledged: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self._stop.is_set():
            key = f"W-{uuid.uuid4().hex[:12]}"
            try:
                with psycopg.connect(_direct_dsn(self.lab, "dc-db"), autocommit=True) as conn:
                    conn.execute(
                        "INSERT INTO declarations (nomor_aju, doc_type, office, site)"
                        " VALUES (%s, 'PEB', 'writer', 'dc')",
                        (key,),
                    )
                self.acknowledged.append(key)  # only after the commit returned
            except psycopg.Error:
                self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()


@pytest.fixture
def guarded(fresh_lab: Lab) -> Iterator[tuple[Lab, Watcher, Writer]]:
    watcher, writer = Watcher(fresh_lab), Writer(fresh_lab)
    threads = [threading.Thread(target=w.run, daemon=True) for w in (watcher, writer)]
    for t in threads:
        t.start()
    assert wait_until(lambda: len(writer.acknowledged) >= 5, 10), "writer never committed"
    yield fresh_lab, watcher, writer
    watcher.stop()
    writer.stop()
    for t in threads:
        t.join(timeout=5)
    assert watcher.polls > 10
    assert watcher.both_writable == [], "both databases accepted writes at the same moment"


def _run(**params: Any) -> dict[str, Any]:
    flow = load("failover").failover
    base = {
        "runbook": RUNBOOK,
        "declared_by": "Budi",
        "declarer_role": "direktur",
        "mode": "drill",
        "approved_by": "Budi",
    }
    return flow(**{**base, **params})


def _assert_failed_over(lab: Lab, outcome: dict[str, Any], writer: Writer | None = None) -> None:
    assert outcome["status"] == "verified"
    st = lab.status()["components"]
    assert st["drc-db"]["role"] == "primary" and st["drc-db"]["writable"]
    assert st["dc-db"]["up"] is False or st["dc-db"]["writable"] is False
    assert lab.status()["active_site"] == "drc"
    result = verify_ledger(outcome["ledger"])
    assert result.ok, result.problems
    assert outcome["achieved_rto_s"] > 0
    if writer is not None:
        writer.stop()
        time.sleep(0.2)
        keys = list(writer.acknowledged)
        with psycopg.connect(_direct_dsn(lab, "drc-db"), autocommit=True) as conn:
            present = {
                r[0]
                for r in conn.execute(
                    "SELECT nomor_aju FROM declarations WHERE office = 'writer'"
                ).fetchall()
            }
        missing = [k for k in keys if k not in present]
        assert not missing, f"{len(missing)} acknowledged writes lost at the DRC"


def _kinds(ledger: str) -> list[str]:
    return [r.kind for _, r in read_records(ledger) if not isinstance(r, str)]


def test_dc_alive_is_fenced_then_the_drc_takes_over(prefect_server, guarded) -> None:
    lab, _, writer = guarded
    outcome = _run(category="katastropik")
    _assert_failed_over(lab, outcome, writer)
    assert outcome["fence_outcome"] == "fenced"
    assert (lab.cfg.pgdata("dc-db") / "standby.signal").exists()
    assert outcome["rpo"]["replay_lsn"]
    statuses = {s["step_id"]: s["status"] for s in outcome["steps"]}
    assert statuses == {
        "preflight": "done",
        "fence-dc-db": "done",
        "promote-drc-db": "done",
        "start-drc-app": "already_done",  # the lab keeps the DRC app running
        "switch-traffic": "done",
        "verify-frontdoor": "done",
    }


# The DC database crash (the July 2021 case) and the DC heat classified from the facility
# signals are rehearsed end to end by the drills (tests/e2e/test_drill.py), with a writer and a
# watcher, the declared category and the Pasal 7(1)(b) trigger checked there.


def test_dc_power_loss_needs_a_confirmation_before_promotion(prefect_server, guarded) -> None:
    lab, _, writer = guarded
    writer.stop()
    lab.break_("dc-power-loss")
    incident = f"inc-power-{uuid.uuid4().hex[:6]}"
    flow = load("failover").failover
    with pytest.raises(Exception, match="no confirmation"):
        flow(
            runbook=RUNBOOK,
            declared_by="Budi",
            mode="drill",
            approved_by="Budi",
            incident_id=incident,
        )
    assert lab.status()["components"]["drc-db"]["role"] == "standby"  # nothing promoted
    outcome = _run(incident_id=incident, confirm_dc_isolated_by="Sari")
    _assert_failed_over(lab, outcome, writer)
    assert outcome["fence_outcome"] == "unreachable"
    kinds = _kinds(outcome["ledger"])
    assert kinds.count("attempt.start") == 2
    assert "declaration.reused" in kinds and "approval.reused" in kinds
    gate = [
        r.data
        for _, r in read_records(outcome["ledger"])
        if not isinstance(r, str) and r.kind == "promotion.gate"
    ]
    assert gate[-1]["allowed"] and gate[-1]["isolation_confirmed_by"] == "Sari"


def test_a_declarer_cannot_approve_a_real_failover(prefect_server, fresh_lab: Lab) -> None:
    with pytest.raises(Exception, match="two-person rule"):
        _run(mode="real", approved_by="Budi", category="katastropik")
    st = fresh_lab.status()["components"]
    assert st["dc-db"]["writable"] and st["drc-db"]["role"] == "standby"
    assert fresh_lab.status()["active_site"] == "dc"


def test_an_approval_timeout_leaves_nothing_done(prefect_server, fresh_lab: Lab) -> None:
    incident = f"inc-timeout-{uuid.uuid4().hex[:6]}"
    with pytest.raises(Exception, match="approval timeout"):
        _run(approved_by=None, approval_timeout_s=3, incident_id=incident, category="katastropik")
    st = fresh_lab.status()["components"]
    assert st["dc-db"]["writable"] and st["drc-db"]["role"] == "standby"
    ledger = Path(os.environ["DRP_EVIDENCE_DIR"]) / incident / "failover"
    kinds = _kinds(str(ledger))
    assert "approval.requested" in kinds and "failover.stopped" in kinds
    assert "step.start" not in kinds


def test_pause_and_resume_through_the_prefect_api(prefect_server, guarded) -> None:
    fresh_lab, _, writer = guarded
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.flow_runs import resume_flow_run

    incident = f"inc-ui-{uuid.uuid4().hex[:6]}"
    box: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: box.update(
            out=_run(approved_by=None, incident_id=incident, category="katastropik")
        ),
        daemon=True,
    )
    thread.start()
    name = f"failover/{incident}/katastropik/drill"

    def paused_run():
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]))
            )
            return runs[0] if runs and runs[0].state and runs[0].state.is_paused() else None

    assert wait_until(lambda: paused_run() is not None, 60), "the flow never paused"
    resume_flow_run(
        paused_run().id,
        run_input={"approver": "Sari", "role": "direktur", "confirm": True, "comment": "go"},
    )
    thread.join(timeout=120)
    _assert_failed_over(fresh_lab, box["out"], writer)
    granted = [
        r.data
        for _, r in read_records(box["out"]["ledger"])
        if not isinstance(r, str) and r.kind == "approval.granted"
    ]
    assert granted[0]["approver"] == "Sari" and granted[0]["channel"] == "prefect-ui"


def test_a_run_killed_after_fencing_is_finished_by_a_rerun(prefect_server, guarded) -> None:
    from prefect.settings import PREFECT_API_URL

    lab, _, writer = guarded
    incident = f"inc-kill-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "DRP_CRASH_AFTER_STEP": "fence-dc-db",
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "drp.cli",
            "failover",
            "--runbook",
            RUNBOOK,
            "--declared-by",
            "Budi",
            "--approved-by",
            "Budi",
            "--category",
            "catastrophic",
            "--incident-id",
            incident,
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 70, proc.stderr[-2000:]
    st = lab.status()["components"]
    assert st["drc-db"]["role"] == "standby" and st["dc-db"]["up"] is False
    outcome = _run(incident_id=incident)
    _assert_failed_over(lab, outcome, writer)
    ends = [
        r.data
        for _, r in read_records(outcome["ledger"])
        if not isinstance(r, str) and r.kind == "step.end"
    ]
    fence = [e for e in ends if e["step_id"] == "fence-dc-db"]
    assert [f["status"] for f in fence] == ["done", "already_done"]  # not fenced twice
    assert [e["step_id"] for e in ends].count("promote-drc-db") == 1
    assert _kinds(outcome["ledger"]).count("attempt.start") == 2
    assert json.loads(json.dumps(outcome))["status"] == "verified"
