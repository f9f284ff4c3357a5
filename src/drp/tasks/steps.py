"""One way to run and record a step, for every flow (failover, resync, failback, ...).

A step's start and end go to the evidence ledger, with its duration against its budget and its
outcome; a step that raises a :class:`drp.errors.DrpError` is recorded as failed rather than
crashing the flow, so the flow can stop with the reason. The caller adds what is its own (an
RTO clock, notifications).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from drp.domain.rto import StepTiming
from drp.errors import DrpError
from drp.ledger import Ledger
from drp.notify import Notifier, notify_safely

# Outcomes of a step, as recorded.
DONE = "done"
ALREADY_DONE = "already_done"
FAILED = "failed"
SKIPPED = "skipped"


@dataclass
class StepOutcome:
    status: str  # done | already_done | failed | skipped
    reason: str
    data: dict[str, Any] = field(default_factory=dict)


def record_step(
    ledger: Ledger,
    *,
    step_id: str,
    name: str,
    budget_s: float,
    attempt: int,
    body: Callable[[], StepOutcome],
    results: list[dict[str, Any]],
    logger: logging.Logger | logging.LoggerAdapter,
    start_data: Mapping[str, Any] | None = None,
    result_data: Mapping[str, Any] | None = None,
    announcer: Announcer | None = None,
) -> tuple[StepOutcome, StepTiming]:
    """Record the start, run ``body``, record the end with its duration against the budget;
    with an ``announcer``, tell people at both ends (after each is recorded).

    The run's log gets one line at each end, from here and nowhere else: the log channel of the
    announcer records what people were told in the ledger without repeating the line
    (:class:`drp.notify.LedgerLogNotifier`)."""
    ledger.append(
        "step.start",
        {
            "step_id": step_id,
            "name": name,
            "budget_s": budget_s,
            "attempt": attempt,
            **dict(start_data or {}),
        },
    )
    logger.info("▶ %s (budget %d s)", name, budget_s)
    if announcer is not None:
        announcer.started(ledger, step_id, name, budget_s)
    started = datetime.now(UTC)
    try:
        outcome = body()
    except DrpError as exc:
        outcome = StepOutcome(FAILED, str(exc))
    timing = StepTiming(
        step_id, name, started, datetime.now(UTC), timedelta(seconds=budget_s), outcome.status
    )
    duration = round(timing.duration.total_seconds(), 3)
    ledger.append(
        "step.end",
        {
            **outcome.data,  # first: a step's data never overwrites the fields every end has
            "step_id": step_id,
            "status": outcome.status,
            "reason": outcome.reason,
            "duration_s": duration,
            "budget_s": budget_s,
            "over_budget": timing.over_budget,
            "attempt": attempt,
        },
    )
    results.append(
        {
            "step_id": step_id,
            "name": name,
            **dict(result_data or {}),
            "status": outcome.status,
            "duration_s": duration,
            "budget_s": budget_s,
            "reason": outcome.reason,
        }
    )
    logger.info("%s %s — %s", SYMBOLS.get(outcome.status, "?"), timing.reason, outcome.reason)
    if announcer is not None:
        announcer.ended(ledger, outcome, timing)
    return outcome, timing


SYMBOLS = {DONE: "✓", ALREADY_DONE: "=", FAILED: "✗", SKIPPED: "-"}


@dataclass(frozen=True)
class Announcer:
    """Tells people that a step of ``flow`` started and ended (``step.started``,
    ``step.<status>`` with its duration against its budget), through the run's notifiers."""

    notifiers: Sequence[Notifier]
    flow: str
    incident_id: str

    def started(self, ledger: Ledger, step_id: str, name: str, budget_s: float) -> None:
        notify_safely(
            list(self.notifiers),
            ledger,
            "step.started",
            f"{self.incident_id}: ▶ {name} (budget {budget_s:.0f} s)",
            incident_id=self.incident_id,
            flow=self.flow,
            step_id=step_id,
            budget_s=budget_s,
        )

    def ended(self, ledger: Ledger, outcome: StepOutcome, timing: StepTiming) -> None:
        notify_safely(
            list(self.notifiers),
            ledger,
            f"step.{outcome.status}",
            f"{self.incident_id}: {SYMBOLS.get(outcome.status, '?')} {timing.reason}",
            incident_id=self.incident_id,
            flow=self.flow,
            step_id=timing.step_id,
            duration_s=round(timing.duration.total_seconds(), 3),
            budget_s=timing.budget.total_seconds(),
        )


CRASH_HOOK = "DRP_CRASH_AFTER_STEP"
"""Fault injection for drills and tests: the process dies (exit 70) right after that step, as a
killed worker would — so that re-running the incident can be shown to finish without repeating
a step."""


def crash_if_asked(ledger: Ledger, step_id: str) -> None:
    """Die here (exit 70, no clean-up) when ``DRP_CRASH_AFTER_STEP`` names this step."""
    if os.environ.get(CRASH_HOOK) == step_id:
        ledger.append("fault.injected", {"hook": CRASH_HOOK, "after": step_id})
        os._exit(70)
