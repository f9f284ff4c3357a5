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
from roster_codes import approval_input, roster_code

from drp.domain.approval import SlackProof, make_slack_proof, slack_proof_key
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


def _run(**params: Any) -> Any:
    flow = load("failover").failover
    base = {
        "runbook": RUNBOOK,
        "declared_by": "Budi",
        "declarer_role": "direktur",
        "mode": "drill",
        "approved_by": "Budi",
    }
    return flow(**{**base, **params})


def _assert_failed_over(lab: Lab, outcome: Any, writer: Writer | None = None) -> None:
    assert outcome.status == "verified"
    st = lab.status()["components"]
    assert st["drc-db"]["role"] == "primary" and st["drc-db"]["writable"]
    assert st["dc-db"]["up"] is False or st["dc-db"]["writable"] is False
    assert lab.status()["active_site"] == "drc"
    result = verify_ledger(outcome.ledger)
    assert result.ok, result.problems
    assert outcome.achieved_rto_s > 0
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
    assert outcome.fence_outcome == "fenced"
    assert (lab.cfg.pgdata("dc-db") / "standby.signal").exists()
    assert outcome.rpo["replay_lsn"]
    statuses = {s["step_id"]: s["status"] for s in outcome.steps}
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
    assert outcome.fence_outcome == "unreachable"
    kinds = _kinds(outcome.ledger)
    assert kinds.count("attempt.start") == 2
    assert "declaration.reused" in kinds and "approval.reused" in kinds
    gate = [
        r.data
        for _, r in read_records(outcome.ledger)
        if not isinstance(r, str) and r.kind == "promotion.gate"
    ]
    assert gate[-1]["allowed"] and gate[-1]["isolation_confirmed_by"] == "Sari"


def test_a_real_failover_needs_a_proven_second_person_on_the_command_line(
    prefect_server, fresh_lab: Lab
) -> None:
    with pytest.raises(Exception, match=r"no one-time code given for Sari \(give --approval-code"):
        _run(mode="real", approved_by="Sari", category="katastropik")
    with pytest.raises(Exception, match="two-person rule"):  # proven, but the declarer
        _run(
            mode="real",
            approved_by="Budi",
            approval_code=roster_code("Budi"),
            category="katastropik",
        )
    st = fresh_lab.status()["components"]
    assert st["dc-db"]["writable"] and st["drc-db"]["role"] == "standby"
    assert fresh_lab.status()["active_site"] == "dc"
    evidence = Path(os.environ["DRP_EVIDENCE_DIR"])
    refused = [
        r.data
        for ledger in evidence.glob("*/failover")
        for _, r in read_records(ledger)
        if not isinstance(r, str) and r.kind == "approval.refused"
    ]
    assert sorted((r["approver"], r["channel"], r["identity"], r["proof_ok"]) for r in refused) == [
        ("Budi", "cli", "totp", True),
        ("Sari", "cli", "totp", False),
    ]


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


def _records(ledger: Path, kind: str) -> list[dict[str, Any]]:
    if not (ledger / "ledger.jsonl").exists():
        return []
    return [r.data for _, r in read_records(ledger) if not isinstance(r, str) and r.kind == kind]


def _paused_at_gate(ledger: Path, asked: str, refused: str, refusals: int) -> str:
    """The flow run id once it pauses at its gate for the (refusals + 1)-th answer."""
    from prefect.client.orchestration import get_client

    def ready() -> str | None:
        requested = _records(ledger, asked)
        if not requested or len(_records(ledger, refused)) != refusals:
            return None
        run_id = requested[-1]["flow_run_id"]
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(run_id).state
        return run_id if state and state.is_paused() else None

    assert wait_until(lambda: ready() is not None, 90), f"{ledger}: never paused at the gate"
    return str(ready())


def _in_thread(box: dict[str, Any], key: str, **params: Any) -> threading.Thread:
    def target() -> None:
        try:
            box[key] = _run(**params)
        except Exception as exc:  # the test checks why
            box[key] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_a_ui_approval_must_prove_who_gives_it_and_a_code_counts_once(
    prefect_server, guarded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through Prefect's API, as the UI's form sends it: the form itself refuses a missing
    code, a name outside the roster and a channel claim; drp refuses an empty code, a wrong one
    and a replayed one (each recorded, nothing done), and grants a second person's valid code."""
    from prefect.flow_runs import resume_flow_run

    lab, _, writer = guarded
    monkeypatch.setenv("DRP_SLACK_SIGNING_SECRET", "e2e-signing-secret")  # Slack proofs checked
    evidence = Path(os.environ["DRP_EVIDENCE_DIR"])
    first, second = f"inc-ui-{uuid.uuid4().hex[:6]}", f"inc-ui2-{uuid.uuid4().hex[:6]}"
    box: dict[str, Any] = {}
    threads = [
        _in_thread(box, first, approved_by=None, incident_id=first, category="katastropik"),
        _in_thread(box, second, approved_by=None, incident_id=second, category="katastropik"),
    ]
    ledger, other = evidence / first / "failover", evidence / second / "failover"
    run_id = _paused_at_gate(ledger, "approval.requested", "approval.refused", 0)
    requested = _records(ledger, "approval.requested")[0]
    assert requested["approvers"] == ["Budi", "Sari"] and requested["category"] == "katastropik"

    # The form: the code is required, the approver is a roster choice, there is no channel.
    for bad, words in (
        ({"approver": "Sari", "decision": "approve"}, "'code' is a required property"),
        ({"approver": "Mallory", "code": "123456", "decision": "approve"}, "Mallory"),
        ({"approver": "Sari", "code": "", "decision": "approve", "channel": "slack"}, "channel"),
        ({"approver": "Sari", "code": "123456"}, "'decision' is a required property"),
    ):
        with pytest.raises(RuntimeError, match=words):
            resume_flow_run(run_id, run_input=bad)

    # (a) a roster name and no code: refused, recorded, nothing done after the gate.
    resume_flow_run(run_id, run_input={"approver": "Sari", "code": "", "decision": "approve"})
    run_id = _paused_at_gate(ledger, "approval.requested", "approval.refused", 1)
    (no_code,) = _records(ledger, "approval.refused")
    assert "no one-time code given for Sari" in no_code["reason"]
    assert (no_code["channel"], no_code["identity"], no_code["proof_ok"]) == (
        "prefect-ui",
        "totp",
        False,
    )
    assert not _records(ledger, "step.start")
    st = lab.status()
    assert st["components"]["dc-db"]["writable"] and st["active_site"] == "dc"

    # (b) a wrong code: refused.
    right = roster_code("Sari")
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    resume_flow_run(run_id, run_input={"approver": "Sari", "code": wrong, "decision": "approve"})
    run_id = _paused_at_gate(ledger, "approval.requested", "approval.refused", 2)
    assert "wrong one-time code for Sari" in _records(ledger, "approval.refused")[-1]["reason"]

    # (c) a second person's valid code: granted, proven by TOTP, channel from the form.
    other_run = _paused_at_gate(other, "approval.requested", "approval.refused", 0)
    resume_flow_run(run_id, run_input={"approver": "Sari", "code": right, "decision": "approve"})
    assert wait_until(lambda: _records(ledger, "approval.granted"), 60)

    # (d) the same code on another incident: refused as a replay; a proven rejection stops it.
    resume_flow_run(other_run, run_input={"approver": "Sari", "code": right, "decision": "approve"})
    other_run = _paused_at_gate(other, "approval.requested", "approval.refused", 1)
    assert "replayed one-time code" in _records(other, "approval.refused")[0]["reason"]
    # A form user cannot pass for Slack: a proof not MAC'd by the ChatOps endpoint is refused.
    forged = make_slack_proof(
        slack_proof_key("not-the-signing-secret"),
        SlackProof(other_run, "Sari", "U0SARI001", "approve", int(time.time()), "n-forged"),
    )
    resume_flow_run(
        other_run, run_input={"approver": "Sari", "code": forged, "decision": "approve"}
    )
    other_run = _paused_at_gate(other, "approval.requested", "approval.refused", 2)
    spoofed = _records(other, "approval.refused")[1]
    assert "forged Slack proof" in spoofed["reason"] and spoofed["channel"] == "slack"
    resume_flow_run(other_run, run_input=approval_input("Budi", "reject", comment="not now"))
    for t in threads:
        t.join(timeout=180)
    assert isinstance(box[second], Exception) and "rejected by Budi (direktur)" in str(box[second])
    assert not _records(other, "step.start")

    _assert_failed_over(lab, box[first], writer)
    (granted,) = _records(ledger, "approval.granted")
    assert granted["approver"] == "Sari" and granted["role"] == "pejabat_ditunjuk"
    assert (granted["channel"], granted["identity"], granted["attempt"]) == (
        "prefect-ui",
        "totp",
        3,
    )
    assert isinstance(granted["totp_step"], int) and "second person" in granted["reason"]
    for record in [
        granted,
        *_records(ledger, "approval.refused"),
        *_records(other, "approval.refused"),
    ]:
        assert (
            "code" not in record and right not in record.values() and wrong not in record.values()
        )


def test_an_unreachable_dc_is_confirmed_in_the_ui_by_a_proven_roster_person(
    prefect_server, guarded
) -> None:
    from prefect.flow_runs import resume_flow_run

    lab, _, writer = guarded
    writer.stop()
    lab.break_("dc-power-loss")
    incident = f"inc-iso-{uuid.uuid4().hex[:6]}"
    ledger = Path(os.environ["DRP_EVIDENCE_DIR"]) / incident / "failover"
    box: dict[str, Any] = {}
    thread = _in_thread(box, "out", approved_by=None, incident_id=incident)
    run_id = _paused_at_gate(ledger, "approval.requested", "approval.refused", 0)
    resume_flow_run(run_id, run_input=approval_input("Sari"))
    run_id = _paused_at_gate(ledger, "confirmation.requested", "isolation.refused", 0)
    assert _records(ledger, "confirmation.requested")[0]["people"] == ["Budi", "Sari", "Andi"]
    resume_flow_run(  # an operator may confirm, but must say how
        run_id,
        run_input={
            "confirmed_by": "Andi",
            "code": roster_code("Andi"),
            "dc_is": "down",
            "how_checked": "",
        },
    )
    run_id = _paused_at_gate(ledger, "confirmation.requested", "isolation.refused", 1)
    assert "how the DC was checked" in _records(ledger, "isolation.refused")[0]["reason"]
    assert lab.status()["components"]["drc-db"]["role"] == "standby"  # nothing promoted yet
    resume_flow_run(
        run_id,
        run_input={
            "confirmed_by": "Budi",
            "code": roster_code("Budi"),
            "dc_is": "down",
            "how_checked": "called the DC: the power panel shows no mains and no UPS",
        },
    )
    thread.join(timeout=180)
    _assert_failed_over(lab, box["out"], None)
    (confirmed,) = _records(ledger, "isolation.confirmed")
    assert (confirmed["by"], confirmed["role"], confirmed["identity"]) == (
        "Budi",
        "direktur",
        "totp",
    )
    assert confirmed["channel"] == "prefect-ui" and confirmed["attempt"] == 2
    gate = _records(ledger, "promotion.gate")
    assert gate[-1]["allowed"] and gate[-1]["isolation_confirmed_by"] == "Budi"


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
        for _, r in read_records(outcome.ledger)
        if not isinstance(r, str) and r.kind == "step.end"
    ]
    fence = [e for e in ends if e["step_id"] == "fence-dc-db"]
    assert [f["status"] for f in fence] == ["done", "already_done"]  # not fenced twice
    assert [e["step_id"] for e in ends].count("promote-drc-db") == 1
    assert _kinds(outcome.ledger).count("attempt.start") == 2
    assert json.loads(json.dumps(outcome.as_dict()))["status"] == "verified"
