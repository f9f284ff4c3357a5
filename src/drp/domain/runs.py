"""The rules every incident run follows, pure: its mode, its RTO budgets, how long a gate may
wait, when a person must confirm an unreachable DC is isolated, what a fence proved, what a
re-run of a completed flow means, and which phases of a drill an interrupted drill repeats.

These used to sit in the flows and their tasks, where only a run through Prefect reached them;
here a unit test reaches each one with plain values (as patroni's quorum resolver does), and the
flows only apply the decisions, each with the sentence that explains it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from drp.domain.failover import FenceOutcome, Mode
from drp.errors import PreconditionFailed

INCIDENT_RTO_CAP = timedelta(minutes=60)
"""Pasal 3(1)(b): whatever each service's own objective, the incident as a whole is back
within one hour."""


def parse_mode(value: str | Mode | None) -> Mode:
    """``drill`` or ``real``: there is no default, since each writes its own documents."""
    if isinstance(value, Mode):
        return value
    text = (value or "").strip().lower()
    try:
        return Mode(text)
    except ValueError:
        raise PreconditionFailed(
            f"mode {value!r}: choose drill (a rehearsal, Pasal 15) or real (a declared "
            "disaster); whoever starts the run says which"
        ) from None


def service_budget(rto_minutes: int) -> timedelta:
    """A service's own RTO clock runs against its ``rto_minutes``, never past the cap."""
    return min(timedelta(minutes=rto_minutes), INCIDENT_RTO_CAP)


def tightest_budget(rto_minutes: Iterable[int]) -> timedelta:
    """One clock for several services (a failback moves them back together): the tightest
    of their objectives, never past the cap; the cap when there are none."""
    minutes = list(rto_minutes)
    return min(service_budget(m) for m in minutes) if minutes else INCIDENT_RTO_CAP


def approval_timeout_s(runbook_minutes: int, override_s: int | None = None) -> int:
    """The runbook sets how long a gate waits; a run may shorten it (a drill that measures
    people, a test), never lengthen it; never below one second."""
    limit = runbook_minutes * 60
    if override_s is None:
        return max(1, limit)
    return max(1, min(limit, override_s))


class GateAction(StrEnum):
    PROCEED = "proceed"
    ASK = "ask"  # pause for a person (the Prefect UI's form, or Slack)
    STOP = "stop"  # a run with no one to ask: stop before promotion, say what to give


@dataclass(frozen=True)
class GateDecision:
    action: GateAction
    reason: str


def isolation_gate(
    fence: FenceOutcome | None, confirmed_by: str | None, interactive: bool
) -> GateDecision:
    """After the fence: does promotion wait for a person to confirm that the DC is down or
    isolated? Only when the DC could not be reached (no proof either way). A run answered up
    front (``interactive`` false: the command line, a scheduled drill with its answers) cannot
    ask, so it stops before anything is promoted and names the option that confirms."""
    if fence is not FenceOutcome.UNREACHABLE:
        return GateDecision(GateAction.PROCEED, "the fence reached the DC: no confirmation needed")
    if confirmed_by and confirmed_by.strip():
        return GateDecision(
            GateAction.PROCEED, f"{confirmed_by} confirmed that the DC is down or isolated"
        )
    if not interactive:
        return GateDecision(
            GateAction.STOP,
            "the DC cannot be reached and no confirmation that it is down or isolated was "
            "given; nothing was promoted (re-run with --confirm-dc-isolated NAME once checked)",
        )
    return GateDecision(
        GateAction.ASK,
        "the DC cannot be reached: promotion waits for a person to confirm, by other means, "
        "that it is down or isolated",
    )


@dataclass(frozen=True)
class FenceVerdict:
    """What the fence of one database pair proved, and what the step records."""

    outcome: FenceOutcome
    status: str  # the step's status: done, already_done or failed
    reason: str


def judge_fence(
    *,
    unreachable_hosts: Sequence[str],
    playbook_ok: bool,
    playbook_changed: bool,
    writable_after: bool | None,
    proof: str,
    failure: str = "",
) -> FenceVerdict:
    """The fence playbook's result and an independent look from the clients' side, turned
    into what the promotion gate needs to know."""
    if unreachable_hosts:
        return FenceVerdict(
            FenceOutcome.UNREACHABLE,
            "done",
            f"the DC host(s) {', '.join(unreachable_hosts)} cannot be reached: fencing cannot "
            "be proven; promotion needs the DC's lease to expire or a recorded confirmation "
            "that the DC is down or isolated",
        )
    if not playbook_ok:
        return FenceVerdict(
            FenceOutcome.FAILED, "failed", f"fencing the DC primary failed: {failure}"
        )
    if writable_after:
        return FenceVerdict(
            FenceOutcome.FAILED,
            "failed",
            f"the fence playbook succeeded but {proof}; do not promote",
        )
    if playbook_changed:
        return FenceVerdict(
            FenceOutcome.FENCED, "done", f"the DC primary is fenced; proof: {proof}"
        )
    return FenceVerdict(
        FenceOutcome.ALREADY_FENCED,
        "already_done",
        f"the DC primary was already fenced; proof: {proof}",
    )


class RerunAction(StrEnum):
    COMPLETED = "already_completed"  # nothing to do: say so, change nothing
    REFUSE = "refuse"  # the flow was completed, but the world has changed since: a new fault


@dataclass(frozen=True)
class RerunVerdict:
    action: RerunAction
    reason: str


def rerun_of_completed(flow: str, still_true: bool | None, what: str) -> RerunVerdict:
    """A re-run of a flow whose ledger is closed: "already completed" while what it achieved
    still holds (``what``: e.g. "the DC streams from the DRC"); refused when it no longer does
    — that is a new fault, and a new incident. ``still_true`` None: nothing to check."""
    if still_true is None or still_true:
        return RerunVerdict(RerunAction.COMPLETED, f"the {flow} was completed; {what}")
    return RerunVerdict(
        RerunAction.REFUSE,
        f"its {flow} was completed, but {what} no longer holds; open a new incident for the "
        "new fault",
    )


class PhaseAction(StrEnum):
    RUN = "run"
    SKIP = "skip"


@dataclass(frozen=True)
class PhasePlan:
    action: PhaseAction
    reason: str


def drill_phase(phase: str, done_before: Iterable[str]) -> PhasePlan:
    """An interrupted drill's re-run repeats no phase it completed. The opening check of the
    normal topology is not repeated once the fault was injected either: after that the
    topology is, on purpose, not normal."""
    done = set(done_before)
    if phase in done:
        return PhasePlan(PhaseAction.SKIP, f"{phase} completed in an earlier attempt")
    if phase == "start" and "inject" in done:
        return PhasePlan(
            PhaseAction.SKIP,
            "start: the fault was injected in an earlier attempt, so the normal topology "
            "cannot be checked again (it was, before the injection)",
        )
    return PhasePlan(PhaseAction.RUN, f"{phase}: to do")


def drill_target(environment: str) -> None:
    """Drills inject real faults: only into the embedded lab."""
    if environment != "lab":
        raise PreconditionFailed(
            f"a drill injects faults, and this runbook's environment is {environment!r}: "
            "drills run on the embedded lab only (environment: lab)"
        )
