"""DR drill (deployment ``drill``, Pasal 15): the whole cycle on the lab, measured.

Check the normal topology → inject the scenario's fault → fail over (the real failover flow) →
repair the fault → resync (the real resync flow) → fail back (the real failback flow) → check
that the topology is back (DC primary, DRC streaming standby, users at the DC) with equal data
at both sites → evaluate. The failover, resync and failback run as subflows, so the Prefect UI
shows them nested under the drill, each with its own ledger and report; the drill's ledger
(``<evidence>/<incident>/drill/``) holds the phases, and its summary holds the response
measurements: per phase the achieved RTO against its budget, per step the duration against its
budget, per human gate how long people took, the RPO, and what failed and how it was handled.

Without ``approved_by`` the gates pause for answers in the Prefect UI — that is how a scheduled
drill measures the people. A re-run with the same ``incident_id`` finishes an interrupted drill
without doing a phase twice (the fault is not injected again; each flow resumes its own ledger).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.runtime import flow_run as current_run

from drp.domain import drill as rules
from drp.domain.drill import PhaseResult
from drp.errors import DrpError, PreconditionFailed
from drp.flows import load
from drp.ledger import read_records
from drp.notify import build_notifiers, notify_safely
from drp.runbooks import load_runbook
from drp.settings import Settings
from drp.tasks import drill as steps
from drp.tasks import incident as incidents
from drp.tasks.evidence_archive import archive_after_run_task
from drp.tasks.failover import new_incident_id
from drp.tasks.parameters import ScenarioName
from drp.tasks.steps import DONE, FAILED, Announcer, StepOutcome, record_step
from drp.topology import resolve


class DrillFailed(DrpError):
    """The drill could not complete a phase; the reason says which, the ledger says more."""


PHASES: tuple[tuple[str, str, int], ...] = (
    ("start", "Check the normal topology (DC primary, DRC streaming standby)", 10),
    ("inject", "Inject the scenario's fault", 10),
    ("failover", "Fail over to the DRC (failover flow)", 120),
    ("repair", "Repair the fault at the DC (fence it if it returns writable)", 60),
    ("resync", "Rebuild the DC as a standby of the DRC (resync flow)", 120),
    ("failback", "Fail back to the DC with zero data loss (failback flow)", 120),
    ("verify", "Topology back to normal; equal data at both sites", 60),
)
"""(id, name, budget in seconds) — budgets are what the lab takes on one machine, with room."""


def _run_name(incident_id: str | None = None) -> str:
    """``drill/<incident>/<scenario>``."""
    p = current_run.parameters
    return incidents.run_name("drill", incident_id or p.get("incident_id"), p.get("scenario"))


SUBFLOWS = ("failover", "resync", "failback")
"""The incident flows a drill runs as subflows; its timeline and documents cover them."""


@flow(name="drill", flow_run_name=_run_name, validate_parameters=True)
def drill(
    runbook: str = "runbooks/lab.yaml",
    scenario: ScenarioName = "dc-db-crash",
    operator: str = "drill-operator",
    approved_by: str | None = None,
    confirm_dc_isolated_by: str | None = None,
    incident_id: str | None = None,
    approval_timeout_s: int | None = None,
) -> dict[str, Any]:
    """Run one drill; returns its summary (also in the ledger and the drill-summary artifact).

    ``operator`` declares the drill's disaster and asks for the failback. ``approved_by``
    answers both approvals up front (leave it out to answer them in the Prefect UI);
    ``confirm_dc_isolated_by`` answers the isolation confirmation that the power-loss and
    network-loss scenarios need (left out: asked in the UI when the run is interactive).
    """
    logger = get_run_logger()
    try:
        sc = rules.scenario(scenario)
    except rules.UnknownScenario as exc:
        raise PreconditionFailed(str(exc)) from None
    if not operator.strip():
        raise PreconditionFailed("operator is required: who runs (and declares) the drill")
    settings = Settings()
    rb = load_runbook(runbook)
    lab = steps.lab_for(rb, settings.lab_root)
    topology = resolve(rb, Path(rb.inventory), settings)
    if not incident_id:
        incident_id = new_incident_id().replace("inc-", "drill-", 1)
        incidents.name_run(_run_name(incident_id))
    ledger_dir = incidents.ledger_dir(settings.evidence_dir, incident_id, "drill")
    prior = incidents.prior_attempts(ledger_dir)
    if prior and prior.closed:
        logger.info("drill %s already completed", incident_id)
        return {
            "incident_id": incident_id,
            "status": "already_completed",
            "ledger": str(ledger_dir),
        }
    opened = incidents.open_flow_ledger(
        ledger_dir,
        incident_id,
        "drill",
        {"runbook": runbook, "scenario": sc.name},
        topology.known_secrets,
        prior,
    )
    ledger, attempt = opened.ledger, opened.attempt
    done_before = set(prior.completed_steps) if prior else set()
    ledger.append(
        "attempt.start",
        {
            "attempt": attempt,
            "flow_run_id": str(current_run.id),
            "mode": "drill",
            "runbook": runbook,
            "scenario": sc.name,
            "fault": sc.fault,
            "article": sc.article,
            "operator": operator,
            "interactive": approved_by is None,
            "completed_before": sorted(done_before),
        },
    )
    notifiers = build_notifiers(
        ledger,
        logger,
        flow="drill",
        incident_id=incident_id,
        mode="drill",
        settings=settings,
        runbook=rb,
    )
    notify_safely(
        notifiers,
        ledger,
        "drill.started",
        f"{incident_id}: DR drill '{sc.name}' — {sc.description} ({sc.article})",
        incident_id=incident_id,
        flow="drill",
    )
    run = steps.DrillRun(
        incident_id=incident_id,
        runbook=rb,
        scenario=sc,
        topology=topology,
        ledger=ledger,
        logger=logger,
        lab=lab,
        attempt=attempt,
        notifiers=notifiers,
    )
    started = datetime.now(UTC)
    detected_at = started.isoformat()
    common = {"runbook": runbook, "incident_id": incident_id, "mode": "drill"}
    bodies: dict[str, Callable[[], StepOutcome]] = {
        "start": lambda: steps.check_start(run),
        "inject": lambda: steps.inject(run, "inject" in done_before),
        "failover": lambda: _subflow(
            run,
            "failover",
            "verified",
            declared_by=operator,
            declarer_role="direktur",
            category=sc.category,
            approved_by=approved_by,
            confirm_dc_isolated_by=confirm_dc_isolated_by,
            detected_at=detected_at,
            approval_timeout_s=approval_timeout_s,
            **common,
        ),
        "repair": lambda: steps.repair(run),
        "resync": lambda: _subflow(run, "resync", "streaming", **common),
        "failback": lambda: _subflow(
            run,
            "failback",
            "verified",
            approved_by=approved_by,
            declared_by=operator,
            approval_timeout_s=approval_timeout_s,
            **common,
        ),
        "verify": lambda: steps.verify_restored(run),
    }
    progress = create_progress_artifact(
        progress=0.0,
        key=incidents.artifact_key("drill-progress", incident_id),
        description=f"Drill {incident_id} ({sc.name}): phases done",
    )
    failed: str | None = None
    for index, (phase, name, budget) in enumerate(PHASES, start=1):
        # A phase done in an earlier attempt is not repeated (start is always re-checked until
        # the fault is injected; after that the topology is, on purpose, not normal).
        if phase in done_before or (phase == "start" and "inject" in done_before):
            body: Callable[[], StepOutcome] = lambda phase=phase: StepOutcome(  # noqa: E731
                "already_done", f"{phase} completed in an earlier attempt"
            )
        else:
            body = bodies[phase]
        outcome, _ = record_step(
            ledger,
            step_id=phase,
            name=name,
            budget_s=budget,
            attempt=attempt,
            body=_guarded(body),
            results=run.results,
            logger=logger,
            announcer=Announcer(notifiers, "drill", incident_id),
        )
        update_progress_artifact(progress, 100.0 * index / len(PHASES))
        if outcome.status == FAILED:
            failed = f"{name}: {outcome.reason}"
            break
    summary = _summarise(run, settings.evidence_dir, started, failed)
    if failed:
        ledger.append("drill.failed", {"reason": failed, "summary": summary})
    else:
        ledger.append("drill.completed", summary)
    notify_safely(
        notifiers,
        ledger,
        "drill.failed" if failed else "drill.completed",
        f"{incident_id}: drill {'FAILED — ' + failed if failed else 'completed'}; "
        f"verdict: {summary['verdict']}",
        incident_id=incident_id,
        flow="drill",
    )
    if not failed:
        ledger.close({"status": summary["status"], "verdict": summary["verdict"]})
        summary["archive"] = archive_after_run_task(rb, ledger.directory)
    summary["ledger_head"] = ledger.head
    summary["report"] = str(_publish(run, summary))
    summary["documents"] = load("reports").publish_after_flow(incident_id, formats=["md"])
    if failed:
        raise DrillFailed(
            f"drill {incident_id} stopped at {failed} (ledger: {ledger_dir}); fix the cause and "
            f"re-run with incident_id={incident_id} to finish it"
        )
    return summary


def _guarded(body: Callable[[], StepOutcome]) -> Callable[[], StepOutcome]:
    """A subflow may raise what Prefect wraps (a pause timeout, a crash): a failed phase."""

    def _call() -> StepOutcome:
        try:
            return body()
        except DrpError:
            raise
        except Exception as exc:
            return StepOutcome(FAILED, f"{type(exc).__name__}: {exc}")

    return _call


def _subflow(run: steps.DrillRun, name: str, ok_status: str, **params: Any) -> StepOutcome:
    """Run the real flow as a subflow; its outcome goes into the drill's ledger."""
    outcome = getattr(load(name), name)(**params)
    run.phase_outcomes[name] = outcome
    status = outcome.get("status")
    if status not in (ok_status, "already_completed"):
        return StepOutcome(FAILED, f"{name} ended with status {status}: {outcome.get('reason')}")
    verdict = outcome.get("rto_verdict") or outcome.get("decision_reason") or status
    data = {
        "flow_status": status,
        "achieved_rto_s": outcome.get("achieved_rto_s"),
        "rto_budget_s": outcome.get("rto_budget_s"),
        "flow_duration_s": outcome.get("duration_s"),
        "ledger": outcome.get("ledger"),
        "ledger_head": outcome.get("ledger_head"),
        "report": outcome.get("report"),
    }
    if name == "failover":
        data["rpo"] = outcome.get("rpo")
    if name == "resync":
        data["method"] = outcome.get("method")
    return StepOutcome(DONE if status == ok_status else "already_done", str(verdict), data)


def _phase_results(run: steps.DrillRun, ledger_records: list[dict[str, Any]]) -> list[PhaseResult]:
    out = []
    for row in run.results:
        data = next((r for r in ledger_records if r.get("step_id") == row["step_id"]), {})
        out.append(
            PhaseResult(
                row["step_id"],
                row["status"],
                row["duration_s"],
                data.get("achieved_rto_s"),
                data.get("rto_budget_s"),
                row["reason"],
            )
        )
    return out


def _summarise(
    run: steps.DrillRun, evidence_dir: Path, started: datetime, failed: str | None
) -> dict[str, Any]:
    """The response measurements (Pasal 15), judged by :func:`drp.domain.drill.evaluate`."""
    ends = [
        r.data
        for _, r in read_records(run.ledger.directory)
        if not isinstance(r, str) and r.kind == "step.end"
    ]
    latest: dict[str, dict[str, Any]] = {}
    for e in ends:  # the last attempt's end of each phase (earlier ones may have failed)
        if e.get("status") in ("done", "failed") or e["step_id"] not in latest:
            latest[e["step_id"]] = e
    phases = _phase_results(run, list(latest.values()))
    flow_steps, gates = steps.measurements(evidence_dir, run.incident_id)
    fo = latest.get("failover", {})
    rpo = fo.get("rpo") or (run.phase_outcomes.get("failover") or {}).get("rpo") or {}
    verify = latest.get("verify", {})
    rb = run.runbook
    evaluation = rules.evaluate(
        phases=phases,
        steps=flow_steps,
        gates=gates,
        rpo_lost_bytes=rpo.get("lost_bytes"),
        rpo_reason=str(rpo.get("reason") or "not recorded (the failover did not complete)"),
        rpo_budget_s=min(s.rpo_seconds for s in rb.services),
        topology_restored=bool(verify.get("data_equal")),
        topology_reason=str(verify.get("topology") or (failed or "not checked")),
        data_equal=verify.get("data_equal"),
        data_reason=str(verify.get("data") or "not checked"),
        handled=run.handled,
    )
    ended = datetime.now(UTC)
    status = "failed" if failed else ("passed" if evaluation.passed else "completed_with_findings")
    return {
        "incident_id": run.incident_id,
        "status": status,
        "verdict": "passed" if evaluation.passed and not failed else "not passed",
        "scenario": run.scenario.name,
        "fault": run.scenario.fault,
        "article": run.scenario.article,
        "attempt": run.attempt,
        "started_at": started.isoformat(),
        "ended_at": ended.isoformat(),
        "duration_s": round((ended - started).total_seconds(), 3),
        "stopped_at": failed,
        "phases": [p.__dict__ for p in phases],
        "gates": [g.__dict__ for g in gates],
        "steps": [s.__dict__ for s in flow_steps],
        "rpo": rpo,
        "checksums": verify.get("checksums"),
        "findings": [f.__dict__ for f in evaluation.findings],
        "handled": list(run.handled),
        "ledger": str(run.ledger.directory),
        "ledgers": {
            name: str(run.ledger.directory.parent / name)
            for name in ("failover", "resync", "failback")
            if (run.ledger.directory.parent / name).exists()
        },
    }


def _publish(run: steps.DrillRun, s: dict[str, Any]) -> Path:
    """The drill summary for people: the Prefect artifact ``drill-summary-<incident>`` and a
    Markdown file beside the ledgers."""
    lines = [
        f"# DR drill {s['incident_id']} — {s['scenario']}: {s['verdict']}",
        "",
        f"- Scenario: {run.scenario.description} ({s['article']})",
        f"- Started {s['started_at'][:19]} UTC, {s['duration_s']} s in all "
        f"(attempt {s['attempt']})",
        f"- RPO: {s['rpo'].get('reason') if s['rpo'] else 'not recorded'}",
        f"- Ledger: `{s['ledger']}` (head `{run.ledger.head[:16]}…`)",
    ]
    if s["stopped_at"]:
        lines.append(f"- **Stopped at** {s['stopped_at']}")
    lines += ["", "## Phases", "", "| phase | status | duration | achieved RTO | reason |"]
    lines.append("|---|---|---|---|---|")
    for p in s["phases"]:
        rto = f"{p['achieved_rto_s']:.1f} s" if p["achieved_rto_s"] is not None else "-"
        lines.append(
            f"| {p['phase']} | {p['status']} | {p['duration_s']:.1f} s | {rto} | "
            f"{str(p['reason']).replace('|', '/')} |"
        )
    lines += ["", "## Human gates (response time)", ""]
    if s["gates"]:
        lines += ["| flow | gate | answered by | channel | waited |", "|---|---|---|---|---|"]
        for g in s["gates"]:
            lines.append(
                f"| {g['flow']} | {g['gate']} | {g['answered_by']} | {g['channel']} | "
                f"{g['waited_s']:.1f} s |"
            )
    else:
        lines.append("No gate was answered.")
    lines += ["", "## Steps against budgets", "", "| flow | step | status | duration | budget |"]
    lines.append("|---|---|---|---|---|")
    for st in s["steps"]:
        flag = " ⚠" if st["duration_s"] > st["budget_s"] else ""
        lines.append(
            f"| {st['flow']} | {st['name']} | {st['status']} | {st['duration_s']:.1f} s{flag} | "
            f"{st['budget_s']:.0f} s |"
        )
    lines += ["", "## Evaluation", ""]
    for f in s["findings"]:
        mark = "✓" if f["ok"] else ("✗" if f["blocking"] else "⚠ to improve:")
        lines.append(f"- {mark} {f['reason']}")
    timeline = incidents.publish_timeline(
        run.ledger.directory.parent.parent, run.incident_id, "drill", ("drill", *SUBFLOWS)
    )
    lines += ["", "## Who and when", "", *timeline.summary()]
    lines += ["", "## Timeline (the drill and its flows)", "", timeline.table_markdown()]
    return incidents.publish_report(
        run.ledger,
        "drill",
        run.incident_id,
        "\n".join(lines) + "\n",
        f"Drill {run.incident_id} ({s['scenario']}): response measurements and evaluation",
        key=incidents.artifact_key("drill-summary", run.incident_id),
    )
