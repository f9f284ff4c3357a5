"""The failback flow end to end: failover, resync, then a planned switchover back to the DC with
zero data loss (real Ansible over SSH, real fence, promotion and rejoin) that is killed after the
promotion and finished by a re-run without repeating a step, and a further re-run that finds it
already completed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from drp.commands import failback as failback_command
from drp.flows import load
from drp.lab.core import Lab
from drp.ledger import read_records, verify_ledger

pytestmark = pytest.mark.e2e
RUNBOOK = str(Path(__file__).resolve().parents[2] / "runbooks" / "lab.yaml")


def _direct_dsn(lab: Lab, name: str) -> str:
    return lab.cluster(name).dsn("skp") + " connect_timeout=1"


def _failback(**params: Any) -> Any:
    return load("failback").failback(runbook=RUNBOOK, **{"mode": "drill", **params})


def test_failback_returns_service_to_the_dc_without_losing_a_drc_write(
    prefect_server, fresh_lab: Lab
) -> None:
    lab = fresh_lab
    incident = f"inc-failback-{uuid.uuid4().hex[:6]}"
    failover = load("failover").failover(
        runbook=RUNBOOK,
        declared_by="Budi",
        declarer_role="direktur",
        mode="drill",
        approved_by="Budi",
        category="katastropik",
        incident_id=incident,
    )
    assert failover.status == "verified"
    resynced = load("resync").resync(runbook=RUNBOOK, incident_id=incident, mode="drill")
    assert resynced.status == "streaming"

    # Written at the DRC just before the failback: it must survive the switch back.
    key = f"FB-{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_direct_dsn(lab, "drc-db"), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO declarations (nomor_aju, doc_type, office, site)"
            " VALUES (%s, 'PEB', 'failback-test', 'drc')",
            (key,),
        )

    # The failback is killed right after the DC was promoted (exit 70, as a lost worker)...
    from prefect.settings import PREFECT_API_URL

    env = {
        **os.environ,
        "DRP_CRASH_AFTER_STEP": "promote_dc",
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
    }
    cli = [sys.executable, "-m", "drp.cli", "failback", "--runbook", RUNBOOK]
    args = ["--incident-id", incident, "--approved-by", "Sari", "--declared-by", "Budi"]
    proc = subprocess.run(
        [*cli, *args, "--json"], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 70, proc.stderr[-2000:]
    comps = lab.status()["components"]
    assert comps["dc-db"]["role"] == "primary" and comps["drc-db"]["up"] is False

    # ... and the re-run finishes it without doing any step twice.
    outcome = _failback(incident_id=incident, approved_by="Sari", declared_by="Budi")
    assert outcome.status == "verified", outcome
    assert outcome.achieved_rto_s > 0
    assert "zero data loss" in outcome.zero_loss
    assert outcome.rejoin_method == "standby", "a clean fence needs no rewind"
    ends = [
        r.data
        for _, r in read_records(outcome.ledger)
        if not isinstance(r, str) and r.kind == "step.end"
    ]
    done = [e["step_id"] for e in ends if e["status"] == "done"]
    steps = ["approve", "fence_drc", "catch_up", "promote_dc", "rejoin_drc", "switch", "verify"]
    assert sorted(done) == sorted(steps), ends  # every step done exactly once in all
    first = [e["step_id"] for e in ends[: len(ends) - len(outcome.steps)]]
    assert first == steps[:4], first  # the killed attempt got as far as the promotion
    assert all(s["status"] == "already_done" for s in outcome.steps[:4]), outcome.steps

    comps = lab.status()["components"]
    assert comps["dc-db"]["role"] == "primary" and comps["dc-db"]["writable"] is True
    assert comps["drc-db"]["role"] == "standby"
    assert comps["drc-db"]["replication"]["streaming"] is True
    assert [s["application_name"] for s in comps["dc-db"]["standbys"]] == ["drc_db"]
    assert lab.status()["active_site"] == "dc"
    with psycopg.connect(_direct_dsn(lab, "dc-db"), autocommit=True) as conn:
        assert conn.execute(
            "SELECT site FROM declarations WHERE nomor_aju = %s", (key,)
        ).fetchall() == [("drc",)]
        assert conn.execute(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = 'drc_db' AND active"
        ).fetchone()
    with psycopg.connect(_direct_dsn(lab, "drc-db"), autocommit=True) as conn:
        # The slot the DC streamed from while the DRC was primary is gone: on a standby it
        # would hold WAL back for ever.
        assert conn.execute("SELECT slot_name FROM pg_replication_slots").fetchall() == []
    result = verify_ledger(outcome.ledger)
    assert result.ok, result.problems
    assert (Path(outcome.ledger).parent / "failback-report.md").exists()

    # The same incident again, through the command line: already completed, nothing acted on.
    app = typer.Typer()
    app.callback()(lambda: None)
    failback_command.register(app)
    again = CliRunner().invoke(app, ["failback", "--runbook", RUNBOOK, *args, "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["status"] == "already_completed"
    assert verify_ledger(outcome.ledger).ok
    assert lab.status()["components"]["dc-db"]["role"] == "primary"
