"""The recovery plan: the order in which a runbook's steps run, and the time it predicts.

Like patroni's quorum resolver, :func:`plan` takes plain values (a validated runbook) and returns
decisions, each with a ``reason`` sentence that says why the step sits where it does; the flow
that runs the plan only applies them. Steps run one after another, so the predicted RTO is the
sum of the step budgets and a service is recovered when the budget of its last step is spent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drp.domain.adb import Criticality
from drp.domain.runbook import (
    RTO_LIMIT_MINUTES,
    DatabasePair,
    Runbook,
    Service,
    Step,
    recovery_order,
)


@dataclass(frozen=True)
class PlannedStep:
    """One step at its place in the plan, with the time the plan expects to have spent."""

    position: int
    """1-based position in the whole plan."""
    service: Service
    step: Step
    database: DatabasePair | None
    """The database pair the step's service runs on (what fence and promote act on)."""
    starts_at_seconds: int
    """Predicted time from the start of the plan to the start of this step."""
    cumulative_seconds: int
    """Predicted time from the start of the plan to the end of this step."""
    reason: str

    @property
    def budget_seconds(self) -> int:
        return self.step.budget_seconds

    @property
    def timeout_seconds(self) -> int:
        return self.step.timeout_seconds

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` and for Prefect artifacts."""
        return {
            "position": self.position,
            "priority_group": self.service.priority_group,
            "service": self.service.id,
            "criticality": self.service.criticality.value,
            "step": self.step.id,
            "name": self.step.name,
            "action": self.step.action,
            "playbook": self.step.playbook,
            "targets": self.step.targets,
            "database": self.database.id if self.database else None,
            "requires_approval": self.step.requires_approval,
            "budget_seconds": self.budget_seconds,
            "timeout_seconds": self.timeout_seconds,
            "starts_at_seconds": self.starts_at_seconds,
            "cumulative_seconds": self.cumulative_seconds,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ServiceRecovery:
    """When the plan predicts a service to be back, against its RTO."""

    service: Service
    position: int
    """1-based place of the service in the recovery order."""
    criticality: Criticality
    predicted_seconds: int
    """Cumulative budget at the end of the service's last step."""
    reason: str

    @property
    def rto_seconds(self) -> int:
        return self.service.rto_minutes * 60

    @property
    def within_rto(self) -> bool:
        return self.predicted_seconds <= self.rto_seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "service": self.service.id,
            "name": self.service.name,
            "priority_group": self.service.priority_group,
            "criticality": self.criticality.value,
            "depends_on": list(self.service.depends_on),
            "predicted_seconds": self.predicted_seconds,
            "rto_seconds": self.rto_seconds,
            "rpo_seconds": self.service.rpo_seconds,
            "mtdp_minutes": self.service.mtdp_minutes,
            "within_rto": self.within_rto,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class RecoveryPlan:
    """The ordered steps of a runbook, and the RTO they predict."""

    runbook: Runbook
    services: tuple[ServiceRecovery, ...]
    steps: tuple[PlannedStep, ...]
    predicted_rto_seconds: int
    """Sum of all step budgets: the plan runs its steps one after another."""
    reason: str
    rto_limit_seconds: int = RTO_LIMIT_MINUTES * 60

    @property
    def within_limit(self) -> bool:
        """True when the predicted RTO keeps the one-hour limit of Pasal 3(1)(b)."""
        return self.predicted_rto_seconds <= self.rto_limit_seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "runbook": self.runbook.name,
            "environment": self.runbook.environment,
            "predicted_rto_seconds": self.predicted_rto_seconds,
            "rto_limit_seconds": self.rto_limit_seconds,
            "within_limit": self.within_limit,
            "reason": self.reason,
            "services": [s.as_dict() for s in self.services],
            "steps": [s.as_dict() for s in self.steps],
        }


def plan(runbook: Runbook) -> RecoveryPlan:
    """Order the runbook's steps and predict when each service is back.

    Services run by priority group, then after the services they depend on, ties kept in file
    order (:func:`drp.domain.runbook.recovery_order`); a service's steps run in the order the
    file lists them. The runbook should have passed :func:`drp.domain.runbook.validate`: an
    invalid one still gets an order, but its predictions mean little.
    """
    order = [runbook.services[i] for i in recovery_order(runbook.services)]
    recoveries: list[ServiceRecovery] = []
    planned: list[PlannedStep] = []
    elapsed = 0
    fences: dict[str, str] = {}  # database pair -> id of the step that fenced it
    previous: Service | None = None
    for place, service in enumerate(order, start=1):
        placement = _placement(service, previous, order[: place - 1])
        database = runbook.database(service.database)
        for j, step in enumerate(service.steps):
            start = elapsed
            elapsed += step.budget_seconds
            if step.action == "fence" and database is not None:
                fences.setdefault(database.id, step.id)
            planned.append(
                PlannedStep(
                    position=len(planned) + 1,
                    service=service,
                    step=step,
                    database=database,
                    starts_at_seconds=start,
                    cumulative_seconds=elapsed,
                    reason=_step_reason(service, j, database, fences, placement),
                )
            )
        recoveries.append(
            ServiceRecovery(
                service=service,
                position=place,
                criticality=service.criticality,
                predicted_seconds=elapsed,
                reason=f"'{service.id}' ({service.criticality.value}) {placement}.",
            )
        )
        previous = service
    return RecoveryPlan(
        runbook=runbook,
        services=tuple(recoveries),
        steps=tuple(planned),
        predicted_rto_seconds=elapsed,
        reason=_plan_reason(elapsed, len(planned)),
    )


def _join(ids: list[str]) -> str:
    """``['a', 'b', 'c']`` -> ``'a', 'b' and 'c'``."""
    quoted = [f"'{i}'" for i in ids]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"


def _placement(service: Service, previous: Service | None, before: list[Service]) -> str:
    """Why the service sits where it does (group, dependencies or file order), as a clause."""
    group = service.priority_group
    done = {s.id for s in before}
    deps = [d for d in service.depends_on if d in done]
    if previous is None:
        where = f"opens the plan in priority group {group}"
    elif previous.priority_group != group:
        where = f"starts priority group {group}, once group {previous.priority_group} is done"
    elif previous.id in deps:
        where = f"follows '{previous.id}' in priority group {group}, because it depends on it"
    else:
        where = (
            f"follows '{previous.id}' in priority group {group} by file order "
            "(neither depends on the other)"
        )
    needs = f"it needs {_join(deps)}, recovered before it" if deps else "it needs no other service"
    return f"{where}; {needs}"


def _step_reason(
    service: Service,
    index: int,
    database: DatabasePair | None,
    fences: dict[str, str],
    placement: str,
) -> str:
    """Why this step runs here: its place in its service, and what its action requires."""
    step = service.steps[index]
    total = len(service.steps)
    if index == 0:
        place = f"First of {total} steps of '{service.id}', which {placement}."
    else:
        previous = service.steps[index - 1].id
        place = f"Step {index + 1} of {total} of '{service.id}', after '{previous}'."
    if step.action == "fence" and database is not None:
        return (
            f"{place} It fences {database.primary_group}, so the old primary of "
            f"'{database.id}' stops taking writes before any promotion."
        )
    if step.action == "promote" and database is not None:
        fencer = fences.get(database.id)
        if fencer is None:
            return f"{place} It promotes {database.standby_group}, but no step fenced the primary."
        return (
            f"{place} It promotes {database.standby_group} only once '{fencer}' has fenced the "
            "primary: never two writable primaries."
        )
    if step.action == "switch_traffic":
        return f"{place} It sends users to the recovered site."
    return place


def _plan_reason(elapsed: int, steps: int) -> str:
    """The verdict on the whole plan against the one-hour limit."""
    limit = RTO_LIMIT_MINUTES * 60
    verdict = (
        f"within the {RTO_LIMIT_MINUTES}-minute limit of Pasal 3(1)(b), "
        f"{limit - elapsed} s to spare"
        if elapsed <= limit
        else f"past the {RTO_LIMIT_MINUTES}-minute limit of Pasal 3(1)(b) by {elapsed - limit} s"
    )
    return (
        f"Predicted RTO {elapsed} s, the sum of {steps} step budgets run one after another: "
        f"{verdict}."
    )
