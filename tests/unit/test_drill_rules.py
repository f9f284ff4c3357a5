"""The drill's rules: scenarios and the evaluation of one drill's measurements (Pasal 15)."""

from __future__ import annotations

import pytest

from drp.domain.drill import (
    SCENARIOS,
    GateResponse,
    PhaseResult,
    StepResult,
    UnknownScenario,
    evaluate,
    gates_from_records,
    scenario,
)

pytestmark = pytest.mark.unit


def _phases(**overrides: PhaseResult) -> list[PhaseResult]:
    base = {
        "failover": PhaseResult("failover", "done", 16.0, 15.0, 600.0, "ok"),
        "resync": PhaseResult("resync", "done", 12.0),
        "failback": PhaseResult("failback", "done", 15.0, 14.0, 600.0, "ok"),
    }
    return list({**base, **overrides}.values())


def _evaluate(**kw):
    args = dict(
        phases=_phases(),
        steps=[StepResult("failover", "promote", "Promote", "done", 2.0, 20.0)],
        gates=[GateResponse("failover", "approval", "Sari", "prefect-ui", 42.0)],
        rpo_lost_bytes=0,
        rpo_reason="no data lost",
        rpo_budget_s=0,
        topology_restored=True,
        topology_reason="DC primary, DRC streaming standby",
        data_equal=True,
        data_reason="same rows",
    )
    return evaluate(**{**args, **kw})


def test_the_four_scenarios_of_the_issue_with_their_articles() -> None:
    assert set(SCENARIOS) == {"dc-db-crash", "dc-power-loss", "dc-heat", "national-network-loss"}
    assert "7(1)(b)" in scenario("dc-heat").article
    assert scenario("dc-power-loss").needs_isolation_confirmation
    assert scenario("national-network-loss").old_primary_may_return_writable
    assert scenario("dc-db-crash").category == "parsial_nasional"


def test_an_unknown_scenario_lists_the_ones_there_are() -> None:
    with pytest.raises(UnknownScenario, match="dc-heat"):
        scenario("flood")


def test_a_clean_drill_passes_and_says_how_long_people_took() -> None:
    ev = _evaluate()
    assert ev.passed and not ev.problems
    assert any("Sari, answered in prefect-ui, after 42.0 s" in f.reason for f in ev.findings)


def test_a_phase_over_its_objective_fails_the_drill() -> None:
    slow = PhaseResult("failover", "done", 700.0, 700.0, 600.0, "slow")
    ev = _evaluate(phases=_phases(failover=slow))
    assert not ev.passed
    assert any("OVER the 600 s objective" in f.reason for f in ev.problems)


def test_the_one_hour_limit_caps_a_runbook_budget() -> None:
    slow = PhaseResult("failover", "done", 4000.0, 3700.0, 7200.0, "slow")
    ev = _evaluate(phases=_phases(failover=slow))
    assert any("OVER the 3600 s objective" in f.reason for f in ev.problems)


def test_a_step_over_budget_is_an_improvement_not_a_failure() -> None:
    # The phase still met its objective: the plan's estimate was wrong, not the recovery.
    ev = _evaluate(steps=[StepResult("resync", "rejoin", "Rejoin", "done", 45.0, 30.0)])
    assert ev.passed and not ev.problems
    assert ev.improvements[0].subject == "resync/rejoin"


def test_a_failed_phase_data_difference_or_lost_wal_fail_the_drill() -> None:
    failed = PhaseResult("resync", "failed", 3.0, reason="rewind failed")
    assert not _evaluate(phases=_phases(resync=failed)).passed
    assert not _evaluate(data_equal=False).passed
    assert not _evaluate(topology_restored=False).passed
    assert not _evaluate(rpo_lost_bytes=8192, rpo_budget_s=0).passed
    # Unknown loss (the DC could not report its last WAL) is stated, not failed: the data check
    # compares what users were told was committed.
    assert _evaluate(rpo_lost_bytes=None, rpo_reason="cannot be measured").passed


def test_gates_are_read_from_the_ledger_records_in_either_shape() -> None:
    records = [
        ("approval.requested", {}),
        ("approval.granted", {"approver": "Sari", "channel": "prefect-ui", "waited_s": 12.5}),
        ("approval.granted", {"approved_by": "Budi", "at": "2026-11-23T00:00:00+00:00"}),
        ("isolation.confirmed", {"by": "Dewi", "waited_s": 3.0}),
    ]
    gates = gates_from_records("failover", records)
    assert [(g.gate, g.answered_by, g.channel, g.waited_s) for g in gates] == [
        ("approval", "Sari", "prefect-ui", 12.5),
        ("approval", "Budi", "cli", 0.0),
        ("isolation", "Dewi", "prefect-ui", 3.0),
    ]


def test_an_isolation_confirmed_up_front_is_a_gate_answered_at_once() -> None:
    gate = {
        "allowed": True,
        "isolation_confirmed_by": "Budi",
        "reason": "the DC cannot be reached; Budi confirmed that it is down or isolated",
    }
    fenced = {**gate, "reason": "the DC primary is fenced and proven to refuse writes"}
    found = gates_from_records("failover", [("promotion.gate", gate)])
    assert [(g.gate, g.answered_by, g.channel) for g in found] == [("isolation", "Budi", "cli")]
    assert gates_from_records("failover", [("promotion.gate", fenced)]) == []  # not needed
