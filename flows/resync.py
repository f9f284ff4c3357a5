"""Resync after recovery (deployment ``resync``, Pasal 11): rebuild each old DC primary the
incident moved as a streaming standby of its promoted DRC — observe, decide (rewind, standby or
base backup), rejoin, verify it catches up, compare the takeover settings — pair after pair.

Thin on purpose: the incident's life is the kernel's (:mod:`drp.tasks.kernel`), the steps
:mod:`drp.tasks.resync`'s, the rules :mod:`drp.domain.resync`'s. The resync belongs to an
incident: its ledger is ``<evidence>/<incident>/resync/``, beside the failover's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run as current_run

from drp.domain import runs
from drp.domain.outcomes import AlreadyCompleted, ResyncOutcome
from drp.domain.plan import moved_pairs
from drp.errors import DrpError
from drp.runbooks import load_runbook
from drp.settings import Settings
from drp.tasks import incident as incidents
from drp.tasks import kernel, manual_resync
from drp.tasks import manual as manual_steps
from drp.tasks import resync as steps
from drp.tasks.parameters import ModeName
from drp.tasks.services import side_by_side
from drp.tasks.steps import FAILED, StepOutcome
from drp.topology import Topology, resolve


class ResyncStopped(kernel.IncidentStopped):
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
) -> ResyncOutcome | AlreadyCompleted:
    """Rebuild the old primaries as standbys of the DRC; returns the outcome (also in the
    ledger). ``mode`` has no default: a resync started from the UI says whether the incident
    is a drill or real."""
    run = kernel.open_incident(
        "resync",
        incident_id=incident_id,
        runbook=runbook,
        mode=mode,
        meta={"force_basebackup": force_basebackup},
        rerun=_still_streaming,
        refuse=ResyncStopped,
    )
    if isinstance(run, AlreadyCompleted):
        return run
    pairs = steps.pairs_for(
        run.runbook,
        run.topology,
        moved_pairs(run.runbook, kernel.moved_services(run)),
        force_basebackup,
    )
    started = datetime.now(UTC)
    try:

        def rebuild(rp: steps.ResyncPair) -> None:
            for step in steps.STEPS:
                outcome = run.step(
                    rp.step_id(step),
                    step.name + (f" ({rp.pair_id})" if rp.step_suffix else ""),
                    step.budget_s,
                    step.timeout_s,
                    _body(run, rp, step.id),
                    task_name=f"resync:{rp.step_id(step)}",
                    start_data={"pair": rp.pair_id},
                )
                if outcome.status == FAILED:
                    raise ResyncStopped(f"{step.name} ({rp.pair_id}): {outcome.reason}")

        # Every pair side by side, its own steps in order; a pair that fails does not stop the
        # others half way (each finishes or fails on its own), and the run then stops.
        side_by_side(
            [lambda rp=rp: rebuild(rp) for rp in pairs],
            run.runbook.execution.policy().max_parallel,
            "resync-pair",
        )
        result = _outcome(run, pairs, "streaming", started)
        return kernel.close_incident(
            run,
            result,
            headline=f"the DC streams from the DRC again ({result.method}, {result.duration_s} s)",
            facts=_facts(run, result),
            description=f"Resync {run.incident_id}",
        )
    except DrpError as exc:
        reason = str(exc)
        result = _outcome(run, pairs, "stopped", started, reason)
        raise kernel.stop_incident(
            run,
            reason,
            result,
            facts=_facts(run, result),
            description=f"Resync {run.incident_id}",
            error=ResyncStopped,
        ) from exc


def _still_streaming(prior: kernel.PriorAttempts, topology: Topology) -> runs.RerunVerdict:
    """A completed resync is still good while every moved pair's old primary streams."""
    del prior
    pairs = topology.pairs.values() or [topology.pair(None)]
    streaming = all(steps.streaming_now(p.primary_dsn) for p in pairs)
    return runs.rerun_of_completed("resync", streaming, "the DC streams from the DRC")


def _body(run: kernel.IncidentRun, rp: steps.ResyncPair, step_id: str) -> Callable[[], StepOutcome]:
    bodies: dict[str, Callable[[], StepOutcome]] = {
        "observe": lambda: steps.observe(run, rp),
        "decide": lambda: steps.decide(run, rp),
        "rejoin": lambda: steps.rejoin(run, rp),
        "verify": lambda: steps.verify(run, rp),
        "settings": lambda: steps.settings(run, rp),
    }
    return bodies[step_id]


def _outcome(
    run: kernel.IncidentRun,
    pairs: list[steps.ResyncPair],
    status: str,
    started: datetime,
    reason: str = "",
) -> ResyncOutcome:
    ended = datetime.now(UTC)
    per_pair = tuple(
        {
            "pair": rp.pair_id,
            "method": rp.decision.method.value if rp.decision and rp.decision.method else None,
            "decision_reason": rp.decision.reason if rp.decision else None,
            "drifts": [d.as_dict() for d in rp.drifts],
        }
        for rp in pairs
    )
    first = per_pair[0] if per_pair else {}
    return ResyncOutcome(
        **run.outcome_fields(status, reason),
        method=first.get("method"),
        decision_reason=first.get("decision_reason"),
        started_at=started.isoformat(),
        ended_at=ended.isoformat(),
        duration_s=round((ended - started).total_seconds(), 3),
        drifts=tuple(d for p in per_pair for d in p["drifts"]),
        pairs=per_pair,
        streaming=status == "streaming",
    )


def _facts(run: kernel.IncidentRun, result: ResyncOutcome) -> list[str]:
    lines = [f"Duration: {result.duration_s} s (attempt {run.attempt})"]
    for p in result.pairs:
        lines.append(
            f"Pair {p['pair']}: **{p['method'] or '-'}** — {p['decision_reason'] or '-'}; "
            f"settings drifts: {len(p['drifts'])}"
        )
    return lines


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
