"""DC-to-DRC failover (deployment ``failover``): declare, approve, pre-flight, fence, promote,
switch traffic, bring services up and verify them, close — with the RTO clock running.

Thin on purpose: the steps live in :mod:`drp.tasks.failover`, the rules in
:mod:`drp.domain.failover`. This file sequences them as Prefect tasks, runs the human gates
(pause for input), and publishes the run's artifacts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import FlowPauseTimeout
from prefect.runtime import flow_run as current_run

from drp.domain import failover as rules
from drp.domain.classification import (
    check_declarer,
    classify,
    declare,
    signals_from_mapping,
)
from drp.domain.plan import PlannedStep
from drp.domain.plan import plan as make_plan
from drp.domain.rto import RecoveryTimeClock
from drp.domain.runbook import Runbook
from drp.errors import DrpError, PreconditionFailed
from drp.flows import load
from drp.lab import facility
from drp.lab.config import LabConfig
from drp.ledger import Ledger
from drp.notify import build_notifiers
from drp.runbooks import load_runbook
from drp.settings import Settings
from drp.tasks import failover as steps
from drp.tasks import gates
from drp.tasks import incident as incidents
from drp.tasks.evidence_archive import archive_after_run_task
from drp.tasks.parameters import CategoryName, ModeName, RoleName
from drp.tasks.steps import crash_if_asked
from drp.topology import resolve


class FailoverStopped(DrpError):
    """The failover stopped on purpose (a gate refused or timed out); the reason says which."""


def _run_name(incident_id: str | None = None, category: str | None = None) -> str:
    """``failover/<incident>/<category>/<mode>``: the category declared, or ``from-signals``
    until the signals are classified (then the run is renamed with what they showed)."""
    p = current_run.parameters
    return incidents.run_name(
        "failover",
        incident_id or p.get("incident_id"),
        category or p.get("category") or "from-signals",
        p.get("mode"),
    )


@flow(name="failover", flow_run_name=_run_name, validate_parameters=True)
def failover(
    mode: ModeName,
    runbook: str = "runbooks/lab.yaml",
    declared_by: str = "",
    declarer_role: RoleName = "direktur",
    category: CategoryName | None = None,
    signals: dict[str, Any] | None = None,
    approved_by: str | None = None,
    approval_code: str | None = None,
    confirm_dc_isolated_by: str | None = None,
    override_preflight_by: str | None = None,
    dry_run: bool = False,
    incident_id: str | None = None,
    detected_at: str | None = None,
    consulted_it_directorate: bool = True,
    approval_timeout_s: int | None = None,
) -> dict[str, Any]:
    """Fail service over from the DC to the DRC; returns the outcome (also in the ledger).

    ``mode`` has no default: whoever starts a failover (the UI's form asks) says whether it is
    a drill or the real thing, since each writes its own documents. ``category`` is one of
    ``parsial_lokal``, ``parsial_nasional``, ``katastropik`` (or ``local``, ``national``,
    ``catastrophic``); left out, the signals decide.
    """
    logger = get_run_logger()
    settings = Settings()
    rb = load_runbook(runbook)
    plan = make_plan(rb)
    run_mode = rules.Mode(mode)
    if dry_run:
        report = steps.dry_run_report(rb, plan, runbook)
        for row in report["steps"]:
            logger.info(
                "would run %(position)s. %(name)s (%(playbook)s on %(targets)s), "
                "budget %(budget_s)s s, cumulative %(cumulative_s)s s",
                row,
            )
        return report
    if not declared_by.strip():
        raise PreconditionFailed("declared_by is required: who declares the disaster")

    topology = resolve(rb, Path(rb.inventory), settings)
    if not incident_id:
        incident_id = steps.new_incident_id()
        incidents.name_run(_run_name(incident_id))
    ledger_dir = incidents.ledger_dir(settings.evidence_dir, incident_id, "failover")
    prior = incidents.prior_attempts(ledger_dir)
    if prior and prior.closed:
        logger.info("incident %s: failover already completed; nothing to do", incident_id)
        return {
            "incident_id": incident_id,
            "status": "already_completed",
            "ledger": str(ledger_dir),
        }
    opened = incidents.open_flow_ledger(
        ledger_dir, incident_id, "failover", {"runbook": runbook}, topology.known_secrets, prior
    )
    ledger, attempt = opened.ledger, opened.attempt
    ledger.append(
        "attempt.start",
        {
            "attempt": attempt,
            "flow_run_id": str(current_run.id),
            "mode": run_mode.value,
            "runbook": runbook,
            "completed_before": list(prior.completed_steps) if prior else [],
        },
    )

    # 1. Declare (or reuse the declaration of an earlier attempt: the clock does not restart).
    if prior and prior.declaration:
        decl = prior.declaration
        ledger.append("declaration.reused", {"declared_at": decl["declared_at"]})
    else:
        decl = declare_disaster(
            rb,
            settings,
            ledger,
            declared_by,
            declarer_role,
            category,
            signals,
            detected_at,
            consulted_it_directorate,
            run_mode,
        )
    if not category:  # classified from the signals: the run's name says what they showed
        incidents.name_run(_run_name(incident_id, decl["category"]))
    clock = RecoveryTimeClock(
        declared_at=datetime.fromisoformat(decl["declared_at"]),
        budget=timedelta(minutes=min(s.rto_minutes for s in rb.services)),
        detected_at=datetime.fromisoformat(decl["detected_at"])
        if decl.get("detected_at")
        else None,
    )
    run = steps.FailoverRun(
        incident_id=incident_id,
        runbook=rb,
        plan=plan,
        topology=topology,
        ledger=ledger,
        clock=clock,
        mode=run_mode,
        declared_by=decl["declared_by"],
        notifiers=[],
        logger=logger,
        attempt=attempt,
    )
    run.notifiers.extend(
        build_notifiers(
            ledger,
            logger,
            flow="failover",
            incident_id=incident_id,
            mode=run_mode.value,
            settings=settings,
            runbook=rb,
        )
    )
    run.notify(
        "incident.declared",
        f"{incident_id}: {decl['category']} declared by "
        f"{decl['declared_by']} ({run_mode.value}); RTO clock started",
    )

    progress_id = create_progress_artifact(
        progress=0.0,
        key=incidents.artifact_key("failover-progress", incident_id),
        description=f"Failover {incident_id}: steps done",
    )

    try:
        # 2. Approve.
        if prior and prior.approval:
            ledger.append("approval.reused", prior.approval)
        else:
            _approve(run, rb, decl, approved_by, approval_code, approval_timeout_s)

        # 3-7. The runbook's steps, in plan order.
        total = len(plan.steps)
        for index, planned in enumerate(plan.steps, start=1):
            body = _body(run, planned, override_preflight_by, confirm_dc_isolated_by)
            outcome = incidents.step_task(
                f"{planned.step.action}:{planned.step.id}",
                planned.step.timeout_seconds + 30,
                lambda r, planned=planned, body=body: steps.run_step(r, planned, body),
            )(run)
            if outcome.status == steps.FAILED:
                raise FailoverStopped(f"{planned.step.name}: {outcome.reason}")
            if (
                planned.step.action == "fence"
                and run.fence_outcome is rules.FenceOutcome.UNREACHABLE
                and not confirm_dc_isolated_by
            ):
                confirm_dc_isolated_by = _confirm_isolation(run, rb, approved_by)
            update_progress_artifact(progress_id, 100.0 * index / total)
            crash_if_asked(ledger, planned.step.id)

        # 8. Close.
        achieved = clock.stop(datetime.now(UTC))
        outcome = _outcome(run, "verified", achieved)
        ledger.append("failover.completed", outcome)
        run.notify(
            "failover.completed", f"{incident_id}: service verified at the DRC; {clock.verdict()}"
        )
        ledger.close({"status": "verified", "achieved_rto_s": outcome["achieved_rto_s"]})
        outcome["ledger_head"] = ledger.head
        outcome["archive"] = archive_after_run_task(rb, ledger.directory)
        _publish_summary(run, outcome)
        outcome["documents"] = _documents(incident_id)
        return outcome
    except (DrpError, FlowPauseTimeout) as exc:
        reason = (
            f"no answer within the approval timeout: {exc}"
            if isinstance(exc, FlowPauseTimeout)
            else str(exc)
        )
        ledger.append("failover.stopped", {"reason": reason, "steps": run.results})
        run.notify("failover.stopped", f"{incident_id}: stopped — {reason}")
        _publish_summary(run, _outcome(run, "stopped", None, reason))
        _documents(incident_id)
        raise FailoverStopped(
            f"failover {incident_id} stopped: {reason} (ledger: {ledger_dir})"
        ) from exc


def _documents(incident_id: str) -> dict[str, Any] | None:
    """The regulation's documents so far (Markdown; every format with ``drp report``),
    published as artifacts on the incident's run and indexed in the registry; never fails the
    failover. In a drill the drill's run publishes them at its end."""
    return load("reports").publish_after_flow(incident_id, formats=["md"])


@task(name="declare", timeout_seconds=60, cache_policy=NO_CACHE, retries=0)
def declare_disaster(
    rb: Runbook,
    settings: Settings,
    ledger: Ledger,
    declared_by: str,
    declarer_role: str,
    category: str | None,
    signals: dict[str, Any] | None,
    detected_at: str | None,
    consulted: bool,
    mode: rules.Mode,
) -> dict[str, Any]:
    """Classify what is observed (plus what was given), check the declarer, record it."""
    observed = dict(signals or {})
    if rb.environment == "lab":
        for key, value in facility.read(LabConfig.from_env(settings.lab_root)).items():
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
    now = datetime.now(UTC)
    record = {
        "declared_by": declared_by,
        "declarer_role": declarer_role,
        "category": disaster.category.value,
        "declared_at": now.isoformat(),
        "detected_at": detected_at,
        "mode": mode.value,
        "triggers": [{"article": t.article, "reason": t.reason} for t in disaster.triggers],
        "basis": observed.get("basis"),
        "notes": list(assessment.notes),
        "stages": [s.id for s in disaster.stages],
        "coordination": [p.id for p in disaster.coordination],
        "role_check": decision.reason,
    }
    if not decision.allowed:
        ledger.append("declaration.refused", record)
        raise PreconditionFailed(f"declaration refused: {decision.reason}")
    ledger.append("incident.declared", record)
    return record


def _approve(
    run: steps.FailoverRun,
    rb: Runbook,
    decl: dict[str, Any],
    approved_by: str | None,
    approval_code: str | None,
    timeout_override_s: int | None,
) -> None:
    """The human gate. The runbook sets the timeout; a run may shorten it, never lengthen it."""
    timeout_s = rb.approval.timeout_minutes * 60
    if timeout_override_s is not None:
        timeout_s = max(1, min(timeout_s, timeout_override_s))
    try:
        gates.ask_approval(
            ledger=run.ledger,
            notify=run.notify,
            facts=gates.facts_from_declaration(
                run.incident_id, "failover", run.mode, decl, run.clock.budget.total_seconds()
            ),
            roster=rb.roster,
            approved_by=approved_by,
            approval_code=approval_code,
            timeout_s=timeout_s,
            two_person_rule=rb.approval.two_person_rule,
            checker=gates.ProofChecker.from_settings(Settings(), rb),
            flow_run_id=str(current_run.id),
        )
    except gates.GateRefused as exc:
        raise FailoverStopped(str(exc)) from exc


def _confirm_isolation(run: steps.FailoverRun, rb: Runbook, approved_by: str | None) -> str:
    """The DC is unreachable: promotion waits for a person to confirm it is down or isolated."""
    if approved_by is not None:  # non-interactive: the CLI must have passed the confirmation
        raise FailoverStopped(
            "the DC cannot be reached and no confirmation that it is down or isolated was given; "
            "nothing was promoted (re-run with --confirm-dc-isolated NAME once checked)"
        )
    try:
        return gates.ask_isolation(
            ledger=run.ledger,
            notify=run.notify,
            incident_id=run.incident_id,
            roster=rb.roster,
            timeout_s=rb.approval.timeout_minutes * 60,
            checker=gates.ProofChecker.from_settings(Settings(), rb),
            flow_run_id=str(current_run.id),
        )
    except gates.GateRefused as exc:
        raise FailoverStopped(str(exc)) from exc


def _body(
    run: steps.FailoverRun,
    planned: PlannedStep,
    override_by: str | None,
    confirm_by: str | None,
) -> Callable[[], steps.StepOutcome]:
    """The step function for a runbook step's action."""
    action = planned.step.action
    if action == "check":
        return lambda: steps.preflight(run, planned, override_by)
    if action == "fence":
        return lambda: steps.fence(run, planned)
    if action == "promote":
        return lambda: steps.promote(run, planned, confirm_by)
    if action == "switch_traffic":
        return lambda: steps.switch_traffic(run, planned)
    if action == "start":
        return lambda: steps.start_service(run, planned)
    if action == "verify":
        return lambda: steps.verify(run, planned)
    return lambda: steps.custom(run, planned)


def _outcome(
    run: steps.FailoverRun, status: str, achieved: timedelta | None, reason: str = ""
) -> dict[str, Any]:
    point = run.recovery_point
    return {
        "incident_id": run.incident_id,
        "status": status,
        "reason": reason,
        "mode": run.mode.value,
        "attempt": run.attempt,
        "declared_at": run.clock.declared_at.isoformat(),
        "achieved_rto_s": round(achieved.total_seconds(), 3) if achieved else None,
        "rto_budget_s": run.clock.budget.total_seconds(),
        "rto_verdict": run.clock.verdict(),
        "rpo": None if point is None else {**point.__dict__, "reason": point.reason},
        "fence_outcome": run.fence_outcome.value if run.fence_outcome else None,
        "steps": run.results,
        "ledger": str(run.ledger.directory),
    }


def _publish_summary(run: steps.FailoverRun, outcome: dict[str, Any]) -> None:
    """The run's story for the Prefect UI: who declared and approved, how long the gates made
    the recovery wait, the RTO, the RPO, the steps against their budgets, the timeline (also a
    table artifact of its own), the ledger."""
    evidence_dir = run.ledger.directory.parent.parent  # <evidence>/<incident>/failover
    timeline = incidents.publish_timeline(evidence_dir, run.incident_id, "failover")
    lines = [
        f"# Failover {run.incident_id} — {outcome['status']}",
        "",
        f"- Mode: **{run.mode.value}**, attempt {run.attempt}, declared by {run.declared_by}"
        f" at {run.clock.declared_at:%Y-%m-%d %H:%M:%S} UTC",
        f"- RTO: {run.clock.verdict()}",
        f"- RPO: {outcome['rpo']['reason'] if outcome.get('rpo') else 'not recorded'}",
        f"- Fence: {outcome.get('fence_outcome') or '-'}",
        f"- Ledger: `{run.ledger.directory}` (head `{run.ledger.head[:16]}…`)",
    ]
    if outcome.get("reason"):
        lines.append(f"- Stopped because: {outcome['reason']}")
    lines += ["", "## Who and when", "", *timeline.summary()]
    lines += ["", "## Steps against their budgets", "", *incidents.steps_table(run.results)]
    lines += ["", "## Timeline", "", timeline.table_markdown()]
    outcome["report"] = str(
        incidents.publish_report(
            run.ledger,
            "failover",
            run.incident_id,
            "\n".join(lines) + "\n",
            f"Failover {run.incident_id} ({run.mode.value}): {outcome['status']} — "
            "who declared and approved, the gate waits, RTO, steps, timeline",
        )
    )
