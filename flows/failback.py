"""Planned failback (switchover) to the DC with zero data loss (deployment ``failback``).

After a failover and ``drp resync`` the DRC is the primary and the DC streams from it. This flow
switches back, for every database pair the incident moved: approve (once), fence the DRC
cleanly (its final checkpoint is the end of its WAL), prove the DC replayed at least that far,
promote the DC, rejoin the DRC as its standby; then switch the front door's routes back to the DC
and verify each service — with its own RTO clock from the approval to the verified service.

Thin on purpose: the incident's life is the kernel's (:mod:`drp.tasks.kernel`), the steps
:mod:`drp.tasks.failback`'s, the rules :mod:`drp.domain.failback`'s. The failback belongs to an
incident: its ledger is ``<evidence>/<incident>/failback/``, beside the failover's and the
resync's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from prefect import flow
from prefect.exceptions import FlowPauseTimeout
from prefect.runtime import flow_run as current_run

from drp.domain import failback as rules
from drp.domain import runs
from drp.domain.outcomes import AlreadyCompleted, FailbackOutcome
from drp.domain.plan import moved_pairs
from drp.domain.rto import RecoveryTimeClock
from drp.errors import DrpError, PreconditionFailed
from drp.tasks import failback as steps
from drp.tasks import gates, kernel
from drp.tasks import incident as incidents
from drp.tasks.observe import frontdoor_site
from drp.tasks.parameters import ModeName
from drp.tasks.services import side_by_side
from drp.tasks.steps import FAILED, StepOutcome
from drp.topology import Topology


class FailbackStopped(kernel.IncidentStopped):
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
) -> FailbackOutcome | AlreadyCompleted:
    """Switch service back to the DC with zero data loss; returns the outcome (also in the
    ledger). Without ``approved_by`` the run pauses for approval in the Prefect UI. ``mode``
    has no default: whoever starts it says whether the incident is a drill or real."""
    if approved_by is not None and not approved_by.strip():
        raise PreconditionFailed(
            "approved_by is empty: name the approver, or leave it out to approve in the Prefect UI"
        )
    run = kernel.open_incident(
        "failback",
        incident_id=incident_id,
        runbook=runbook,
        mode=mode,
        rerun=_back_at_the_dc,
        refuse=FailbackStopped,
    )
    if isinstance(run, AlreadyCompleted):
        return run
    services = kernel.moved_services(run)
    pairs = steps.pairs_for(run.runbook, run.topology, moved_pairs(run.runbook, services))
    if not run.done_before:
        _check_start(run, pairs)
    reused = _normalised(run.prior.approval) if run.prior and run.prior.approval else None
    approval = reused or _approve(run, declared_by, approved_by, approval_code, approval_timeout_s)
    fb = steps.FailbackState(
        clock=RecoveryTimeClock(
            declared_at=datetime.fromisoformat(approval["answered_at"]),
            budget=runs.tightest_budget(run.runbook.service(s).rto_minutes for s in services),
        ),
        approval=approval,
        pairs=pairs,
        services=services,
    )
    try:
        _step(
            run, fb, "approve", steps.APPROVE, lambda: steps.approve(approval, reused=bool(reused))
        )
        # Pairs side by side (each its own steps in order), then every route, then every
        # service's verification: a site's failback takes about as long as its slowest pair.
        at_once = run.runbook.execution.policy().max_parallel

        def bring_back(fp: steps.FailbackPair) -> None:
            for st in steps.PAIR_STEPS:
                _step(run, fb, fp.step_id(st), st, _pair_body(run, fp, st.id), fp.pair_id)

        side_by_side([lambda fp=fp: bring_back(fp) for fp in pairs], at_once, "failback-pair")
        side_by_side(
            [
                lambda r=route, i=step_id: _step(
                    run, fb, i, steps.SWITCH, lambda: steps.switch(run, r, i)
                )
                for route, step_id in _routes(run, services)
            ],
            at_once,
            "failback-route",
        )
        side_by_side(
            [
                lambda s=service_id, d=dc_dsn, i=step_id: _step(
                    run, fb, i, steps.VERIFY, lambda: steps.verify(run, s, d, i)
                )
                for service_id, dc_dsn, step_id in _verifications(run, fb)
            ],
            at_once,
            "failback-verify",
        )
        fb.clock.stop(datetime.now(UTC))
        result = _outcome(run, fb, "verified")
        return kernel.close_incident(
            run,
            result,
            headline=f"service back at the DC; {fb.clock.verdict()}",
            facts=_facts(run, fb, result),
            description=f"Failback {incident_id}",
        )
    except DrpError as exc:
        result = _outcome(run, fb, "stopped", str(exc))
        raise kernel.stop_incident(
            run,
            str(exc),
            result,
            facts=_facts(run, fb, result),
            description=f"Failback {incident_id}",
            error=FailbackStopped,
        ) from exc


def _back_at_the_dc(prior: kernel.PriorAttempts, topology: Topology) -> runs.RerunVerdict:
    """A completed failback is still good while every pair's DC serves and users are there."""
    del prior
    pairs = topology.pairs.values() or [topology.pair(None)]
    back = (
        all(
            rules.already_failed_back(steps.observe_sites(p.primary_dsn, p.standby_dsn))
            for p in pairs
        )
        and frontdoor_site(topology.frontdoor_url) == steps.TARGET_SITE
    )
    return runs.rerun_of_completed("failback", back, "the DC is the serving primary")


def _check_start(run: kernel.IncidentRun, pairs: list[steps.FailbackPair]) -> None:
    """Nothing changed yet: every pair must be in the state a failback starts from. A refusal
    is evidence too (the ledger stays open: a later attempt checks again)."""
    for fp in pairs:
        seen = steps.observe_sites(fp.dc_dsn, fp.drc_dsn)
        gate = rules.check_precondition(seen)
        if not gate.allowed:
            run.ledger.append(
                "failback.refused",
                {
                    "attempt": run.attempt,
                    "pair": fp.pair_id,
                    "reason": gate.reason,
                    "sites": seen.__dict__,
                },
            )
            raise FailbackStopped(f"failback {run.incident_id} refused: {gate.reason}")


def _step(
    run: kernel.IncidentRun,
    fb: steps.FailbackState,
    step_id: str,
    step: steps.FailbackStep,
    body: Callable[[], StepOutcome],
    pair: str | None = None,
) -> None:
    suffix = step_id.partition("@")[2]
    outcome = run.step(
        step_id,
        step.name + (f" ({suffix})" if suffix else ""),
        step.budget_s,
        step.timeout_s,
        body,
        task_name=f"failback:{step_id}",
        start_data={"pair": pair} if pair else None,
        on_end=lambda _o, timing: fb.clock.record(timing),
    )
    if outcome.status == FAILED:
        raise FailbackStopped(f"{step.name}: {outcome.reason}")


def _pair_body(
    run: kernel.IncidentRun, fp: steps.FailbackPair, step_id: str
) -> Callable[[], StepOutcome]:
    bodies: dict[str, Callable[[], StepOutcome]] = {
        "fence_drc": lambda: steps.fence_drc(run, fp),
        "catch_up": lambda: steps.catch_up(run, fp),
        "promote_dc": lambda: steps.promote_dc(run, fp),
        "rejoin_drc": lambda: steps.rejoin_drc(run, fp),
    }
    return bodies[step_id]


def _routes(run: kernel.IncidentRun, services: tuple[str, ...]) -> list[tuple[str | None, str]]:
    """The front door's routes to bring back: its only one, or each moved service's."""
    routes = [
        (ep.route, f"switch@{s}")
        for s in services
        if (ep := run.topology.service(s)).route is not None
    ]
    return routes or [(None, "switch")]


def _verifications(run: kernel.IncidentRun, fb: steps.FailbackState) -> list[tuple[str, str, str]]:
    """(service, the DC database its write must land in, step id): each moved service on a site
    with a route per service; else one write through the front door's only route."""
    by_pair = {fp.pair_id: fp.dc_dsn for fp in fb.pairs}
    first_dc = fb.pairs[0].dc_dsn if fb.pairs else run.topology.primary_dsn

    def dc_of(service_id: str) -> str:
        return by_pair.get(run.runbook.service(service_id).database or "", first_dc)

    routed = [s for s in fb.services if run.topology.service(s).route is not None]
    if routed:
        return [(s, dc_of(s), f"verify@{s}") for s in routed]
    return [(fb.services[0], dc_of(fb.services[0]), "verify")] if fb.services else []


def _normalised(approval: dict[str, Any]) -> dict[str, Any]:
    """An approval recorded by an earlier version (``approved_by``/``at``) in today's shape."""
    out = dict(approval)
    out.setdefault("approver", out.get("approved_by", ""))
    out.setdefault("answered_at", out.get("at"))
    out.setdefault("declared_by", out["approver"])
    out.setdefault("channel", "cli")
    return out


def _approve(
    run: kernel.IncidentRun,
    declared_by: str | None,
    approved_by: str | None,
    approval_code: str | None,
    timeout_override_s: int | None,
) -> dict[str, Any]:
    """The failback's human gate: the failover's rules, in the UI unless approved up front.
    Whoever asks for the failback declares it (defaulting to the approver when given)."""
    rb = run.runbook
    timeout_s = runs.approval_timeout_s(rb.approval.timeout_minutes, timeout_override_s)
    try:
        return gates.ask_approval(
            ledger=run.ledger,
            notify=run.notify,
            facts=gates.failback_facts(
                run.settings.evidence_dir,
                run.incident_id,
                run.mode,
                declared_by or approved_by or "operator",
                runs.tightest_budget(s.rto_minutes for s in rb.services).total_seconds(),
            ),
            roster=rb.roster,
            approved_by=approved_by,
            approval_code=approval_code,
            timeout_s=timeout_s,
            two_person_rule=rb.approval.two_person_rule,
            checker=gates.ProofChecker.from_settings(run.settings, rb),
            flow_run_id=run.flow_run_id,
        )
    except (gates.GateRefused, FlowPauseTimeout) as exc:
        reason = f"no answer within {timeout_s} s" if isinstance(exc, FlowPauseTimeout) else exc
        run.ledger.append("failback.stopped", {"reason": str(reason), "steps": []})
        raise FailbackStopped(f"failback {run.incident_id} stopped: {reason}") from exc


def _outcome(
    run: kernel.IncidentRun, fb: steps.FailbackState, status: str, reason: str = ""
) -> FailbackOutcome:
    achieved = fb.clock.achieved if status == "verified" else None
    per_pair = tuple(
        {
            "pair": fp.pair_id,
            "final_lsn": fp.final_lsn,
            "replay_lsn": fp.proof.replay_lsn if fp.proof else None,
            "zero_loss": fp.proof.reason if fp.proof else None,
            "rejoin_method": fp.rejoin_method,
        }
        for fp in fb.pairs
    )
    first: dict[str, Any] = dict(per_pair[0]) if per_pair else {}
    return FailbackOutcome(
        **run.outcome_fields(status, reason),
        approved_at=fb.clock.declared_at.isoformat(),
        achieved_rto_s=round(achieved.total_seconds(), 3) if achieved else None,
        rto_budget_s=fb.clock.budget.total_seconds(),
        rto_verdict=fb.clock.verdict(),
        final_lsn=first.get("final_lsn"),
        replay_lsn=first.get("replay_lsn"),
        zero_loss=first.get("zero_loss"),
        rejoin_method=first.get("rejoin_method"),
        pairs=per_pair,
    )


def _facts(run: kernel.IncidentRun, fb: steps.FailbackState, out: FailbackOutcome) -> list[str]:
    lines = [
        f"Approved by {fb.approved_by} ({run.mode.value}) at "
        f"{fb.clock.declared_at:%Y-%m-%d %H:%M:%S} UTC",
        f"RTO: {fb.clock.verdict()}",
    ]
    for p in out.pairs:
        lines.append(
            f"Pair {p['pair']}: data loss: {p['zero_loss'] or '-'}; DRC rejoined by: "
            f"{p['rejoin_method'] or '-'}"
        )
    return lines
