"""Planned failback (switchover) to the DC with zero data loss (deployment ``failback``).

After a failover and ``drp resync`` the DRC is the primary and the DC streams from it. This flow
switches back: approve, fence the DRC cleanly (its final checkpoint is the end of its WAL), prove
the DC replayed at least that far, promote the DC, rejoin the DRC as its standby (slot
``drc_db``), switch the front door to the DC and verify — with its own RTO clock from the
approval to the verified service.

Thin on purpose: the steps live in :mod:`drp.tasks.failback`, the rules in
:mod:`drp.domain.failback`. The failback belongs to an incident: its ledger is
``<evidence>/<incident>/failback/``, beside the failover's and the resync's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.exceptions import FlowPauseTimeout
from prefect.runtime import flow_run as current_run

from drp.domain import failback as rules
from drp.domain.failover import Mode
from drp.domain.rto import RecoveryTimeClock
from drp.domain.runbook import Runbook
from drp.errors import DrpError, PreconditionFailed
from drp.flows import load
from drp.ledger import Ledger
from drp.notify import Notifier, build_notifiers, notify_safely
from drp.runbooks import load_runbook
from drp.settings import Settings
from drp.tasks import failback as steps
from drp.tasks import gates
from drp.tasks import incident as incidents
from drp.tasks.evidence_archive import archive_after_run_task
from drp.tasks.failover import frontdoor_site
from drp.tasks.parameters import ModeName
from drp.tasks.steps import FAILED, StepOutcome, crash_if_asked
from drp.topology import resolve


class FailbackStopped(DrpError):
    """The failback stopped (a refusal or a failed step); the reason says which and what to do."""


def _run_name() -> str:
    """``failback/<incident>/<mode>``."""
    p = current_run.parameters
    return incidents.run_name("failback", p.get("incident_id"), p.get("mode"))


@flow(name="failback", flow_run_name=_run_name, validate_parameters=True)
def failback(
    incident_id: str,
    mode: ModeName,
    approved_by: str | None = None,
    runbook: str = "runbooks/lab.yaml",
    declared_by: str | None = None,
    approval_code: str | None = None,
    approval_timeout_s: int | None = None,
) -> dict[str, Any]:
    """Switch service back to the DC with zero data loss; returns the outcome (also in the
    ledger). Without ``approved_by`` the run pauses for approval in the Prefect UI. ``mode``
    has no default: whoever starts it says whether the incident is a drill or real."""
    logger = get_run_logger()
    if not incident_id.strip():
        raise PreconditionFailed("incident_id is required: a failback belongs to an incident")
    if approved_by is not None and not approved_by.strip():
        raise PreconditionFailed(
            "approved_by is empty: name the approver, or leave it out to approve in the Prefect UI"
        )
    settings = Settings()
    rb = load_runbook(runbook)
    topology = resolve(rb, Path(rb.inventory), settings)
    ledger_dir = incidents.ledger_dir(settings.evidence_dir, incident_id, "failback")
    prior = incidents.prior_attempts(ledger_dir)
    seen = steps.observe_sites(topology)
    if prior and prior.closed:
        if rules.already_failed_back(seen) and frontdoor_site(topology.frontdoor_url) == "dc":
            logger.info("incident %s: failback already completed; the DC serves", incident_id)
            return {
                "incident_id": incident_id,
                "status": "already_completed",
                "ledger": str(ledger_dir),
            }
        raise FailbackStopped(
            f"incident {incident_id}: its failback was completed, but the DC is no longer the "
            "serving primary; open a new incident for the new fault"
        )
    opened = incidents.open_flow_ledger(
        ledger_dir, incident_id, "failback", {"runbook": runbook}, topology.known_secrets, prior
    )
    ledger, attempt = opened.ledger, opened.attempt
    notifiers = build_notifiers(
        ledger,
        logger,
        flow="failback",
        incident_id=incident_id,
        mode=mode,
        settings=settings,
        runbook=rb,
    )
    if not (prior and prior.completed_steps):
        # Nothing changed yet: the sites must be in the state a failback starts from. A refusal
        # is evidence too (the ledger stays open: a later attempt checks again).
        gate = rules.check_precondition(seen)
        if not gate.allowed:
            ledger.append(
                "failback.refused",
                {"attempt": attempt, "reason": gate.reason, "sites": seen.__dict__},
            )
            raise FailbackStopped(f"failback {incident_id} refused: {gate.reason}")
    ledger.append(
        "attempt.start",
        {
            "attempt": attempt,
            "flow_run_id": str(current_run.id),
            "mode": mode,
            "runbook": runbook,
            "sites": seen.__dict__,
            "completed_before": list(prior.completed_steps) if prior else [],
        },
    )
    # The clock runs from the approval (an earlier attempt's, on a re-run) to verified service.
    reused = _normalised(prior.approval) if prior and prior.approval else None
    approval = reused or _approve(
        notifiers,
        ledger,
        incident_id,
        rb,
        Mode(mode),
        declared_by,
        approved_by,
        approval_code,
        approval_timeout_s,
    )
    approved_at = datetime.fromisoformat(approval["answered_at"])
    run = steps.FailbackRun(
        incident_id=incident_id,
        runbook=rb,
        topology=topology,
        ledger=ledger,
        clock=RecoveryTimeClock(
            declared_at=approved_at,
            budget=timedelta(minutes=min(s.rto_minutes for s in rb.services)),
        ),
        mode=Mode(mode),
        declared_by=approval["declared_by"],
        approved_by=approval["approver"],
        logger=logger,
        attempt=attempt,
        notifiers=notifiers,
    )
    bodies: dict[str, Callable[[], StepOutcome]] = {
        "approve": lambda: steps.approve(run, approval, reused=reused is not None),
        "fence_drc": lambda: steps.fence_drc(run),
        "catch_up": lambda: steps.catch_up(run),
        "promote_dc": lambda: steps.promote_dc(run),
        "rejoin_drc": lambda: steps.rejoin_drc(run),
        "switch": lambda: steps.switch(run),
        "verify": lambda: steps.verify(run),
    }
    try:
        for step in steps.STEPS:
            outcome = incidents.step_task(
                f"failback:{step.id}",
                step.timeout_s,
                lambda r, step=step: steps.run_step(r, step, bodies[step.id]),
            )(run)
            if outcome.status == FAILED:
                raise FailbackStopped(f"{step.name}: {outcome.reason}")
            crash_if_asked(ledger, step.id)
        achieved = run.clock.stop(datetime.now(UTC))
        result = _outcome(run, "verified", achieved)
        ledger.append("failback.completed", result)
        notify_safely(
            notifiers,
            ledger,
            "failback.completed",
            f"{incident_id}: service back at the DC; {run.clock.verdict()}",
            incident_id=incident_id,
            flow="failback",
        )
        ledger.close({"status": "verified", "achieved_rto_s": result["achieved_rto_s"]})
        result["ledger_head"] = ledger.head
        result["archive"] = archive_after_run_task(rb, ledger.directory)
        _publish_summary(run, result)
        result["documents"] = load("reports").publish_after_flow(incident_id, formats=["md"])
        return result
    except DrpError as exc:
        result = _outcome(run, "stopped", None, str(exc))
        ledger.append("failback.stopped", {"reason": str(exc), "steps": run.results})
        notify_safely(
            notifiers,
            ledger,
            "failback.stopped",
            f"{incident_id}: failback stopped — {exc}",
            incident_id=incident_id,
            flow="failback",
        )
        _publish_summary(run, result)
        raise FailbackStopped(
            f"failback {incident_id} stopped: {exc} (ledger: {ledger_dir})"
        ) from exc


def _normalised(approval: dict[str, Any]) -> dict[str, Any]:
    """An approval recorded by an earlier version (``approved_by``/``at``) in today's shape."""
    out = dict(approval)
    out.setdefault("approver", out.get("approved_by", ""))
    out.setdefault("answered_at", out.get("at"))
    out.setdefault("declared_by", out["approver"])
    out.setdefault("channel", "cli")
    return out


def _approve(
    notifiers: list[Notifier],
    ledger: Ledger,
    incident_id: str,
    rb: Runbook,
    mode: Mode,
    declared_by: str | None,
    approved_by: str | None,
    approval_code: str | None,
    timeout_override_s: int | None,
) -> dict[str, Any]:
    """The failback's human gate: the failover's rules, in the UI unless approved up front.
    Whoever asks for the failback declares it (defaulting to the approver when given)."""
    timeout_s = rb.approval.timeout_minutes * 60
    if timeout_override_s is not None:
        timeout_s = max(1, min(timeout_s, timeout_override_s))

    def _notify(event: str, text: str) -> None:
        notify_safely(notifiers, ledger, event, text, incident_id=incident_id, flow="failback")

    settings = Settings()
    try:
        return gates.ask_approval(
            ledger=ledger,
            notify=_notify,
            facts=gates.failback_facts(
                settings.evidence_dir,
                incident_id,
                mode,
                declared_by or approved_by or "operator",
                60.0 * min(s.rto_minutes for s in rb.services),
            ),
            roster=rb.roster,
            approved_by=approved_by,
            approval_code=approval_code,
            timeout_s=timeout_s,
            two_person_rule=rb.approval.two_person_rule,
            checker=gates.ProofChecker.from_settings(settings, rb),
            flow_run_id=str(current_run.id),
        )
    except (gates.GateRefused, FlowPauseTimeout) as exc:
        reason = f"no answer within {timeout_s} s" if isinstance(exc, FlowPauseTimeout) else exc
        ledger.append("failback.stopped", {"reason": str(reason), "steps": []})
        raise FailbackStopped(f"failback {incident_id} stopped: {reason}") from exc


def _outcome(
    run: steps.FailbackRun, status: str, achieved: timedelta | None, reason: str = ""
) -> dict[str, Any]:
    proof = run.proof
    return {
        "incident_id": run.incident_id,
        "status": status,
        "reason": reason,
        "mode": run.mode.value,
        "attempt": run.attempt,
        "approved_at": run.clock.declared_at.isoformat(),
        "achieved_rto_s": round(achieved.total_seconds(), 3) if achieved else None,
        "rto_budget_s": run.clock.budget.total_seconds(),
        "rto_verdict": run.clock.verdict(),
        "final_lsn": run.final_lsn,
        "replay_lsn": proof.replay_lsn if proof else None,
        "zero_loss": proof.reason if proof else None,
        "rejoin_method": run.rejoin_method,
        "steps": run.results,
        "ledger": str(run.ledger.directory),
    }


def _publish_summary(run: steps.FailbackRun, outcome: dict[str, Any]) -> None:
    """The run's story for the Prefect UI and a report file beside the ledger, with the
    timeline (also a table artifact of its own)."""
    evidence_dir = run.ledger.directory.parent.parent  # <evidence>/<incident>/failback
    timeline = incidents.publish_timeline(evidence_dir, run.incident_id, "failback")
    lines = [
        f"# Failback {run.incident_id} to the DC — {outcome['status']}",
        "",
        f"- Approved by {run.approved_by} ({run.mode.value}) at "
        f"{run.clock.declared_at:%Y-%m-%d %H:%M:%S} UTC",
        f"- RTO: {run.clock.verdict()}",
        f"- Data loss: {outcome['zero_loss'] or '-'}",
        f"- DRC rejoined by: {outcome['rejoin_method'] or '-'}",
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
            "failback",
            run.incident_id,
            "\n".join(lines) + "\n",
            f"Failback {run.incident_id}",
        )
    )
