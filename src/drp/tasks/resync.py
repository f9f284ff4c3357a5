"""The resync's steps: rebuild the old DC primary as a streaming standby of the promoted DRC.

Same shape as :mod:`drp.tasks.failover`: each step looks at the real state, asks
:mod:`drp.domain.resync` to decide, acts through a playbook (``rejoin_standby.yml``) or SQL, proves
the result and records all of it in the incident's ledger (``<evidence>/<incident>/resync/``).
A step finds "already done" when the real state says so, so a re-run changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict

from drp.adapters import ansible
from drp.adapters import postgres as pg
from drp.domain import readiness
from drp.domain import resync as rules
from drp.domain.failover import lsn_to_int
from drp.domain.runbook import Runbook
from drp.errors import PostgresError, PreconditionFailed
from drp.polling import poll
from drp.tasks.kernel import IncidentRun
from drp.tasks.observe import primary_accepts_writes
from drp.tasks.recorded import run_recorded_playbook
from drp.tasks.replication import read_settings
from drp.tasks.steps import ALREADY_DONE, DONE, StepOutcome
from drp.topology import Topology

PLAYBOOK = "rejoin_standby.yml"
DEFAULT_SLOT = "dc_db"


@dataclass(frozen=True)
class ResyncStep:
    """One step of the resync: what the ledger and the CLI show, its budget and hard timeout."""

    id: str
    name: str
    budget_s: int
    timeout_s: int


OBSERVE = ResyncStep("observe", "Look at both sides (pg_controldata, timeline history)", 10, 60)
DECIDE = ResyncStep("decide", "Decide how the old primary rejoins", 1, 30)
REJOIN = ResyncStep("rejoin", "Rejoin the old primary as a standby of the DRC", 30, 900)
VERIFY = ResyncStep("verify", "Prove it streams and catches up (lag 0 after a write)", 10, 120)
SETTINGS = ResyncStep("settings", "Compare the settings that matter for a takeover", 2, 30)
STEPS: tuple[ResyncStep, ...] = (OBSERVE, DECIDE, REJOIN, VERIFY, SETTINGS)


@dataclass
class ResyncPair:
    """One database pair to resync: its old primary (to rebuild as a standby) and the new
    primary it will stream from, with what the steps observed and decided."""

    pair_id: str
    old_dsn: str  # the old primary, reached the way its clients reach it
    new_dsn: str  # the promoted standby
    old_group: str  # the inventory group of the old primary's host
    slot: str = DEFAULT_SLOT  # on the new primary: the slot the old one streams from
    # The slot the old primary kept for its own standby (the DRC's, drc_db): once it is a
    # standby itself nobody uses it, and a slot on a standby still holds WAL back.
    stale_slot: str = "drc_db"
    force_basebackup: bool = False
    step_suffix: str = ""  # "@<pair>" when an incident resyncs several pairs
    old: rules.OldPrimaryObservation | None = None
    new: rules.NewPrimaryObservation | None = None
    decision: rules.RejoinDecision | None = None
    drifts: tuple[readiness.Drift, ...] = ()

    @property
    def new_primary_address(self) -> tuple[str, int]:
        """Where the old primary reaches the new one: the host and port of its DSN."""
        params = conninfo_to_dict(self.new_dsn)
        return str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432)

    def step_id(self, step: ResyncStep) -> str:
        return f"{step.id}{self.step_suffix}"


def pairs_for(
    runbook: Runbook, topology: Topology, pair_ids: Sequence[str], force_basebackup: bool
) -> list[ResyncPair]:
    """The pairs to resync, each with its DSNs, group and slots; step ids carry the pair when
    there is more than one."""
    several = len(pair_ids) > 1
    out = []
    for pair_id in pair_ids:
        db = runbook.database(pair_id)
        dsns = topology.pair(pair_id)
        out.append(
            ResyncPair(
                pair_id=pair_id,
                old_dsn=dsns.primary_dsn,
                new_dsn=dsns.standby_dsn,
                old_group=db.primary_group if db else "dc_db",
                slot=dsns.rejoin_slot,
                stale_slot=dsns.standby_slot,
                force_basebackup=force_basebackup,
                step_suffix=f"@{pair_id}" if several else "",
            )
        )
    return out


def _playbook(
    run: IncidentRun, rp: ResyncPair, step: ResyncStep, method: str
) -> ansible.PlaybookResult:
    """Run rejoin_standby.yml, recorded in the ledger."""
    host, port = rp.new_primary_address
    call = ansible.PlaybookCall(
        playbook=Path(run.runbook.playbook_dir) / PLAYBOOK,
        inventories=run.topology.inventories,
        extra_vars={
            "old_primary_group": rp.old_group,
            "rejoin_method": method,
            "new_primary_host": host,
            "new_primary_port": port,
            "rejoin_slot": rp.slot,
            "drp_incident_id": run.incident_id,
        },
        timeout_s=step.timeout_s,
    )
    return run_recorded_playbook(
        run.ledger,
        call,
        step_id=rp.step_id(step),
        attempt=run.attempt,
        summary={"method": method, "pair": rp.pair_id},
    )


def _host_report(result: ansible.PlaybookResult) -> dict[str, Any]:
    """The one host's JSON report (stats_data.rejoin.<host>)."""
    reports = (result.stats_data or {}).get("rejoin") or {}
    if len(reports) != 1:
        raise PreconditionFailed(
            f"{PLAYBOOK} reported on {len(reports)} hosts of the old primary's group; "
            "resync one database host at a time (set the group to exactly one host)"
        )
    return dict(next(iter(reports.values())))


def old_observation(report: Mapping[str, Any]) -> rules.OldPrimaryObservation:
    """Turn the playbook's "before" report into the domain's observation."""
    seen = report.get("before") or {}
    timeline = str(seen.get("timeline") or "")
    return rules.OldPrimaryObservation(
        data_dir_present=bool(seen.get("present")),
        control_readable=bool(seen.get("readable")),
        cluster_state=str(seen.get("cluster_state") or ""),
        timeline=int(timeline) if timeline.isdigit() else None,
        checkpoint_lsn=seen.get("checkpoint_lsn") or None,
        redo_lsn=seen.get("redo_lsn") or None,
        checksums=str(seen.get("checksums") or "0") not in ("0", ""),
        wal_log_hints=seen.get("wal_log_hints") == "on",
        running=bool(seen.get("running")),
        in_recovery=seen.get("in_recovery"),
        streaming_from_new_primary=bool(seen.get("streaming")),
    )


def new_observation(dsn: str) -> rules.NewPrimaryObservation:
    """The DRC over SQL: primary or not, its timeline and the history that led to it."""
    try:
        role = pg.server_role(dsn)
    except PostgresError:
        return rules.NewPrimaryObservation(reachable=False)
    history: tuple[rules.TimelineFork, ...] = ()
    if role.timeline and role.timeline > 1:
        rows = pg.query(
            dsn,
            "SELECT convert_from(pg_read_binary_file(%s), 'UTF8')",
            (f"pg_wal/{role.timeline:08X}.history",),
        )
        history = rules.parse_timeline_history(rows[0][0] if rows else "")
    return rules.NewPrimaryObservation(
        reachable=True, in_recovery=role.in_recovery, timeline=role.timeline, history=history
    )


# -- the steps ---------------------------------------------------------------------------------
def observe(run: IncidentRun, rp: ResyncPair) -> StepOutcome:
    rp.new = new_observation(rp.new_dsn)
    result = _playbook(run, rp, OBSERVE, "observe")
    if result.unreachable_hosts:
        raise PreconditionFailed(
            f"the old primary's host(s) {', '.join(result.unreachable_hosts)} cannot be reached: "
            "resync needs the DC back (power, network) first"
        )
    result.raise_for_failure()
    rp.old = old_observation(_host_report(result))
    data = {
        "pair": rp.pair_id,
        "old_primary": rp.old.__dict__,
        "new_primary": _new_dict(rp.new),
    }
    run.ledger.append("resync.observed", data)
    return StepOutcome(
        DONE,
        f"{rp.pair_id}: old primary {'running' if rp.old.running else 'stopped'}, "
        f"{rp.old.cluster_state or 'no control file'}, timeline {rp.old.timeline}, "
        f"checkpoint {rp.old.checkpoint_lsn}; DRC: "
        f"{_role(rp.new)}"
        f" on timeline {rp.new.timeline}",
        data,
    )


def _role(new: rules.NewPrimaryObservation) -> str:
    if not new.reachable:
        return "unreachable"
    return "standby" if new.in_recovery else "primary"


def _new_dict(new: rules.NewPrimaryObservation) -> dict[str, Any]:
    return {**new.__dict__, "history": [f.__dict__ for f in new.history]}


def decide(run: IncidentRun, rp: ResyncPair) -> StepOutcome:
    if rp.old is None or rp.new is None:
        raise PreconditionFailed("nothing observed yet: the observe step must run first")
    writable, seen = primary_accepts_writes(rp.old_dsn)
    old = rp.old
    if writable:  # what clients see overrides what the host saw: never two primaries
        old = replace(old, running=True, in_recovery=False)
    rp.decision = rules.decide_rejoin(old, rp.new, force_basebackup=rp.force_basebackup)
    record = {
        "pair": rp.pair_id,
        "allowed": rp.decision.allowed,
        "method": rp.decision.method.value if rp.decision.method else None,
        "reason": rp.decision.reason,
        "client_view": seen,
    }
    run.ledger.append("resync.decision", record)
    if not rp.decision.allowed:
        raise PreconditionFailed(rp.decision.reason)
    status = ALREADY_DONE if rp.decision.method is rules.RejoinMethod.ALREADY else DONE
    return StepOutcome(status, f"{record['method']}: {rp.decision.reason}", record)


def ensure_slot(dsn: str, slot: str) -> bool:
    """Create the physical slot on the new primary unless it exists; True when created."""
    rows = pg.query(dsn, "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,))
    if rows:
        return False
    pg.query(dsn, "SELECT pg_create_physical_replication_slot(%s)", (slot,))
    return True


def rejoin(run: IncidentRun, rp: ResyncPair) -> StepOutcome:
    decision = rp.decision
    if decision is None or decision.method is None:
        raise PreconditionFailed("no decision yet: the decide step must run first")
    if decision.method is rules.RejoinMethod.ALREADY:
        return StepOutcome(ALREADY_DONE, decision.reason, {"method": decision.method.value})
    created = ensure_slot(rp.new_dsn, rp.slot)
    run.ledger.append("resync.slot", {"pair": rp.pair_id, "slot": rp.slot, "created": created})
    result = _playbook(run, rp, REJOIN, decision.method.value)
    if decision.method is rules.RejoinMethod.REWIND and "pg_rewind failed" in (
        result.failure_message()
    ):
        decision = rules.decide_rejoin(
            rp.old or rules.OldPrimaryObservation(data_dir_present=True),
            rp.new or rules.NewPrimaryObservation(reachable=True, in_recovery=False),
            rewind_failed=True,
        )
        rp.decision = decision
        run.ledger.append(
            "resync.decision",
            {
                "allowed": True,
                "method": decision.method.value if decision.method else None,
                "reason": decision.reason,
                "after": result.failure_message()[:500],
            },
        )
        result = _playbook(run, rp, REJOIN, decision.method.value if decision.method else "")
    result.raise_for_failure()
    report = _host_report(result)
    method = decision.method.value if decision.method else ""
    if not report.get("acted"):
        return StepOutcome(
            ALREADY_DONE, "the old primary already streams from the DRC", {"method": method}
        )
    aside = report.get("moved_aside") or ""
    said = f" ({report['rewind'].strip()})" if report.get("rewind") else ""
    kept = f"; the old data directory is kept at {aside}" if aside else ""
    return StepOutcome(
        DONE,
        f"rejoined by {method}{said}: in recovery and streaming from the DRC{kept}",
        {"method": method, "moved_aside": aside, "slot_created": created},
    )


def drop_stale_slot(dsn: str, slot: str) -> bool:
    """Drop ``slot`` on a server that is now a standby, if it is there and nobody uses it;
    True when dropped. (A rejoin without a copy keeps ``pg_replslot``: the old primary's slot
    for its former standby would pin WAL on the new standby for ever.)"""
    rows = pg.query(
        dsn,
        "SELECT active FROM pg_replication_slots WHERE slot_name = %s AND pg_is_in_recovery()",
        (slot,),
    )
    if not rows or rows[0][0]:
        return False
    pg.query(dsn, "SELECT pg_drop_replication_slot(%s)", (slot,))
    return True


def verify(run: IncidentRun, rp: ResyncPair) -> StepOutcome:
    """A WAL record written at the DRC must be replayed at the DC: lag 0, not just "streaming"."""
    new_dsn, old_dsn = rp.new_dsn, rp.old_dsn
    marker = f"resync {run.incident_id} {rp.pair_id} attempt {run.attempt}"
    pg.query(new_dsn, "SELECT pg_logical_emit_message(true, 'drp-resync', %s)", (marker,))
    target = pg.query(new_dsn, "SELECT pg_current_wal_lsn()::text")[0][0]
    started = time.monotonic()

    def observe() -> pg.ReceiverStatus | None:
        try:
            return pg.receiver(old_dsn)
        except PostgresError:
            return None

    caught_up, rec = poll(
        observe,
        lambda r: bool(
            r and r.streaming and r.replay_lsn and lsn_to_int(r.replay_lsn) >= lsn_to_int(target)
        ),
        VERIFY.timeout_s - 10,
    )
    if not caught_up or rec is None:
        raise PreconditionFailed(
            f"the old primary did not replay the DRC's WAL up to {target} in time "
            f"(last seen: {rec})"
        )
    sender = next((s for s in pg.senders(new_dsn) if s.application_name == rp.slot), None)
    dropped = drop_stale_slot(old_dsn, rp.stale_slot)
    if dropped:
        run.ledger.append("resync.stale_slot_dropped", {"slot": rp.stale_slot})
    data = {
        "pair": rp.pair_id,
        "target_lsn": target,
        "replay_lsn": rec.replay_lsn,
        "caught_up_s": round(time.monotonic() - started, 3),
        "sender": None if sender is None else sender.__dict__,
        "stale_slot_dropped": rp.stale_slot if dropped else None,
    }
    return StepOutcome(
        DONE,
        f"the DC replayed the DRC's WAL up to {target} (lag 0) in {data['caught_up_s']} s; "
        f"the DRC sees {rp.slot} {sender.state if sender else 'not connected'}"
        f" ({sender.sync_state if sender else '-'})",
        data,
    )


def settings(run: IncidentRun, rp: ResyncPair) -> StepOutcome:
    """The settings a takeover depends on, compared between the new primary and the rebuilt
    standby (the same rules as ``drp check drift``)."""
    names = readiness.DRIFT_SETTINGS
    primary = read_settings(rp.new_dsn, names)
    standby = read_settings(rp.old_dsn, names)
    rp.drifts = readiness.compare_settings(primary, standby, names)
    data = {
        "pair": rp.pair_id,
        "primary": primary,
        "standby": standby,
        "drifts": [d.as_dict() for d in rp.drifts],
    }
    run.ledger.append("resync.settings", data)
    if not rp.drifts:
        return StepOutcome(
            DONE, f"the {len(names)} takeover settings match between the sites", data
        )
    return StepOutcome(
        DONE,
        f"{len(rp.drifts)} drift(s) recorded: " + "; ".join(d.reason for d in rp.drifts),
        data,
    )


def streaming_now(old_dsn: str) -> bool:
    """Does the old primary stream from the DRC right now (as its clients reach it)?"""
    try:
        role = pg.server_role(old_dsn)
        return role.in_recovery and pg.receiver(old_dsn).streaming
    except PostgresError:
        return False
