"""The failover's rules: two-person approval, pre-flight verdicts, the promotion gate, RPO."""

from __future__ import annotations

import pytest

from drp.domain.failover import (
    Decision,
    FenceOutcome,
    Mode,
    RecoveryPoint,
    StandbyObservation,
    check_approval,
    judge_preflight,
    lsn_to_int,
    may_promote,
)

pytestmark = pytest.mark.unit


def _approve(
    mode: Mode, declarer: str, approver: str, confirmed: bool = True, two: bool = False
) -> Decision:
    return check_approval(
        mode=mode, declared_by=declarer, approver=approver, confirmed=confirmed, two_person_rule=two
    )


def test_a_real_failover_refuses_approval_by_the_declarer() -> None:
    d = _approve(Mode.REAL, "Budi", " budi ")
    assert not d.allowed and "two-person rule" in d.reason


def test_a_real_failover_accepts_a_second_person() -> None:
    assert _approve(Mode.REAL, "Budi", "Sari").allowed


def test_a_drill_may_be_self_approved_unless_the_runbook_asks_for_two() -> None:
    assert _approve(Mode.DRILL, "Budi", "Budi").allowed
    assert not _approve(Mode.DRILL, "Budi", "Budi", two=True).allowed


def test_an_unconfirmed_or_anonymous_approval_is_refused() -> None:
    assert not _approve(Mode.REAL, "Budi", "Sari", confirmed=False).allowed
    assert not _approve(Mode.REAL, "Budi", "  ").allowed


def _standby(**kw) -> StandbyObservation:
    base = dict(
        reachable=True,
        in_recovery=True,
        streaming=True,
        lag_bytes=0,
        replay_delay_s=0.0,
        replay_paused=False,
    )
    return StandbyObservation(**{**base, **kw})


def test_preflight_passes_a_streaming_standby_with_no_lag() -> None:
    v = judge_preflight(_standby(), primary_reachable=True, max_lag_bytes=0)
    assert v.ok and "streaming" in v.reason


def test_preflight_fails_when_the_replay_backlog_exceeds_its_limit() -> None:
    v = judge_preflight(_standby(lag_bytes=4096), primary_reachable=True, max_lag_bytes=0)
    assert not v.ok and "backlog 4096 bytes exceeds" in v.reason


def test_preflight_accepts_a_torn_tail_left_by_a_crashed_primary() -> None:
    # After `pg_ctl stop -m immediate` the standby may hold a few KB it can never replay.
    v = judge_preflight(
        _standby(streaming=False, lag_bytes=7800),
        primary_reachable=False,
        max_lag_bytes=16 * 1024 * 1024,
    )
    assert v.ok, v.failures


def test_preflight_fails_on_paused_replay_and_on_syntax_problems() -> None:
    v = judge_preflight(
        _standby(replay_paused=True),
        primary_reachable=True,
        max_lag_bytes=0,
        syntax_problems=("fence_primary.yml: bad indent",),
    )
    assert not v.ok
    assert any("paused" in f for f in v.failures)
    assert any("fence_primary.yml" in f for f in v.failures)


def test_preflight_accepts_a_standby_not_streaming_when_the_dc_is_down() -> None:
    v = judge_preflight(_standby(streaming=False), primary_reachable=False, max_lag_bytes=0)
    assert v.ok


def test_preflight_refuses_a_standby_not_streaming_while_the_dc_answers() -> None:
    v = judge_preflight(_standby(streaming=False), primary_reachable=True, max_lag_bytes=0)
    assert not v.ok


def test_preflight_fails_when_the_drc_cannot_be_reached() -> None:
    v = judge_preflight(
        StandbyObservation(reachable=False), primary_reachable=True, max_lag_bytes=0
    )
    assert not v.ok and "cannot be reached" in v.reason


@pytest.mark.parametrize("fence", [FenceOutcome.FENCED, FenceOutcome.ALREADY_FENCED])
def test_promotion_follows_a_proven_fence(fence: FenceOutcome) -> None:
    assert may_promote(fence, None).allowed


def test_an_unreachable_dc_needs_a_recorded_confirmation_before_promotion() -> None:
    refused = may_promote(FenceOutcome.UNREACHABLE, None)
    assert not refused.allowed and "--confirm-dc-isolated" in refused.reason
    allowed = may_promote(FenceOutcome.UNREACHABLE, "Sari")
    assert allowed.allowed and "Sari confirmed" in allowed.reason


def test_a_failed_fence_never_allows_promotion_even_with_a_confirmation() -> None:
    assert not may_promote(FenceOutcome.FAILED, "Sari").allowed


def test_lsn_positions_and_the_recovery_point_sentence() -> None:
    assert lsn_to_int("0/3000148") == 0x3000148
    assert lsn_to_int("1/0") == 1 << 32
    assert "no data lost" in RecoveryPoint("0/10", "0/10", None, "0/10", 0).reason
    assert "unknown" in RecoveryPoint("0/10", "0/10", None).reason
