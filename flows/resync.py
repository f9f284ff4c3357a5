"""Resync after recovery (deployment ``resync``, Pasal 11): rebuild the old DC primary as a
streaming standby of the promoted DRC — observe, decide (rewind, standby or base backup), rejoin,
verify it catches up, compare the takeover settings, record the outcome.

Thin on purpose: the steps live in :mod:`drp.tasks.resync`, the rules in
:mod:`drp.domain.resync`. The resync belongs to an incident: its ledger is
``<evidence>/<incident>/resync/``, beside the failover's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run as current_run

from drp.errors import DrpError, PreconditionFailed
from drp.flows import load
from drp.notify import build_notifiers, notify_safely
from drp.runbooks import load_runbook
from drp.settings import Settings
from drp.tasks import incident as incidents
from drp.tasks import manual as manual_steps
from drp.tasks import manual_resync
from drp.tasks import resync as steps
from drp.tasks.evidence_archive import archive_after_run_task
from drp.tasks.parameters import ModeName
from drp.tasks.steps import FAILED, StepOutcome, crash_if_asked
from drp.topology import resolve


class ResyncStopped(DrpError):
    """The resync stopped (a refusal or a failed step); the reason says which and what to do."""


def _run_name() -> str:
    """``resync/<incident>/<mode>``."""
    p = current_run.parameters
    return incidents.run_name("resync", p.get("incident_id"), p.get("mode"))


@flow(name="resync", flow_run_name=_run_name, validate_parameters=True)
def resync(
    incident_id: str,
    mode: ModeName,
    runbook: str = "runbooks/lab.yaml",
    force_basebackup: bool = False,
) -> dict[str, Any]:
    """Rebuild the old primary as a standby of the DRC; returns the outcome (also in the ledger).
    ``mode`` has no default: whoever starts it says whether the incident is a drill or real."""
    logger = get_run_logger()
    if not incident_id.strip():
        raise PreconditionFailed("incident_id is required: a resync belongs to an incident")
    settings = Settings()
    rb = load_runbook(runbook)
    topology = resolve(rb, Path(rb.inventory), settings)
    db = rb.databases[0] if rb.databases else None
    old_group = db.primary_group if db else "dc_db"
    incident_dir = settings.evidence_dir / incident_id
    ledger_dir = incidents.ledger_dir(settings.evidence_dir, incident_id, "resync")
    prior = incidents.prior_attempts(ledger_dir)
    if prior and prior.closed:
        if steps.streaming_now(topology):
            logger.info("incident %s: resync already completed and still streams", incident_id)
            return {
                "incident_id": incident_id,
                "status": "already_completed",
                "streaming": True,
                "ledger": str(ledger_dir),
            }
        raise ResyncStopped(
            f"incident {incident_id}: its resync was completed, but the DC no longer streams from "
            "the DRC; open a new incident for the new fault"
        )
    opened = incidents.open_flow_ledger(
        ledger_dir, incident_id, "resync", {"runbook": runbook}, topology.known_secrets, prior
    )
    ledger, attempt = opened.ledger, opened.attempt
    notifiers = build_notifiers(
        ledger,
        logger,
        flow="resync",
        incident_id=incident_id,
        mode=mode,
        settings=settings,
        runbook=rb,
    )
    started = datetime.now(UTC)
    failover_ledger = incident_dir / "failover"
    ledger.append(
        "attempt.start",
        {
            "attempt": attempt,
            "flow_run_id": str(current_run.id),
            "mode": mode,
            "runbook": runbook,
            "force_basebackup": force_basebackup,
            "failover_ledger": str(failover_ledger) if failover_ledger.exists() else None,
        },
    )
    run = steps.ResyncRun(
        incident_id=incident_id,
        runbook=rb,
        topology=topology,
        ledger=ledger,
        logger=logger,
        old_group=old_group,
        force_basebackup=force_basebackup,
        attempt=attempt,
        notifiers=notifiers,
    )
    bodies: dict[str, Callable[[], StepOutcome]] = {
        "observe": lambda: steps.observe(run),
        "decide": lambda: steps.decide(run),
        "rejoin": lambda: steps.rejoin(run),
        "verify": lambda: steps.verify(run),
        "settings": lambda: steps.settings(run),
    }
    try:
        for step in steps.STEPS:
            outcome = incidents.step_task(
                f"resync:{step.id}",
                step.timeout_s,
                lambda r, step=step: steps.run_step(r, step, bodies[step.id]),
            )(run)
            if outcome.status == FAILED:
                raise ResyncStopped(f"{step.name}: {outcome.reason}")
            crash_if_asked(ledger, step.id)
        ended = datetime.now(UTC)
        result = _outcome(run, "streaming", started, ended)
        ledger.append("resync.completed", result)
        notify_safely(
            notifiers,
            ledger,
            "resync.completed",
            f"{incident_id}: the DC streams from the DRC again ({result['method']}, "
            f"{result['duration_s']} s)",
            incident_id=incident_id,
            flow="resync",
        )
        ledger.close({"status": "streaming", "method": result["method"]})
        result["ledger_head"] = ledger.head
        result["archive"] = archive_after_run_task(rb, ledger.directory)
        _publish_summary(run, result)
        result["documents"] = load("reports").publish_after_flow(incident_id, formats=["md"])
        return result
    except DrpError as exc:
        result = _outcome(run, "stopped", started, datetime.now(UTC), str(exc))
        ledger.append("resync.stopped", {"reason": str(exc), "steps": run.results})
        notify_safely(
            notifiers,
            ledger,
            "resync.stopped",
            f"{incident_id}: resync stopped — {exc}",
            incident_id=incident_id,
            flow="resync",
        )
        _publish_summary(run, result)
        raise ResyncStopped(f"resync {incident_id} stopped: {exc} (ledger: {ledger_dir})") from exc


def _outcome(
    run: steps.ResyncRun, status: str, started: datetime, ended: datetime, reason: str = ""
) -> dict[str, Any]:
    decision = run.decision
    return {
        "incident_id": run.incident_id,
        "status": status,
        "reason": reason,
        "attempt": run.attempt,
        "method": decision.method.value if decision and decision.method else None,
        "decision_reason": decision.reason if decision else None,
        "started_at": started.isoformat(),
        "ended_at": ended.isoformat(),
        "duration_s": round((ended - started).total_seconds(), 3),
        "drifts": [d.as_dict() for d in run.drifts],
        "steps": run.results,
        "ledger": str(run.ledger.directory),
    }


def _publish_summary(run: steps.ResyncRun, outcome: dict[str, Any]) -> None:
    """The run's story for the Prefect UI and a report file beside the ledger, with the
    timeline (also a table artifact of its own)."""
    evidence_dir = run.ledger.directory.parent.parent  # <evidence>/<incident>/resync
    timeline = incidents.publish_timeline(evidence_dir, run.incident_id, "resync")
    lines = [
        f"# Resync {run.incident_id} — {outcome['status']}",
        "",
        f"- Method: **{outcome['method'] or '-'}** — {outcome['decision_reason'] or '-'}",
        f"- Duration: {outcome['duration_s']} s (attempt {run.attempt})",
        f"- Settings drifts: {len(run.drifts)}",
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
            "resync",
            run.incident_id,
            "\n".join(lines) + "\n",
            f"Resync {run.incident_id}",
        )
    )


# -- Manual declarations into SKP (Pasal 11) ------------------------------------------------------
def _manual_run_name() -> str:
    """``resync-manual-declarations/<incident>``."""
    return incidents.run_name(
        "resync-manual-declarations", current_run.parameters.get("incident_id")
    )


@flow(name="resync-manual-declarations", flow_run_name=_manual_run_name, validate_parameters=True)
def resync_manual_declarations(
    incident_id: str, runbook: str = "runbooks/lab.yaml", restored_at: str | None = None
) -> dict[str, Any]:
    """Write the incident's manual declarations into SKP (idempotent), track the 30-day
    deadline from the service-restored time and report what was and was not synchronised.

    The steps live in :mod:`drp.tasks.manual_resync`; ``restored_at`` (ISO time with a zone)
    overrides the time taken from the failover ledger's ``failover.completed`` record.
    """
    settings = Settings()
    rb = load_runbook(runbook)
    topology = resolve(rb, Path(rb.inventory), settings)
    cfg = manual_steps.manual_config(settings, runbook)
    report = manual_resync.resync_task(cfg, topology, incident_id, restored_at)
    lines = [
        f"# Manual declarations into SKP — {incident_id}: {report['status']}",
        "",
        f"- {report['skp']}",
        f"- Deadline (Pasal 11): {report['deadline_note']}",
        f"- Synchronised now: {len(report['synced'])}; already: {len(report['already'])}; "
        f"not synchronised: {len(report['not_synced'])}",
        f"- Ledger: `{report['ledger']}`",
    ]
    lines += [
        f"- not synced: {n['registration_number']} — {n['reason']}"
        for n in report["not_synced"][:50]
    ]
    create_markdown_artifact(
        markdown="\n".join(lines) + "\n",
        key=incidents.artifact_key("manual-resync", incident_id),
        description=f"Manual declarations resync {incident_id}",
    )
    return report
