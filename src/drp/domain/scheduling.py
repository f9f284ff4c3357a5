"""Whether Prefect's scheduler keeps the platform's schedules: the drill, the backups, the checks.

The regulation's quarterly drill (Pasal 15), the daily backups and their restore test, and the
replication check run only because the server's scheduler turns each active schedule into flow
runs ahead of time. When it fails nothing else notices: the UI shows no run, and no run means
no alert. It failed once on every loop (SQLAlchemy 2.1 under Prefect 3.8.8) while the server
still answered its health check. So ``drp server status`` judges the scheduler itself, from
plain observations gathered by :mod:`drp.prefect_server`:

- **Scheduler errors in the server's log** since the server started: ``failing``, whatever the
  runs look like (the error repeats on every loop; the last one says why).
- **Scheduler disabled** on a server with active schedules: ``failing``.
- **An active schedule that expects a run but has none upcoming.** The scheduler keeps every
  active schedule filled with runs ahead of time (at least a few, up to its horizon, Prefect's
  ``max_scheduled_time``), within one loop of a (re)deploy or a server start. A schedule whose
  next date lies within the horizon and that has no scheduled run still to start is
  ``failing`` once :func:`expected_window` has passed since the schedule last changed or the
  server started, whichever is later; before that it is ``pending`` (not a failure: a fresh
  deploy or restart). A schedule whose next date is beyond the horizon (a yearly one with a
  100-day horizon) expects nothing yet.
- Otherwise ``healthy``, or ``idle`` when no deployment has an active schedule.

Runs that are due but not started (no worker polls their pool) are the workers' business, not
the scheduler's: they are reported, not judged here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

LOOP_ALLOWANCE = timedelta(seconds=30)
"""Slack beyond two scheduler loops before "no run yet" counts as a failure: a loop that runs
long on a busy database, and the time a fresh server takes to start its services."""


class SchedulerState(StrEnum):
    IDLE = "idle"
    HEALTHY = "healthy"
    PENDING = "pending"
    FAILING = "failing"


@dataclass(frozen=True)
class SchedulerSettings:
    """The server's scheduler settings (Prefect's ``PREFECT_SERVER_SERVICES_SCHEDULER_*``)."""

    enabled: bool
    loop_seconds: float
    horizon: timedelta  # max_scheduled_time: runs are created at most this far ahead


@dataclass(frozen=True)
class ScheduleView:
    """One deployment with at least one active schedule, as the server shows it."""

    deployment: str  # flow/deployment
    active_since: datetime  # the schedule's last change or the server's start, the later one
    next_due: datetime | None  # the schedule's next date from now; None: it has no more dates
    upcoming: int  # scheduled runs still to start (expected start after now)
    newest_auto_created: datetime | None = None  # when the scheduler last created a run for it


@dataclass(frozen=True)
class SchedulerLog:
    """Scheduler errors in the server's log since the server started."""

    errors: int
    last_error: str | None = None


@dataclass(frozen=True)
class SchedulerVerdict:
    state: SchedulerState
    reasons: tuple[str, ...]
    hint: str | None = None

    @property
    def ok(self) -> bool:
        return self.state is not SchedulerState.FAILING


def expected_window(settings: SchedulerSettings) -> timedelta:
    """How long after a deploy or a server start the first runs may take: two loops (one may
    just have begun) plus :data:`LOOP_ALLOWANCE`."""
    return 2 * timedelta(seconds=settings.loop_seconds) + LOOP_ALLOWANCE


def _seconds(delta: timedelta) -> str:
    return f"{delta.total_seconds():.0f} s"


def judge_scheduler(
    schedules: Sequence[ScheduleView],
    log: SchedulerLog,
    settings: SchedulerSettings,
    now: datetime,
) -> SchedulerVerdict:
    """The scheduler's state, one sentence per reason, and what to do when it fails."""
    failing: list[str] = []
    pending: list[str] = []
    hints: list[str] = []
    if log.errors:
        failing.append(
            f"the server's log shows {log.errors} scheduler error(s) since it started; the "
            f"last: {log.last_error or '(no message)'}"
        )
        if log.last_error and "bulk DML" in log.last_error:
            hints.append(
                "this is SQLAlchemy 2.1 under Prefect 3.8.8: install the lock's SQLAlchemy "
                "2.0.x (make setup; docs/dependencies.md), then restart the server "
                "(drp server down; drp server up)"
            )
        else:
            hints.append(
                "read the server's log at the error, fix its cause, then restart the server "
                "(drp server down; drp server up)"
            )
    if schedules and not settings.enabled:
        failing.append(
            f"{len(schedules)} deployment(s) have active schedules but the server's scheduler is "
            "disabled (PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED=false)"
        )
        hints.append("unset PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED and restart the server")
    window = expected_window(settings)
    horizon_end = now + settings.horizon
    stalled = False
    for view in schedules:
        if view.upcoming > 0 or view.next_due is None or view.next_due > horizon_end:
            continue
        waited = max(now - view.active_since, timedelta(0))
        due = view.next_due.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
        if waited > window:
            stalled = True
            created = (
                f"its last run was created {view.newest_auto_created.isoformat()}"
                if view.newest_auto_created
                else "no run was ever created for it"
            )
            failing.append(
                f"{view.deployment}: the schedule is active and next due {due}, but no run is "
                f"scheduled {_seconds(waited)} after its schedule or the server started "
                f"(expected within {_seconds(window)}: one scheduler loop every "
                f"{settings.loop_seconds:g} s); {created}"
            )
        else:
            pending.append(
                f"{view.deployment}: waiting for the scheduler's first runs "
                f"({_seconds(waited)} of {_seconds(window)})"
            )
    if stalled and not log.errors and settings.enabled:
        hints.append(
            "the scheduler creates nothing and logs no error: read the server's log, restart "
            "the server (drp server down; drp server up) and look again after "
            f"{_seconds(window)}"
        )
    if failing:
        return SchedulerVerdict(SchedulerState.FAILING, tuple(failing + pending), "; ".join(hints))
    if pending:
        return SchedulerVerdict(SchedulerState.PENDING, tuple(pending))
    if not schedules:
        return SchedulerVerdict(SchedulerState.IDLE, ("no deployment has an active schedule",))
    return SchedulerVerdict(
        SchedulerState.HEALTHY,
        (f"{len(schedules)} deployment(s) with active schedules, each with runs scheduled",),
    )
