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
from typing import Any

from prefect import flow
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.runtime import flow_run as current_run

from drp.domain import drill as rules
from drp.domain import runs
from drp.domain.drill import PhaseResult
from drp.domain.outcomes import AlreadyCompleted, DrillOutcome, Outcome
from drp.errors import DrpError, PreconditionFailed
from drp.flows import load
from drp.ledger import read_records
from drp.tasks import drill as steps
from drp.tasks import incident as incidents
from drp.tasks import kernel
from drp.tasks.parameters import ScenarioName
from drp.tasks.steps import DONE, FAILED, StepOutcome


class DrillFailed(kernel.IncidentStopped):
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
    services: list[str] | None = None,
) -> DrillOutcome | AlreadyCompleted:
    """Run one drill; returns its summary (also in the ledger and the drill-summary artifact).

    ``operator`` declares the drill's disaster and asks for the failback. ``approved_by``
    answers both approvals up front (leave it out to answer them in the Prefect UI);
    ``confirm_dc_isolated_by`` answers the isolation confirmation that the power-loss and
    network-loss scenarios need (left out: asked in the UI when the run is interactive).
    ``services`` drills a partial failover of those services (and what they need).
    """
    try:
        sc = rules.scenario(scenario)
    except rules.UnknownScenario as exc:
        raise PreconditionFailed(str(exc)) from None
    if not operator.strip():
        raise PreconditionFailed("operator is required: who runs (and declares) the drill")
    if not incident_id:
        incident_id = kernel.new_incident_id("drill")
        incidents.name_run(_run_name(incident_id))
    run = kernel.open_incident(
        "drill",
        incident_id=incident_id,
        runbook=runbook,
        mode="drill",
        meta={
            "scenario": sc.name,
            "fault": sc.fault,
            "article": sc.article,
            "operator": operator,
            "interactive": approved_by is None,
        },
    )
    if isinstance(run, AlreadyCompleted):
        return run
    ds = steps.DrillState(scenario=sc, faults=steps.faults_for(run))
    run.notify(
        "drill.started", f"{incident_id}: DR drill '{sc.name}' — {sc.description} ({sc.article})"
    )
    started = datetime.now(UTC)
    common = {"runbook": runbook, "incident_id": incident_id, "mode": "drill"}
    bodies: dict[str, Callable[[], StepOutcome]] = {
        "start": lambda: steps.check_start(run),
        "inject": lambda: steps.inject(run, ds),
        "failover": lambda: _subflow(
            ds,
            "failover",
            declared_by=operator,
            declarer_role="direktur",
            category=sc.category,
            services=services,
            approved_by=approved_by,
            confirm_dc_isolated_by=confirm_dc_isolated_by,
            detected_at=started.isoformat(),
            approval_timeout_s=approval_timeout_s,
            **common,
        ),
        "repair": lambda: steps.repair(run, ds),
        "resync": lambda: _subflow(ds, "resync", **common),
        "failback": lambda: _subflow(
            ds,
            "failback",
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
        plan = runs.drill_phase(phase, run.done_before)
        body: Callable[[], StepOutcome] = (
            (lambda plan=plan: StepOutcome("already_done", plan.reason))
            if plan.action is runs.PhaseAction.SKIP
            else _guarded(bodies[phase])
        )
        outcome = run.step(phase, name, budget, 3600, body, task_name=f"drill:{phase}")
        update_progress_artifact(progress, 100.0 * index / len(PHASES))
        if outcome.status == FAILED:
            failed = f"{name}: {outcome.reason}"
            break
    summary = _summarise(run, ds, started, failed)
    if failed:
        kernel.stop_incident(
            run,
            failed,
            summary,
            facts=_facts(ds, summary),
            description=_description(summary),
            timeline_flows=("drill", *SUBFLOWS),
            sections=_sections(summary),
            report_key=incidents.artifact_key("drill-summary", incident_id),
            kind="drill.failed",
            record={"reason": failed, "summary": summary.as_dict()},
        )
        raise DrillFailed(
            f"drill {incident_id} stopped at {failed} (ledger: {run.ledger.directory}); fix the "
            f"cause and re-run with incident_id={incident_id} to finish it",
            summary,
        )
    return kernel.close_incident(
        run,
        summary,
        headline=f"drill completed; verdict: {summary.verdict}",
        facts=_facts(ds, summary),
        description=_description(summary),
        timeline_flows=("drill", *SUBFLOWS),
        sections=_sections(summary),
        report_key=incidents.artifact_key("drill-summary", incident_id),
    )


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


def _subflow(ds: steps.DrillState, name: str, **params: Any) -> StepOutcome:
    """Run the real flow as a subflow; its outcome goes into the drill's ledger."""
    outcome: Outcome = getattr(load(name), name)(**params)
    ds.phase_outcomes[name] = outcome
    if not outcome.ok:
        return StepOutcome(FAILED, f"{name} ended with status {outcome.status}: {outcome.reason}")
    verdict = (
        getattr(outcome, "rto_verdict", "")
        or getattr(outcome, "decision_reason", "")
        or outcome.reason
        or outcome.status
    )
    data: dict[str, Any] = {
        "flow_status": outcome.status,
        "achieved_rto_s": getattr(outcome, "achieved_rto_s", None),
        "rto_budget_s": getattr(outcome, "rto_budget_s", None),
        "flow_duration_s": getattr(outcome, "duration_s", None),
        "ledger": outcome.ledger,
        "ledger_head": outcome.ledger_head,
        "report": outcome.report,
    }
    if name == "failover":
        data["rpo"] = getattr(outcome, "rpo", None)
        data["services"] = [s.__dict__ for s in getattr(outcome, "services", ())]
    if name == "resync":
        data["method"] = getattr(outcome, "method", None)
    status = "already_done" if outcome.status == "already_completed" else DONE
    return StepOutcome(status, str(verdict), data)


def _phase_results(
    run: kernel.IncidentRun, ledger_records: list[dict[str, Any]]
) -> list[PhaseResult]:
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
    run: kernel.IncidentRun, ds: steps.DrillState, started: datetime, failed: str | None
) -> DrillOutcome:
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
    flow_steps, gates = steps.measurements(run.evidence_dir, run.incident_id)
    fo = latest.get("failover", {})
    failover = ds.phase_outcomes.get("failover")
    rpo = fo.get("rpo") or getattr(failover, "rpo", None) or {}
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
        handled=ds.handled,
    )
    ended = datetime.now(UTC)
    status = "failed" if failed else ("passed" if evaluation.passed else "completed_with_findings")
    return DrillOutcome(
        flow="drill",
        incident_id=run.incident_id,
        status=status,
        reason=failed or "",
        mode="drill",
        attempt=run.attempt,
        ledger=str(run.ledger.directory),
        steps=tuple(s.__dict__ for s in flow_steps),
        verdict="passed" if evaluation.passed and not failed else "not passed",
        scenario=ds.scenario.name,
        fault=ds.scenario.fault,
        article=ds.scenario.article,
        started_at=started.isoformat(),
        ended_at=ended.isoformat(),
        duration_s=round((ended - started).total_seconds(), 3),
        stopped_at=failed,
        phases=tuple(p.__dict__ for p in phases),
        gates=tuple(g.__dict__ for g in gates),
        rpo=rpo,
        checksums=verify.get("checksums"),
        findings=tuple(f.__dict__ for f in evaluation.findings),
        handled=tuple(ds.handled),
        ledgers={
            name: str(run.ledger.directory.parent / name)
            for name in SUBFLOWS
            if (run.ledger.directory.parent / name).exists()
        },
        services=tuple(getattr(failover, "services", ())),
    )


def _facts(ds: steps.DrillState, s: DrillOutcome) -> list[str]:
    """The drill summary's first lines (drill-summary-<incident>, drill-report.md)."""
    lines = [
        f"Verdict: **{s.verdict}** ({s.status})",
        f"Scenario: {s.scenario} — {ds.scenario.description} ({s.article})",
        f"Started {(s.started_at or '')[:19]} UTC, {s.duration_s} s in all (attempt {s.attempt})",
        f"RPO: {(s.rpo or {}).get('reason') or 'not recorded'}",
    ]
    for svc in s.services:
        rto = (
            f"{svc.achieved_rto_s:.1f} s of {svc.rto_budget_s:.0f} s" if svc.achieved_rto_s else "-"
        )
        lines.append(f"Service {svc.service}: {svc.status}, RTO {rto}")
    if s.stopped_at:
        lines.append(f"**Stopped at** {s.stopped_at}")
    return lines


def _sections(s: DrillOutcome) -> list[str]:
    """The phases, the human gates, the steps against their budgets, the evaluation."""
    lines = ["", "## Phases", "", "| phase | status | duration | achieved RTO | reason |"]
    lines.append("|---|---|---|---|---|")
    for p in s.phases:
        rto = f"{p['achieved_rto_s']:.1f} s" if p["achieved_rto_s"] is not None else "-"
        lines.append(
            f"| {p['phase']} | {p['status']} | {p['duration_s']:.1f} s | {rto} | "
            f"{str(p['reason']).replace('|', '/')} |"
        )
    lines += ["", "## Human gates (response time)", ""]
    if s.gates:
        lines += ["| flow | gate | answered by | channel | waited |", "|---|---|---|---|---|"]
        for g in s.gates:
            lines.append(
                f"| {g['flow']} | {g['gate']} | {g['answered_by']} | {g['channel']} | "
                f"{g['waited_s']:.1f} s |"
            )
    else:
        lines.append("No gate was answered.")
    lines += ["", "## Steps against budgets", "", "| flow | step | status | duration | budget |"]
    lines.append("|---|---|---|---|---|")
    for st in s.steps:
        flag = " ⚠" if st["duration_s"] > st["budget_s"] else ""
        lines.append(
            f"| {st['flow']} | {st['name']} | {st['status']} | {st['duration_s']:.1f} s{flag} | "
            f"{st['budget_s']:.0f} s |"
        )
    lines += ["", "## Evaluation", ""]
    for f in s.findings:
        mark = "✓" if f["ok"] else ("✗" if f["blocking"] else "⚠ to improve:")
        lines.append(f"- {mark} {f['reason']}")
    return lines


def _description(s: DrillOutcome) -> str:
    return f"Drill {s.incident_id} ({s.scenario}): response measurements and evaluation"
