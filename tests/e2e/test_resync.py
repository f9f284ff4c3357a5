"""The resync flow end to end: after a real failover on a fresh lab, the old DC primary is rebuilt
as a streaming standby of the DRC (real Ansible over SSH, real pg_rewind / pg_basebackup)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
import typer
from typer.testing import CliRunner, Result

from drp.adapters import ansible
from drp.commands import resync as resync_command
from drp.flows import load
from drp.lab.core import Lab
from drp.lab.procs import wait_until
from drp.ledger import read_records, verify_ledger

pytestmark = pytest.mark.e2e
RUNBOOK = str(Path(__file__).resolve().parents[2] / "runbooks" / "lab.yaml")


def _direct_dsn(lab: Lab, name: str) -> str:
    return lab.cluster(name).dsn("skp") + " connect_timeout=1"


def _failover(incident: str) -> None:
    outcome = load("failover").failover(
        runbook=RUNBOOK,
        declared_by="Budi",
        declarer_role="direktur",
        mode="drill",
        approved_by="Budi",
        category="katastropik",
        incident_id=incident,
    )
    assert outcome.status == "verified"


def _resync(**params: Any) -> Any:
    return load("resync").resync(runbook=RUNBOOK, **{"mode": "drill", **params})


def _cli(*args: str) -> Result:
    app = typer.Typer()
    app.callback()(lambda: None)
    resync_command.register(app)
    return CliRunner().invoke(app, ["resync", "--runbook", RUNBOOK, *args])


def _written_at_drc_is_read_at_dc(lab: Lab) -> None:
    key = f"R-{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_direct_dsn(lab, "drc-db"), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO declarations (nomor_aju, doc_type, office, site)"
            " VALUES (%s, 'PEB', 'resync-test', 'drc')",
            (key,),
        )

    def seen_at_dc() -> bool:
        try:
            with psycopg.connect(_direct_dsn(lab, "dc-db"), autocommit=True) as conn:
                return bool(
                    conn.execute(
                        "SELECT 1 FROM declarations WHERE nomor_aju = %s", (key,)
                    ).fetchone()
                )
        except psycopg.Error:
            return False

    assert wait_until(seen_at_dc, 10), "a row written at the DRC never reached the DC"


def _assert_dc_streams_from_drc(lab: Lab, outcome: Any) -> None:
    assert outcome.status == "streaming"
    comps = lab.status()["components"]
    assert comps["drc-db"]["role"] == "primary"
    assert comps["dc-db"]["role"] == "standby" and comps["dc-db"]["writable"] is False
    assert comps["dc-db"]["replication"]["streaming"] is True
    assert [s["application_name"] for s in comps["drc-db"]["standbys"]] == ["dc_db"]
    _written_at_drc_is_read_at_dc(lab)
    result = verify_ledger(outcome.ledger)
    assert result.ok, result.problems


def test_after_a_dc_crash_and_failover_the_dc_is_rewound_and_a_rerun_is_already_done(
    prefect_server, fresh_lab: Lab
) -> None:
    lab = fresh_lab
    incident = f"inc-resync-{uuid.uuid4().hex[:6]}"
    lab.break_("dc-db-crash")  # the July 2021 case: its WAL end is unknown, so it is rewound
    _failover(incident)
    outcome = _resync(incident_id=incident)
    assert outcome.method == "rewind", outcome
    assert "not shut down cleanly" in outcome.decision_reason
    rejoin = {s["step_id"]: s for s in outcome.steps}["rejoin"]
    assert "rejoined by rewind (pg_rewind:" in rejoin["reason"]
    _assert_dc_streams_from_drc(lab, outcome)
    assert {s["step_id"]: s["status"] for s in outcome.steps} == {
        "observe": "done",
        "decide": "done",
        "rejoin": "done",
        "verify": "done",
        "settings": "done",
    }
    assert (Path(outcome.ledger).parent / "resync-report.md").exists()

    # Through the command line: the same incident again is already completed (exit 0) ...
    again = _cli("--incident-id", incident, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["status"] == "already_completed"

    # ... and another incident's resync on the rejoined lab finds the rejoin already done,
    # with live progress read from its ledger.
    other = _cli("--incident-id", f"{incident}-again")
    assert other.exit_code == 0, other.output
    assert "▶ Rejoin the old primary as a standby of the DRC" in other.output
    assert "already streams from the DRC" in other.output
    assert "the DC streams from the DRC" in other.output
    assert lab.status()["components"]["dc-db"]["role"] == "standby"


def test_an_unusable_dc_data_directory_is_kept_aside_and_rebuilt_by_base_backup(
    prefect_server, fresh_lab: Lab
) -> None:
    lab = fresh_lab
    incident = f"inc-resync-{uuid.uuid4().hex[:6]}"
    _failover(incident)
    data = lab.cfg.pgdata("dc-db")
    # The DC's disk lost its control file: pg_rewind cannot work on that directory.
    (data / "global" / "pg_control").unlink()
    outcome = _resync(incident_id=incident)
    assert outcome.method == "basebackup"
    assert "unusable" in outcome.decision_reason
    _assert_dc_streams_from_drc(lab, outcome)
    aside = [p for p in data.parent.iterdir() if p.name.startswith("dc-db.before-resync-")]
    assert len(aside) == 1 and (aside[0] / "PG_VERSION").exists(), "the old data must be kept"
    rejoin = next(
        r
        for _, r in read_records(outcome.ledger)
        if not isinstance(r, str) and r.kind == "step.end" and r.data["step_id"] == "rejoin"
    )
    assert "kept at" in rejoin.data["reason"]


def test_resync_refuses_two_primaries_then_rewinds_once_the_dc_is_fenced(
    prefect_server, fresh_lab: Lab
) -> None:
    lab = fresh_lab
    # Someone promoted the DRC by hand and never fenced the DC: two writable primaries.
    with psycopg.connect(_direct_dsn(lab, "drc-db"), autocommit=True) as conn:
        conn.execute("SELECT pg_promote()")
    incident = f"inc-resync-{uuid.uuid4().hex[:6]}"
    with pytest.raises(Exception, match="fence it first"):
        _resync(incident_id=incident)
    assert lab.status()["components"]["dc-db"]["writable"] is True, "it must not be touched"
    ledger_dir = Path(os.environ["DRP_EVIDENCE_DIR"]) / incident / "resync"
    kinds = [r.kind for _, r in read_records(ledger_dir) if not isinstance(r, str)]
    assert "resync.stopped" in kinds

    # The operator fences it as told; its shutdown checkpoint lies past the DRC's fork, so the
    # same incident's resync now rewinds it.
    fenced = ansible.run_playbook(
        ansible.PlaybookCall(
            playbook=Path(RUNBOOK).parents[1] / "playbooks" / "fence_primary.yml",
            inventories=ansible.lab_inventories(lab.cfg.root),
        )
    )
    assert fenced.ok, fenced.failure_message()
    outcome = _resync(incident_id=incident)
    assert outcome.method == "rewind" and outcome.attempt == 2
    assert "at or past the fork" in outcome.decision_reason
    _assert_dc_streams_from_drc(lab, outcome)
