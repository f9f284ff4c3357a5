"""The RTO clock: elapsed time against the budget, warnings once at 50% and 80%."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drp.domain.rto import RecoveryTimeClock, StepTiming

pytestmark = pytest.mark.unit
T0 = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)


def test_the_budget_may_not_exceed_the_hour_of_pasal_3() -> None:
    with pytest.raises(ValueError, match="60 minutes"):
        RecoveryTimeClock(T0, budget=timedelta(minutes=61))


def test_warnings_fire_once_at_half_and_at_eighty_percent() -> None:
    clock = RecoveryTimeClock(T0, budget=timedelta(minutes=10))
    assert clock.due_warnings(T0 + timedelta(minutes=4)) == []
    half = clock.due_warnings(T0 + timedelta(minutes=5))
    assert [w.fraction for w in half] == [0.5]
    assert clock.due_warnings(T0 + timedelta(minutes=6)) == []
    late = clock.due_warnings(T0 + timedelta(minutes=9))
    assert [w.fraction for w in late] == [0.8] and "80%" in late[0].reason


def test_a_late_first_look_fires_both_warnings() -> None:
    clock = RecoveryTimeClock(T0, budget=timedelta(minutes=10))
    assert [w.fraction for w in clock.due_warnings(T0 + timedelta(minutes=9))] == [0.5, 0.8]


def test_stopping_fixes_the_achieved_rto_and_the_verdict() -> None:
    clock = RecoveryTimeClock(
        T0, budget=timedelta(minutes=10), detected_at=T0 - timedelta(minutes=3)
    )
    assert "still running" in clock.verdict()
    clock.stop(T0 + timedelta(seconds=42))
    clock.stop(T0 + timedelta(minutes=20))  # a second stop changes nothing
    assert clock.achieved == timedelta(seconds=42)
    assert clock.elapsed(T0 + timedelta(hours=2)) == timedelta(seconds=42)
    assert "within" in clock.verdict()
    assert clock.detection_to_declaration == timedelta(minutes=3)


def test_a_step_over_its_budget_says_so() -> None:
    t = StepTiming("fence", "Fence", T0, T0 + timedelta(seconds=20), timedelta(seconds=15), "done")
    assert t.over_budget and "over its budget" in t.reason
