"""The runbook as a graph: which services may start now, which can no longer start, and the
schedule that follows — one set of rules for the plan's prediction and for the run itself.

A service starts when every service it depends on is verified, when a slot is free (the
runbook's ``execution.max_parallel``) and, with ``execution.group_barrier``, when every service
of the earlier priority groups is verified. Among the services that could start, the earlier
priority group goes first, then the order of the file. A service whose dependency failed (or
could not start) never starts; with ``on_failure: stop_all`` nothing new starts once anything
failed. Each decision carries the sentence that explains it, as :mod:`drp.domain.plan` does.

Pure and generic: the rules take :class:`Node` values (id, group, dependencies, expected
duration), so the runbook's validation, the plan and the flows can all use them without
importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

OnFailure = Literal["continue_independent", "stop_all"]
DEFAULT_MAX_PARALLEL = 4
"""Enough for the reference plan's widest group; low enough that a site's Ansible controller
and its PostgreSQL servers are not all hit at the same moment."""
MAX_PARALLEL_LIMIT = 64


class State(StrEnum):
    """Where a service stands in a run (or in the simulated run of a prediction)."""

    PENDING = "pending"
    RUNNING = "running"
    VERIFIED = "verified"
    FAILED = "failed"
    BLOCKED = "blocked"  # will not start: what it needs failed or could not start


FINISHED = frozenset({State.VERIFIED, State.FAILED, State.BLOCKED})


@dataclass(frozen=True)
class Node:
    """One service as the scheduler sees it."""

    id: str
    group: int
    depends_on: tuple[str, ...] = ()
    duration_s: int = 0


@dataclass(frozen=True)
class Policy:
    """How the runbook lets services run together (``execution:`` in the runbook)."""

    max_parallel: int = DEFAULT_MAX_PARALLEL
    on_failure: OnFailure = "continue_independent"
    group_barrier: bool = False


@dataclass(frozen=True)
class Move:
    """A decision about one service: start it now, or never (blocked), and why."""

    service_id: str
    state: State  # RUNNING (start it) or BLOCKED
    reason: str


def _join(ids: Sequence[str]) -> str:
    quoted = [f"'{i}'" for i in ids]
    if not quoted:
        return "nothing"
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"


def ordered(nodes: Sequence[Node]) -> tuple[Node, ...]:
    """The order in which waiting services are considered: priority group, then file order."""
    return tuple(sorted(nodes, key=lambda n: (n.group, nodes.index(n))))


def next_moves(
    nodes: Sequence[Node], states: Mapping[str, State], policy: Policy
) -> tuple[Move, ...]:
    """What to do now: the services that can never start (blocked, with the failure that
    stopped them), then the services to start (as many as free slots allow).

    ``states`` holds every node's state (a node missing from it is pending). Dependencies on
    services outside ``nodes`` are not this run's business (they stay where they are) and
    count as met.
    """
    known = {n.id for n in nodes}
    state = {n.id: states.get(n.id, State.PENDING) for n in nodes}
    moves: list[Move] = []

    failed = [n.id for n in nodes if state[n.id] is State.FAILED]
    if policy.on_failure == "stop_all" and failed:
        for node in ordered(nodes):
            if state[node.id] is State.PENDING:
                state[node.id] = State.BLOCKED
                moves.append(
                    Move(
                        node.id,
                        State.BLOCKED,
                        f"not started: {_join(failed)} failed and the runbook says "
                        "on_failure: stop_all",
                    )
                )
        return tuple(moves)

    changed = True
    while changed:  # a block can block what depends on it: to a fixed point
        changed = False
        for node in ordered(nodes):
            if state[node.id] is not State.PENDING:
                continue
            lost = [
                d
                for d in node.depends_on
                if d in known and state[d] in (State.FAILED, State.BLOCKED)
            ]
            barrier = (
                [
                    n.id
                    for n in nodes
                    if n.group < node.group and state[n.id] in (State.FAILED, State.BLOCKED)
                ]
                if policy.group_barrier
                else []
            )
            if lost or barrier:
                state[node.id] = State.BLOCKED
                changed = True
                why = (
                    f"it depends on {_join(lost)}, which did not recover"
                    if lost
                    else f"group {node.group} waits for every earlier group, and "
                    f"{_join(barrier)} did not recover"
                )
                moves.append(Move(node.id, State.BLOCKED, f"not started: {why}"))

    running = sum(1 for s in state.values() if s is State.RUNNING)
    free = max(policy.max_parallel - running, 0)
    for node in ordered(nodes):
        if free == 0:
            break
        if state[node.id] is not State.PENDING:
            continue
        deps = [d for d in node.depends_on if d in known]
        if any(state[d] is not State.VERIFIED for d in deps):
            continue
        earlier = [n for n in nodes if n.group < node.group]
        if policy.group_barrier and any(state[n.id] is not State.VERIFIED for n in earlier):
            continue
        free -= 1
        state[node.id] = State.RUNNING
        needs = f"{_join(deps)} verified" if deps else "it depends on no other service"
        moves.append(
            Move(
                node.id,
                State.RUNNING,
                f"starts: {needs}; group {node.group}; "
                f"{running + 1} of at most {policy.max_parallel} running",
            )
        )
        running += 1
    return tuple(moves)


def done(nodes: Sequence[Node], states: Mapping[str, State]) -> bool:
    """True when every service is verified, failed or blocked: the run has nothing left."""
    return all(states.get(n.id, State.PENDING) in FINISHED for n in nodes)


@dataclass(frozen=True)
class Slot:
    """When the simulated run starts and ends one service, and what it waited for last."""

    node: Node
    start_s: int
    end_s: int
    waited_for: str | None  # the service whose end let this one start (None: at once)
    reason: str


@dataclass(frozen=True)
class Schedule:
    """A whole simulated run: each service's slot, the end, and the serial figure beside it."""

    slots: Mapping[str, Slot]
    parallel_s: int
    serial_s: int
    critical_path: tuple[str, ...]


def simulate(nodes: Sequence[Node], policy: Policy) -> Schedule:
    """Run the rules of :func:`next_moves` on expected durations: when would each service
    start and end, and which chain of services decides the end (the critical path)."""
    states: dict[str, State] = {n.id: State.PENDING for n in nodes}
    by_id = {n.id: n for n in nodes}
    slots: dict[str, Slot] = {}
    ends: dict[str, int] = {}
    now = 0
    last_finished: str | None = None
    while not done(nodes, states):
        for move in next_moves(nodes, states, policy):
            states[move.service_id] = move.state
            if move.state is State.RUNNING:
                node = by_id[move.service_id]
                slots[node.id] = Slot(
                    node,
                    now,
                    now + node.duration_s,
                    _waited_for(node, ends, now, last_finished),
                    move.reason,
                )
                ends[node.id] = now + node.duration_s
        running = [i for i, s in states.items() if s is State.RUNNING]
        if not running:  # nothing runs and nothing can start: only blocked ones remain
            break
        now = min(ends[i] for i in running)
        for i in sorted(running, key=lambda i: nodes.index(by_id[i])):
            if ends[i] == now:
                states[i] = State.VERIFIED
                last_finished = i
    parallel = max(ends.values(), default=0)
    return Schedule(
        slots=slots,
        parallel_s=parallel,
        serial_s=sum(n.duration_s for n in nodes),
        critical_path=_critical_path(slots, parallel),
    )


def _waited_for(
    node: Node, ends: Mapping[str, int], now: int, last_finished: str | None
) -> str | None:
    """The service whose end released this one: a dependency ending now, else whatever ended
    now (a free slot or a group barrier); None when it started at the very beginning."""
    if now == 0:
        return None
    deps_now = [d for d in node.depends_on if ends.get(d) == now]
    if deps_now:
        return deps_now[0]
    return last_finished


def _critical_path(slots: Mapping[str, Slot], end: int) -> tuple[str, ...]:
    """From the service that ends last, back through what each one waited for."""
    last = [s for s in slots.values() if s.end_s == end]
    if not last:
        return ()
    path: list[str] = []
    current: str | None = last[-1].node.id
    while current is not None and current not in path:
        path.append(current)
        current = slots[current].waited_for
    return tuple(reversed(path))


def closure(nodes: Sequence[Node], chosen: Sequence[str]) -> tuple[str, ...]:
    """``chosen`` and every service they depend on, directly or not, in node order."""
    by_id = {n.id: n for n in nodes}
    keep: set[str] = set()
    todo = [c for c in chosen if c in by_id]
    while todo:
        current = todo.pop()
        if current in keep:
            continue
        keep.add(current)
        todo.extend(d for d in by_id[current].depends_on if d in by_id)
    return tuple(n.id for n in nodes if n.id in keep)


def dependants(nodes: Sequence[Node], service_id: str) -> tuple[str, ...]:
    """Every service that depends on ``service_id``, directly or not, in node order."""
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for node in nodes:
            if node.id not in found and (
                service_id in node.depends_on or found.intersection(node.depends_on)
            ):
                found.add(node.id)
                changed = True
    return tuple(n.id for n in nodes if n.id in found)
