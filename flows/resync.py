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

from prefect import Task, flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run as current_run

from drp.errors import DrpError, PreconditionFailed
from drp.ledger import Ledger
from drp.runbooks import load_runbook
from drp.settings import Settings
from drp.tasks import resync as steps
from drp.tasks.failover import read_prior
from drp.tasks.steps import FAILED, StepOutcome
from drp.topology import resolve


class ResyncStopped(DrpError):
    """The resync stopped (a refusal or a failed step); the reason says which and what to do."""


def _run_name() -> str:
    p = current_run.parameters
    return f"resync/{p.get('incident_id') or 'no-incident'}/{p.get('mode', 'drill')}"


def _step_task(step: steps.ResyncStep, body: Callable[[], StepOutcome]) -> Task:
    """Each step as a Prefect task with its hard timeout and no caching (it has side effects)."""

    @task(name=f"resync:{step.id}", timeout_seconds=step.timeout_s, cache_policy=NO_CACHE)
    def _run(run: steps.ResyncRun) -> StepOutcome:
        return steps.run_step(run, step, body)

    return _run


@flow(name="resync", flow_run_name=_run_name, validate_parameters=True)
def resync(
    incident_id: str,
    runbook: str = "runbooks/lab.yaml",
    mode: str = "drill",
    force_basebackup: bool = False,
) -> dict[str, Any]:
    """Rebuild the old primary as a standby of the DRC; returns the outcome (also in the ledger)."""
    logger = get_run_logger()
    if not incident_id.strip():
        raise PreconditionFailed("incident_id is required: a resync belongs to an incident")
    if mode not in ("drill", "real"):
        raise PreconditionFailed(f"mode {mode!r}: choose drill or real")
    settings = Settings()
    rb = load_runbook(runbook)
    topology = resolve(rb, Path(rb.inventory), settings)
    db = rb.databases[0] if rb.databases else None
    old_group = db.primary_group if db else "dc_db"
    incident_dir = settings.evidence_dir / incident_id
    ledger_dir = incident_dir / "resync"
    prior = read_prior(ledger_dir) if (ledger_dir / "manifest.json").exists() else None
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
    if prior:
        ledger = Ledger.open(
            ledger_dir, known_secrets=topology.known_secrets, reason="resync re-run"
        )
    else:
        ledger = Ledger.create(
            ledger_dir,
            incident_id,
            {"flow": "resync", "runbook": runbook},
            known_secrets=topology.known_secrets,
        )
    attempt = (prior.attempts if prior else 0) + 1
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
            outcome = _step_task(step, bodies[step.id])(run)
            if outcome.status == FAILED:
                raise ResyncStopped(f"{step.name}: {outcome.reason}")
        ended = datetime.now(UTC)
        result = _outcome(run, "streaming", started, ended)
        ledger.append("resync.completed", result)
        ledger.close({"status": "streaming", "method": result["method"]})
        result["ledger_head"] = ledger.head
        _publish_summary(run, result)
        return result
    except DrpError as exc:
        result = _outcome(run, "stopped", started, datetime.now(UTC), str(exc))
        ledger.append("resync.stopped", {"reason": str(exc), "steps": run.results})
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
    """The run's story for the Prefect UI and a report file beside the ledger."""
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
    lines += ["", "| step | status | duration | budget | reason |", "|---|---|---|---|---|"]
    for row in run.results:
        lines.append(
            f"| {row['name']} | {row['status']} | {row['duration_s']:.1f} s | "
            f"{row['budget_s']} s | {row['reason'].replace('|', '/')} |"
        )
    markdown = "\n".join(lines) + "\n"
    report = run.ledger.directory.parent / "resync-report.md"
    report.write_text(markdown)
    outcome["report"] = str(report)
    key = "".join(c if c.isalnum() else "-" for c in run.incident_id.lower())
    create_markdown_artifact(
        markdown=markdown, key=f"resync-{key}", description=f"Resync {run.incident_id}"
    )
