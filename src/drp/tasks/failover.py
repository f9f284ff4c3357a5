"""The failover's steps: look at the real state, decide (``drp.domain.failover``), act (playbook),
prove the result, and record all of it in the evidence ledger.

Every step is idempotent: it first looks at what is true now (already fenced, already primary,
already switched) and records "already done" instead of acting twice, so that re-running an
interrupted incident finishes it. The flow (``flows/failover.py``) only sequences these.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drp.adapters import ansible
from drp.adapters import postgres as pg
from drp.domain import failover as rules
from drp.domain.plan import PlannedStep, RecoveryPlan
from drp.domain.rto import RecoveryTimeClock
from drp.domain.runbook import Runbook
from drp.errors import FencingFailed, PostgresError, PreconditionFailed
from drp.lab.core import http_json
from drp.ledger import Ledger, read_records
from drp.notify import Notifier, notify_safely
from drp.polling import poll, wait_until
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


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class FailoverRun:
    """Everything one attempt of one incident's failover works with."""

    incident_id: str
    runbook: Runbook
    plan: RecoveryPlan
    topology: Topology
    ledger: Ledger
    clock: RecoveryTimeClock
    mode: rules.Mode
    declared_by: str
    notifiers: list[Notifier]
    logger: logging.Logger | logging.LoggerAdapter
    attempt: int = 1
    fence_outcome: rules.FenceOutcome | None = None
    recovery_point: rules.RecoveryPoint | None = None
    results: list[dict[str, Any]] = field(default_factory=list)

    def notify(self, event: str, text: str, **data: Any) -> None:
        notify_safely(
            self.notifiers, self.ledger, event, text, incident_id=self.incident_id, **data
        )

    def check_rto(self) -> None:
        for warning in self.clock.due_warnings(utc_now()):
            self.ledger.append(
                "rto.warning", {"fraction": warning.fraction, "reason": warning.reason}
            )
            self.notify("rto.warning", f"{self.incident_id}: {warning.reason}")


# -- the ledger as the incident's memory -------------------------------------------------------
@dataclass(frozen=True)
class PriorAttempts:
    """What earlier attempts of this incident recorded (read back from its ledger)."""

    attempts: int = 0
    declaration: dict[str, Any] | None = None
    approval: dict[str, Any] | None = None
    completed_steps: tuple[str, ...] = ()
    closed: bool = False


def read_prior(ledger_dir: Path) -> PriorAttempts:
    attempts = 0
    declaration = approval = None
    completed: list[str] = []
    closed = False
    for _, rec in read_records(ledger_dir):
        if isinstance(rec, str):
            continue
        if rec.kind == "attempt.start":
            attempts += 1
        elif rec.kind == "incident.declared":
            declaration = rec.data
        elif rec.kind == "approval.granted":
            approval = rec.data
        elif rec.kind == "step.end" and rec.data.get("status") in (DONE, ALREADY_DONE):
            completed.append(rec.data["step_id"])
        elif rec.kind == "ledger.close":
            closed = True
    return PriorAttempts(attempts, declaration, approval, tuple(completed), closed)


def new_incident_id(now: datetime | None = None) -> str:
    now = now or utc_now()
    return f"inc-{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"


# -- running one step --------------------------------------------------------------------------
def run_step(
    run: FailoverRun, planned: PlannedStep, body: Callable[[], StepOutcome]
) -> StepOutcome:
    """Run and record one runbook step; feed the RTO clock; notify; check the RTO warnings."""
    step = planned.step
    outcome, timing = record_step(
        run.ledger,
        step_id=step.id,
        name=step.name,
        budget_s=step.budget_seconds,
        attempt=run.attempt,
        body=body,
        results=run.results,
        logger=run.logger,
        announcer=Announcer(run.notifiers, "failover", run.incident_id),
        start_data={
            "action": step.action,
            "playbook": step.playbook,
            "targets": step.targets,
            "reason": planned.reason,
        },
        result_data={"action": step.action},
    )
    run.clock.record(timing)
    run.check_rto()
    return outcome


def _playbook(run: FailoverRun, planned: PlannedStep, **extra_vars: Any) -> ansible.PlaybookResult:
    """Run the step's playbook with its timeout, recorded in the ledger."""
    step = planned.step
    call = ansible.PlaybookCall(
        playbook=Path(run.runbook.playbook_dir) / step.playbook,
        inventories=run.topology.inventories,
        extra_vars={**step.extra_vars, **extra_vars, "drp_incident_id": run.incident_id},
        timeout_s=step.timeout_seconds,
    )
    return run_recorded_playbook(run.ledger, call, step_id=step.id, attempt=run.attempt)


# -- observations ------------------------------------------------------------------------------
def observe_standby(dsn: str) -> rules.StandbyObservation:
    try:
        role = pg.server_role(dsn)
    except PostgresError:
        return rules.StandbyObservation(reachable=False)
    if not role.in_recovery:
        return rules.StandbyObservation(reachable=True, in_recovery=False)
    rec = pg.receiver(dsn)
    return rules.StandbyObservation(
        reachable=True,
        in_recovery=True,
        streaming=rec.streaming,
        lag_bytes=rec.lag_bytes,
        replay_delay_s=rec.replay_delay_s,
        replay_paused=rec.replay_paused,
    )


def primary_accepts_writes(dsn: str) -> tuple[bool | None, str]:
    """Can a client write to the old primary right now? (None: cannot tell, unreachable.)"""
    try:
        role = pg.server_role(dsn)
    except PostgresError:
        return None, "the DC database refuses connections from clients"
    if role.in_recovery:
        return False, "the DC database is in recovery (a standby): it refuses writes"
    if role.read_only:
        return False, "the DC database is read-only: it refuses writes"
    return True, "the DC database is a writable primary"


def frontdoor_site(url: str) -> str | None:
    status, body = http_json(f"{url}/__frontdoor", timeout=3)
    return body.get("active_site") if status == 200 and isinstance(body, dict) else None


# -- the steps ---------------------------------------------------------------------------------
def syntax_check_plan(run: FailoverRun) -> tuple[str, ...]:
    """One ``--syntax-check`` over every playbook the plan uses (one Ansible start, not six)."""
    import tempfile

    playbooks = sorted({p.step.playbook for p in run.plan.steps})
    with tempfile.TemporaryDirectory(prefix="drp-syntax-") as tmp:
        combined = Path(tmp) / "plan.yml"
        combined.write_text(
            "".join(
                f"- import_playbook: {Path(run.runbook.playbook_dir) / name}\n"
                for name in playbooks
            )
        )
        call = ansible.PlaybookCall(
            playbook=combined, inventories=run.topology.inventories, timeout_s=60
        )
        return tuple(ansible.syntax_check(call))


def observe_caught_up(
    dsn: str, max_lag_bytes: int, catch_up_s: float = 5.0
) -> rules.StandbyObservation:
    """Observe the standby, giving replay up to ``catch_up_s`` to catch up with what it received.

    Under a steady stream of writes replay trails receipt by a few hundred bytes at any instant;
    one snapshot would call that lag. The pre-flight playbook gives the same allowance.
    """
    _, standby = poll(
        lambda: observe_standby(dsn),
        lambda s: not s.reachable or not s.in_recovery or (s.lag_bytes or 0) <= max_lag_bytes,
        catch_up_s,
        interval=0.1,
    )
    return standby


def preflight(run: FailoverRun, planned: PlannedStep, override_by: str | None) -> StepOutcome:
    standby = observe_caught_up(run.topology.standby_dsn, _max_lag_bytes(run))
    if standby.reachable and standby.in_recovery is False:
        return StepOutcome(
            ALREADY_DONE,
            "the DRC database is already primary (promoted by an "
            "earlier attempt): nothing to check before promotion",
        )
    primary_up = pg.is_reachable(run.topology.primary_dsn, timeout=2)
    # The syntax check of every playbook runs beside the pre-flight playbook: both are Ansible
    # starts of about a second, and this step is on the RTO clock.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="drp-syntax") as pool:
        syntax = pool.submit(syntax_check_plan, run)
        failures = _preflight_playbook(run, planned, standby, primary_up)
        problems = syntax.result()
    verdict = rules.judge_preflight(
        standby,
        primary_reachable=primary_up,
        max_lag_bytes=_max_lag_bytes(run),
        syntax_problems=problems,
        playbook_failures=failures,
    )
    data = {
        "passed": list(verdict.passed),
        "failures": list(verdict.failures),
        "primary_reachable": primary_up,
    }
    if verdict.ok:
        return StepOutcome(DONE, verdict.reason, data)
    if override_by:
        run.ledger.append(
            "preflight.override", {"by": override_by, "failures": list(verdict.failures)}
        )
        return StepOutcome(DONE, f"{verdict.reason} — overridden by {override_by}", data)
    return StepOutcome(FAILED, verdict.reason + " (an approver may override explicitly)", data)


def _preflight_playbook(
    run: FailoverRun, planned: PlannedStep, standby: rules.StandbyObservation, primary_up: bool
) -> tuple[str, ...]:
    if not standby.reachable:
        return ()
    result = _playbook(
        run,
        planned,
        standby_group=planned.step.targets,
        require_streaming=primary_up,
        max_lag_bytes=_max_lag_bytes(run),
        # The playbook's "replay stalled" check: received WAL waiting while the last replayed
        # transaction grows old. A stall, not loss — a minute, as for the backlog above.
        rpo_seconds=max(min(s.rpo_seconds for s in run.runbook.services), 60),
    )
    if result.ok:
        return ()
    return (f"{planned.step.playbook}: {result.failure_message()}",)


REPLAY_BACKLOG_LIMIT = 16 * 1024 * 1024
"""Received WAL still to replay that pre-flight accepts: one segment, replayed in well under a
second. It is a recovery-time limit, not the RPO (received WAL is never lost by a promotion)."""


def _max_lag_bytes(run: FailoverRun) -> int:
    del run  # one limit for every runbook so far (see REPLAY_BACKLOG_LIMIT)
    return REPLAY_BACKLOG_LIMIT


def fence(run: FailoverRun, planned: PlannedStep) -> StepOutcome:
    writable_before, seen = primary_accepts_writes(run.topology.primary_dsn)
    result = _playbook(run, planned, primary_group=planned.step.targets)
    if result.unreachable_hosts:
        run.fence_outcome = rules.FenceOutcome.UNREACHABLE
        return StepOutcome(
            DONE,
            f"the DC host(s) {', '.join(result.unreachable_hosts)} cannot be reached: fencing "
            "cannot be proven; promotion needs a recorded confirmation that the DC is down or "
            "isolated",
            {"fence_outcome": run.fence_outcome.value, "before": seen},
        )
    if not result.ok:
        run.fence_outcome = rules.FenceOutcome.FAILED
        raise FencingFailed(f"fencing the DC primary failed: {result.failure_message()}")
    writable_after, proof = primary_accepts_writes(run.topology.primary_dsn)
    if writable_after:
        run.fence_outcome = rules.FenceOutcome.FAILED
        raise FencingFailed(f"the fence playbook succeeded but {proof}; do not promote")
    already = not result.changed
    run.fence_outcome = rules.FenceOutcome.ALREADY_FENCED if already else rules.FenceOutcome.FENCED
    return StepOutcome(
        ALREADY_DONE if already else DONE,
        ("the DC primary was already fenced" if already else "the DC primary is fenced")
        + f"; proof: {proof}",
        {
            "fence_outcome": run.fence_outcome.value,
            "before": seen,
            "proof": proof,
            "writable_before": writable_before,
        },
    )


def promote(
    run: FailoverRun, planned: PlannedStep, isolation_confirmed_by: str | None
) -> StepOutcome:
    standby_dsn = run.topology.standby_dsn
    role = pg.server_role(standby_dsn)
    if not role.in_recovery:
        return StepOutcome(
            ALREADY_DONE, "the DRC database is already primary", {"timeline": role.timeline}
        )
    decision = rules.may_promote(
        run.fence_outcome or rules.FenceOutcome.FAILED, isolation_confirmed_by
    )
    run.ledger.append(
        "promotion.gate",
        {
            "allowed": decision.allowed,
            "reason": decision.reason,
            "isolation_confirmed_by": isolation_confirmed_by,
        },
    )
    if not decision.allowed:
        raise PreconditionFailed(decision.reason)
    before = pg.receiver(standby_dsn)
    point = rules.RecoveryPoint(
        receive_lsn=before.receive_lsn,
        replay_lsn=before.replay_lsn,
        last_replay_ts=before.last_replay_ts,
    )
    result = _playbook(run, planned, standby_group=planned.step.targets)
    result.raise_for_failure()
    if not wait_until(lambda: pg.server_role(standby_dsn).writable, planned.step.timeout_seconds):
        raise PreconditionFailed("the DRC database was promoted but does not accept writes")
    final_lsn = _dc_final_lsn(run)
    if final_lsn and point.replay_lsn:
        point = rules.RecoveryPoint(
            point.receive_lsn,
            point.replay_lsn,
            point.last_replay_ts,
            final_lsn,
            max(rules.lsn_to_int(final_lsn) - rules.lsn_to_int(point.replay_lsn), 0),
        )
    run.recovery_point = point
    after = pg.server_role(standby_dsn)
    run.ledger.append("recovery.point", {**point.__dict__, "reason": point.reason})
    return StepOutcome(
        DONE,
        f"the DRC database is primary and accepts writes; {point.reason}",
        {"timeline": after.timeline, **point.__dict__},
    )


def _dc_final_lsn(run: FailoverRun) -> str | None:
    """The DC's last WAL position as reported by the fence playbook (set_stats), if any."""
    for _, rec in read_records(run.ledger.directory):
        if isinstance(rec, str) or rec.kind != "ansible.playbook":
            continue
        stats = rec.data.get("stats_data") or {}
        for value in _walk(stats):
            if isinstance(value, Mapping) and value.get("final_lsn"):
                return str(value["final_lsn"])
    return None


def _walk(obj: Any):
    yield obj
    if isinstance(obj, Mapping):
        for v in obj.values():
            yield from _walk(v)


def switch_traffic(run: FailoverRun, planned: PlannedStep) -> StepOutcome:
    target = run.topology.standby_site
    if frontdoor_site(run.topology.frontdoor_url) == target:
        return StepOutcome(ALREADY_DONE, f"the front door already routes users to the {target}")
    result = _playbook(run, planned, target_site=target)
    result.raise_for_failure()
    serving = frontdoor_site(run.topology.frontdoor_url)
    if serving != target:
        raise PreconditionFailed(
            f"the front door serves {serving!r} after the switch, not {target!r}"
        )
    return StepOutcome(DONE, f"the front door routes users to the {target}")


def start_service(run: FailoverRun, planned: PlannedStep) -> StepOutcome:
    """Start the standby site's application, unless it already answers healthy and writable."""
    url = run.topology.standby_app_url
    if url:
        status, health = http_json(f"{url}/health", timeout=3)
        if (
            status == 200
            and isinstance(health, dict)
            and health.get("site") == run.topology.standby_site
            and health.get("writable")
        ):
            return StepOutcome(
                ALREADY_DONE,
                f"{planned.step.targets}: already running, healthy and writable ({url}/health)",
                {"health": health},
            )
    result = _playbook(run, planned, app_group=planned.step.targets, require_writable=True)
    result.raise_for_failure()
    if result.changed:
        return StepOutcome(DONE, f"{planned.step.targets}: started and healthy")
    return StepOutcome(ALREADY_DONE, f"{planned.step.targets}: already running and healthy")


def verify(run: FailoverRun, planned: PlannedStep) -> StepOutcome:
    """A real write and read through the front door that must land in the DRC database."""
    site = run.topology.standby_site
    result = _playbook(run, planned, expected_site=site)
    result.raise_for_failure()
    nomor_aju = f"VERIFY-{run.incident_id}-{run.attempt}-{uuid.uuid4().hex[:6]}"
    t0 = time.monotonic()
    status, row = http_json(
        f"{run.topology.frontdoor_url}/declarations",
        {
            "nomor_aju": nomor_aju,
            "doc_type": "VERIFY",
            "office": "drp",
            "payload": {"incident": run.incident_id},
        },
    )
    write_ms = (time.monotonic() - t0) * 1000
    if status != 201 or not isinstance(row, dict) or row.get("site") != site:
        raise PreconditionFailed(f"a write through the front door failed: HTTP {status} {row}")
    t1 = time.monotonic()
    status, rows = http_json(f"{run.topology.frontdoor_url}/declarations?nomor_aju={nomor_aju}")
    read_ms = (time.monotonic() - t1) * 1000
    if status != 200 or not rows:
        raise PreconditionFailed(f"the declaration just written cannot be read back: {status}")
    stored = pg.query(
        run.topology.standby_dsn,
        "SELECT site FROM declarations WHERE nomor_aju = %s",
        (nomor_aju,),
    )
    if stored != [(site,)]:
        raise PreconditionFailed(f"the verification write is not in the {site} database")
    return StepOutcome(
        DONE,
        f"a declaration written and read through the front door landed in the {site} database",
        {"nomor_aju": nomor_aju, "write_ms": round(write_ms, 1), "read_ms": round(read_ms, 1)},
    )


def custom(run: FailoverRun, planned: PlannedStep) -> StepOutcome:
    """A runbook step with no built-in checks: its playbook decides, and reports changes."""
    result = _playbook(run, planned)
    result.raise_for_failure()
    return StepOutcome(
        DONE if result.changed else ALREADY_DONE,
        f"{planned.step.playbook}: {'changed' if result.changed else 'no change'}",
    )


def dry_run_report(rb: Runbook, plan: RecoveryPlan, runbook: str) -> dict[str, Any]:
    """What a failover would run, with predicted durations; changes nothing, writes nothing."""
    checks = [
        "classify the signals and check the declarer's role (Pasal 4-7)",
        f"approval gate (timeout {rb.approval.timeout_minutes} min; two people in real mode)",
        "pre-flight: DRC reachable, standby streaming, replay lag within the RPO, "
        "every playbook passes --syntax-check",
        "fence: prove the DC primary refuses writes (or a recorded confirmation when it is "
        "unreachable) before any promotion",
        "verify: a write and a read through the front door that land in the DRC database",
    ]
    rows = [
        {
            "position": p.position,
            "step_id": p.step.id,
            "name": p.step.name,
            "action": p.step.action,
            "playbook": p.step.playbook,
            "targets": p.step.targets,
            "budget_s": p.step.budget_seconds,
            "cumulative_s": p.cumulative_seconds,
        }
        for p in plan.steps
    ]
    return {
        "status": "dry_run",
        "runbook": runbook,
        "steps": rows,
        "checks": checks,
        "predicted_rto_s": plan.predicted_rto_seconds,
    }
