"""The yearly downtime KPI by seed 002's rules, each case checked by hand."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from drp.domain.kpi import (
    Cause,
    KpiService,
    Outage,
    ServiceHours,
    kpi_input_from_mapping,
    service_windows,
    yearly_kpi,
)
from drp.errors import RunbookError

pytestmark = pytest.mark.unit
WIB = ZoneInfo("Asia/Jakarta")
SKP = KpiService("skp", "SKP")


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=WIB)


def out(start: datetime, end: datetime, cause: Cause = Cause.UNPLANNED, **kw) -> Outage:
    return Outage(kw.pop("service", "skp"), start, end, cause, **kw)


def test_one_hour_in_a_24x7_common_year_is_0_0114_percent() -> None:
    report = yearly_kpi(2023, [SKP], [out(at(2023, 3, 1, 10), at(2023, 3, 1, 11))])
    (svc,) = report.services
    assert svc.service_s == 365 * 86400
    assert svc.downtime_s == 3600
    assert svc.percent == pytest.approx(3600 / 31_536_000 * 100)  # 0.011415...
    assert svc.met and report.met


def test_a_leap_year_has_366_days_of_service() -> None:
    report = yearly_kpi(2024, [SKP], [out(at(2024, 2, 29, 10), at(2024, 2, 29, 11))])
    (svc,) = report.services
    assert svc.service_s == 366 * 86400
    assert svc.downtime_s == 3600  # 29 February counts like any other day
    assert svc.percent == pytest.approx(3600 / 31_622_400 * 100)


@pytest.mark.parametrize(
    "cause", [Cause.PLANNED, Cause.PREVENTIVE_MAINTENANCE, Cause.THIRD_PARTY_NETWORK]
)
def test_excluded_causes_count_nothing(cause: Cause) -> None:
    report = yearly_kpi(2023, [SKP], [out(at(2023, 5, 1, 1), at(2023, 5, 1, 9), cause)])
    (svc,) = report.services
    assert svc.downtime_s == 0
    assert svc.judgements[0].excluded_s == 8 * 3600
    assert "excluded" in svc.judgements[0].reason


def test_excluded_and_counted_together() -> None:
    outages = [
        out(at(2023, 5, 1, 1), at(2023, 5, 1, 3), Cause.PLANNED),
        out(at(2023, 5, 2, 1), at(2023, 5, 2, 1, 30)),
        out(at(2023, 5, 3, 1), at(2023, 5, 3, 5), Cause.THIRD_PARTY_NETWORK),
    ]
    assert yearly_kpi(2023, [SKP], outages).services[0].downtime_s == 1800


def test_downtime_outside_office_hours_is_excluded() -> None:
    office = KpiService("ceisa", "CEISA", ServiceHours(time(8), time(17), frozenset(range(5))))
    outages = [
        # Saturday 4 March 2023: not a service day.
        out(at(2023, 3, 4, 9), at(2023, 3, 4, 12), service="ceisa"),
        # Monday 6 March 2023, 16:00-18:00: only 16:00-17:00 is in service hours.
        out(at(2023, 3, 6, 16), at(2023, 3, 6, 18), service="ceisa"),
    ]
    (svc,) = yearly_kpi(2023, [office], outages).services
    assert svc.downtime_s == 3600
    assert svc.judgements[0].counted_s == 0 and "outside" in svc.judgements[0].reason
    assert svc.judgements[1].excluded_s == 3600
    # 2023 has 260 weekdays (52 weeks + Sunday 1 January): 260 x 9 h.
    assert svc.service_s == 260 * 9 * 3600


def test_service_hours_crossing_midnight() -> None:
    night = KpiService("batch", "Batch", ServiceHours(time(22), time(6)))
    outages = [
        out(at(2023, 7, 10, 5), at(2023, 7, 10, 7), service="batch"),  # 05-06 counts
        out(at(2023, 7, 10, 12), at(2023, 7, 10, 13), service="batch"),  # daytime: not
        out(at(2023, 7, 10, 23), at(2023, 7, 11, 1), service="batch"),  # across midnight
    ]
    (svc,) = yearly_kpi(2023, [night], outages).services
    assert svc.downtime_s == 3600 + 2 * 3600
    # 8 h a night; the window of 31 Dec 2022 gives 1 Jan 00:00-06:00, that of 31 Dec 2023
    # ends at the year's end: 364 x 8 + 6 + 2 hours.
    assert svc.service_s == (364 * 8 + 6 + 2) * 3600 == 365 * 8 * 3600


def test_windows_crossing_midnight_are_clipped_to_the_year() -> None:
    windows = service_windows(2023, ServiceHours(time(22), time(6)))
    assert windows[0] == (at(2023, 1, 1, 0), at(2023, 1, 1, 6))
    assert windows[-1] == (at(2023, 12, 31, 22), at(2024, 1, 1, 0))


def test_high_availability_counts_the_lowest_source() -> None:
    ha = KpiService("skp", "SKP", high_availability=True, sources=("dc", "drc"))
    outages = [
        out(at(2023, 3, 1, 10), at(2023, 3, 1, 12), source="dc"),
        out(at(2023, 6, 1, 10), at(2023, 6, 1, 10, 30), source="drc"),
    ]
    (svc,) = yearly_kpi(2023, [ha], outages).services
    assert svc.per_source_s == {"dc": 7200, "drc": 1800}
    assert svc.downtime_s == 1800
    assert "lowest source, drc" in svc.reason


def test_high_availability_with_one_source_down_counts_nothing() -> None:
    ha = KpiService("skp", "SKP", high_availability=True, sources=("dc", "drc"))
    (svc,) = yearly_kpi(2023, [ha], [out(at(2023, 3, 1), at(2023, 3, 2), source="dc")]).services
    assert svc.downtime_s == 0


def test_a_declared_incident_counts_against_every_source() -> None:
    ha = KpiService("skp", "SKP", high_availability=True, sources=("dc", "drc"))
    outages = [
        out(at(2023, 3, 1, 10), at(2023, 3, 1, 10, 10)),  # no source: the service was down
        out(at(2023, 3, 1, 9), at(2023, 3, 1, 11), source="dc"),  # overlaps it
    ]
    (svc,) = yearly_kpi(2023, [ha], outages).services
    assert svc.per_source_s == {"dc": 7200, "drc": 600}
    assert svc.downtime_s == 600


def test_overlapping_outages_are_merged() -> None:
    outages = [
        out(at(2023, 3, 1, 10), at(2023, 3, 1, 11)),
        out(at(2023, 3, 1, 10, 30), at(2023, 3, 1, 11, 30)),
    ]
    assert yearly_kpi(2023, [SKP], outages).services[0].downtime_s == 5400


def test_an_outage_across_new_year_counts_only_inside_the_year() -> None:
    outages = [out(at(2022, 12, 31, 23), at(2023, 1, 1, 1))]
    assert yearly_kpi(2023, [SKP], outages).services[0].downtime_s == 3600
    assert yearly_kpi(2022, [SKP], outages).services[0].downtime_s == 3600


def test_overall_weighs_services_by_their_hours_and_misses_the_target() -> None:
    office = KpiService("ceisa", "CEISA", ServiceHours(time(8), time(17), frozenset(range(5))))
    outages = [
        out(at(2023, 3, 1, 0), at(2023, 3, 1, 12)),  # skp: 12 h of 8760 h
        out(at(2023, 3, 6, 8), at(2023, 3, 6, 9), service="ceisa"),  # 1 h of 2340 h
    ]
    report = yearly_kpi(2023, [SKP, office], outages)
    skp, ceisa = report.services
    assert skp.percent == pytest.approx(12 / 8760 * 100)  # 0.137%: above target
    assert not skp.met
    assert ceisa.percent == pytest.approx(1 / 2340 * 100)
    assert report.percent == pytest.approx(13 / (8760 + 2340) * 100)  # 0.117%
    assert not report.met


def test_outages_of_unknown_services_are_reported() -> None:
    report = yearly_kpi(2023, [SKP], [out(at(2023, 3, 1), at(2023, 3, 2), service="ghost")])
    assert report.unknown_services == ("ghost",)


def test_input_problems_name_their_place() -> None:
    data = {
        "services": [{"id": "skp", "service_hours": {"start": "25:00", "days": ["mon", "xyz"]}}],
        "outages": [
            {"service": "skp", "start": "2023-03-01T10:00", "end": "2023-03-01T09:00"},
            {"service": "skp", "start": "yesterday", "end": "2023-03-01T09:00"},
            {
                "service": "skp",
                "start": "2023-03-01T10:00",
                "end": "2023-03-01T11:00",
                "cause": "holiday",
            },
        ],
    }
    with pytest.raises(RunbookError) as caught:
        kpi_input_from_mapping(data, "kpi.yaml")
    problems = caught.value.problems
    assert (
        "kpi.yaml: services[0].service_hours.start: expected a time HH:MM, got '25:00'" in problems
    )
    assert any(p.startswith("kpi.yaml: services[0].service_hours.days[1]") for p in problems)
    assert any(p.startswith("kpi.yaml: outages[0].end") and "not after" in p for p in problems)
    assert any(p.startswith("kpi.yaml: outages[1].start") for p in problems)
    assert any(p.startswith("kpi.yaml: outages[2].cause") for p in problems)


def test_input_reads_naive_times_in_the_files_time_zone() -> None:
    services, outages, target = kpi_input_from_mapping(
        {
            "target_percent": 0.05,
            "services": [{"id": "skp", "high_availability": True, "sources": ["dc", "drc"]}],
            "outages": [{"service": "skp", "start": "2023-03-01T10:00", "end": "2023-03-01T11:00"}],
        }
    )
    assert target == 0.05
    assert services[0].sources == ("dc", "drc")
    assert outages[0].start == at(2023, 3, 1, 10)
