"""The resync's pure rules: how the old primary rejoins, and which settings drift matters."""

from __future__ import annotations

import pytest

from drp.domain.resync import (
    NewPrimaryObservation,
    OldPrimaryObservation,
    RejoinMethod,
    TimelineFork,
    decide_rejoin,
    parse_timeline_history,
)

pytestmark = pytest.mark.unit

PROMOTED = NewPrimaryObservation(
    reachable=True,
    in_recovery=False,
    timeline=2,
    history=(TimelineFork(1, "0/3000828", "no recovery target specified"),),
)


def _old(**changes: object) -> OldPrimaryObservation:
    base: dict[str, object] = dict(
        data_dir_present=True,
        control_readable=True,
        cluster_state="shut down",
        timeline=1,
        checkpoint_lsn="0/30007B0",
        redo_lsn="0/30007B0",
        checksums=True,
        wal_log_hints=True,
    )
    return OldPrimaryObservation(**{**base, **changes})  # type: ignore[arg-type]


def test_history_file_lines_become_forks() -> None:
    text = "1\t0/3000828\tno recovery target specified\n\n2\t0/5000000\tat restore point\n"
    assert parse_timeline_history(text) == (
        TimelineFork(1, "0/3000828", "no recovery target specified"),
        TimelineFork(2, "0/5000000", "at restore point"),
    )


def test_clean_shutdown_before_the_fork_needs_no_rewind() -> None:
    decision = decide_rejoin(_old(), PROMOTED)
    assert decision.allowed and decision.method is RejoinMethod.STANDBY
    assert "no rewind is needed" in decision.reason


def test_writes_past_the_fork_are_rewound() -> None:
    decision = decide_rejoin(_old(checkpoint_lsn="0/4000000"), PROMOTED)
    assert decision.method is RejoinMethod.REWIND
    assert "at or past the fork 0/3000828" in decision.reason


def test_a_crashed_old_primary_is_rewound_since_its_wal_end_is_unknown() -> None:
    decision = decide_rejoin(_old(cluster_state="in production"), PROMOTED)
    assert decision.method is RejoinMethod.REWIND
    assert "not shut down cleanly" in decision.reason


def test_a_missing_data_directory_needs_a_base_backup() -> None:
    decision = decide_rejoin(OldPrimaryObservation(data_dir_present=False), PROMOTED)
    assert decision.method is RejoinMethod.BASEBACKUP
    assert "no data directory" in decision.reason


def test_an_unreadable_control_file_needs_a_base_backup() -> None:
    decision = decide_rejoin(_old(control_readable=False, timeline=None), PROMOTED)
    assert decision.method is RejoinMethod.BASEBACKUP
    assert "unusable" in decision.reason


def test_without_checksums_or_wal_log_hints_rewind_is_impossible() -> None:
    decision = decide_rejoin(_old(checksums=False, wal_log_hints=False), PROMOTED)
    assert decision.method is RejoinMethod.BASEBACKUP
    assert "wal_log_hints" in decision.reason


def test_an_unrelated_timeline_needs_a_base_backup() -> None:
    decision = decide_rejoin(_old(timeline=5), PROMOTED)
    assert decision.method is RejoinMethod.BASEBACKUP
    assert "unrelated" in decision.reason


def test_a_failed_rewind_falls_back_to_a_base_backup() -> None:
    decision = decide_rejoin(_old(checkpoint_lsn="0/4000000"), PROMOTED, rewind_failed=True)
    assert decision.method is RejoinMethod.BASEBACKUP
    assert "pg_rewind failed" in decision.reason


def test_the_operator_may_ask_for_a_base_backup() -> None:
    decision = decide_rejoin(_old(), PROMOTED, force_basebackup=True)
    assert decision.method is RejoinMethod.BASEBACKUP


def test_a_standby_already_streaming_from_the_drc_is_left_alone() -> None:
    old = _old(running=True, in_recovery=True, streaming_from_new_primary=True)
    decision = decide_rejoin(old, PROMOTED, force_basebackup=True)
    assert decision.allowed and decision.method is RejoinMethod.ALREADY


def test_refuses_when_the_drc_was_never_promoted() -> None:
    standby = NewPrimaryObservation(reachable=True, in_recovery=True, timeline=1)
    decision = decide_rejoin(_old(), standby)
    assert not decision.allowed and "not a primary" in decision.reason


def test_refuses_two_primaries_and_says_to_fence_first() -> None:
    decision = decide_rejoin(_old(running=True, in_recovery=False), PROMOTED)
    assert not decision.allowed and "fence it first" in decision.reason


def test_refuses_when_the_drc_cannot_be_reached() -> None:
    decision = decide_rejoin(_old(), NewPrimaryObservation(reachable=False))
    assert not decision.allowed
