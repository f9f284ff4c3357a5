"""One way to run and record a step, for every flow (failover, resync, failback, ...).

A step's start and end go to the evidence ledger, with its duration against its budget and its
outcome; a step that raises a :class:`drp.errors.DrpError` is recorded as failed rather than
crashing the flow, so the flow can stop with the reason. The caller adds what is its own (an
RTO clock, notifications).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from drp.domain.rto import StepTiming
from drp.errors import DrpError
from drp.ledger import Ledger

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
) -> tuple[StepOutcome, StepTiming]:
    """Record the start, run ``body``, record the end with its duration against the budget."""
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
            "step_id": step_id,
            "status": outcome.status,
            "reason": outcome.reason,
            "duration_s": duration,
            "budget_s": budget_s,
            "over_budget": timing.over_budget,
            "attempt": attempt,
            **outcome.data,
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
    return outcome, timing
