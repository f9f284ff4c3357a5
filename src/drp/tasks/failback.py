"""The failback's steps: a planned switchover from the DRC back to the DC with zero data loss.

Same shape as :mod:`drp.tasks.failover` and :mod:`drp.tasks.resync`: each step looks at the real
state first (and records "already done" when it says so), asks :mod:`drp.domain.failback` or
:mod:`drp.domain.resync` to decide, acts through the existing playbooks, proves the result and
records it in the incident's ledger (``<evidence>/<incident>/failback/``). The DRC's rejoin
reuses the resync's steps with the two sites' roles swapped, rather than a second copy of them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drp.adapters import ansible
from drp.adapters import postgres as pg
from drp.adapters.http import http_json
from drp.domain import failback as rules
from drp.domain.rto import RecoveryTimeClock
from drp.domain.runbook import Runbook
from drp.errors import FencingFailed, PostgresError, PreconditionFailed
from drp.ledger import read_records
from drp.polling import poll, wait_until
from drp.tasks import resync
from drp.tasks.kernel import IncidentRun
from drp.tasks.observe import frontdoor_site
from drp.tasks.recorded import run_recorded_playbook
from drp.tasks.steps import (
    ALREADY_DONE,
    DONE,
    FAILED,
    StepOutcome,
)
from drp.topology import Topology

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
REJOIN = FailbackStep("rejoin_drc", "Rejoin the DRC as a standby of the DC", 30, 900)
SWITCH = FailbackStep("switch", "Switch the front door back to the DC", 10, 60)
VERIFY = FailbackStep("verify", "Verify the service at the DC (write and read)", 10, 120)
PAIR_STEPS: tuple[FailbackStep, ...] = (FENCE, CATCH_UP, PROMOTE, REJOIN)
"""Per database pair the incident moved, in this order; then the routes are switched back
(:data:`SWITCH`) and the services verified (:data:`VERIFY`)."""


@dataclass
class FailbackPair:
    """One database pair to bring back: the DC (the old primary, a standby of the DRC since
    the resync) and the DRC (today's primary), what was proven and done."""

    pair_id: str
    dc_dsn: str  # reached the way its clients reach it (through the DC's network)
    drc_dsn: str
    dc_group: str
    drc_group: str
    standby_slot: str = "drc_db"  # on the DC again: the slot the DRC streams from
    rejoin_slot: str = "dc_db"  # on the DRC: the slot the DC streamed from
    step_suffix: str = ""  # "@<pair>" when an incident brings back several pairs
    final_lsn: str | None = None
    proof: rules.ZeroLossProof | None = None
    rejoin_method: str | None = None
    sync_names: str = ""  # the DC's synchronous_standby_names, held back until the DRC rejoins

    def step_id(self, step: FailbackStep) -> str:
        return f"{step.id}{self.step_suffix}"


@dataclass
class FailbackState:
    """The failback's own state beside the incident run: its clock (from the approval), who
    approved, the pairs and the services it brings back."""

    clock: RecoveryTimeClock
    approval: Mapping[str, Any]
    pairs: list[FailbackPair]
    services: tuple[str, ...]

    @property
    def approved_by(self) -> str:
        return str(self.approval.get("approver", ""))


def pairs_for(runbook: Runbook, topology: Topology, pair_ids: Sequence[str]) -> list[FailbackPair]:
    several = len(pair_ids) > 1
    out = []
    for pair_id in pair_ids:
        db = runbook.database(pair_id)
        dsns = topology.pair(pair_id)
        out.append(
            FailbackPair(
                pair_id=pair_id,
                dc_dsn=dsns.primary_dsn,
                drc_dsn=dsns.standby_dsn,
                dc_group=db.primary_group if db else "dc_db",
                drc_group=db.standby_group if db else "drc_db",
                standby_slot=dsns.standby_slot,
                rejoin_slot=dsns.rejoin_slot,
                step_suffix=f"@{pair_id}" if several else "",
            )
        )
    return out


def observe_sites(dc_dsn: str, drc_dsn: str) -> rules.SitesObservation:
    """Both databases of a pair as clients reach them; the DC through its network."""

    def in_recovery(dsn: str) -> bool | None:
        try:
            return pg.server_role(dsn).in_recovery
        except PostgresError:
            return None

    dc = in_recovery(dc_dsn)
    streaming = None
    if dc:
        try:
            streaming = pg.receiver(dc_dsn).streaming
        except PostgresError:
            streaming = None
    return rules.SitesObservation(
        drc_in_recovery=in_recovery(drc_dsn), dc_in_recovery=dc, dc_streaming=streaming
    )


def _playbook(
    run: IncidentRun, step_id: str, timeout_s: int, playbook: str, **extra_vars: Any
) -> ansible.PlaybookResult:
    """Run one playbook with the step's timeout, recorded in the ledger."""
    call = ansible.PlaybookCall(
        playbook=Path(run.runbook.playbook_dir) / playbook,
        inventories=run.topology.inventories,
        extra_vars={**extra_vars, "drp_incident_id": run.incident_id},
        timeout_s=timeout_s,
    )
    return run_recorded_playbook(run.ledger, call, step_id=step_id, attempt=run.attempt)


def _recorded(run: IncidentRun, kind: str, pair_id: str) -> list[Mapping[str, Any]]:
    """The records of ``kind`` an earlier attempt wrote for ``pair_id`` (records from before
    pairs were named count for the runbook's first pair)."""
    first = run.runbook.databases[0].id if run.runbook.databases else None
    found = []
    for _, rec in read_records(run.ledger.directory):
        if isinstance(rec, str) or rec.kind != kind:
            continue
        if rec.data.get("pair", first) == pair_id:
            found.append(rec.data)
    return found


def _recorded_final_lsn(run: IncidentRun, fp: FailbackPair) -> str | None:
    """The DRC's final LSN as an earlier attempt recorded it (a re-run finds the DRC stopped and
    cannot read its checkpoint over SQL)."""
    found = None
    for data in _recorded(run, "failback.final_lsn", fp.pair_id):
        found = data.get("final_lsn") or found
    return found


def _recorded_proof(run: IncidentRun, fp: FailbackPair) -> rules.ZeroLossProof | None:
    """The zero-loss proof an earlier attempt recorded (``failback.zero_loss``, proven)."""
    found = None
    for data in _recorded(run, "failback.zero_loss", fp.pair_id):
        if data["proven"]:
            found = rules.prove_zero_loss(data["final_lsn"], data["replay_lsn"])
    return found


def _recorded_sync_names(run: IncidentRun, fp: FailbackPair) -> str:
    """What an earlier attempt held back (see :func:`relax_sync`)."""
    found = ""
    for data in _recorded(run, "failback.sync_relaxed", fp.pair_id):
        found = data.get("synchronous_standby_names") or found
    return found


def _set_sync_names(dsn: str, value: str) -> None:
    # ALTER SYSTEM takes no bind parameters: a quoted literal (standard_conforming_strings).
    quoted = "'" + value.replace("'", "''") + "'"
    pg.query(dsn, f"ALTER SYSTEM SET synchronous_standby_names = {quoted}")
    pg.query(dsn, "SELECT pg_reload_conf()")


def relax_sync(run: IncidentRun, fp: FailbackPair) -> None:
    """Commits on the promoted DC would wait for a synchronous standby (the DRC) that cannot
    connect before the rejoin — even promote_standby.yml's write probe would hang. So the DC is
    promoted asynchronous and the setting is put back once the DRC streams (recorded both ways)."""
    current = str(pg.query(fp.dc_dsn, "SHOW synchronous_standby_names")[0][0] or "")
    if not current.strip():
        return
    fp.sync_names = current
    _set_sync_names(fp.dc_dsn, "")
    run.ledger.append(
        "failback.sync_relaxed",
        {
            "pair": fp.pair_id,
            "synchronous_standby_names": current,
            "until": "the DRC streams from the DC",
        },
    )


def restore_sync(run: IncidentRun, fp: FailbackPair) -> str | None:
    """Put the held-back synchronous_standby_names back on the DC (None: nothing to restore)."""
    names = fp.sync_names or _recorded_sync_names(run, fp)
    if not names or str(pg.query(fp.dc_dsn, "SHOW synchronous_standby_names")[0][0]) == names:
        return None
    _set_sync_names(fp.dc_dsn, names)
    run.ledger.append(
        "failback.sync_restored", {"pair": fp.pair_id, "synchronous_standby_names": names}
    )
    return names


def _writable(dsn: str) -> bool:
    try:
        return pg.server_role(dsn).writable
    except PostgresError:
        return False


# -- the steps ---------------------------------------------------------------------------------
def approve(approval: Mapping[str, Any], *, reused: bool) -> StepOutcome:
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


def fence_drc(run: IncidentRun, fp: FailbackPair) -> StepOutcome:
    """Stop writes at the DRC with a clean fast shutdown: it ships its last WAL to the DC."""
    seen = observe_sites(fp.dc_dsn, fp.drc_dsn)
    if rules.already_failed_back(seen):
        fp.final_lsn = _recorded_final_lsn(run, fp)
        return StepOutcome(
            ALREADY_DONE,
            f"{fp.pair_id}: the DC is already the primary and the DRC a standby: nothing to fence",
        )
    result = _playbook(
        run, fp.step_id(FENCE), FENCE.timeout_s, "fence_primary.yml", primary_group=fp.drc_group
    )
    result.raise_for_failure()
    if _writable(fp.drc_dsn):
        raise FencingFailed(
            f"{fp.pair_id}: the fence playbook succeeded but the DRC still accepts writes"
        )
    reports = (result.stats_data or {}).get("fence") or {}
    final = next((str(r["final_lsn"]) for r in reports.values() if r.get("final_lsn")), None)
    if final:
        run.ledger.append(
            "failback.final_lsn", {"pair": fp.pair_id, "final_lsn": final, "source": "fence"}
        )
    fp.final_lsn = final or _recorded_final_lsn(run, fp)
    already = not result.changed
    if not fp.final_lsn:
        raise PreconditionFailed(
            f"{fp.pair_id}: the DRC is fenced but its final checkpoint LSN is unknown (it was "
            "stopped outside drp): read 'Latest checkpoint location' with pg_controldata "
            "before promoting the DC"
        )
    return StepOutcome(
        ALREADY_DONE if already else DONE,
        ("the DRC was already fenced" if already else "the DRC is fenced (fast shutdown)")
        + f"; its final checkpoint is at {fp.final_lsn}",
        {"pair": fp.pair_id, "final_lsn": fp.final_lsn},
    )


def catch_up(run: IncidentRun, fp: FailbackPair) -> StepOutcome:
    """Wait until the DC replayed at least the DRC's final LSN: zero data loss, by comparison."""
    if observe_sites(fp.dc_dsn, fp.drc_dsn).dc_in_recovery is False:
        fp.proof = _recorded_proof(run, fp)  # the proof an earlier attempt made before promoting
        reason = fp.proof.reason if fp.proof else "no proof recorded by an earlier attempt"
        return StepOutcome(
            ALREADY_DONE, f"the DC is already the primary (caught up earlier: {reason})"
        )
    if not fp.final_lsn:
        raise PreconditionFailed("no final LSN of the DRC: the fence step must run first")
    final_lsn = fp.final_lsn
    started = time.monotonic()

    def observe() -> rules.ZeroLossProof:
        try:
            rows = pg.query(fp.dc_dsn, "SELECT pg_last_wal_replay_lsn()::text")
        except PostgresError:
            rows = []
        return rules.prove_zero_loss(final_lsn, rows[0][0] if rows else None)

    _, proof = poll(observe, lambda p: p.proven, CATCH_UP.timeout_s - 10)
    fp.proof = proof
    data = {
        "pair": fp.pair_id,
        "final_lsn": proof.final_lsn,
        "replay_lsn": proof.replay_lsn,
        "missing_bytes": proof.missing_bytes,
        "waited_s": round(time.monotonic() - started, 3),
    }
    run.ledger.append("failback.zero_loss", {**data, "proven": proof.proven})
    if not proof.proven:
        return StepOutcome(FAILED, proof.reason + " — the DC is not promoted", data)
    return StepOutcome(DONE, proof.reason, data)


def promote_dc(run: IncidentRun, fp: FailbackPair) -> StepOutcome:
    dsn = fp.dc_dsn
    if not pg.server_role(dsn).in_recovery:
        if not _writable(dsn):
            raise PreconditionFailed(f"{fp.pair_id}: the DC is out of recovery but refuses writes")
        return StepOutcome(ALREADY_DONE, "the DC database is already primary and writable")
    if fp.proof is None or not fp.proof.proven:
        raise PreconditionFailed("zero data loss is not proven: the DC is not promoted")
    relax_sync(run, fp)
    result = _playbook(
        run,
        fp.step_id(PROMOTE),
        PROMOTE.timeout_s,
        "promote_standby.yml",
        standby_group=fp.dc_group,
    )
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
        f"the DC database of {fp.pair_id} is primary on timeline {timeline} and accepts writes",
        {"pair": fp.pair_id, "timeline": timeline},
    )


def swapped(fp: FailbackPair) -> resync.ResyncPair:
    """The resync's pair with the sites' roles swapped: the DRC is the old primary to rejoin,
    the DC the new primary it streams from, on the DRC's own slot."""
    return resync.ResyncPair(
        pair_id=fp.pair_id,
        old_dsn=fp.drc_dsn,
        new_dsn=fp.dc_dsn,
        old_group=fp.drc_group,
        slot=fp.standby_slot,
        stale_slot=fp.rejoin_slot,  # kept on the DRC while the DC streamed from it
        step_suffix=fp.step_suffix,
    )


def rejoin_drc(run: IncidentRun, fp: FailbackPair) -> StepOutcome:
    """Observe, decide (``decide_rejoin``), rejoin, then prove lag 0 after a write at the DC."""
    rp = swapped(fp)
    for body in (resync.observe, resync.decide):
        body(run, rp)
    decision = rp.decision
    fp.rejoin_method = decision.method.value if decision and decision.method else None
    created = resync.ensure_slot(fp.dc_dsn, fp.standby_slot)
    run.ledger.append(
        "failback.slot",
        {"pair": fp.pair_id, "slot": fp.standby_slot, "created": created, "on": "dc"},
    )
    joined = resync.rejoin(run, rp)
    caught = resync.verify(run, rp)
    restored = restore_sync(run, fp)
    fp.rejoin_method = (
        rp.decision.method.value if rp.decision and rp.decision.method else fp.rejoin_method
    )
    data = {
        "pair": fp.pair_id,
        "method": fp.rejoin_method,
        "decision_reason": rp.decision.reason if rp.decision else None,
        "slot_created": created,
        "synchronous_standby_names_restored": restored,
        **{f"verify_{k}": v for k, v in caught.data.items() if k not in ("sender", "pair")},
    }
    sync = f"; synchronous replication to {restored} restored" if restored else ""
    if joined.status == ALREADY_DONE:
        return StepOutcome(
            ALREADY_DONE,
            f"the DRC already streams from the DC (slot {fp.standby_slot}){sync}",
            data,
        )
    return StepOutcome(
        DONE,
        f"the DRC rejoined by {fp.rejoin_method} and streams from the DC (slot "
        f"{fp.standby_slot}); it replayed the DC's WAL up to {caught.data.get('target_lsn')} "
        f"(lag 0){sync}",
        data,
    )


def switch(run: IncidentRun, route: str | None, step_id: str) -> StepOutcome:
    """Send users of ``route`` (the front door's only route by default) back to the DC."""
    url = run.topology.frontdoor_url
    what = f"the front door's route {route}" if route else "the front door"
    if frontdoor_site(url, route) == TARGET_SITE:
        return StepOutcome(ALREADY_DONE, f"{what} already routes users to the {TARGET_SITE}")
    extra = {"route": route} if route else {}
    result = _playbook(
        run, step_id, SWITCH.timeout_s, "switch_traffic.yml", target_site=TARGET_SITE, **extra
    )
    result.raise_for_failure()
    serving = frontdoor_site(url, route)
    if serving != TARGET_SITE:
        raise PreconditionFailed(f"{what} serves {serving!r} after the switch, not dc")
    return StepOutcome(DONE, f"{what} routes users to the {TARGET_SITE}")


def verify(run: IncidentRun, service_id: str, dc_dsn: str, step_id: str) -> StepOutcome:
    """verify_service.yml, then an own write and read through the front door (the service's
    route) that must land in the DC database of the service's pair."""
    ep = run.topology.service(service_id)
    extra = {"service": service_id} if ep.route else {}
    result = _playbook(
        run,
        step_id,
        VERIFY.timeout_s,
        "verify_service.yml",
        expected_site=TARGET_SITE,
        **extra,
    )
    result.raise_for_failure()
    nomor_aju = f"VERIFY-{run.incident_id}-failback-{run.attempt}-{uuid.uuid4().hex[:6]}"
    t0 = time.monotonic()
    status, row = http_json(
        f"{ep.frontdoor_url}/declarations",
        {
            "nomor_aju": nomor_aju,
            "doc_type": "VERIFY",
            "office": "drp",
            "payload": {"incident": run.incident_id, "flow": "failback", "service": service_id},
        },
    )
    write_ms = (time.monotonic() - t0) * 1000
    if status != 201 or not isinstance(row, dict) or row.get("site") != TARGET_SITE:
        raise PreconditionFailed(f"a write through the front door failed: HTTP {status} {row}")
    t1 = time.monotonic()
    status, rows = http_json(f"{ep.frontdoor_url}/declarations?nomor_aju={nomor_aju}")
    read_ms = (time.monotonic() - t1) * 1000
    if status != 200 or not rows:
        raise PreconditionFailed(f"the declaration just written cannot be read back: {status}")
    stored = pg.query(dc_dsn, "SELECT site FROM declarations WHERE nomor_aju = %s", (nomor_aju,))
    if stored != [(TARGET_SITE,)]:
        raise PreconditionFailed("the verification write is not in the DC database")
    return StepOutcome(
        DONE,
        "a declaration written and read through the front door landed in the DC database",
        {"nomor_aju": nomor_aju, "write_ms": round(write_ms, 1), "read_ms": round(read_ms, 1)},
    )
