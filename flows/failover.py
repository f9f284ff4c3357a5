"""DC-to-DRC failover (deployment ``failover``): declare, approve, then every service of the plan
(the whole site, or a selection) recovered as the runbook's graph allows — each database pair
pre-flighted, fenced, proven fenced and promoted on its own, each service started, switched and
verified, each against its own RTO clock — then close.

Thin on purpose: the incident's life is the kernel's (:mod:`drp.tasks.kernel`), the steps are
:mod:`drp.tasks.failover`'s, the rules :mod:`drp.domain.failover`'s and :mod:`drp.domain.runs`'s,
the concurrency :mod:`drp.tasks.services`'. This file only says the order.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from prefect import flow
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.exceptions import FlowPauseTimeout
from prefect.runtime import flow_run as current_run

from drp.domain import runs
from drp.domain.graph import State
from drp.domain.outcomes import AlreadyCompleted, FailoverOutcome
from drp.domain.plan import plan as make_plan
from drp.errors import DrpError, PreconditionFailed
from drp.runbooks import load_runbook
from drp.tasks import failover as steps
from drp.tasks import gates, kernel
from drp.tasks import incident as incidents
from drp.tasks import services as graph_run
from drp.tasks.parameters import CategoryName, ModeName, RoleName


class FailoverStopped(kernel.IncidentStopped):
    """The failover stopped on purpose (a gate refused or timed out, a service failed); the
    reason says which."""


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
    services: list[str] | None = None,
    approved_by: str | None = None,
    approval_code: str | None = None,
    confirm_dc_isolated_by: str | None = None,
    override_preflight_by: str | None = None,
    dry_run: bool = False,
    incident_id: str | None = None,
    detected_at: str | None = None,
    consulted_it_directorate: bool = True,
    approval_timeout_s: int | None = None,
) -> FailoverOutcome | dict[str, Any]:
    """Fail service over from the DC to the DRC; returns the outcome (also in the ledger).

    ``mode`` has no default: whoever starts a failover (the UI's form asks) says whether it is
    a drill or the real thing, since each writes its own documents. ``category`` is one of
    ``parsial_lokal``, ``parsial_nasional``, ``katastropik`` (or ``local``, ``national``,
    ``catastrophic``); left out, the signals decide. ``services`` moves only those
    services and what they need (a partial failover, Pasal 5-6); left out, the whole site.
    """
    if dry_run:
        rb = load_runbook(runbook)
        return steps.dry_run_report(rb, make_plan(rb, services or None), runbook)
    if not declared_by.strip():
        raise PreconditionFailed("declared_by is required: who declares the disaster")
    if not incident_id:
        incident_id = kernel.new_incident_id()
        incidents.name_run(_run_name(incident_id))
    run = kernel.open_incident("failover", incident_id=incident_id, runbook=runbook, mode=mode)
    if isinstance(run, AlreadyCompleted):
        return run

    decl = steps.declaration(
        run,
        declared_by=declared_by,
        declarer_role=declarer_role,
        category=category,
        signals=signals,
        detected_at=detected_at,
        consulted=consulted_it_directorate,
    )
    if not category:  # classified from the signals: the run's name says what they showed
        incidents.name_run(_run_name(incident_id, decl["category"]))
    run.notify(
        "incident.declared",
        f"{incident_id}: {decl['category']} declared by {decl['declared_by']} "
        f"({run.mode.value}); RTO clock started",
    )
    fo = steps.prepare(
        run,
        decl,
        services,
        interactive=approved_by is None,
        isolation_confirmed_by=confirm_dc_isolated_by,
        override_preflight_by=override_preflight_by,
    )
    fo.progress = _progress(incident_id, len(fo.plan.steps))
    try:
        _approve(run, fo, approved_by, approval_code, approval_timeout_s)
        ended = graph_run.execute(
            run,
            tuple(n for n in run.runbook.nodes() if n.id in fo.services),
            fo.plan.policy,
            lambda service_id: steps.run_service(run, fo, service_id),
            lambda gate, waiting: _confirm_isolation(run, fo, waiting),
        )
        _mark_blocked(fo, ended)
        not_verified = sorted(s for s, (state, _) in ended.items() if state is not State.VERIFIED)
        if not_verified:
            raise FailoverStopped(
                "not every service recovered: "
                + "; ".join(f"{s}: {ended[s][1]}" for s in not_verified)
            )
        fo.clock.stop(datetime.now(UTC))
        result = steps.outcome(run, fo, "verified")
        return kernel.close_incident(
            run,
            result,
            headline=f"service verified at the DRC; {fo.clock.verdict()}",
            facts=steps.facts(run, fo, result),
            description=_description(run, "verified"),
        )
    except (DrpError, FlowPauseTimeout) as exc:
        reason = (
            f"no answer within the approval timeout: {exc}"
            if isinstance(exc, FlowPauseTimeout)
            else str(exc).removeprefix(f"failover {incident_id} stopped: ")
        )
        result = steps.outcome(run, fo, "stopped", reason)
        raise kernel.stop_incident(
            run,
            reason,
            result,
            facts=steps.facts(run, fo, result),
            description=_description(run, "stopped"),
            error=FailoverStopped,
        ) from exc


def _approve(
    run: kernel.IncidentRun,
    fo: steps.FailoverState,
    approved_by: str | None,
    approval_code: str | None,
    timeout_override_s: int | None,
) -> None:
    """The human gate, once per incident (an earlier attempt's approval is reused)."""
    if run.prior and run.prior.approval:
        run.ledger.append("approval.reused", run.prior.approval)
        return
    rb = run.runbook
    try:
        gates.ask_approval(
            ledger=run.ledger,
            notify=run.notify,
            facts=gates.facts_from_declaration(
                run.incident_id,
                "failover",
                run.mode,
                fo.declaration,
                fo.clock.budget.total_seconds(),
            ),
            roster=rb.roster,
            approved_by=approved_by,
            approval_code=approval_code,
            timeout_s=runs.approval_timeout_s(rb.approval.timeout_minutes, timeout_override_s),
            two_person_rule=rb.approval.two_person_rule,
            checker=gates.ProofChecker.from_settings(run.settings, rb),
            flow_run_id=run.flow_run_id,
        )
    except gates.GateRefused as exc:
        raise FailoverStopped(str(exc)) from exc


def _confirm_isolation(
    run: kernel.IncidentRun, fo: steps.FailoverState, waiting: Sequence[str]
) -> None:
    """The DC is unreachable: promotion waits for a person to confirm it is down or isolated
    (asked once for every service waiting on it; nothing runs meanwhile)."""
    try:
        fo.isolation_confirmed_by = gates.ask_isolation(
            ledger=run.ledger,
            notify=run.notify,
            incident_id=run.incident_id,
            roster=run.runbook.roster,
            timeout_s=runs.approval_timeout_s(run.runbook.approval.timeout_minutes),
            checker=gates.ProofChecker.from_settings(run.settings, run.runbook),
            flow_run_id=run.flow_run_id,
        )
    except FlowPauseTimeout as exc:
        raise gates.GateRefused(
            f"nobody confirmed that the DC is down or isolated in time ({', '.join(waiting)} "
            "not promoted)"
        ) from exc


def _mark_blocked(fo: steps.FailoverState, ended: dict[str, tuple[State, str]]) -> None:
    """Services that never started keep the reason why (a dependency failed)."""
    for service_id, (state, reason) in ended.items():
        svc = fo.services[service_id]
        if state is State.BLOCKED or (state is State.FAILED and svc.state is not State.FAILED):
            svc.state, svc.reason = state, reason


def _progress(incident_id: str, total: int) -> Any:
    """A progress artifact that counts the plan's steps done (updated in place)."""
    artifact = create_progress_artifact(
        progress=0.0,
        key=incidents.artifact_key("failover-progress", incident_id),
        description=f"Failover {incident_id}: steps done",
    )
    counter = itertools.count(1)  # services finish steps in several threads: next() is atomic

    def step_done() -> None:
        update_progress_artifact(artifact, 100.0 * next(counter) / max(total, 1))

    return step_done


def _description(run: kernel.IncidentRun, status: str) -> str:
    return (
        f"Failover {run.incident_id} ({run.mode.value}): {status} — who declared and approved, "
        "the gate waits, each service's RTO, each pair's fence and RPO, steps, timeline"
    )
