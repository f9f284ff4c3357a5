"""The scheduler's health (`drp server status`): the judgement over plain values, and the reading
of scheduler errors in a Prefect server's log (an excerpt of a real one, from a server that ran
with SQLAlchemy 2.1.9)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drp.adapters import prefect_server as ps
from drp.domain.scheduling import (
    SchedulerLog,
    SchedulerSettings,
    SchedulerState,
    ScheduleView,
    expected_window,
    judge_scheduler,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
DEFAULTS = SchedulerSettings(enabled=True, loop_seconds=60, horizon=timedelta(days=100))
CLEAN = SchedulerLog(errors=0)


def _view(
    upcoming: int,
    since_s: float = 3600,
    next_in: timedelta | None = timedelta(minutes=5),
    name: str = "replication-check/replication-check",
) -> ScheduleView:
    return ScheduleView(
        deployment=name,
        active_since=NOW - timedelta(seconds=since_s),
        next_due=NOW + next_in if next_in is not None else None,
        upcoming=upcoming,
    )


def test_no_active_schedule_is_idle_and_fine() -> None:
    verdict = judge_scheduler([], CLEAN, DEFAULTS, NOW)
    assert verdict.state is SchedulerState.IDLE and verdict.ok
    assert verdict.reasons == ("no deployment has an active schedule",)


def test_every_active_schedule_with_runs_ahead_is_healthy() -> None:
    views = [_view(12), _view(3, name="drill/drill", next_in=timedelta(days=80))]
    verdict = judge_scheduler(views, CLEAN, DEFAULTS, NOW)
    assert verdict.state is SchedulerState.HEALTHY and verdict.ok and verdict.hint is None


def test_an_active_schedule_without_runs_long_after_the_window_fails_with_what_to_do() -> None:
    """The issue's case without its log: the replication check every 5 minutes, nothing
    scheduled 12 minutes after the server started."""
    verdict = judge_scheduler([_view(0, since_s=720)], CLEAN, DEFAULTS, NOW)
    assert verdict.state is SchedulerState.FAILING and not verdict.ok
    (reason,) = verdict.reasons
    assert reason.startswith("replication-check/replication-check: the schedule is active")
    assert "no run is scheduled 720 s after" in reason and "expected within 150 s" in reason
    assert "no run was ever created for it" in reason
    assert verdict.hint and "drp server down; drp server up" in verdict.hint


def test_within_the_window_after_a_deploy_or_a_start_it_is_pending_not_failing() -> None:
    window = expected_window(DEFAULTS).total_seconds()
    assert window == 150  # two loops of 60 s and 30 s of allowance
    verdict = judge_scheduler([_view(0, since_s=window - 1)], CLEAN, DEFAULTS, NOW)
    assert verdict.state is SchedulerState.PENDING and verdict.ok
    assert verdict.reasons == (
        "replication-check/replication-check: waiting for the scheduler's first runs "
        "(149 s of 150 s)",
    )
    late = judge_scheduler([_view(0, since_s=window + 1)], CLEAN, DEFAULTS, NOW)
    assert late.state is SchedulerState.FAILING


def test_a_shorter_loop_shortens_the_window() -> None:
    fast = SchedulerSettings(enabled=True, loop_seconds=2, horizon=timedelta(days=100))
    assert expected_window(fast) == timedelta(seconds=34)
    assert not judge_scheduler([_view(0, since_s=40)], CLEAN, fast, NOW).ok
    assert judge_scheduler([_view(0, since_s=40)], CLEAN, DEFAULTS, NOW).ok


def test_a_schedule_whose_next_date_is_beyond_the_horizon_expects_no_run_yet() -> None:
    yearly = _view(0, next_in=timedelta(days=200), name="audit/yearly")
    finished = _view(0, next_in=None, name="once/once")  # no more dates at all
    verdict = judge_scheduler([yearly, finished], CLEAN, DEFAULTS, NOW)
    assert verdict.state is SchedulerState.HEALTHY


def test_scheduler_errors_in_the_log_fail_even_when_runs_exist() -> None:
    log = SchedulerLog(
        errors=28,
        last_error="07:34:57.811 schedule_deployments: sqlalchemy.exc.InvalidRequestError: "
        "Can't evaluate bulk DML statement; please supply a bulk_dml decorated function",
    )
    verdict = judge_scheduler([_view(5)], log, DEFAULTS, NOW)
    assert verdict.state is SchedulerState.FAILING
    assert verdict.reasons[0].startswith(
        "the server's log shows 28 scheduler error(s) since it started; the last: 07:34:57.811 "
        "schedule_deployments: sqlalchemy.exc.InvalidRequestError: Can't evaluate bulk DML"
    )
    assert verdict.hint and "SQLAlchemy 2.0.x (make setup; docs/dependencies.md)" in verdict.hint


def test_another_scheduler_error_points_at_the_log() -> None:
    log = SchedulerLog(errors=1, last_error="08:00:01.000 schedule_deployments: OSError: boom")
    verdict = judge_scheduler([], log, DEFAULTS, NOW)
    assert verdict.state is SchedulerState.FAILING
    assert verdict.hint and verdict.hint.startswith("read the server's log at the error")


def test_a_disabled_scheduler_with_active_schedules_fails() -> None:
    off = SchedulerSettings(enabled=False, loop_seconds=60, horizon=timedelta(days=100))
    verdict = judge_scheduler([_view(0, since_s=10)], CLEAN, off, NOW)
    assert verdict.state is SchedulerState.FAILING
    assert "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED=false" in verdict.reasons[0]
    assert judge_scheduler([], CLEAN, off, NOW).state is SchedulerState.IDLE


# -- the server's log ---------------------------------------------------------------------------
REAL_LOG = """\
Check out the dashboard at http://127.0.0.1:10150



07:34:32.866 | ERROR   | docket.dependencies - ↩ [   406ms] schedule_deployments(){schedule_deployments}
Traceback (most recent call last):
  File "/tmp/h1-sa21/lib/python3.11/site-packages/docket/worker.py", line 1134, in _execute
    result = await execution.function(
             ^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/tmp/h1-sa21/lib/python3.11/site-packages/prefect/server/services/scheduler.py", line 273, in schedule_deployments
    inserted_runs = await models.deployments._insert_scheduled_flow_runs(
  File "/tmp/h1-sa21/lib/python3.11/site-packages/sqlalchemy/ext/hybrid.py", line 1851, in prop
    raise exc.InvalidRequestError(
sqlalchemy.exc.InvalidRequestError: Can't evaluate bulk DML statement; please supply a bulk_dml decorated function
07:34:32.993 | ERROR   | docket.dependencies - ↩ [   529ms] schedule_recent_deployments(){schedule_recent_deployments}
Traceback (most recent call last):
  File "/tmp/h1-sa21/lib/python3.11/site-packages/sqlalchemy/ext/hybrid.py", line 1851, in prop
    raise exc.InvalidRequestError(
sqlalchemy.exc.InvalidRequestError: Can't evaluate bulk DML statement; please supply a bulk_dml decorated function
07:34:35.001 | WARNING | prefect.server.services.foreman - something else
07:34:36.001 | ERROR   | prefect.server.events.ordering - not the scheduler
Traceback (most recent call last):
ValueError: unrelated
07:34:37.625 | ERROR   | docket.dependencies - ↩ [    67ms] schedule_deployments(){schedule_deployments}
Traceback (most recent call last):
  File "/tmp/h1-sa21/lib/python3.11/site-packages/sqlalchemy/ext/hybrid.py", line 1851, in prop
    raise exc.InvalidRequestError(
sqlalchemy.exc.InvalidRequestError: Can't evaluate bulk DML statement; please supply a bulk_dml decorated function
"""  # noqa: E501


def test_scheduler_errors_are_counted_with_the_last_ones_exception() -> None:
    count, last = ps.scheduler_errors(REAL_LOG.splitlines())
    assert count == 3  # the two scheduler tasks' errors, not the events service's
    assert last == (
        "07:34:37.625 schedule_deployments: sqlalchemy.exc.InvalidRequestError: Can't evaluate "
        "bulk DML statement; please supply a bulk_dml decorated function"
    )


def test_a_log_without_scheduler_errors_has_none() -> None:
    assert ps.scheduler_errors(REAL_LOG.splitlines()[:4]) == (0, None)
    assert ps.scheduler_errors([]) == (0, None)


def test_only_what_this_server_wrote_is_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "prefect-server.log"
    log.write_text(REAL_LOG)
    offset = log.stat().st_size
    with log.open("a") as fh:
        fh.write("08:00:00.000 | INFO    | uvicorn - started\n")
    assert ps.read_log_since(log, offset) == ["08:00:00.000 | INFO    | uvicorn - started"]
    assert ps.read_log_since(log, offset * 10)[0].startswith("Check out")  # truncated: all
    assert ps.read_log_since(tmp_path / "missing.log", 0) == []


def test_schedules_are_described_and_their_next_date_computed_by_prefect() -> None:
    interval = {"interval": 300.0, "anchor_date": "2026-12-03T07:00:00Z", "timezone": "UTC"}
    cron = {"cron": "0 2 1 1,4,7,10 *", "timezone": "Asia/Jakarta", "day_or": True}
    assert ps.describe_schedule(interval) == "every 300 s"
    assert ps.describe_schedule(cron) == "cron 0 2 1 1,4,7,10 * (Asia/Jakarta)"
    assert ps.next_schedule_date([interval], NOW) == NOW  # 08:00 is on the 5-minute grid
    quarterly = ps.next_schedule_date([cron], NOW)
    assert quarterly is not None
    assert quarterly.astimezone(UTC) == datetime(2026, 12, 31, 19, 0, tzinfo=UTC)  # 1 Jan 02:00 WIB
    assert ps.next_schedule_date([interval, cron], NOW) == NOW
