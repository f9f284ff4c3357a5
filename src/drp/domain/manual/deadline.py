"""The Pasal 11 deadline: declarations received during the abnormal condition must be in SKP
within 30 days of services working again.

The clock starts at the service-restored time (the failover's verified service, or a time the
operator gives); alerts go out once per threshold as the deadline nears (7, 3 and 1 days left)
and once when it has passed, so that people hear about it without being flooded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

RESYNC_WINDOW = timedelta(days=30)
ALERT_DAYS_LEFT = (7, 3, 1)


@dataclass(frozen=True)
class ResyncDeadline:
    restored_at: datetime
    deadline: datetime
    now: datetime

    @property
    def remaining(self) -> timedelta:
        return self.deadline - self.now

    @property
    def overdue(self) -> bool:
        return self.remaining <= timedelta(0)

    @property
    def level(self) -> str:
        """``ok``, ``nearing`` (within the widest alert threshold) or ``overdue``."""
        if self.overdue:
            return "overdue"
        if self.remaining <= timedelta(days=max(ALERT_DAYS_LEFT)):
            return "nearing"
        return "ok"

    def sentence(self) -> str:
        days = self.remaining.total_seconds() / 86400
        if self.overdue:
            return (
                f"the Pasal 11 deadline ({self.deadline.isoformat()}) passed {-days:.1f} days "
                "ago: synchronise the remaining declarations now and record why they were late"
            )
        return (
            f"{days:.1f} days left until the Pasal 11 deadline {self.deadline.isoformat()} "
            f"(services restored {self.restored_at.isoformat()})"
        )


def resync_deadline(restored_at: datetime, now: datetime) -> ResyncDeadline:
    if restored_at.tzinfo is None or now.tzinfo is None:
        raise ValueError("give aware datetimes (with a time zone): the deadline is an instant")
    return ResyncDeadline(restored_at, restored_at + RESYNC_WINDOW, now)


def alerts_due(status: ResyncDeadline, already_sent: frozenset[str] | set[str]) -> list[str]:
    """The alert keys (``7d``, ``3d``, ``1d``, ``overdue``) due now and not yet sent.

    Only the tightest threshold crossed is due: an operator who first runs the resync with one
    day left hears "1 day left", not three alerts at once.
    """
    if status.overdue:
        return [] if "overdue" in already_sent else ["overdue"]
    crossed = [d for d in ALERT_DAYS_LEFT if status.remaining <= timedelta(days=d)]
    if not crossed:
        return []
    key = f"{min(crossed)}d"
    return [] if key in already_sent else [key]
