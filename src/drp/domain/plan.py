"""The recovery plan: which services recover (all, or a partial selection), in which order,
and when the graph of the runbook lets each of them run, with the RTO that predicts.

Like patroni's quorum resolver, :func:`plan` takes plain values (a validated runbook) and returns
decisions, each with a ``reason`` sentence that says why the step sits where it does; the flow
that runs the plan only applies them. A service's steps run one after another; services run
at the same time as far as their dependencies, the priority groups and
``execution.max_parallel`` allow (:mod:`drp.domain.graph`), so the predicted RTO is the end of
the critical path. The serial figure (every step one after another) is given beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from drp.domain.adb import Criticality
from drp.domain.graph import Policy, Schedule, closure, simulate
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
    """Predicted time from the start of the plan to the start of this step (its service's
    start in the schedule, plus the budgets of the service's earlier steps)."""
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
    """When the schedule ends the service's last step (from the start of the plan)."""
    reason: str
    starts_at_seconds: int = 0
    """When the schedule starts the service's first step."""

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
            "starts_at_seconds": self.starts_at_seconds,
            "predicted_seconds": self.predicted_seconds,
            "rto_seconds": self.rto_seconds,
            "rpo_seconds": self.service.rpo_seconds,
            "mtdp_minutes": self.service.mtdp_minutes,
            "within_rto": self.within_rto,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Selection:
    """The services an incident moves: the whole site, or those asked for and what they need."""

    services: tuple[str, ...]
    asked: tuple[str, ...] = ()
    added: tuple[tuple[str, str], ...] = ()
    """(service, why it was added) for services the selection needs but did not name."""
    whole_site: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "whole_site": self.whole_site,
            "services": list(self.services),
            "asked": list(self.asked),
            "added": [{"service": s, "reason": r} for s, r in self.added],
        }


class SelectionRefused(ValueError):
    """A partial selection that cannot be moved on its own; the message says why and how."""


@dataclass(frozen=True)
class RecoveryPlan:
    """The ordered steps of a runbook (or of a selection of its services), and the RTO they
    predict when services run as the graph allows."""

    runbook: Runbook
    services: tuple[ServiceRecovery, ...]
    steps: tuple[PlannedStep, ...]
    predicted_rto_seconds: int
    """End of the critical path: services run at the same time as the graph allows."""
    reason: str
    rto_limit_seconds: int = RTO_LIMIT_MINUTES * 60
    predicted_rto_serial_seconds: int = 0
    """Sum of every step budget: what the plan would take one step after another."""
    critical_path: tuple[str, ...] = ()
    policy: Policy = field(default_factory=Policy)
    selection: Selection = field(default_factory=lambda: Selection(services=()))

    @property
    def within_limit(self) -> bool:
        """True when the predicted RTO keeps the one-hour limit of Pasal 3(1)(b)."""
        return self.predicted_rto_seconds <= self.rto_limit_seconds

    def service_steps(self, service_id: str) -> tuple[PlannedStep, ...]:
        """The planned steps of one service, in the order they run."""
        return tuple(p for p in self.steps if p.service.id == service_id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "runbook": self.runbook.name,
            "environment": self.runbook.environment,
            "predicted_rto_seconds": self.predicted_rto_seconds,
            "predicted_rto_parallel_s": self.predicted_rto_seconds,
            "predicted_rto_serial_s": self.predicted_rto_serial_seconds,
            "critical_path": list(self.critical_path),
            "execution": {
                "max_parallel": self.policy.max_parallel,
                "on_failure": self.policy.on_failure,
                "group_barrier": self.policy.group_barrier,
            },
            "selection": self.selection.as_dict(),
            "rto_limit_seconds": self.rto_limit_seconds,
            "within_limit": self.within_limit,
            "reason": self.reason,
            "services": [s.as_dict() for s in self.services],
            "steps": [s.as_dict() for s in self.steps],
        }


def movers(runbook: Runbook, database_id: str) -> tuple[str, ...]:
    """The services whose steps fence or promote ``database_id``: they move the pair."""
    return tuple(
        s.id
        for s in runbook.services
        if s.database == database_id and any(st.action in ("fence", "promote") for st in s.steps)
    )


def moved_pairs(runbook: Runbook, services: Sequence[str]) -> tuple[str, ...]:
    """The database pairs a selection moves (fences and promotes), in the runbook's order:
    what the resync rebuilds and the failback brings back."""
    chosen = set(services)
    return tuple(
        db.id for db in runbook.databases if any(m in chosen for m in movers(runbook, db.id))
    )


def select(runbook: Runbook, wanted: Sequence[str] | None = None) -> Selection:
    """The services an incident moves: every service (``wanted`` empty or None), or the ones
    wanted plus what they need — the services they depend on and the services that move the
    database pairs they run on. Refused (:class:`SelectionRefused`) when an unknown id is
    named, or when the selection would move a database pair that a service left out still
    runs on (it would stay at the DC without its database)."""
    every = tuple(s.id for s in runbook.services)
    if not wanted:
        return Selection(services=every)
    asked = tuple(dict.fromkeys(w.strip() for w in wanted if w.strip()))
    unknown = [w for w in asked if w not in every]
    if unknown:
        raise SelectionRefused(
            f"unknown service {', '.join(repr(u) for u in unknown)}: the runbook's services "
            f"are {', '.join(every)}"
        )
    nodes = runbook.nodes()
    added: dict[str, str] = {}
    chosen = list(asked)
    while True:
        keep = closure(nodes, chosen)
        for service_id in keep:
            if service_id not in asked and service_id not in added:
                needed_by = [
                    s for s in keep if service_id in runbook.service(s).depends_on
                ] or chosen
                added[service_id] = f"'{needed_by[0]}' depends on it"
        grown = False
        for service_id in keep:
            pair = runbook.service(service_id).database
            for mover in movers(runbook, pair) if pair else ():
                if mover not in keep:
                    added.setdefault(
                        mover, f"it moves database pair '{pair}', which '{service_id}' runs on"
                    )
                    chosen.append(mover)
                    grown = True
        if not grown:
            break
    keep = closure(nodes, chosen)
    for service_id in keep:
        pair = runbook.service(service_id).database
        if not pair or not movers(runbook, pair):
            continue
        left = [s.id for s in runbook.services if s.database == pair and s.id not in keep]
        if left:
            raise SelectionRefused(
                f"moving {', '.join(repr(a) for a in asked)} moves database pair '{pair}' "
                f"(fenced and promoted by {', '.join(movers(runbook, pair))}), and "
                f"{', '.join(repr(x) for x in left)} also run on it: they would be left at the "
                f"DC without their database (add them to the selection, or leave "
                f"{', '.join(repr(a) for a in asked)} out)"
            )
    return Selection(
        services=tuple(s for s in every if s in keep),
        asked=asked,
        added=tuple((s, added[s]) for s in every if s in added),
        whole_site=len(keep) == len(every),
    )


def plan(runbook: Runbook, services: Sequence[str] | None = None) -> RecoveryPlan:
    """Order the runbook's steps (of every service, or of a selection: :func:`select`) and
    predict when each service is back.

    Services are considered by priority group, then after the services they depend on, ties
    kept in file order (:func:`drp.domain.runbook.recovery_order`); a service's steps run in
    the order the file lists them; the schedule (:func:`drp.domain.graph.simulate`) runs
    services at the same time as far as the runbook's ``execution`` allows. The runbook should
    have passed :func:`drp.domain.runbook.validate`: an invalid one still gets an order, but
    its predictions mean little.
    """
    selection = select(runbook, services)
    chosen = set(selection.services)
    order = [
        runbook.services[i]
        for i in recovery_order(runbook.services)
        if runbook.services[i].id in chosen
    ]
    policy = runbook.execution.policy()
    nodes = tuple(n for n in runbook.nodes() if n.id in chosen)
    schedule = simulate(nodes, policy)
    recoveries: list[ServiceRecovery] = []
    planned: list[PlannedStep] = []
    fences: dict[str, str] = {}  # database pair -> id of the step that fenced it
    previous: Service | None = None
    for place, service in enumerate(order, start=1):
        placement = _placement(service, previous, order[: place - 1])
        database = runbook.database(service.database)
        slot = schedule.slots.get(service.id)
        elapsed = slot.start_s if slot else 0
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
                reason=f"'{service.id}' ({service.criticality.value}) {placement}."
                + (f" Scheduled: {slot.reason}." if slot else ""),
                starts_at_seconds=slot.start_s if slot else 0,
            )
        )
        previous = service
    return RecoveryPlan(
        runbook=runbook,
        services=tuple(recoveries),
        steps=tuple(planned),
        predicted_rto_seconds=schedule.parallel_s,
        reason=_plan_reason(schedule, len(planned), policy),
        predicted_rto_serial_seconds=schedule.serial_s,
        critical_path=schedule.critical_path,
        policy=policy,
        selection=selection,
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


def _plan_reason(schedule: Schedule, steps: int, policy: Policy) -> str:
    """The verdict on the whole plan against the one-hour limit."""
    limit = RTO_LIMIT_MINUTES * 60
    elapsed = schedule.parallel_s
    verdict = (
        f"within the {RTO_LIMIT_MINUTES}-minute limit of Pasal 3(1)(b), "
        f"{limit - elapsed} s to spare"
        if elapsed <= limit
        else f"past the {RTO_LIMIT_MINUTES}-minute limit of Pasal 3(1)(b) by {elapsed - limit} s"
    )
    path = " → ".join(schedule.critical_path) or "-"
    return (
        f"Predicted RTO {elapsed} s: {steps} steps, services running at the same time as "
        f"their dependencies allow (at most {policy.max_parallel}), critical path {path}; "
        f"{schedule.serial_s} s one step after another; {verdict}."
    )
