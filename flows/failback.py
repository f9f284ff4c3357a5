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

from prefect import Task, flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run as current_run

from drp.domain import failback as rules
from drp.domain.failover import Mode
from drp.domain.rto import RecoveryTimeClock
from drp.errors import DrpError, PreconditionFailed
from drp.ledger import Ledger
from drp.runbooks import load_runbook
from drp.settings import Settings
from drp.tasks import failback as steps
from drp.tasks.failover import frontdoor_site, read_prior
from drp.tasks.steps import FAILED, StepOutcome
from drp.topology import resolve


class FailbackStopped(DrpError):
    """The failback stopped (a refusal or a failed step); the reason says which and what to do."""


def _run_name() -> str:
    p = current_run.parameters
    return f"failback/{p.get('incident_id') or 'no-incident'}/{p.get('mode', 'drill')}"


def _step_task(step: steps.FailbackStep, body: Callable[[], StepOutcome]) -> Task:
    """Each step as a Prefect task with its hard timeout and no caching (it has side effects)."""

    @task(name=f"failback:{step.id}", timeout_seconds=step.timeout_s, cache_policy=NO_CACHE)
    def _run(run: steps.FailbackRun) -> StepOutcome:
        return steps.run_step(run, step, body)

    return _run


@flow(name="failback", flow_run_name=_run_name, validate_parameters=True)
def failback(
    incident_id: str,
    approved_by: str,
    runbook: str = "runbooks/lab.yaml",
    declared_by: str | None = None,
    mode: str = "drill",
) -> dict[str, Any]:
    """Switch service back to the DC with zero data loss; returns the outcome (also in the
    ledger). ``approved_by`` is required: this increment has no UI approval pause."""
    logger = get_run_logger()
    if not incident_id.strip():
        raise PreconditionFailed("incident_id is required: a failback belongs to an incident")
    if not approved_by.strip():
        raise PreconditionFailed("approved_by is required (no UI approval for failback yet)")
    if mode not in ("drill", "real"):
        raise PreconditionFailed(f"mode {mode!r}: choose drill or real")
    settings = Settings()
    rb = load_runbook(runbook)
    topology = resolve(rb, Path(rb.inventory), settings)
    ledger_dir = settings.evidence_dir / incident_id / "failback"
    prior = read_prior(ledger_dir) if (ledger_dir / "manifest.json").exists() else None
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
    if not prior:
        gate = rules.check_precondition(seen)
        if not gate.allowed:
            raise FailbackStopped(f"failback {incident_id} refused: {gate.reason}")
        ledger = Ledger.create(
            ledger_dir,
            incident_id,
            {"flow": "failback", "runbook": runbook},
            known_secrets=topology.known_secrets,
        )
    else:
        ledger = Ledger.open(
            ledger_dir, known_secrets=topology.known_secrets, reason="failback re-run"
        )
    attempt = (prior.attempts if prior else 0) + 1
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
    approval = prior.approval if prior else None
    approved_at = datetime.fromisoformat(approval["at"]) if approval else datetime.now(UTC)
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
        declared_by=declared_by or approved_by,
        approved_by=approved_by,
        logger=logger,
        attempt=attempt,
    )
    bodies: dict[str, Callable[[], StepOutcome]] = {
        "approve": lambda: steps.approve(run, approval, approved_at),
        "fence_drc": lambda: steps.fence_drc(run),
        "catch_up": lambda: steps.catch_up(run),
        "promote_dc": lambda: steps.promote_dc(run),
        "rejoin_drc": lambda: steps.rejoin_drc(run),
        "switch": lambda: steps.switch(run),
        "verify": lambda: steps.verify(run),
    }
    try:
        for step in steps.STEPS:
            outcome = _step_task(step, bodies[step.id])(run)
            if outcome.status == FAILED:
                raise FailbackStopped(f"{step.name}: {outcome.reason}")
        achieved = run.clock.stop(datetime.now(UTC))
        result = _outcome(run, "verified", achieved)
        ledger.append("failback.completed", result)
        ledger.close({"status": "verified", "achieved_rto_s": result["achieved_rto_s"]})
        result["ledger_head"] = ledger.head
        _publish_summary(run, result)
        return result
    except DrpError as exc:
        result = _outcome(run, "stopped", None, str(exc))
        ledger.append("failback.stopped", {"reason": str(exc), "steps": run.results})
        _publish_summary(run, result)
        raise FailbackStopped(
            f"failback {incident_id} stopped: {exc} (ledger: {ledger_dir})"
        ) from exc


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
    """The run's story for the Prefect UI and a report file beside the ledger."""
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
    lines += ["", "| step | status | duration | budget | reason |", "|---|---|---|---|---|"]
    for row in run.results:
        lines.append(
            f"| {row['name']} | {row['status']} | {row['duration_s']:.1f} s | "
            f"{row['budget_s']} s | {row['reason'].replace('|', '/')} |"
        )
    markdown = "\n".join(lines) + "\n"
    report = run.ledger.directory.parent / "failback-report.md"
    report.write_text(markdown)
    outcome["report"] = str(report)
    key = "".join(c if c.isalnum() else "-" for c in run.incident_id.lower())
    create_markdown_artifact(
        markdown=markdown, key=f"failback-{key}", description=f"Failback {run.incident_id}"
    )
