"""The RTO clock: time since the disaster was declared, against the one-hour limit.

Pasal 3(1)(b) sets the RTO under one hour. The clock starts at the declaration (the detection
time, when known, is kept beside it: the time before the declaration is reported, not hidden).
It is pure: every method takes ``now``; the caller owns the real clock. Warnings fire once each,
at 50% and at 80% of the budget, as the ChatOps and progress artifacts need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

RTO_LIMIT = timedelta(minutes=60)
WARNING_FRACTIONS: tuple[float, ...] = (0.5, 0.8)


@dataclass(frozen=True)
class StepTiming:
    """One step's measured duration against its budget."""

    step_id: str
    name: str
    started: datetime
    ended: datetime
    budget: timedelta
    outcome: str  # done | already_done | skipped | failed

    @property
    def duration(self) -> timedelta:
        return self.ended - self.started

    @property
    def over_budget(self) -> bool:
        return self.duration > self.budget

    @property
    def reason(self) -> str:
        verdict = "over" if self.over_budget else "within"
        return (
            f"{self.name}: {self.duration.total_seconds():.1f} s, {verdict} its budget of "
            f"{self.budget.total_seconds():.0f} s ({self.outcome})"
        )


@dataclass(frozen=True)
class RtoWarning:
    """A threshold crossed: 50% or 80% of the budget gone."""

    fraction: float
    elapsed: timedelta
    budget: timedelta

    @property
    def reason(self) -> str:
        used = f"{_fmt(self.elapsed)} of {_fmt(self.budget)}"
        return f"{self.fraction:.0%} of the RTO budget used: {used}"


@dataclass
class RecoveryTimeClock:
    """Declared at ``declared_at``; ``budget`` is the runbook's RTO (never above 60 minutes)."""

    declared_at: datetime
    budget: timedelta = RTO_LIMIT
    detected_at: datetime | None = None
    steps: list[StepTiming] = field(default_factory=list)
    warned: set[float] = field(default_factory=set)
    stopped_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.budget > RTO_LIMIT:
            raise ValueError(f"RTO budget {_fmt(self.budget)} exceeds Pasal 3(1)(b)'s 60 minutes")
        if self.declared_at.tzinfo is None:
            raise ValueError("declared_at must be timezone-aware")

    def elapsed(self, now: datetime) -> timedelta:
        end = self.stopped_at or now
        return max(end - self.declared_at, timedelta(0))

    def fraction(self, now: datetime) -> float:
        return self.elapsed(now) / self.budget

    def remaining(self, now: datetime) -> timedelta:
        return self.budget - self.elapsed(now)

    def due_warnings(self, now: datetime) -> list[RtoWarning]:
        """Thresholds crossed since the last call (each fires once)."""
        out = []
        for frac in WARNING_FRACTIONS:
            if frac not in self.warned and self.fraction(now) >= frac:
                self.warned.add(frac)
                out.append(RtoWarning(frac, self.elapsed(now), self.budget))
        return out

    def record(self, timing: StepTiming) -> None:
        self.steps.append(timing)

    def stop(self, now: datetime) -> timedelta:
        """Service is verified: the achieved RTO is fixed."""
        if self.stopped_at is None:
            self.stopped_at = now
        return self.elapsed(now)

    @property
    def achieved(self) -> timedelta | None:
        return None if self.stopped_at is None else self.stopped_at - self.declared_at

    @property
    def detection_to_declaration(self) -> timedelta | None:
        if self.detected_at is None:
            return None
        return self.declared_at - self.detected_at

    def verdict(self) -> str:
        """One sentence on the achieved RTO against the budget and the 60-minute limit."""
        if self.achieved is None:
            return "service not yet verified: the RTO clock is still running"
        within = self.achieved <= self.budget
        return (
            f"achieved RTO {_fmt(self.achieved)} "
            f"{'within' if within else 'OVER'} the budget of {_fmt(self.budget)} "
            f"(Pasal 3(1)(b) limit: 60 min)"
        )


def _fmt(td: timedelta) -> str:
    total = td.total_seconds()
    if total < 120:
        return f"{total:.1f} s"
    minutes, seconds = divmod(int(total), 60)
    return f"{minutes} min {seconds:02d} s"
