"""Readiness rules: verdicts per pair and service against the RPO, drift, alerts once per breach."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from drp.domain.readiness import (
    CATCH_UP_ALLOWANCE_BYTES,
    AlertKind,
    AlertState,
    PairObservation,
    Readiness,
    SenderObservation,
    ServerObservation,
    SlotObservation,
    Verdict,
    assess_pair,
    assess_runbook,
    compare_settings,
    drift_verdict,
    next_alerts,
)
from drp.runbooks import load_runbook

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)

PRIMARY = ServerObservation(
    name="dc-db",
    reachable=True,
    writable=True,
    timeline=1,
    senders=(SenderObservation("drc_db", "streaming", "async", 0, None),),
    slots=(SlotObservation("drc_db", True, 1024),),
)
STANDBY = ServerObservation(
    name="drc-db",
    reachable=True,
    in_recovery=True,
    timeline=1,
    streaming=True,
    lag_bytes=0,
    replay_delay_s=900.0,  # an idle primary: the last commit is old, nothing is pending
)


def pair(primary: ServerObservation = PRIMARY, standby: ServerObservation = STANDBY):
    return PairObservation("skp-db", primary, standby)


def lagging(pending: int, age_s: float | None) -> PairObservation:
    return pair(
        replace(
            PRIMARY, senders=(SenderObservation("drc_db", "streaming", "async", pending, age_s),)
        ),
        replace(STANDBY, lag_bytes=pending),
    )


def test_a_streaming_caught_up_pair_is_ready_even_when_the_primary_is_idle() -> None:
    v = assess_pair(pair(), rpo_seconds=0)
    assert v.status is Readiness.READY and v.reasons == ()
    assert any("asynchronous" in n for n in v.notes)


def test_two_writable_primaries_is_not_ready_and_says_split_brain() -> None:
    v = assess_pair(pair(standby=replace(STANDBY, in_recovery=False, writable=True)), 60)
    assert v.status is Readiness.NOT_READY
    assert v.reasons[0].startswith("SPLIT BRAIN: both dc-db and drc-db accept writes")


def test_a_stopped_standby_is_not_ready() -> None:
    v = assess_pair(pair(standby=ServerObservation("drc-db", False, error="refused")), 60)
    assert v.status is Readiness.NOT_READY and "drc-db does not answer (refused)" in v.reasons


def test_a_standby_that_does_not_stream_is_not_ready() -> None:
    v = assess_pair(pair(standby=replace(STANDBY, streaming=False)), 60)
    assert v.status is Readiness.NOT_READY and "not streaming" in v.reasons[0]


def test_a_fenced_primary_leaves_no_writable_primary() -> None:
    v = assess_pair(pair(primary=replace(PRIMARY, writable=False)), 60)
    assert v.status is Readiness.NOT_READY and "refuses writes" in v.reasons[0]


def test_different_timelines_are_not_ready_when_the_standby_does_not_stream() -> None:
    v = assess_pair(pair(standby=replace(STANDBY, timeline=2, streaming=False)), 60)
    assert v.status is Readiness.NOT_READY
    assert any("timelines differ" in r for r in v.reasons)


def test_a_streaming_standby_whose_checkpoint_is_on_an_older_timeline_is_ready() -> None:
    # after a timeline switch the standby's checkpoint timeline catches up at its next
    # restartpoint; streaming proves it follows the primary's timeline
    assert (
        assess_pair(
            pair(standby=replace(STANDBY, timeline=1), primary=replace(PRIMARY, timeline=2)), 60
        ).status
        is Readiness.READY
    )


def test_after_failover_and_resync_the_swapped_pair_is_ready_and_says_so() -> None:
    drc_primary = replace(PRIMARY, name="drc-db", timeline=2)
    dc_standby = replace(STANDBY, name="dc-db", timeline=1)
    v = assess_pair(PairObservation("skp-db", dc_standby, drc_primary), 60)
    assert v.status is Readiness.READY
    assert any("roles are swapped: drc-db is the primary" in n for n in v.notes)


def test_rpo_zero_tolerates_only_the_catch_up_allowance() -> None:
    assert assess_pair(lagging(CATCH_UP_ALLOWANCE_BYTES, 0.2), 0).ready
    v = assess_pair(lagging(CATCH_UP_ALLOWANCE_BYTES + 1, 0.2), 0)
    assert v.status is Readiness.DEGRADED and "RPO 0 allows none" in v.reasons[0]


def test_with_an_rpo_pending_wal_is_judged_by_its_age() -> None:
    assert assess_pair(lagging(10_000_000, 30.0), 60).ready
    v = assess_pair(lagging(10_000_000, 90.0), 60)
    assert v.status is Readiness.DEGRADED and "beyond the RPO of 60 s" in v.reasons[0]


def test_the_standby_replay_delay_is_the_age_when_the_primary_has_none() -> None:
    obs = lagging(10_000_000, None)
    assert assess_pair(obs, 1000).ready  # standby delay 900 s
    assert assess_pair(obs, 600).status is Readiness.DEGRADED


def test_paused_replay_is_degraded_with_how_to_resume() -> None:
    v = assess_pair(pair(standby=replace(STANDBY, replay_paused=True)), 60)
    assert v.status is Readiness.DEGRADED and "pg_wal_replay_resume()" in v.reasons[0]


def test_an_inactive_slot_retaining_wal_is_degraded() -> None:
    slot = SlotObservation("old_standby", False, 3 << 30)
    v = assess_pair(pair(primary=replace(PRIMARY, slots=(*PRIMARY.slots, slot))), 60)
    assert v.status is Readiness.DEGRADED
    assert "old_standby on dc-db is inactive and retains 3.0 GiB" in v.reasons[0]


def test_a_slot_left_on_the_standby_is_degraded_too() -> None:
    # After a failback without a copy, the DRC keeps the slot the DC streamed from.
    slot = SlotObservation("dc_db", False, 5 << 20)
    v = assess_pair(pair(standby=replace(STANDBY, slots=(slot,))), 60)
    assert v.status is Readiness.DEGRADED
    assert "dc_db on drc-db is inactive and retains 5.0 MiB of WAL (the standby's" in v.reasons[0]


def test_synchronous_replication_carries_no_async_note() -> None:
    sync = replace(PRIMARY, senders=(SenderObservation("drc_db", "streaming", "sync", 0, None),))
    assert assess_pair(pair(primary=sync), 0).notes == ()


def test_each_service_is_judged_against_its_own_rpo_and_the_pair_against_the_strictest() -> None:
    rb = load_runbook("runbooks/lab.yaml")
    skp = rb.services[0]
    relaxed = skp.model_copy(update={"id": "relaxed", "rpo_seconds": 600, "depends_on": ()})
    rb = rb.model_copy(update={"services": (skp, relaxed)})
    report = assess_runbook(rb, {"skp-db": lagging(1_000_000, 30.0)})
    by = {v.subject: v.status for v in report.verdicts}
    assert by == {
        "pair:skp-db": Readiness.DEGRADED,
        "service:skp": Readiness.DEGRADED,
        "service:relaxed": Readiness.READY,
    }
    assert report.status is Readiness.DEGRADED


SETTINGS = {
    "max_connections": "100",
    "max_wal_senders": "10",
    "wal_level": "replica",
    "server_version_num": "150010",
    "shared_buffers": "16384",
    "data_checksums": "on",
}


def test_identical_settings_are_no_drift() -> None:
    assert compare_settings(SETTINGS, dict(SETTINGS)) == ()
    assert drift_verdict("skp-db", ()).ready


def test_a_standby_below_its_primary_stops_replay_and_is_not_ready() -> None:
    (d,) = compare_settings(SETTINGS, {**SETTINGS, "max_connections": "50"})
    assert (d.setting, d.primary, d.standby, d.severity) == (
        "max_connections",
        "100",
        "50",
        Readiness.NOT_READY,
    )
    assert "primary 100, standby 50" in d.reason


def test_a_standby_above_its_primary_is_degraded() -> None:
    (d,) = compare_settings(SETTINGS, {**SETTINGS, "max_connections": "200"})
    assert d.severity is Readiness.DEGRADED


def test_versions_and_checksums_must_match() -> None:
    drifts = compare_settings(
        SETTINGS, {**SETTINGS, "server_version_num": "160004", "data_checksums": "off"}
    )
    sev = {d.setting: d.severity for d in drifts}
    assert sev == {"server_version_num": Readiness.NOT_READY, "data_checksums": Readiness.DEGRADED}
    minor = compare_settings(SETTINGS, {**SETTINGS, "server_version_num": "150012"})
    assert minor[0].severity is Readiness.DEGRADED


def test_shared_buffers_only_warns() -> None:
    drifts = compare_settings(SETTINGS, {**SETTINGS, "shared_buffers": "4096"})
    v = drift_verdict("skp-db", drifts)
    assert v.ready and v.reasons == () and "shared_buffers differs" in v.notes[0]
    assert v.data["drifts"][0]["severity"] == "warning"  # type: ignore[index]


def test_an_unreadable_side_is_not_ready() -> None:
    v = drift_verdict("skp-db", (), errors=("cannot read the settings at the DRC: refused",))
    assert v.status is Readiness.NOT_READY


def _verdict(status: Readiness, reason: str = "lag") -> dict[str, Verdict]:
    reasons = () if status is Readiness.READY else (reason,)
    return {"pair:skp-db": Verdict("pair:skp-db", status, reasons)}


def test_an_alert_fires_once_when_a_breach_starts_once_if_it_worsens_and_once_on_clear() -> None:
    state: dict[str, AlertState] = {}
    fired = []
    sequence = [Readiness.READY, Readiness.DEGRADED, Readiness.DEGRADED, Readiness.NOT_READY]
    sequence += [Readiness.READY, Readiness.READY]
    for minute, status in enumerate(sequence):
        state, alerts = next_alerts(state, _verdict(status), T0 + timedelta(minutes=minute))
        fired += [(minute, a.kind) for a in alerts]
    assert fired == [(1, AlertKind.BREACH), (3, AlertKind.ESCALATED), (4, AlertKind.CLEARED)]
    assert state["pair:skp-db"] == AlertState(False, None, "")


def test_a_continuing_breach_keeps_its_start_and_refreshes_its_reason() -> None:
    state, _ = next_alerts({}, _verdict(Readiness.DEGRADED, "paused"), T0)
    state, alerts = next_alerts(
        state, _verdict(Readiness.DEGRADED, "2 MiB behind"), T0 + timedelta(minutes=5)
    )
    assert alerts == ()
    assert state["pair:skp-db"] == AlertState(True, T0, "2 MiB behind", Readiness.DEGRADED)
    state, (cleared,) = next_alerts(state, _verdict(Readiness.READY), T0 + timedelta(minutes=10))
    assert cleared.since == T0 and "2 MiB behind" in cleared.text


def test_subjects_not_checked_keep_their_state() -> None:
    previous = {"drift:skp-db": AlertState(True, T0, "max_connections")}
    state, alerts = next_alerts(previous, _verdict(Readiness.READY), T0)
    assert alerts == () and state["drift:skp-db"] == previous["drift:skp-db"]


def test_a_breach_that_worsens_to_not_ready_alerts_once_more() -> None:
    state, _ = next_alerts({}, _verdict(Readiness.DEGRADED, "lag"), T0)
    state, (escalated,) = next_alerts(state, _verdict(Readiness.NOT_READY, "SPLIT BRAIN"), T0)
    assert escalated.kind is AlertKind.ESCALATED and "SPLIT BRAIN" in escalated.text
    assert escalated.since == T0
    state, alerts = next_alerts(state, _verdict(Readiness.NOT_READY, "SPLIT BRAIN"), T0)
    assert alerts == ()
    state, alerts = next_alerts(state, _verdict(Readiness.DEGRADED, "lag"), T0)
    assert alerts == ()  # getting better is not news until it clears
