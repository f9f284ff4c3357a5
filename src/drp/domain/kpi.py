"""The yearly downtime KPI (tingkat downtime sistem TIK), by the rules DJBC reports it with.

Seed 002 (DJBC's 2023 performance report): downtime is the time a highly critical IT service
was stopped for its external users because of an infrastructure failure, as a share of the
time it should have served. Not counted: planned downtime, preventive maintenance, downtime
outside the service's hours, and downtime of a third party's network. For a service with high
availability the *lowest* figure counts: each monitoring source (one per redundant site or node)
gives a downtime, and the smallest one is the service's. The target is 0.1% a year.

Choices this module makes, stated because the seed does not:

- service hours are a daily window in the service's time zone (default Asia/Jakarta, no DST);
  a window whose end is not after its start crosses midnight (22:00–06:00 runs into the next
  day); ``days`` are the days the window *starts* on; 00:00–00:00 every day is 24x7;
- the year is the calendar year in the service's time zone (366 days in a leap year);
- overlapping outages of one source are merged, never counted twice;
- an outage with no source (a declared incident: the service itself was down) counts against
  every source of a high-availability service;
- the overall figure is the total counted downtime over the total service time of all services
  (each service weighs by its hours), compared with the same target.

Pure: the caller reads outages from the registry and from monitoring exports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from drp.errors import RunbookError

TARGET_PERCENT = 0.1
"""DJBC's Renstra target: at most 0.1% downtime a year."""

DEFAULT_TZ = "Asia/Jakarta"
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Cause(StrEnum):
    """Why a service was down: only ``unplanned`` counts."""

    UNPLANNED = "unplanned"
    PLANNED = "planned"
    PREVENTIVE_MAINTENANCE = "preventive_maintenance"
    THIRD_PARTY_NETWORK = "third_party_network"


EXCLUSION_REASONS = {
    Cause.PLANNED: "planned downtime is excluded",
    Cause.PREVENTIVE_MAINTENANCE: "preventive maintenance is excluded",
    Cause.THIRD_PARTY_NETWORK: "downtime of a third-party network provider is excluded",
}

Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class ServiceHours:
    """A daily service window: ``start``–``end`` on the given weekdays (0 Monday … 6 Sunday)."""

    start: time = time(0, 0)
    end: time = time(0, 0)
    days: frozenset[int] = frozenset(range(7))

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    def describe(self) -> str:
        if self.start == self.end == time(0) and len(self.days) == 7:
            return "24x7"
        days = ",".join(DAY_NAMES[d] for d in sorted(self.days))
        return f"{self.start:%H:%M}-{self.end:%H:%M} ({days})"


@dataclass(frozen=True)
class KpiService:
    """A service whose downtime is measured."""

    id: str
    name: str
    hours: ServiceHours = ServiceHours()
    high_availability: bool = False
    sources: tuple[str, ...] = ()
    timezone: str = DEFAULT_TZ


@dataclass(frozen=True)
class Outage:
    """A stretch of time a service (or one of its sources) did not serve."""

    service_id: str
    start: datetime
    end: datetime
    cause: Cause = Cause.UNPLANNED
    source: str | None = None  # None: the whole service (e.g. a declared incident)
    reference: str = ""


@dataclass(frozen=True)
class OutageJudgement:
    """What one outage contributed, and why (before merging overlaps)."""

    outage: Outage
    counted_s: float
    excluded_s: float
    reason: str


@dataclass(frozen=True)
class ServiceKpi:
    """One service's year."""

    service: KpiService
    service_s: float
    downtime_s: float
    per_source_s: Mapping[str, float]
    judgements: tuple[OutageJudgement, ...]
    target_percent: float

    @property
    def percent(self) -> float:
        return 100.0 * self.downtime_s / self.service_s if self.service_s else 0.0

    @property
    def met(self) -> bool:
        return self.percent <= self.target_percent

    @property
    def reason(self) -> str:
        verdict = "within" if self.met else "ABOVE"
        basis = ""
        if self.service.high_availability and self.per_source_s:
            low = min(self.per_source_s, key=lambda s: self.per_source_s[s])
            basis = f" (high availability: the lowest source, {low}, counts)"
        return (
            f"{self.service.id}: {self.downtime_s / 60:.2f} min down in "
            f"{self.service_s / 3600:.1f} h of service = {self.percent:.4f}%, {verdict} the "
            f"{self.target_percent}% target{basis}"
        )


@dataclass(frozen=True)
class KpiReport:
    """The year, per service and overall."""

    year: int
    target_percent: float
    services: tuple[ServiceKpi, ...]
    unknown_services: tuple[str, ...] = field(default=())

    @property
    def service_s(self) -> float:
        return sum(s.service_s for s in self.services)

    @property
    def downtime_s(self) -> float:
        return sum(s.downtime_s for s in self.services)

    @property
    def percent(self) -> float:
        return 100.0 * self.downtime_s / self.service_s if self.service_s else 0.0

    @property
    def met(self) -> bool:
        return self.percent <= self.target_percent

    def to_dict(self) -> dict[str, Any]:
        return {
            "year": self.year,
            "target_percent": self.target_percent,
            "overall": {
                "service_hours": round(self.service_s / 3600, 3),
                "downtime_minutes": round(self.downtime_s / 60, 3),
                "percent": self.percent,
                "met": self.met,
            },
            "services": [
                {
                    "id": s.service.id,
                    "name": s.service.name,
                    "service_hours_rule": s.service.hours.describe(),
                    "high_availability": s.service.high_availability,
                    "service_hours": round(s.service_s / 3600, 3),
                    "downtime_minutes": round(s.downtime_s / 60, 3),
                    "per_source_minutes": {k: round(v / 60, 3) for k, v in s.per_source_s.items()},
                    "percent": s.percent,
                    "met": s.met,
                    "reason": s.reason,
                    "outages": [
                        {
                            "start": j.outage.start.isoformat(),
                            "end": j.outage.end.isoformat(),
                            "cause": j.outage.cause.value,
                            "source": j.outage.source,
                            "reference": j.outage.reference,
                            "counted_minutes": round(j.counted_s / 60, 3),
                            "excluded_minutes": round(j.excluded_s / 60, 3),
                            "reason": j.reason,
                        }
                        for j in s.judgements
                    ],
                }
                for s in self.services
            ],
            "unknown_services": list(self.unknown_services),
        }


# --- Time arithmetic --------------------------------------------------------------------------


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RunbookError(f"unknown time zone {name!r} (hint: e.g. Asia/Jakarta)") from exc


def year_bounds(year: int, tz: str = DEFAULT_TZ) -> Interval:
    """The calendar year in the time zone ``tz``."""
    zone = _zone(tz)
    return datetime(year, 1, 1, tzinfo=zone), datetime(year + 1, 1, 1, tzinfo=zone)


def service_windows(year: int, hours: ServiceHours, tz: str = DEFAULT_TZ) -> list[Interval]:
    """The service's windows that fall in ``year``, clipped to it (a window that started on
    31 December of the year before and crosses midnight counts from 1 January)."""
    zone = _zone(tz)
    lo, hi = year_bounds(year, tz)
    windows: list[Interval] = []
    day = date(year - 1, 12, 31)
    while day <= date(year, 12, 31):
        if day.weekday() in hours.days:
            start = datetime.combine(day, hours.start, tzinfo=zone)
            end_day = day + timedelta(days=1) if hours.crosses_midnight else day
            end = datetime.combine(end_day, hours.end, tzinfo=zone)
            clipped = (max(start, lo), min(end, hi))
            if clipped[0] < clipped[1]:
                windows.append(clipped)
        day += timedelta(days=1)
    return _merge(windows)


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _seconds(intervals: Iterable[Interval]) -> float:
    return sum((end - start).total_seconds() for start, end in intervals)


def _intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Intersection of two sorted, disjoint interval lists."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


# --- The KPI ----------------------------------------------------------------------------------


def yearly_kpi(
    year: int,
    services: Sequence[KpiService],
    outages: Iterable[Outage],
    target_percent: float = TARGET_PERCENT,
) -> KpiReport:
    """The downtime KPI of ``year`` per service and overall, by the rules above."""
    by_service: dict[str, list[Outage]] = {}
    for outage in outages:
        if outage.end <= outage.start:
            continue
        by_service.setdefault(outage.service_id, []).append(outage)
    known = {s.id for s in services}
    unknown = tuple(sorted(set(by_service) - known))
    results = tuple(
        _service_kpi(year, s, by_service.get(s.id, []), target_percent) for s in services
    )
    return KpiReport(year, target_percent, results, unknown)


def _service_kpi(
    year: int, service: KpiService, outages: Sequence[Outage], target: float
) -> ServiceKpi:
    windows = service_windows(year, service.hours, service.timezone)
    judgements = tuple(_judge(o, windows) for o in sorted(outages, key=lambda o: o.start))
    counted = [o for o in outages if o.cause is Cause.UNPLANNED]
    if service.high_availability:
        sources = list(service.sources) or sorted({o.source for o in counted if o.source})
        per_source = {}
        for source in sources:
            mine = [o for o in counted if o.source in (source, None)]
            per_source[source] = _counted_seconds(mine, windows)
        if not sources:  # HA without any per-source data: the whole-service outages count
            per_source = {"layanan": _counted_seconds(counted, windows)}
        downtime = min(per_source.values()) if per_source else 0.0
    else:
        per_source = {}
        downtime = _counted_seconds(counted, windows)
    return ServiceKpi(service, _seconds(windows), downtime, per_source, judgements, target)


def _counted_seconds(outages: Iterable[Outage], windows: Sequence[Interval]) -> float:
    merged = _merge((o.start, o.end) for o in outages)
    return _seconds(_intersect(merged, windows))


def _judge(outage: Outage, windows: Sequence[Interval]) -> OutageJudgement:
    total = (outage.end - outage.start).total_seconds()
    inside = _seconds(_intersect([(outage.start, outage.end)], windows))
    if outage.cause is not Cause.UNPLANNED:
        return OutageJudgement(outage, 0.0, total, EXCLUSION_REASONS[outage.cause])
    outside = total - inside
    if inside == 0:
        reason = "entirely outside service hours (or outside the year): excluded"
    elif outside > 0:
        reason = f"{outside / 60:.1f} min outside service hours excluded"
    else:
        reason = "within service hours: counted"
    return OutageJudgement(outage, inside, outside, reason)


# --- Reading the input (a mapping from YAML), every problem with its place --------------------


def _parse_time(text: Any, where: str, problems: list[str]) -> time | None:
    if isinstance(text, str):
        if text == "24:00":
            return time(0, 0)
        try:
            return time.fromisoformat(text)
        except ValueError:
            pass
    problems.append(f"{where}: expected a time HH:MM, got {text!r}")
    return None


def _parse_moment(value: Any, where: str, tz: str, problems: list[str]) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            problems.append(
                f"{where}: expected an ISO time (2026-03-01T10:00:00+07:00), got {value!r}"
            )
            return None
    else:
        problems.append(f"{where}: expected an ISO time, got {value!r}")
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_zone(tz))
    return moment


def _hours(value: Any, where: str, problems: list[str]) -> ServiceHours:
    if value in (None, "24x7"):
        return ServiceHours()
    if not isinstance(value, Mapping):
        problems.append(f"{where}: expected 24x7 or {{start: HH:MM, end: HH:MM, days: [...]}}")
        return ServiceHours()
    start = _parse_time(value.get("start", "00:00"), f"{where}.start", problems) or time(0)
    end = _parse_time(value.get("end", "00:00"), f"{where}.end", problems) or time(0)
    days_value = value.get("days", list(DAY_NAMES))
    days: set[int] = set()
    if not isinstance(days_value, list) or not days_value:
        problems.append(f"{where}.days: expected a list of {', '.join(DAY_NAMES)}")
    else:
        for i, day in enumerate(days_value):
            if isinstance(day, str) and day.lower()[:3] in DAY_NAMES:
                days.add(DAY_NAMES.index(day.lower()[:3]))
            else:
                problems.append(f"{where}.days[{i}]: {day!r} is not one of {', '.join(DAY_NAMES)}")
    return ServiceHours(start, end, frozenset(days or range(7)))


def kpi_input_from_mapping(
    data: Any, source: str = "input"
) -> tuple[list[KpiService], list[Outage], float]:
    """Services, outages and the target from a parsed YAML file; every problem at once.

    Shape::

        target_percent: 0.1
        timezone: Asia/Jakarta
        services:
          - {id: skp, name: SKP, high_availability: true, sources: [dc, drc],
             service_hours: {start: "06:00", end: "22:00", days: [mon, tue, wed, thu, fri]}}
        outages:
          - {service: skp, start: 2026-03-01T10:00:00+07:00, end: ..., cause: unplanned,
             source: dc, reference: TICKET-1}
    """
    problems: list[str] = []
    if not isinstance(data, Mapping):
        raise RunbookError(f"{source}: expected a mapping with services and outages", [source])
    tz = data.get("timezone", DEFAULT_TZ)
    if not isinstance(tz, str):
        problems.append(f"{source}: timezone: expected a name such as Asia/Jakarta")
        tz = DEFAULT_TZ
    target = data.get("target_percent", TARGET_PERCENT)
    if not isinstance(target, int | float) or isinstance(target, bool) or target <= 0:
        problems.append(f"{source}: target_percent: expected a positive number, got {target!r}")
        target = TARGET_PERCENT
    services: list[KpiService] = []
    for i, item in enumerate(data.get("services") or []):
        where = f"{source}: services[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
            problems.append(f"{where}: expected a mapping with an id")
            continue
        sources = item.get("sources") or []
        if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
            problems.append(f"{where}.sources: expected a list of source names")
            sources = []
        services.append(
            KpiService(
                id=item["id"],
                name=str(item.get("name") or item["id"]),
                hours=_hours(item.get("service_hours"), f"{where}.service_hours", problems),
                high_availability=bool(item.get("high_availability", False)),
                sources=tuple(sources),
                timezone=str(item.get("timezone") or tz),
            )
        )
    outages: list[Outage] = []
    for i, item in enumerate(data.get("outages") or []):
        where = f"{source}: outages[{i}]"
        if not isinstance(item, Mapping):
            problems.append(f"{where}: expected a mapping")
            continue
        start = _parse_moment(item.get("start"), f"{where}.start", tz, problems)
        end = _parse_moment(item.get("end"), f"{where}.end", tz, problems)
        cause_text = item.get("cause", "unplanned")
        try:
            cause = Cause(cause_text)
        except ValueError:
            problems.append(
                f"{where}.cause: {cause_text!r} is not one of {', '.join(c.value for c in Cause)}"
            )
            continue
        if not isinstance(item.get("service"), str):
            problems.append(f"{where}.service: expected a service id")
            continue
        if start and end and end <= start:
            problems.append(
                f"{where}.end: {end.isoformat()} is not after start {start.isoformat()}"
            )
            continue
        if start and end:
            outages.append(
                Outage(
                    item["service"],
                    start,
                    end,
                    cause,
                    item.get("source"),
                    str(item.get("reference") or ""),
                )
            )
    if problems:
        raise RunbookError(
            f"{len(problems)} problem(s); fix them (the shape is in docs/reports.md):", problems
        )
    return services, outages, float(target)
