"""The failback's pure rules: when a switchover back to the DC may start, and when it lost
nothing (LSN comparison)."""

from __future__ import annotations

import pytest

from drp.domain.failback import (
    SitesObservation,
    already_failed_back,
    check_precondition,
    prove_zero_loss,
)

pytestmark = pytest.mark.unit

AFTER_RESYNC = SitesObservation(drc_in_recovery=False, dc_in_recovery=True, dc_streaming=True)


def test_after_failover_and_resync_the_failback_may_start() -> None:
    decision = check_precondition(AFTER_RESYNC)
    assert decision.allowed
    assert "DC streams from it" in decision.reason
    assert not already_failed_back(AFTER_RESYNC)


@pytest.mark.parametrize(
    ("seen", "hint"),
    [
        (SitesObservation(drc_in_recovery=None, dc_in_recovery=True), "DRC database cannot"),
        (SitesObservation(drc_in_recovery=True, dc_in_recovery=False), "not the primary"),
        (SitesObservation(drc_in_recovery=False, dc_in_recovery=None), "bring the DC back"),
        (SitesObservation(drc_in_recovery=False, dc_in_recovery=False), "fence it"),
        (
            SitesObservation(drc_in_recovery=False, dc_in_recovery=True, dc_streaming=False),
            "drp resync",
        ),
    ],
)
def test_anything_else_is_refused_with_what_to_do(seen: SitesObservation, hint: str) -> None:
    decision = check_precondition(seen)
    assert not decision.allowed
    assert hint in decision.reason


def test_the_end_state_is_recognised_as_already_failed_back() -> None:
    done = SitesObservation(drc_in_recovery=True, dc_in_recovery=False)
    assert already_failed_back(done)
    assert not already_failed_back(SitesObservation(drc_in_recovery=None, dc_in_recovery=False))


def test_zero_loss_is_proven_at_or_past_the_final_checkpoint() -> None:
    exact = prove_zero_loss("0/3035B00", "0/3035B00")
    past = prove_zero_loss("0/3035B00", "0/3035B78")
    assert exact.proven and past.proven
    assert past.missing_bytes == 0
    assert "zero data loss" in past.reason


def test_short_of_the_final_checkpoint_names_the_missing_bytes() -> None:
    short = prove_zero_loss("1/00000010", "0/FFFFFFF0")
    assert not short.proven
    assert short.missing_bytes == 0x20
    assert "32 byte(s) short" in short.reason and "would lose data" in short.reason


def test_no_replay_position_yet_is_not_a_proof() -> None:
    unknown = prove_zero_loss("0/3000000", None)
    assert not unknown.proven and unknown.missing_bytes is None
    assert "no replay position" in unknown.reason


def test_a_malformed_final_lsn_is_an_error_not_a_wait() -> None:
    with pytest.raises(ValueError):
        prove_zero_loss("garbage", "0/1")
