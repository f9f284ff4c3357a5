"""The failback's steps: a planned switchover from the DRC back to the DC with zero data loss.

Same shape as :mod:`drp.tasks.failover` and :mod:`drp.tasks.resync`: each step looks at the real
state first (and records "already done" when it says so), asks :mod:`drp.domain.failback` or
:mod:`drp.domain.resync` to decide, acts through the existing playbooks, proves the result and
records it in the incident's ledger (``<evidence>/<incident>/failback/``). The DRC's rejoin
reuses the resync's steps with the two sites' roles swapped, rather than a second copy of them.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from drp.adapters import ansible
from drp.adapters import postgres as pg
from drp.domain import failback as rules
from drp.domain import failover as failover_rules
from drp.domain.rto import RecoveryTimeClock
from drp.domain.runbook import Runbook
from drp.errors import FencingFailed, PostgresError, PreconditionFailed
from drp.lab.core import http_json
from drp.ledger import Ledger, read_records
from drp.notify import Notifier
from drp.polling import poll, wait_until
from drp.tasks import resync
from drp.tasks.failover import frontdoor_site
from drp.tasks.recorded import run_recorded_playbook
from drp.tasks.steps import (
    ALREADY_DONE,
    DONE,
    FAILED,
    Announcer,
    StepOutcome,
    record_step,
)
from drp.topology import Topology

DC_GROUP = "dc_db"
DRC_GROUP = "drc_db"
DRC_SLOT = "drc_db"
TARGET_SITE = "dc"


@dataclass(frozen=True)
class FailbackStep:
    """One step: what the ledger and the CLI show, its budget and its hard timeout."""

    id: str
    name: str
    budget_s: int
    timeout_s: int


APPROVE = FailbackStep("approve", "Approval (two people in real mode)", 1, 30)
FENCE = FailbackStep("fence_drc", "Stop writes at the DRC (fence, final checkpoint)", 10, 120)
CATCH_UP = FailbackStep("catch_up", "Prove the DC replayed the DRC's final LSN", 10, 120)
PROMOTE = FailbackStep("promote_dc", "Promote the DC and wait until writable", 10, 120)
REJOIN = FailbackStep("rejoin_drc", "Rejoin the DRC as a standby of the DC (slot drc_db)", 30, 900)
SWITCH = FailbackStep("switch", "Switch the front door back to the DC", 10, 60)
VERIFY = FailbackStep("verify", "Verify the service at the DC (write and read)", 10, 120)
STEPS: tuple[FailbackStep, ...] = (APPROVE, FENCE, CATCH_UP, PROMOTE, REJOIN, SWITCH, VERIFY)


@dataclass
class FailbackRun:
    """Everything one attempt of one incident's failback works with."""

    incident_id: str
    runbook: Runbook
    topology: Topology  # primary_dsn is the DC (via its uplink), standby_dsn the DRC
    ledger: Ledger
    clock: RecoveryTimeClock
    mode: failover_rules.Mode
    declared_by: str
    approved_by: str
    logger: logging.Logger | logging.LoggerAdapter
    attempt: int = 1
    final_lsn: str | None = None
    proof: rules.ZeroLossProof | None = None
    rejoin_method: str | None = None
    sync_names: str = ""  # the DC's synchronous_standby_names, held back until the DRC rejoins
    results: list[dict[str, Any]] = field(default_factory=list)
    notifiers: list[Notifier] = field(default_factory=list)


def observe_sites(topology: Topology) -> rules.SitesObservation:
    """Both databases as clients reach them; the DC through its uplink."""

    def in_recovery(dsn: str) -> bool | None:
        try:
            return pg.server_role(dsn).in_recovery
        except PostgresError:
            return None

    dc = in_recovery(topology.primary_dsn)
    streaming = None
    if dc:
        try:
            streaming = pg.receiver(topology.primary_dsn).streaming
        except PostgresError:
            streaming = None
    return rules.SitesObservation(
        drc_in_recovery=in_recovery(topology.standby_dsn), dc_in_recovery=dc, dc_streaming=streaming
    )


def run_step(run: FailbackRun, step: FailbackStep, body: Callable[[], StepOutcome]) -> StepOutcome:
    """Run and record one step (see :func:`drp.tasks.steps.record_step`)."""
    outcome, timing = record_step(
        run.ledger,
        step_id=step.id,
        name=step.name,
        budget_s=step.budget_s,
        attempt=run.attempt,
        body=body,
        results=run.results,
        logger=run.logger,
        announcer=Announcer(run.notifiers, "failback", run.incident_id),
    )
    run.clock.record(timing)
    return outcome


def _playbook(
    run: FailbackRun, step: FailbackStep, playbook: str, **extra_vars: Any
) -> ansible.PlaybookResult:
    """Run one playbook with the step's timeout, recorded in the ledger."""
    call = ansible.PlaybookCall(
        playbook=Path(run.runbook.playbook_dir) / playbook,
        inventories=run.topology.inventories,
        extra_vars={**extra_vars, "drp_incident_id": run.incident_id},
        timeout_s=step.timeout_s,
    )
    return run_recorded_playbook(run.ledger, call, step_id=step.id, attempt=run.attempt)


def _recorded_final_lsn(run: FailbackRun) -> str | None:
    """The DRC's final LSN as an earlier attempt recorded it (a re-run finds the DRC stopped and
    cannot read its checkpoint over SQL)."""
    found = None
    for _, rec in read_records(run.ledger.directory):
        if not isinstance(rec, str) and rec.kind == "failback.final_lsn":
            found = rec.data.get("final_lsn") or found
    return found


def _recorded_proof(run: FailbackRun) -> rules.ZeroLossProof | None:
    """The zero-loss proof an earlier attempt recorded (``failback.zero_loss``, proven)."""
    found = None
    for _, rec in read_records(run.ledger.directory):
        if not isinstance(rec, str) and rec.kind == "failback.zero_loss" and rec.data["proven"]:
            found = rules.prove_zero_loss(rec.data["final_lsn"], rec.data["replay_lsn"])
    return found


def _recorded_sync_names(run: FailbackRun) -> str:
    """What an earlier attempt held back (see :func:`relax_sync`)."""
    found = ""
    for _, rec in read_records(run.ledger.directory):
        if not isinstance(rec, str) and rec.kind == "failback.sync_relaxed":
            found = rec.data.get("synchronous_standby_names") or found
    return found


def _set_sync_names(dsn: str, value: str) -> None:
    # ALTER SYSTEM takes no bind parameters: a quoted literal (standard_conforming_strings).
    quoted = "'" + value.replace("'", "''") + "'"
    pg.query(dsn, f"ALTER SYSTEM SET synchronous_standby_names = {quoted}")
    pg.query(dsn, "SELECT pg_reload_conf()")


def relax_sync(run: FailbackRun) -> None:
    """Commits on the promoted DC would wait for a synchronous standby (drc_db) that cannot
    connect before the rejoin — even promote_standby.yml's write probe would hang. So the DC is
    promoted asynchronous and the setting is put back once the DRC streams (recorded both ways)."""
    dsn = run.topology.primary_dsn
    current = str(pg.query(dsn, "SHOW synchronous_standby_names")[0][0] or "")
    if not current.strip():
        return
    run.sync_names = current
    _set_sync_names(dsn, "")
    run.ledger.append(
        "failback.sync_relaxed",
        {"synchronous_standby_names": current, "until": "the DRC streams from the DC"},
    )


def restore_sync(run: FailbackRun) -> str | None:
    """Put the held-back synchronous_standby_names back on the DC (None: nothing to restore)."""
    names = run.sync_names or _recorded_sync_names(run)
    dsn = run.topology.primary_dsn
    if not names or str(pg.query(dsn, "SHOW synchronous_standby_names")[0][0]) == names:
        return None
    _set_sync_names(dsn, names)
    run.ledger.append("failback.sync_restored", {"synchronous_standby_names": names})
    return names


def _writable(dsn: str) -> bool:
    try:
        return pg.server_role(dsn).writable
    except PostgresError:
        return False


# -- the steps ---------------------------------------------------------------------------------
def approve(run: FailbackRun, approval: Mapping[str, Any], *, reused: bool) -> StepOutcome:
    """Record the gate's answer as the first step (the flow asked: in the UI or up front)."""
    who = f"{approval.get('approver')} via {approval.get('channel', 'cli')}"
    if reused:
        return StepOutcome(
            ALREADY_DONE, f"approved by {who} in an earlier attempt", {"approval": dict(approval)}
        )
    return StepOutcome(
        DONE,
        f"approved by {who} after {approval.get('waited_s', 0)} s: {approval.get('reason')}",
        {"approval": dict(approval)},
    )


def fence_drc(run: FailbackRun) -> StepOutcome:
    """Stop writes at the DRC with a clean fast shutdown: it ships its last WAL to the DC."""
    seen = observe_sites(run.topology)
    if rules.already_failed_back(seen):
        run.final_lsn = _recorded_final_lsn(run)
        return StepOutcome(
            ALREADY_DONE, "the DC is already the primary and the DRC a standby: nothing to fence"
        )
    result = _playbook(run, FENCE, "fence_primary.yml", primary_group=DRC_GROUP)
    result.raise_for_failure()
    if _writable(run.topology.standby_dsn):
        raise FencingFailed("the fence playbook succeeded but the DRC still accepts writes")
    reports = (result.stats_data or {}).get("fence") or {}
    final = next((str(r["final_lsn"]) for r in reports.values() if r.get("final_lsn")), None)
    if final:
        run.ledger.append("failback.final_lsn", {"final_lsn": final, "source": "fence"})
    run.final_lsn = final or _recorded_final_lsn(run)
    already = not result.changed
    if not run.final_lsn:
        raise PreconditionFailed(
            "the DRC is fenced but its final checkpoint LSN is unknown (it was stopped outside "
            "drp): read 'Latest checkpoint location' with pg_controldata before promoting the DC"
        )
    return StepOutcome(
        ALREADY_DONE if already else DONE,
        ("the DRC was already fenced" if already else "the DRC is fenced (fast shutdown)")
        + f"; its final checkpoint is at {run.final_lsn}",
        {"final_lsn": run.final_lsn},
    )


def catch_up(run: FailbackRun) -> StepOutcome:
    """Wait until the DC replayed at least the DRC's final LSN: zero data loss, by comparison."""
    if observe_sites(run.topology).dc_in_recovery is False:
        run.proof = _recorded_proof(run)  # the proof an earlier attempt made before promoting
        reason = run.proof.reason if run.proof else "no proof recorded by an earlier attempt"
        return StepOutcome(
            ALREADY_DONE, f"the DC is already the primary (caught up earlier: {reason})"
        )
    if not run.final_lsn:
        raise PreconditionFailed("no final LSN of the DRC: the fence step must run first")
    final_lsn = run.final_lsn
    started = time.monotonic()

    def observe() -> rules.ZeroLossProof:
        try:
            rows = pg.query(run.topology.primary_dsn, "SELECT pg_last_wal_replay_lsn()::text")
        except PostgresError:
            rows = []
        return rules.prove_zero_loss(final_lsn, rows[0][0] if rows else None)

    _, proof = poll(observe, lambda p: p.proven, CATCH_UP.timeout_s - 10)
    run.proof = proof
    data = {
        "final_lsn": proof.final_lsn,
        "replay_lsn": proof.replay_lsn,
        "missing_bytes": proof.missing_bytes,
        "waited_s": round(time.monotonic() - started, 3),
    }
    run.ledger.append("failback.zero_loss", {**data, "proven": proof.proven})
    if not proof.proven:
        return StepOutcome(FAILED, proof.reason + " — the DC is not promoted", data)
    return StepOutcome(DONE, proof.reason, data)


def promote_dc(run: FailbackRun) -> StepOutcome:
    dsn = run.topology.primary_dsn
    if not pg.server_role(dsn).in_recovery:
        if not _writable(dsn):
            raise PreconditionFailed("the DC is out of recovery but refuses writes")
        return StepOutcome(ALREADY_DONE, "the DC database is already primary and writable")
    if run.proof is None or not run.proof.proven:
        raise PreconditionFailed("zero data loss is not proven: the DC is not promoted")
    relax_sync(run)
    result = _playbook(run, PROMOTE, "promote_standby.yml", standby_group=DC_GROUP)
    result.raise_for_failure()
    if not wait_until(lambda: _writable(dsn), PROMOTE.timeout_s - 10):
        raise PreconditionFailed("the DC database was promoted but does not accept writes")
    # Promotion defers its checkpoint, so the control file (which the rejoin's observation and
    # pg_rewind read) still shows the old timeline; a checkpoint makes it current, and with it
    # the fork point decide_rejoin needs to see that the DRC may simply follow as a standby.
    pg.query(dsn, "CHECKPOINT")
    timeline = pg.server_role(dsn).timeline
    return StepOutcome(
        DONE,
        f"the DC database is primary on timeline {timeline} and accepts writes",
        {"timeline": timeline},
    )


def swapped_resync_run(run: FailbackRun) -> resync.ResyncRun:
    """The resync's run with the sites' roles swapped: the DRC is the old primary to rejoin,
    the DC (reached through its uplink) the new primary it streams from, with slot drc_db."""
    topology = replace(
        run.topology,
        primary_dsn=run.topology.standby_dsn,
        standby_dsn=run.topology.primary_dsn,
        primary_site=run.topology.standby_site,
        standby_site=run.topology.primary_site,
    )
    return resync.ResyncRun(
        incident_id=run.incident_id,
        runbook=run.runbook,
        topology=topology,
        ledger=run.ledger,
        logger=run.logger,
        old_group=DRC_GROUP,
        slot=DRC_SLOT,
        stale_slot=resync.DEFAULT_SLOT,  # dc_db, kept on the DRC while the DC streamed from it
        attempt=run.attempt,
    )


def rejoin_drc(run: FailbackRun) -> StepOutcome:
    """Observe, decide (``decide_rejoin``), rejoin, then prove lag 0 after a write at the DC."""
    swapped = swapped_resync_run(run)
    for body in (resync.observe, resync.decide):
        body(swapped)
    decision = swapped.decision
    run.rejoin_method = decision.method.value if decision and decision.method else None
    created = resync.ensure_slot(run.topology.primary_dsn, DRC_SLOT)
    run.ledger.append("failback.slot", {"slot": DRC_SLOT, "created": created, "on": "dc"})
    joined = resync.rejoin(swapped)
    caught = resync.verify(swapped)
    restored = restore_sync(run)
    run.rejoin_method = (
        swapped.decision.method.value
        if swapped.decision and swapped.decision.method
        else run.rejoin_method
    )
    data = {
        "method": run.rejoin_method,
        "decision_reason": swapped.decision.reason if swapped.decision else None,
        "slot_created": created,
        "synchronous_standby_names_restored": restored,
        **{f"verify_{k}": v for k, v in caught.data.items() if k != "sender"},
    }
    sync = f"; synchronous replication to {restored} restored" if restored else ""
    if joined.status == ALREADY_DONE:
        return StepOutcome(
            ALREADY_DONE, f"the DRC already streams from the DC (slot {DRC_SLOT}){sync}", data
        )
    return StepOutcome(
        DONE,
        f"the DRC rejoined by {run.rejoin_method} and streams from the DC (slot {DRC_SLOT}); "
        f"it replayed the DC's WAL up to {caught.data.get('target_lsn')} (lag 0){sync}",
        data,
    )


def switch(run: FailbackRun) -> StepOutcome:
    url = run.topology.frontdoor_url
    if frontdoor_site(url) == TARGET_SITE:
        return StepOutcome(
            ALREADY_DONE, f"the front door already routes users to the {TARGET_SITE}"
        )
    result = _playbook(run, SWITCH, "switch_traffic.yml", target_site=TARGET_SITE)
    result.raise_for_failure()
    serving = frontdoor_site(url)
    if serving != TARGET_SITE:
        raise PreconditionFailed(f"the front door serves {serving!r} after the switch, not dc")
    return StepOutcome(DONE, f"the front door routes users to the {TARGET_SITE}")


def verify(run: FailbackRun) -> StepOutcome:
    """verify_service.yml, then an own write and read through the front door that must land in
    the DC database (the failover's verify checks the DRC's, hence this small copy)."""
    result = _playbook(run, VERIFY, "verify_service.yml", expected_site=TARGET_SITE)
    result.raise_for_failure()
    nomor_aju = f"VERIFY-{run.incident_id}-failback-{run.attempt}-{uuid.uuid4().hex[:6]}"
    t0 = time.monotonic()
    status, row = http_json(
        f"{run.topology.frontdoor_url}/declarations",
        {
            "nomor_aju": nomor_aju,
            "doc_type": "VERIFY",
            "office": "drp",
            "payload": {"incident": run.incident_id, "flow": "failback"},
        },
    )
    write_ms = (time.monotonic() - t0) * 1000
    if status != 201 or not isinstance(row, dict) or row.get("site") != TARGET_SITE:
        raise PreconditionFailed(f"a write through the front door failed: HTTP {status} {row}")
    t1 = time.monotonic()
    status, rows = http_json(f"{run.topology.frontdoor_url}/declarations?nomor_aju={nomor_aju}")
    read_ms = (time.monotonic() - t1) * 1000
    if status != 200 or not rows:
        raise PreconditionFailed(f"the declaration just written cannot be read back: {status}")
    stored = pg.query(
        run.topology.primary_dsn,
        "SELECT site FROM declarations WHERE nomor_aju = %s",
        (nomor_aju,),
    )
    if stored != [(TARGET_SITE,)]:
        raise PreconditionFailed("the verification write is not in the DC database")
    return StepOutcome(
        DONE,
        "a declaration written and read through the front door landed in the DC database",
        {"nomor_aju": nomor_aju, "write_ms": round(write_ms, 1), "read_ms": round(read_ms, 1)},
    )
