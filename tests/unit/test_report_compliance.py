"""The standing obligations (drp compliance), judged from plain values."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from drp.domain import compliance as rules

pytestmark = pytest.mark.unit
NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)


def incident(incident_id: str, **kw: object) -> rules.IncidentView:
    values: dict[str, object] = {
        "incident_id": incident_id,
        "is_drill": False,
        "declared_at": NOW - timedelta(days=10),
        "service_restored_at": NOW - timedelta(days=10),
        "drill_completed": False,
        "resync_deadline": NOW + timedelta(days=20),
        "manual_resync_done": False,
        "reports_issued": (),
        "assessment_missing": True,
        "evidence_verified": True,
    }
    values.update(kw)
    return rules.IncidentView(**values)  # type: ignore[arg-type]


def test_a_drill_within_the_period_is_met_and_an_old_one_is_not() -> None:
    recent = incident(
        "d1", is_drill=True, drill_completed=True, declared_at=NOW - timedelta(days=30)
    )
    old = incident("d0", is_drill=True, drill_completed=True, declared_at=NOW - timedelta(days=120))
    assert rules.drill_obligation([old, recent], 90, NOW).met
    late = rules.drill_obligation([old], 90, NOW)
    assert not late.met and "120 day(s) ago" in late.reason and "make drill" in late.reason


def test_a_failed_drill_or_a_real_incident_is_not_a_drill() -> None:
    failed = incident("d1", is_drill=True, drill_completed=False)
    assert not rules.drill_obligation([failed, incident("r1")], 90, NOW).met


def test_internalisation_must_be_less_than_a_year_old() -> None:
    assert rules.internalisation_obligation([date(2025, 7, 1)], NOW).met
    stale = rules.internalisation_obligation([date(2025, 6, 29)], NOW)
    assert not stale.met and "366 day(s) ago" in stale.reason
    assert "drp record internalisation" in rules.internalisation_obligation([], NOW).reason


def test_open_resync_deadlines_are_listed_and_only_overdue_ones_fail() -> None:
    open_one = incident("r1")
    overdue = incident("r2", resync_deadline=NOW - timedelta(days=2, hours=1))
    done = incident("r3", resync_deadline=NOW - timedelta(days=5), manual_resync_done=True)
    drill = incident("d1", is_drill=True)
    ok = rules.resync_obligation([open_one, done, drill], NOW)
    assert ok.met and [d["incident_id"] for d in ok.details] == ["r1"]
    assert ok.details[0]["days_left"] == 20
    bad = rules.resync_obligation([open_one, overdue], NOW)
    assert not bad.met and "1 overdue" in bad.reason and "r2 with -3 day(s) left" in bad.reason


def test_post_condition_reports_are_due_until_issued_with_the_assessment() -> None:
    none = incident("r1")
    gaps = incident("r2", reports_issued=("pasca",), assessment_missing=True)
    done = incident("r3", reports_issued=("pasca",), assessment_missing=False)
    running = incident("r4", service_restored_at=None)
    result = rules.post_report_obligation([none, gaps, done, running])
    assert not result.met
    assert [d["incident_id"] for d in result.details] == ["r1", "r2"]
    assert rules.post_report_obligation([done, running]).met


def test_the_continuity_plan_names_each_missing_part() -> None:
    drill = rules.drill_obligation([], 90, NOW)
    result = rules.continuity_obligation(
        runbook_ok=True,
        runbook_problem="",
        adb=[("skp", "sangat_tinggi")],
        risk_profile=None,
        functional_test=drill,
    )
    assert not result.met and result.reason == "missing: risk_profile, dc_drc_tests"
    met = rules.continuity_obligation(
        runbook_ok=True,
        runbook_problem="",
        adb=[("skp", "sangat_tinggi")],
        risk_profile="docs/continuity/risk-profile.xlsx",
        functional_test=rules.Obligation("drill", "Pasal 15", "", True, "ok"),
    )
    assert met.met


def test_the_drill_period_is_checked_in_the_runbook() -> None:
    assert rules.DrillPolicy().period_days == 90
    with pytest.raises(ValueError, match="less than or equal to 366"):
        rules.DrillPolicy(period_days=400)
