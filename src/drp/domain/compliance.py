"""The standing obligations of PER-19/BC/2023 and whether they are met, from what was recorded.

Pure: the caller gives the incidents (from the registry), the records (internalisation), the
continuity plan's documents found, and ``now``; each :class:`Obligation` carries a sentence that
says why it is met or not and, when not, what to do.

- Pasal 15: a DR drill within the runbook's period (``drills.period_days``, default 90);
- Pasal 14: the continuity plan internalised at least once a year;
- Pasal 11: declarations served manually synchronised within 30 days of services working again
  (every open deadline with its days left; overdue ones fail);
- Pasal 12: a post-condition report (``pasca``) for every real incident whose service is back,
  with the assessment it needs;
- Pasal 3(3): the continuity plan holds the ADB, a risk profile with its treatment plan, the DRP
  and functional tests of DC and DRC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from drp.domain.incident import days_left

DEFAULT_DRILL_PERIOD_DAYS = 90
INTERNALISATION_DAYS = 366
"""Pasal 14 says at least once a year: the last one must be less than a year (366 days) old."""


class DrillPolicy(BaseModel):
    """How often the runbook must be drilled (Pasal 15); ``drills: {period_days: 90}``."""

    model_config = ConfigDict(frozen=True, extra="ignore")  # unknown keys: drp runbook check

    period_days: StrictInt = Field(
        default=DEFAULT_DRILL_PERIOD_DAYS, ge=1, le=366, description="days between drills"
    )


@dataclass(frozen=True)
class IncidentView:
    """What compliance needs of one incident (a registry row, reduced)."""

    incident_id: str
    is_drill: bool
    declared_at: datetime | None
    service_restored_at: datetime | None
    drill_completed: bool
    resync_deadline: datetime | None
    manual_resync_done: bool
    reports_issued: tuple[str, ...]
    assessment_missing: bool
    evidence_verified: bool


@dataclass(frozen=True)
class Obligation:
    """One standing obligation: met or not, why, and the details behind it."""

    id: str
    article: str
    title: str
    met: bool
    reason: str
    details: tuple[dict[str, Any], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "article": self.article,
            "title": self.title,
            "met": self.met,
            "reason": self.reason,
            "details": list(self.details),
        }


def drill_obligation(
    incidents: Sequence[IncidentView], period_days: int, now: datetime
) -> Obligation:
    drills = [i for i in incidents if i.is_drill and i.drill_completed and i.declared_at]
    if not drills:
        return Obligation(
            "drill",
            "Pasal 15",
            "Simulasi dan uji coba DRP",
            False,
            f"no completed drill recorded; one is due every {period_days} days (hint: make drill)",
        )
    last = max(drills, key=lambda i: i.declared_at)  # type: ignore[arg-type,return-value]
    age = (now - last.declared_at).days  # type: ignore[operator]
    met = age <= period_days
    return Obligation(
        "drill",
        "Pasal 15",
        "Simulasi dan uji coba DRP",
        met,
        f"last completed drill {last.incident_id}, {age} day(s) ago; the period is "
        f"{period_days} days" + ("" if met else ": a drill is overdue (hint: make drill)"),
        ({"incident_id": last.incident_id, "declared_at": last.declared_at.isoformat()},),  # type: ignore[union-attr]
    )


def internalisation_obligation(held_on: Sequence[date], now: datetime) -> Obligation:
    if not held_on:
        return Obligation(
            "internalisation",
            "Pasal 14",
            "Internalisasi rencana kelangsungan layanan TIK",
            False,
            "no internalisation recorded (hint: drp record internalisation --date YYYY-MM-DD "
            "--by NAME --participants N)",
        )
    last = max(held_on)
    age = (now.date() - last).days
    met = age < INTERNALISATION_DAYS
    return Obligation(
        "internalisation",
        "Pasal 14",
        "Internalisasi rencana kelangsungan layanan TIK",
        met,
        f"last internalisation on {last.isoformat()}, {age} day(s) ago; at least once a year"
        + ("" if met else ": it is overdue"),
        ({"held_on": last.isoformat()},),
    )


def resync_obligation(incidents: Sequence[IncidentView], now: datetime) -> Obligation:
    rows = []
    overdue = 0
    for i in incidents:
        if i.is_drill or i.resync_deadline is None or i.manual_resync_done:
            continue
        left = days_left(i.resync_deadline, now)
        overdue += left < 0
        rows.append(
            {
                "incident_id": i.incident_id,
                "deadline": i.resync_deadline.isoformat(),
                "days_left": left,
            }
        )
    if not rows:
        reason = "no open resync deadline"
    else:
        soonest = min(rows, key=lambda r: r["days_left"])
        reason = (
            f"{len(rows)} open deadline(s); {overdue} overdue; the nearest: "
            f"{soonest['incident_id']} with {soonest['days_left']} day(s) left"
        )
    return Obligation(
        "resync",
        "Pasal 11",
        "Sinkronisasi dokumen ke SKP dalam 30 hari",
        overdue == 0,
        reason,
        tuple(rows),
    )


def post_report_obligation(incidents: Sequence[IncidentView]) -> Obligation:
    due = []
    for i in incidents:
        if i.is_drill or i.service_restored_at is None:
            continue
        if "pasca" not in i.reports_issued:
            due.append({"incident_id": i.incident_id, "why": "no pasca report issued"})
        elif i.assessment_missing:
            due.append(
                {
                    "incident_id": i.incident_id,
                    "why": "pasca report issued without the assessment (root cause, damage)",
                }
            )
    reason = (
        "every real incident with service restored has its post-condition report"
        if not due
        else f"{len(due)} report(s) due (hint: drp record assessment ..., then drp report ID "
        "--kind pasca)"
    )
    return Obligation(
        "post_report",
        "Pasal 12",
        "Laporan pasca Kondisi TIK Tidak Normal",
        not due,
        reason,
        tuple(due),
    )


def continuity_obligation(
    *,
    runbook_ok: bool,
    runbook_problem: str,
    adb: Sequence[tuple[str, str]],
    risk_profile: str | None,
    functional_test: Obligation,
) -> Obligation:
    parts = {
        "adb": bool(adb),
        "risk_profile": risk_profile is not None,
        "drp": runbook_ok,
        "dc_drc_tests": functional_test.met,
    }
    missing = [k for k, ok in parts.items() if not ok]
    details: list[dict[str, Any]] = [
        {"part": "adb", "present": parts["adb"], "services": [f"{s}: {c}" for s, c in adb]},
        {
            "part": "risk_profile",
            "present": parts["risk_profile"],
            "file": risk_profile,
            "hint": None
            if risk_profile
            else "put the risk profile and treatment plan in "
            "DRP_CONTINUITY_DIR (a file named risk-profile.* or profil-risiko.*)",
        },
        {"part": "drp", "present": runbook_ok, "problem": runbook_problem or None},
        {"part": "dc_drc_tests", "present": functional_test.met, "reason": functional_test.reason},
    ]
    reason = (
        "ADB, risk profile, DRP and DC/DRC functional tests are all present"
        if not missing
        else "missing: " + ", ".join(missing)
    )
    return Obligation(
        "continuity_plan",
        "Pasal 3(3)",
        "Isi rencana kelangsungan layanan TIK",
        not missing,
        reason,
        tuple(details),
    )
