"""Run an incident's services as the runbook's graph allows: each service's steps in order, the
services themselves at the same time as far as :func:`drp.domain.graph.next_moves` says, each
as a Prefect task of its own (``service:<id>``, its steps nested under it).

The rules that decide (who starts, who can never start) are the plan's own, so the run follows
the prediction. A service that reaches a human gate (a confirmation that an unreachable DC is
isolated) hands back; once no service runs, the gate is asked in the flow's own thread — a flow
run pauses as a whole, and nothing may be running while it does — and the services that waited
go on with the answer. Every decision goes to the ledger with its reason (``service.started``,
``service.blocked``, ``service.waiting``, ``service.verified``, ``service.failed``).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from prefect import task
from prefect.cache_policies import NO_CACHE

from drp.domain.graph import Node, Policy, State, next_moves
from drp.errors import DrpError
from drp.tasks.kernel import IncidentRun


@dataclass(frozen=True)
class ServiceResult:
    """Where one call of a service's body left it: verified, failed, or waiting for ``gate``."""

    service_id: str
    state: State  # VERIFIED, FAILED, or RUNNING with a gate to answer
    reason: str
    gate: str | None = None


ServiceBody = Callable[[str], ServiceResult]
GateAnswer = Callable[[str, Sequence[str]], None]
"""Answers ``gate`` for the waiting services (in the flow's thread); raises a DrpError to
refuse, which fails those services."""


def execute(
    run: IncidentRun,
    nodes: Sequence[Node],
    policy: Policy,
    body: ServiceBody,
    answer_gate: GateAnswer,
) -> dict[str, tuple[State, str]]:
    """Run every node to an end (verified, failed or blocked); return each one's state and
    the sentence that explains it."""
    states: dict[str, State] = {n.id: State.PENDING for n in nodes}
    reasons: dict[str, str] = {}
    waiting: dict[str, str] = {}  # service -> the gate it waits for
    running: dict[Future[ServiceResult], str] = {}

    def submit(pool: ThreadPoolExecutor, service_id: str) -> None:
        # No Prefect timeout: in a pool thread Prefect cannot interrupt a task, it would only
        # warn. A service's steps end at their adapters' own limits (Ansible's, the polls').
        as_task = task(
            name=f"service:{service_id}",
            cache_policy=NO_CACHE,
            retries=0,
        )(body)
        here = contextvars.copy_context()  # the flow run's context, for the service's tasks
        running[pool.submit(here.run, as_task, service_id)] = service_id

    with ThreadPoolExecutor(
        max_workers=max(policy.max_parallel, 1), thread_name_prefix="drp-service"
    ) as pool:
        while True:
            if not waiting:  # a gate is pending: start nothing new until it is answered
                for move in next_moves(nodes, states, policy):
                    states[move.service_id] = move.state
                    reasons[move.service_id] = move.reason
                    if move.state is State.RUNNING:
                        run.ledger.append(
                            "service.started", {"service": move.service_id, "reason": move.reason}
                        )
                        submit(pool, move.service_id)
                    else:
                        run.ledger.append(
                            "service.blocked", {"service": move.service_id, "reason": move.reason}
                        )
                        run.notify(
                            "service.blocked", f"{run.incident_id}: {move.service_id} {move.reason}"
                        )
            if not running:
                if not waiting:
                    break
                _answer(run, waiting, states, reasons, answer_gate)
                for service_id in list(waiting):  # answered: they go on from where they were
                    if states[service_id] is State.RUNNING:
                        submit(pool, service_id)
                waiting.clear()
                continue
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                service_id = running.pop(future)
                result = _result_of(future, service_id)
                reasons[service_id] = result.reason
                if result.gate:
                    waiting[service_id] = result.gate
                    run.ledger.append(
                        "service.waiting",
                        {"service": service_id, "gate": result.gate, "reason": result.reason},
                    )
                    continue
                states[service_id] = result.state
                kind = "service.verified" if result.state is State.VERIFIED else "service.failed"
                run.ledger.append(kind, {"service": service_id, "reason": result.reason})
    return {i: (states[i], reasons.get(i, "")) for i in states}


def _result_of(future: Future[ServiceResult], service_id: str) -> ServiceResult:
    """A service's body that raised (a Prefect timeout, a bug) failed that service only."""
    try:
        return future.result()
    except Exception as exc:
        return ServiceResult(service_id, State.FAILED, f"{type(exc).__name__}: {exc}")


def _answer(
    run: IncidentRun,
    waiting: Mapping[str, str],
    states: dict[str, State],
    reasons: dict[str, str],
    answer_gate: GateAnswer,
) -> None:
    """Ask each pending gate once, for every service waiting on it; a refusal fails them."""
    for gate in sorted(set(waiting.values())):
        services = sorted(s for s, g in waiting.items() if g == gate)
        try:
            answer_gate(gate, services)
        except DrpError as exc:
            for service_id in services:
                states[service_id] = State.FAILED
                reasons[service_id] = str(exc)
                run.ledger.append("service.failed", {"service": service_id, "reason": str(exc)})


def side_by_side(bodies: Sequence[Callable[[], None]], max_parallel: int, name: str) -> None:
    """Run independent pieces of one flow (each database pair's steps in a resync or a
    failback, each route's switch, each service's verification) at the same time, in the flow
    run's context so that their steps are tasks of the run; wait until every one has ended —
    nothing is left running — then raise the first failure, if any. A single piece runs in
    the flow's own thread (where Prefect can time its steps out)."""
    if len(bodies) <= 1:
        for body in bodies:
            body()
        return
    with ThreadPoolExecutor(
        max_workers=max(1, min(max_parallel, len(bodies))), thread_name_prefix=f"drp-{name}"
    ) as pool:
        futures = [pool.submit(contextvars.copy_context().run, body) for body in bodies]
        wait(futures)
    for future in futures:
        error = future.exception()
        if error is not None:
            raise error
