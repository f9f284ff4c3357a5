"""The failover's steps: look at the real state, decide (``drp.domain.failover``,
``drp.domain.runs``), act (playbook), prove the result, and record all of it in the ledger —
for every service of the plan, and for every database pair a service names, each on its own.

Every step is idempotent: it first looks at what is true now (already fenced, already primary,
already switched) and records "already done" instead of acting twice, so that re-running an
interrupted incident finishes it. The flow (``flows/failover.py``) only sequences these; the
services run as the graph allows (:mod:`drp.tasks.services`).
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from drp.adapters import ansible
from drp.adapters import postgres as pg
from drp.adapters.http import http_json
from drp.domain import failover as rules
from drp.domain import runs
from drp.domain.classification import check_declarer, classify, declare, signals_from_mapping
from drp.domain.graph import State
from drp.domain.outcomes import FailoverOutcome, PairOutcome, ServiceOutcome
from drp.domain.plan import PlannedStep, RecoveryPlan, SelectionRefused
from drp.domain.plan import plan as make_plan
from drp.domain.rto import RecoveryTimeClock, StepTiming
from drp.domain.runbook import Runbook, Service
from drp.errors import FencingFailed, PreconditionFailed
from drp.ledger import read_records
from drp.polling import wait_until
from drp.tasks.kernel import IncidentRun
from drp.tasks.observe import frontdoor_site, observe_caught_up, primary_accepts_writes
from drp.tasks.recorded import run_recorded_playbook
from drp.tasks.services import ServiceResult
from drp.tasks.steps import ALREADY_DONE, DONE, FAILED, StepOutcome
from drp.topology import PairDsns

REPLAY_BACKLOG_LIMIT = 16 * 1024 * 1024
"""Received WAL still to replay that pre-flight accepts: one segment, replayed in well under a
second. It is a recovery-time limit, not the RPO (received WAL is never lost by a promotion)."""


def utc_now() -> datetime:
    return datetime.now(UTC)


# -- the failover's own state, beside the incident run -----------------------------------------
@dataclass
class PairState:
    """One database pair: its DSNs, who runs on it, and what fencing and promotion found."""

    pair_id: str
    dsns: PairDsns
    services: tuple[str, ...]
    fence_outcome: rules.FenceOutcome | None = None
    recovery_point: rules.RecoveryPoint | None = None
    promoted: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


@dataclass
class ServiceRun:
    """One service of the plan: its steps, its own RTO clock, how far it got."""

    service: Service
    steps: tuple[PlannedStep, ...]
    clock: RecoveryTimeClock
    next_step: int = 0
    state: State = State.PENDING
    reason: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    achieved: timedelta | None = None


@dataclass
class FailoverState:
    """What the failover works with beyond the incident run: the plan (and the selection it
    moves), the incident's RTO clock, the pairs and services, the answers to its gates."""

    plan: RecoveryPlan
    declaration: dict[str, Any]
    clock: RecoveryTimeClock
    pairs: dict[str, PairState]
    services: dict[str, ServiceRun]
    interactive: bool
    isolation_confirmed_by: str | None = None
    override_preflight_by: str | None = None
    syntax_checked: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    progress: Callable[[], None] | None = None

    @property
    def declared_by(self) -> str:
        return str(self.declaration["declared_by"])

    def pair_of(self, service: Service) -> PairState | None:
        return self.pairs.get(service.database) if service.database else None


# -- declaring ---------------------------------------------------------------------------------
@task(name="declare", timeout_seconds=60, cache_policy=NO_CACHE, retries=0)
def declare_disaster(
    run: IncidentRun,
    declared_by: str,
    declarer_role: str,
    category: str | None,
    signals: Mapping[str, Any] | None,
    detected_at: str | None,
    consulted: bool,
) -> dict[str, Any]:
    """Classify what is observed (the site's sensors, plus what was given), check the
    declarer, record it. Pasal 4-7."""
    observed = dict(signals or {})
    for key, value in run.topology.observed_signals().items():
        observed.setdefault(key, value)
    sig = signals_from_mapping(observed)
    assessment = declare(category, sig) if category else classify(sig)
    disaster = assessment.disaster
    if disaster is None:
        raise PreconditionFailed(
            "the signals show no disaster and no category was declared: "
            "nothing to fail over (" + " ".join(assessment.notes) + ")"
        )
    decision = check_declarer(declarer_role, disaster, consulted_it_directorate=consulted)
    record = {
        "declared_by": declared_by,
        "declarer_role": declarer_role,
        "category": disaster.category.value,
        "declared_at": utc_now().isoformat(),
        "detected_at": detected_at,
        "mode": run.mode.value,
        "triggers": [{"article": t.article, "reason": t.reason} for t in disaster.triggers],
        "basis": observed.get("basis"),
        "notes": list(assessment.notes),
        "stages": [s.id for s in disaster.stages],
        "coordination": [p.id for p in disaster.coordination],
        "role_check": decision.reason,
    }
    if not decision.allowed:
        run.ledger.append("declaration.refused", record)
        raise PreconditionFailed(f"declaration refused: {decision.reason}")
    run.ledger.append("incident.declared", record)
    return record


def declaration(run: IncidentRun, **declare_args: Any) -> dict[str, Any]:
    """The incident's declaration: an earlier attempt's (the clock does not restart), or a
    new one."""
    if run.prior and run.prior.declaration:
        run.ledger.append(
            "declaration.reused", {"declared_at": run.prior.declaration["declared_at"]}
        )
        return dict(run.prior.declaration)
    return declare_disaster(run, **declare_args)


def prepare(
    run: IncidentRun,
    decl: Mapping[str, Any],
    services: Sequence[str] | None,
    *,
    interactive: bool,
    isolation_confirmed_by: str | None,
    override_preflight_by: str | None,
) -> FailoverState:
    """The plan of what moves (the whole site, or the selection — an earlier attempt's is
    kept, a different one refused), the clocks, the pairs and the services."""
    recorded = run.prior.selection if run.prior else None
    wanted = list(services or [])
    if recorded is not None:
        before = list(recorded.get("asked") or [])
        if wanted and sorted(wanted) != sorted(before):
            raise PreconditionFailed(
                f"incident {run.incident_id} moves {', '.join(before) or 'the whole site'}: a "
                "re-run cannot change the selection (open a new incident for other services)"
            )
        wanted = before
    try:
        plan = make_plan(run.runbook, wanted or None)
    except SelectionRefused as refused:
        raise PreconditionFailed(f"services: {refused}") from refused
    if recorded is None:
        run.ledger.append("incident.selection", plan.selection.as_dict())
    declared_at = datetime.fromisoformat(decl["declared_at"])
    detected = decl.get("detected_at")
    detected_at = datetime.fromisoformat(detected) if detected else None
    chosen = plan.selection.services
    pairs: dict[str, PairState] = {}
    for db in run.runbook.databases:
        users = tuple(s for s in chosen if run.runbook.service(s).database == db.id)
        if users:
            pairs[db.id] = PairState(db.id, run.topology.pair(db.id), users)
    service_runs = {
        s.service.id: ServiceRun(
            service=s.service,
            steps=plan.service_steps(s.service.id),
            clock=RecoveryTimeClock(
                declared_at=declared_at,
                budget=runs.service_budget(s.service.rto_minutes),
                detected_at=detected_at,
            ),
        )
        for s in plan.services
    }
    return FailoverState(
        plan=plan,
        declaration=dict(decl),
        clock=RecoveryTimeClock(
            declared_at=declared_at, budget=runs.INCIDENT_RTO_CAP, detected_at=detected_at
        ),
        pairs=pairs,
        services=service_runs,
        interactive=interactive,
        isolation_confirmed_by=isolation_confirmed_by,
        override_preflight_by=override_preflight_by,
    )


# -- running a service -------------------------------------------------------------------------
def run_service(run: IncidentRun, fo: FailoverState, service_id: str) -> ServiceResult:
    """Run the service's steps from the first one not yet done, in order; stop at a failure,
    or hand back when promotion must wait for a person (the DC unreachable)."""
    svc = fo.services[service_id]
    if svc.started_at is None:
        svc.started_at = utc_now()
        svc.state = State.RUNNING
    while svc.next_step < len(svc.steps):
        planned = svc.steps[svc.next_step]
        pair = fo.pair_of(planned.service)
        if planned.step.action == "promote" and pair is not None:
            gate = runs.isolation_gate(
                pair.fence_outcome, fo.isolation_confirmed_by, fo.interactive
            )
            if gate.action is runs.GateAction.ASK:
                return ServiceResult(service_id, State.RUNNING, gate.reason, gate="isolation")
            if gate.action is runs.GateAction.STOP:
                return _service_failed(run, svc, gate.reason)
        outcome = run.step(
            planned.step.id,
            planned.step.name,
            planned.step.budget_seconds,
            planned.step.timeout_seconds + 30,
            _body(run, fo, planned),
            task_name=f"{planned.step.action}:{planned.step.id}",
            start_data={
                "service": service_id,
                "pair": pair.pair_id if pair else None,
                "action": planned.step.action,
                "playbook": planned.step.playbook,
                "targets": planned.step.targets,
                "reason": planned.reason,
            },
            result_data={"action": planned.step.action, "service": service_id},
            on_end=lambda _o, timing: _clocks(run, fo, svc, timing),
        )
        if outcome.status == FAILED:
            return _service_failed(run, svc, f"{planned.step.name}: {outcome.reason}")
        svc.next_step += 1
        if fo.progress is not None:
            fo.progress()
    svc.ended_at = utc_now()
    svc.achieved = svc.clock.stop(svc.ended_at)
    svc.state = State.VERIFIED
    svc.reason = f"verified at the DRC; {svc.clock.verdict()}"
    run.notify("service.verified", f"{run.incident_id}: {service_id} {svc.reason}")
    return ServiceResult(service_id, State.VERIFIED, svc.reason)


def _service_failed(run: IncidentRun, svc: ServiceRun, reason: str) -> ServiceResult:
    svc.state, svc.reason, svc.ended_at = State.FAILED, reason, utc_now()
    run.notify("service.failed", f"{run.incident_id}: {svc.service.id} failed — {reason}")
    return ServiceResult(svc.service.id, State.FAILED, reason)


def _clocks(run: IncidentRun, fo: FailoverState, svc: ServiceRun, timing: StepTiming) -> None:
    """Feed the service's clock and the incident's; warn at 50 % and 80 % of either."""
    with fo.lock:
        svc.clock.record(timing)
        fo.clock.record(timing)
        now = utc_now()
        for clock, whose in ((fo.clock, "the incident"), (svc.clock, svc.service.id)):
            for warning in clock.due_warnings(now):
                run.ledger.append(
                    "rto.warning",
                    {"of": whose, "fraction": warning.fraction, "reason": warning.reason},
                )
                run.notify("rto.warning", f"{run.incident_id} ({whose}): {warning.reason}")


def _body(run: IncidentRun, fo: FailoverState, planned: PlannedStep) -> Callable[[], StepOutcome]:
    """The step function for a runbook step's action."""
    action = planned.step.action
    bodies: dict[str, Callable[[], StepOutcome]] = {
        "check": lambda: preflight(run, fo, planned),
        "fence": lambda: fence(run, fo, planned),
        "promote": lambda: promote(run, fo, planned),
        "switch_traffic": lambda: switch_traffic(run, planned),
        "start": lambda: start_service(run, planned),
        "verify": lambda: verify(run, fo, planned),
    }
    return bodies.get(action, lambda: custom(run, planned))


def _playbook(run: IncidentRun, planned: PlannedStep, **extra_vars: Any) -> ansible.PlaybookResult:
    """Run the step's playbook with its timeout, recorded in the ledger."""
    step = planned.step
    call = ansible.PlaybookCall(
        playbook=Path(run.runbook.playbook_dir) / step.playbook,
        inventories=run.topology.inventories,
        extra_vars={**step.extra_vars, **extra_vars, "drp_incident_id": run.incident_id},
        timeout_s=step.timeout_seconds,
    )
    return run_recorded_playbook(run.ledger, call, step_id=step.id, attempt=run.attempt)


def _pair(fo: FailoverState, planned: PlannedStep) -> PairState:
    pair = fo.pair_of(planned.service)
    if pair is None:  # the runbook's rules refuse this; a guard, not a path
        raise PreconditionFailed(
            f"{planned.step.id}: service '{planned.service.id}' names no database pair"
        )
    return pair


# -- the steps ---------------------------------------------------------------------------------
def syntax_check_plan(run: IncidentRun, plan: RecoveryPlan) -> tuple[str, ...]:
    """One ``--syntax-check`` over every playbook the plan uses (one Ansible start, not six)."""
    playbooks = sorted({p.step.playbook for p in plan.steps})
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


def preflight(run: IncidentRun, fo: FailoverState, planned: PlannedStep) -> StepOutcome:
    """The DRC standby of the step's pair can take over: reachable, streaming (unless the DC
    is gone), not paused, replay backlog within a segment; every playbook of the plan passes
    ``--syntax-check`` (checked once per incident, beside the first pre-flight)."""
    pair = _pair(fo, planned)
    standby = observe_caught_up(pair.dsns.standby_dsn, REPLAY_BACKLOG_LIMIT)
    if standby.reachable and standby.in_recovery is False:
        return StepOutcome(
            ALREADY_DONE,
            f"the DRC database of {pair.pair_id} is already primary (promoted by an earlier "
            "attempt): nothing to check before promotion",
        )
    primary_up = pg.is_reachable(pair.dsns.primary_dsn, timeout=2)
    with fo.lock:
        check_syntax = not fo.syntax_checked
        fo.syntax_checked = True
    # The syntax check runs beside the pre-flight playbook: both are Ansible starts of about a
    # second, and this step is on the RTO clock.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="drp-syntax") as pool:
        syntax = pool.submit(syntax_check_plan, run, fo.plan) if check_syntax else None
        failures = _preflight_playbook(run, planned, standby, primary_up)
        problems = syntax.result() if syntax else ()
    verdict = rules.judge_preflight(
        standby,
        primary_reachable=primary_up,
        max_lag_bytes=REPLAY_BACKLOG_LIMIT,
        syntax_problems=problems,
        playbook_failures=failures,
    )
    data = {
        "pair": pair.pair_id,
        "passed": list(verdict.passed),
        "failures": list(verdict.failures),
        "primary_reachable": primary_up,
    }
    if verdict.ok:
        return StepOutcome(DONE, verdict.reason, data)
    if fo.override_preflight_by:
        run.ledger.append(
            "preflight.override",
            {"by": fo.override_preflight_by, "pair": pair.pair_id, "failures": data["failures"]},
        )
        return StepOutcome(
            DONE, f"{verdict.reason} — overridden by {fo.override_preflight_by}", data
        )
    return StepOutcome(FAILED, verdict.reason + " (an approver may override explicitly)", data)


def _preflight_playbook(
    run: IncidentRun, planned: PlannedStep, standby: rules.StandbyObservation, primary_up: bool
) -> tuple[str, ...]:
    if not standby.reachable:
        return ()
    result = _playbook(
        run,
        planned,
        standby_group=planned.step.targets,
        require_streaming=primary_up,
        max_lag_bytes=REPLAY_BACKLOG_LIMIT,
        # The playbook's "replay stalled" check: received WAL waiting while the last replayed
        # transaction grows old. A stall, not loss — a minute, as for the backlog above.
        rpo_seconds=max(planned.service.rpo_seconds, 60),
    )
    if result.ok:
        return ()
    return (f"{planned.step.playbook}: {result.failure_message()}",)


def fence(run: IncidentRun, fo: FailoverState, planned: PlannedStep) -> StepOutcome:
    """Fence the pair's DC primary and prove, from the clients' side, that it refuses writes."""
    pair = _pair(fo, planned)
    with pair.lock:
        writable_before, seen = primary_accepts_writes(pair.dsns.primary_dsn)
        result = _playbook(run, planned, primary_group=planned.step.targets)
        writable_after, proof = (
            primary_accepts_writes(pair.dsns.primary_dsn)
            if result.ok and not result.unreachable_hosts
            else (None, "")
        )
        verdict = runs.judge_fence(
            unreachable_hosts=result.unreachable_hosts,
            playbook_ok=result.ok,
            playbook_changed=result.changed,
            writable_after=writable_after,
            proof=proof,
            failure=result.failure_message() if not result.ok else "",
        )
        pair.fence_outcome = verdict.outcome
    data = {
        "pair": pair.pair_id,
        "fence_outcome": verdict.outcome.value,
        "before": seen,
        "proof": proof,
        "writable_before": writable_before,
    }
    if verdict.status == FAILED:
        raise FencingFailed(verdict.reason)
    return StepOutcome(verdict.status, verdict.reason, data)


def promote(run: IncidentRun, fo: FailoverState, planned: PlannedStep) -> StepOutcome:
    """Promote the pair's DRC standby once the promotion gate allows it; wait until it takes
    writes; record the recovery point (what the DRC had against the DC's last WAL position)."""
    pair = _pair(fo, planned)
    with pair.lock:
        standby_dsn = pair.dsns.standby_dsn
        role = pg.server_role(standby_dsn)
        if not role.in_recovery:
            # A primary that refuses writes (an earlier attempt promoted it, its write probe
            # failed) is not a finished promotion: the re-run says so instead of going on.
            if not role.writable:
                raise PreconditionFailed(
                    f"the DRC database of {pair.pair_id} is already primary but does not accept"
                    " writes (default_transaction_read_only is on?): mend it, then re-run"
                )
            pair.promoted = True
            return StepOutcome(
                ALREADY_DONE,
                f"the DRC database of {pair.pair_id} is already primary",
                {"pair": pair.pair_id, "timeline": role.timeline},
            )
        decision = rules.may_promote(
            pair.fence_outcome or rules.FenceOutcome.FAILED, fo.isolation_confirmed_by
        )
        run.ledger.append(
            "promotion.gate",
            {
                "pair": pair.pair_id,
                "allowed": decision.allowed,
                "reason": decision.reason,
                "isolation_confirmed_by": fo.isolation_confirmed_by,
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
        if not wait_until(
            lambda: pg.server_role(standby_dsn).writable, planned.step.timeout_seconds
        ):
            raise PreconditionFailed(
                f"the DRC database of {pair.pair_id} was promoted but does not accept writes"
            )
        final_lsn = _dc_final_lsn(run, fo, pair)
        if final_lsn and point.replay_lsn:
            point = rules.RecoveryPoint(
                point.receive_lsn,
                point.replay_lsn,
                point.last_replay_ts,
                final_lsn,
                max(rules.lsn_to_int(final_lsn) - rules.lsn_to_int(point.replay_lsn), 0),
            )
        pair.recovery_point, pair.promoted = point, True
        after = pg.server_role(standby_dsn)
    run.ledger.append(
        "recovery.point", {"pair": pair.pair_id, **point.__dict__, "reason": point.reason}
    )
    return StepOutcome(
        DONE,
        f"the DRC database of {pair.pair_id} is primary and accepts writes; {point.reason}",
        {"pair": pair.pair_id, "timeline": after.timeline, **point.__dict__},
    )


def _dc_final_lsn(run: IncidentRun, fo: FailoverState, pair: PairState) -> str | None:
    """The pair's DC's last WAL position as its fence playbook reported it (set_stats)."""
    fence_steps = {
        p.step.id
        for p in fo.plan.steps
        if p.step.action == "fence" and p.service.database == pair.pair_id
    }
    found: str | None = None
    for _, rec in read_records(run.ledger.directory):
        if isinstance(rec, str) or rec.kind != "ansible.playbook":
            continue
        if rec.data.get("step_id") not in fence_steps:
            continue
        for value in _walk(rec.data.get("stats_data") or {}):
            if isinstance(value, Mapping) and value.get("final_lsn"):
                found = str(value["final_lsn"])
    return found


def _walk(obj: Any) -> Iterator[Any]:
    yield obj
    if isinstance(obj, Mapping):
        for v in obj.values():
            yield from _walk(v)


def switch_traffic(run: IncidentRun, planned: PlannedStep) -> StepOutcome:
    """Send the service's users to the DRC at the front door (its own route on a site with a
    route per service)."""
    target = run.topology.standby_site
    ep = run.topology.service(planned.service.id)
    what = f"the front door's route {ep.route}" if ep.route else "the front door"
    if frontdoor_site(run.topology.frontdoor_url, ep.route) == target:
        return StepOutcome(ALREADY_DONE, f"{what} already routes users to the {target}")
    route = {"route": ep.route} if ep.route else {}
    result = _playbook(run, planned, target_site=target, **route)
    result.raise_for_failure()
    serving = frontdoor_site(run.topology.frontdoor_url, ep.route)
    if serving != target:
        raise PreconditionFailed(f"{what} serves {serving!r} after the switch, not {target!r}")
    return StepOutcome(DONE, f"{what} routes users to the {target}")


def start_service(run: IncidentRun, planned: PlannedStep) -> StepOutcome:
    """Start the standby site's application, unless it already answers healthy and writable."""
    url = run.topology.service(planned.service.id).standby_app_url
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


def verify(run: IncidentRun, fo: FailoverState, planned: PlannedStep) -> StepOutcome:
    """A real write and read through the front door (the service's route) that must land in
    the DRC database of the service's pair. On a re-run, a service verified by an earlier
    attempt, whose every earlier step this attempt found already done (nothing changed since),
    is not verified again: a step is never done twice."""
    ids = [s.id for s in planned.service.steps]
    earlier = ids[: ids.index(planned.step.id)] if planned.step.id in ids else []
    this_attempt = {r.get("step_id"): r.get("status") for r in list(run.results)}
    if planned.step.id in run.done_before and all(
        this_attempt.get(s) == ALREADY_DONE for s in earlier
    ):
        return StepOutcome(
            ALREADY_DONE,
            f"{planned.service.id} was verified in an earlier attempt, and every step before "
            "it is still in place",
        )
    site = run.topology.standby_site
    ep = run.topology.service(planned.service.id)
    route = {"service": planned.service.id} if ep.route else {}
    result = _playbook(run, planned, expected_site=site, **route)
    result.raise_for_failure()
    nomor_aju = f"VERIFY-{run.incident_id}-{run.attempt}-{uuid.uuid4().hex[:6]}"
    t0 = time.monotonic()
    status, row = http_json(
        f"{ep.frontdoor_url}/declarations",
        {
            "nomor_aju": nomor_aju,
            "doc_type": "VERIFY",
            "office": "drp",
            "payload": {"incident": run.incident_id, "service": planned.service.id},
        },
    )
    write_ms = (time.monotonic() - t0) * 1000
    if status != 201 or not isinstance(row, dict) or row.get("site") != site:
        raise PreconditionFailed(f"a write through the front door failed: HTTP {status} {row}")
    t1 = time.monotonic()
    status, rows = http_json(f"{ep.frontdoor_url}/declarations?nomor_aju={nomor_aju}")
    read_ms = (time.monotonic() - t1) * 1000
    if status != 200 or not rows:
        raise PreconditionFailed(f"the declaration just written cannot be read back: {status}")
    pair = fo.pair_of(planned.service)
    dsn = pair.dsns.standby_dsn if pair else run.topology.standby_dsn
    stored = pg.query(dsn, "SELECT site FROM declarations WHERE nomor_aju = %s", (nomor_aju,))
    if stored != [(site,)]:
        raise PreconditionFailed(f"the verification write is not in the {site} database")
    return StepOutcome(
        DONE,
        f"a declaration written and read through the front door landed in the {site} database",
        {"nomor_aju": nomor_aju, "write_ms": round(write_ms, 1), "read_ms": round(read_ms, 1)},
    )


def custom(run: IncidentRun, planned: PlannedStep) -> StepOutcome:
    """A runbook step with no built-in checks: its playbook decides, and reports changes."""
    result = _playbook(run, planned)
    result.raise_for_failure()
    return StepOutcome(
        DONE if result.changed else ALREADY_DONE,
        f"{planned.step.playbook}: {'changed' if result.changed else 'no change'}",
    )


# -- the outcome -------------------------------------------------------------------------------
def outcome(run: IncidentRun, fo: FailoverState, status: str, reason: str = "") -> FailoverOutcome:
    """What the failover did, per service and per pair, against the clocks."""
    achieved = fo.clock.achieved if status == "verified" else None
    pairs = tuple(
        PairOutcome(
            pair=p.pair_id,
            services=p.services,
            fence_outcome=p.fence_outcome.value if p.fence_outcome else None,
            promoted=p.promoted,
            rpo=_rpo(p.recovery_point),
        )
        for p in fo.pairs.values()
    )
    services = tuple(
        ServiceOutcome(
            service=s.service.id,
            status=s.state.value,
            reason=s.reason,
            rto_budget_s=s.clock.budget.total_seconds(),
            achieved_rto_s=round(s.achieved.total_seconds(), 3) if s.achieved else None,
            rto_verdict=s.clock.verdict() if s.achieved else "",
            pair=s.service.database,
            started_at=s.started_at.isoformat() if s.started_at else None,
            ended_at=s.ended_at.isoformat() if s.ended_at else None,
        )
        for s in fo.services.values()
    )
    first = pairs[0] if pairs else None
    return FailoverOutcome(
        **run.outcome_fields(status, reason),
        declared_at=fo.clock.declared_at.isoformat(),
        achieved_rto_s=round(achieved.total_seconds(), 3) if achieved else None,
        rto_budget_s=runs.tightest_budget(
            s.service.rto_minutes for s in fo.services.values()
        ).total_seconds(),
        rto_verdict=fo.clock.verdict(),
        rpo=first.rpo if first else None,
        fence_outcome=first.fence_outcome if first else None,
        services=services,
        pairs=pairs,
        selection=fo.plan.selection.as_dict(),
    )


def _rpo(point: rules.RecoveryPoint | None) -> dict[str, Any] | None:
    return None if point is None else {**point.__dict__, "reason": point.reason}


def facts(run: IncidentRun, fo: FailoverState, out: FailoverOutcome) -> list[str]:
    """The summary's first lines (the Prefect artifact and failover-report.md)."""
    selection = fo.plan.selection
    moved = "the whole site" if selection.whole_site else ", ".join(selection.services)
    lines = [
        f"Mode: **{run.mode.value}**, attempt {run.attempt}, declared by {fo.declared_by} at "
        f"{fo.clock.declared_at:%Y-%m-%d %H:%M:%S} UTC",
        f"Moved: {moved}",
        f"RTO (the incident): {fo.clock.verdict()}",
    ]
    for s in out.services:
        rto = f"{s.achieved_rto_s:.1f} s of {s.rto_budget_s:.0f} s" if s.achieved_rto_s else "-"
        lines.append(f"Service {s.service}: {s.status} — RTO {rto}; {s.reason}")
    for p in out.pairs:
        rpo = (p.rpo or {}).get("reason", "not recorded")
        lines.append(f"Pair {p.pair}: fence {p.fence_outcome or '-'}; RPO: {rpo}")
    return lines


def dry_run_report(rb: Runbook, plan: RecoveryPlan, runbook: str) -> dict[str, Any]:
    """What a failover would run, with predicted times; changes nothing, writes nothing."""
    checks = [
        "classify the signals and check the declarer's role (Pasal 4-7)",
        f"approval gate (timeout {rb.approval.timeout_minutes} min; two people in real mode)",
        "pre-flight per database pair: DRC reachable, standby streaming, replay backlog within "
        "a segment, every playbook passes --syntax-check",
        "fence per database pair: prove the DC primary refuses writes (or a recorded "
        "confirmation when it is unreachable) before any promotion",
        "verify per service: a write and a read through the front door that land in the DRC "
        "database",
        f"services run as the graph allows: at most {plan.policy.max_parallel} at once",
    ]
    rows = [
        {
            "position": p.position,
            "service": p.service.id,
            "step_id": p.step.id,
            "name": p.step.name,
            "action": p.step.action,
            "playbook": p.step.playbook,
            "targets": p.step.targets,
            "budget_s": p.step.budget_seconds,
            "starts_at_s": p.starts_at_seconds,
            "cumulative_s": p.cumulative_seconds,
        }
        for p in plan.steps
    ]
    return {
        "status": "dry_run",
        "runbook": runbook,
        "steps": rows,
        "checks": checks,
        "selection": plan.selection.as_dict(),
        "predicted_rto_s": plan.predicted_rto_seconds,
        "predicted_rto_serial_s": plan.predicted_rto_serial_seconds,
    }
