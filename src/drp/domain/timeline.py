"""An incident's timeline, told from its ledgers: what happened when, against the RTO clock.

The Prefect UI shows a run's states and logs, but not the story an incident commander or an
auditor asks for: when the disaster was declared and by whom, when the approval was asked, who
gave it through which channel and how long people made the recovery wait, each step with its
duration against its budget, and whether service came back within the RTO. Every one of those is
a ledger record already; this module turns the records of one or more of an incident's ledgers
(failover, resync, failback, drill) into :class:`TimelineEntry` rows, times in UTC and in WIB
(the regulation's clock), offsets from the declaration (the RTO clock starts there, Pasal 3), and
the sentences of a summary. Pure: the caller reads the ledgers and publishes the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from drp.domain.evidence import Record

WIB = timezone(timedelta(hours=7), "WIB")
"""Western Indonesia Time (UTC+7), the time the regulation's documents are written in."""

RESULT_KINDS = {
    "failover.completed": "service verified at the DRC",
    "failback.completed": "service back at the DC",
    "resync.completed": "the DC streams from the DRC again",
}
STOP_KINDS = ("failover.stopped", "resync.stopped", "failback.stopped", "failback.refused")


@dataclass(frozen=True)
class TimelineEntry:
    """One moment of the incident: which flow, which step, what happened, who acted, and how
    long a human gate made the recovery wait (``waited_s``)."""

    at: datetime
    flow: str
    step: str
    event: str
    who: str = ""
    waited_s: float | None = None

    def offset_s(self, origin: datetime | None) -> float | None:
        return None if origin is None else (self.at - origin).total_seconds()


@dataclass(frozen=True)
class Timeline:
    """The entries in time order, the declaration they are measured from, and the summary."""

    incident_id: str
    declared_at: datetime | None
    entries: tuple[TimelineEntry, ...]
    people: tuple[str, ...]
    verdicts: tuple[str, ...]

    def rows(self) -> list[dict[str, str]]:
        """The table an artifact shows: one row per entry, every cell text (empty when there is
        nothing to say: the UI renders cells as Markdown, where a lone dash is a list item). The
        short columns come first and ``what`` (the step, then what happened) last, so that a
        screen shows the clock, who acted and the gate waits without scrolling; the date is in
        the summary."""
        return [
            {
                "RTO clock": offset_text(e.offset_s(self.declared_at)),
                "time (WIB)": e.at.astimezone(WIB).strftime("%H:%M:%S"),
                "time (UTC)": e.at.astimezone(UTC).strftime("%H:%M:%S"),
                "flow": e.flow,
                "who": e.who,
                "gate wait": "" if e.waited_s is None else f"{e.waited_s:.1f} s",
                "what": f"{e.step} — {e.event}" if e.step else e.event,
            }
            for e in self.entries
        ]

    def summary(self) -> list[str]:
        """Markdown lines: the declaration the clock runs from, who acted, the verdicts."""
        if self.declared_at is None:
            origin = "- No declaration in these ledgers: times have no RTO offset"
        else:
            origin = (
                f"- RTO clock from the declaration at {utc_text(self.declared_at)} UTC / "
                f"{wib_text(self.declared_at)}"
            )
        return [origin, *(f"- {p}" for p in self.people), *(f"- {v}" for v in self.verdicts)]

    def table_markdown(self) -> str:
        """The table as Markdown (a report file holds it beside the steps)."""
        rows = self.rows()
        if not rows:
            return "Nothing recorded yet.\n"
        head = list(rows[0])
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row[h].replace("|", "/") for h in head) + " |" for row in rows]
        return "\n".join(lines) + "\n"

    def markdown(self) -> str:
        """The summary, then the table."""
        return "\n".join([*self.summary(), "", self.table_markdown()])


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def wib_text(moment: datetime) -> str:
    return moment.astimezone(WIB).strftime("%d-%m-%Y %H:%M:%S WIB")


def offset_text(seconds: float | None) -> str:
    """``+01:05.3`` (minutes, seconds), ``+1:02:03`` past an hour, ``-00:04.0`` before the
    declaration (a drill checks and injects its fault first), empty without a declaration."""
    if seconds is None:
        return ""
    sign = "-" if seconds < 0 else "+"
    whole = abs(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 1:
        return f"{sign}{int(hours)}:{int(minutes):02d}:{int(secs):02d}"
    return f"{sign}{int(minutes):02d}:{secs:04.1f}"


def parse_ts(ts: str) -> datetime:
    """A ledger time (``2024-05-01T03:04:05.123456Z``) as an aware datetime."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _person(name: Any, role: Any = None, channel: Any = None) -> str:
    text = str(name or "?")
    extra = ", ".join(str(x) for x in (role, channel) if x)
    return f"{text} ({extra})" if extra else text


def _seconds(value: Any) -> str:
    return f"{float(value):.1f} s" if isinstance(value, int | float) else "?"


def _entry(flow: str, rec: Record, step_names: Mapping[str, str]) -> TimelineEntry | None:
    """The timeline's view of one record, or None for the records it leaves out (Ansible task
    results, notifications, the ledger's own bookkeeping: the evidence holds them)."""
    d, kind, at = rec.data, rec.kind, parse_ts(rec.ts)
    step = str(step_names.get(str(d.get("step_id")), d.get("step_id") or ""))

    def entry(event: str, who: str = "", waited: Any = None, on: str = "") -> TimelineEntry:
        wait = float(waited) if isinstance(waited, int | float) else None
        return TimelineEntry(at, flow, on, event, who, wait)

    if kind == "attempt.start":
        who = _person(d["operator"]) if d.get("operator") else ""
        return entry(f"attempt {d.get('attempt', '?')} started ({d.get('mode', '?')})", who)
    if kind == "incident.declared":
        articles = ", ".join(t["article"] for t in d.get("triggers") or [] if "article" in t)
        basis = f" on {articles}" if articles else " on the declarer's judgement"
        return entry(
            f"{d.get('category')} declared{basis}; RTO clock started",
            _person(d.get("declared_by"), d.get("declarer_role")),
        )
    if kind == "declaration.reused":
        return entry("the earlier attempt's declaration stands (the clock does not restart)")
    if kind == "declaration.refused":
        return entry(
            f"declaration refused: {d.get('role_check')}",
            _person(d.get("declared_by"), d.get("declarer_role")),
        )
    if kind == "approval.requested":
        where = "in the Prefect UI or Slack" if d.get("interactive") else "given up front"
        minutes = int(d.get("timeout_s") or 0) // 60
        return entry(f"approval of the {d.get('what')} asked ({where}, timeout {minutes} min)")
    if kind in ("approval.granted", "approval.refused"):
        verb = "approved" if kind == "approval.granted" else "REFUSED"
        return entry(
            f"{d.get('what')} {verb}: {d.get('reason')}",
            _person(d.get("approver"), d.get("role"), d.get("channel")),
            d.get("waited_s"),
        )
    if kind == "approval.reused":
        return entry(
            "the earlier attempt's approval stands",
            _person(d.get("approver") or d.get("approved_by"), d.get("role"), d.get("channel")),
        )
    if kind == "confirmation.requested":
        return entry("asked to confirm that the unreachable DC is down or isolated")
    if kind == "isolation.confirmed":
        how = f" ({d['how']})" if d.get("how") else ""
        return entry(
            f"DC confirmed down or isolated{how}",
            _person(d.get("by"), None, d.get("channel")),
            d.get("waited_s"),
        )
    if kind == "isolation.refused":
        return entry("DC isolation NOT confirmed", _person(d.get("by")), d.get("waited_s"))
    if kind == "preflight.override":
        failures = "; ".join(str(f) for f in d.get("failures") or [])
        return entry(f"failed pre-flight overridden: {failures}", _person(d.get("by")), on=step)
    if kind == "step.start":
        return entry(f"started (budget {_seconds(d.get('budget_s'))})", on=step)
    if kind == "step.end":
        over = " ⚠ over budget" if d.get("over_budget") else ""
        return entry(
            f"{d.get('status')} in {_seconds(d.get('duration_s'))} "
            f"(budget {_seconds(d.get('budget_s'))}){over}: {d.get('reason')}",
            on=step,
        )
    if kind == "resync.completed":
        return entry(f"{RESULT_KINDS[kind]} ({d.get('method')}, {_seconds(d.get('duration_s'))})")
    if kind in RESULT_KINDS:
        return entry(f"{RESULT_KINDS[kind]}; {d.get('rto_verdict') or 'no RTO recorded'}")
    if kind in STOP_KINDS:
        return entry(f"{kind.split('.')[0]} {kind.split('.')[1]}: {d.get('reason')}")
    if kind == "drill.completed":
        return entry(
            f"drill {d.get('verdict')} ({d.get('status')}, {_seconds(d.get('duration_s'))})"
        )
    if kind == "drill.failed":
        return entry(f"drill failed: {d.get('reason')}")
    if kind == "fault.injected" and "after" in d:
        return entry(f"process killed on purpose after {d['after']} ({d.get('hook')})")
    return None


def build_timeline(
    incident_id: str, ledgers: Mapping[str, Iterable[Record]], declared_at: datetime | None = None
) -> Timeline:
    """The timeline of ``ledgers`` (flow name -> its records), in time order.

    ``declared_at`` is the declaration the RTO clock runs from when none of these ledgers holds
    it (a resync or failback run on its own: the declaration is in the failover's ledger).
    """
    entries: list[TimelineEntry] = []
    people: list[tuple[datetime, str]] = []
    verdicts: list[tuple[datetime, str]] = []
    for flow, records in ledgers.items():
        step_names: dict[str, str] = {}
        for rec in records:
            d = rec.data
            if rec.kind == "step.start" and d.get("step_id"):
                step_names[str(d["step_id"])] = str(d.get("name") or d["step_id"])
            if rec.kind == "incident.declared" and declared_at is None:
                declared_at = parse_ts(str(d["declared_at"])) if d.get("declared_at") else None
                declared_at = declared_at or parse_ts(rec.ts)
            found = _entry(flow, rec, step_names)
            if found is None:
                continue
            entries.append(found)
            people.extend((found.at, p) for p in _people(flow, rec.kind, d, found))
            if rec.kind in (*RESULT_KINDS, *STOP_KINDS, "drill.completed", "drill.failed"):
                verdicts.append((found.at, f"{flow}: {found.event}"))

    def in_time(items: list[tuple[datetime, str]]) -> tuple[str, ...]:
        return tuple(text for _, text in sorted(items, key=lambda item: item[0]))

    entries.sort(key=lambda e: e.at)  # stable: records of one instant keep their ledger order
    return Timeline(incident_id, declared_at, tuple(entries), in_time(people), in_time(verdicts))


def _people(flow: str, kind: str, d: Mapping[str, Any], e: TimelineEntry) -> list[str]:
    """Who acted, as sentences for the summary (declarer, approver, confirmer, overrides)."""
    when = f"at {e.at.astimezone(WIB):%H:%M:%S} WIB"
    if kind == "incident.declared":
        return [f"{flow}: declared by {e.who} {when}"]
    if kind in ("approval.granted", "approval.refused"):
        verb = "approved" if kind == "approval.granted" else "refused"
        return [f"{flow}: {verb} by {e.who} {when}, after a wait of {_seconds(e.waited_s)}"]
    if kind == "isolation.confirmed":
        return [f"{flow}: DC isolation confirmed by {e.who} {when}, after {_seconds(e.waited_s)}"]
    if kind == "preflight.override":
        return [f"{flow}: failed pre-flight overridden by {e.who} {when}"]
    return []
