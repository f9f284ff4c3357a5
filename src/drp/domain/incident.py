"""An incident as the evidence tells it: who declared what, when, what was done, how long it took.

The regulation's documents (Lampiran B, C, E, F; Pasal 12 and 15) are all views of one story,
so the story is built once, here, from the records of the incident's ledgers (failover, resync,
failback, drill) and from the operator's own records (``drp record ...``), and every document
reads it. Pure: the caller reads the files and verifies the chains (:mod:`drp.ledger`); this
module only reads :class:`~drp.domain.evidence.Record` values and the verification results.

What only people can write (the damage assessment, the root cause, the needs, the end of the
condition) comes from operator records; when absent it is listed in :attr:`IncidentFacts.missing`
with the command that records it, never invented.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from drp.domain.evidence import Record, VerificationResult

RESYNC_DAYS = 30
"""Pasal 11: declarations received during the condition are synchronised within 30 days."""

RTO_LIMIT_S = 3600.0
"""Pasal 3(1)(b): service back within one hour."""

FLOW_ORDER = ("drill", "failover", "resync", "failback")
"""The incident flows in the order they happen (a drill wraps the other three)."""

COMPLETION_KINDS = {
    "failover": "failover.completed",
    "resync": "resync.completed",
    "failback": "failback.completed",
    "drill": "drill.completed",
}
STOP_KINDS = {
    "failover": "failover.stopped",
    "resync": "resync.stopped",
    "failback": "failback.stopped",
    "drill": "drill.failed",
}

# Operator records (drp record ...), each in its own ledger under <incident>/records/.
ASSESSMENT = "assessment.recorded"
END_OF_CONDITION = "condition.ended"
INTERNALISATION = "internalisation.recorded"
REPORT_ISSUED = "report.issued"


def resync_deadline(service_restored_at: datetime) -> datetime:
    """Pasal 11: the last moment to synchronise manual declarations back into SKP.

    The 30 days run from the moment services work again (``service_restored_at``), as elapsed
    time: a deadline is a moment, so it is the same instant whatever the reader's time zone.
    """
    if service_restored_at.tzinfo is None:
        raise ValueError("service_restored_at must be timezone-aware")
    return service_restored_at + timedelta(days=RESYNC_DAYS)


def days_left(deadline: datetime, now: datetime) -> int:
    """Whole days left before ``deadline`` (negative once it has passed, 0 on its last day)."""
    seconds = (deadline - now).total_seconds()
    return int(seconds // 86400)


def parse_time(value: Any) -> datetime | None:
    """An ISO time from a record (``...Z`` or ``+00:00``), or None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


@dataclass(frozen=True)
class StepRow:
    """One step as recorded: what it was, how long it took against its budget, its outcome."""

    flow: str
    step_id: str
    name: str
    started: datetime | None
    ended: datetime
    duration_s: float
    budget_s: float
    status: str
    reason: str
    attempt: int

    @property
    def over_budget(self) -> bool:
        return self.duration_s > self.budget_s


@dataclass(frozen=True)
class LedgerSummary:
    """One ledger of the incident, as evidence: where, how many records, its head, verified?"""

    name: str  # failover, resync, failback, drill, records/assessment-..., ...
    path: str
    records: int
    head: str | None
    closed: bool
    verified: bool
    problems: tuple[str, ...]
    attachments: tuple[tuple[str, str], ...]  # (name, sha256)
    flow_run_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Phase:
    """One flow of the incident: its status, its RTO against its budget and its steps."""

    flow: str
    status: str  # completed | stopped | in_progress
    started: datetime | None
    ended: datetime | None
    achieved_rto_s: float | None
    rto_budget_s: float | None
    steps: tuple[StepRow, ...]
    rpo: str | None
    lost_bytes: int | None
    stop_reason: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def over_budget_steps(self) -> tuple[StepRow, ...]:
        return tuple(s for s in self.steps if s.over_budget)


@dataclass(frozen=True)
class TimelineEvent:
    """A moment of the incident, for the chronology (kronologi)."""

    at: datetime
    phase: str
    what: str


@dataclass(frozen=True)
class Assessment:
    """What people found (``drp record assessment``): Lampiran B's and Pasal 12's free text."""

    damage: str
    root_cause: str
    actions: str
    needs: str
    impact: str
    by: str
    at: datetime | None


@dataclass(frozen=True)
class EndOfCondition:
    """Pasal 9: who declared the abnormal condition over, and when services worked again."""

    declared_by: str
    role: str
    declared_at: datetime | None
    restored_at: datetime
    note: str


@dataclass(frozen=True)
class GateMeasurement:
    """A human gate's response time (approval, confirmation): Pasal 15 measures the response."""

    flow: str
    gate: str
    who: str
    waited_s: float | None
    at: datetime | None


@dataclass(frozen=True)
class IncidentFacts:
    """Everything the documents say about one incident, each fact traceable to a record."""

    incident_id: str
    mode: str  # drill | real | unknown
    category: str | None
    declared_by: str | None
    declarer_role: str | None
    declared_at: datetime | None
    detected_at: datetime | None
    basis: Any
    triggers: tuple[Mapping[str, str], ...]
    notes: tuple[str, ...]
    stages: tuple[str, ...]
    coordination: tuple[str, ...]
    approver: str | None
    approved_at: datetime | None
    phases: tuple[Phase, ...]
    ledgers: tuple[LedgerSummary, ...]
    timeline: tuple[TimelineEvent, ...]
    gates: tuple[GateMeasurement, ...]
    assessment: Assessment | None
    end: EndOfCondition | None
    service_restored_at: datetime | None
    missing: tuple[str, ...]
    reports_issued: tuple[str, ...] = ()

    @property
    def is_drill(self) -> bool:
        return self.mode == "drill"

    @property
    def evidence_verified(self) -> bool:
        """True when every ledger of the incident verified intact."""
        return bool(self.ledgers) and all(ledger.verified for ledger in self.ledgers)

    @property
    def resync_deadline(self) -> datetime | None:
        """Pasal 11's deadline, from the end-of-condition's restored time or the failover's."""
        restored = self.end.restored_at if self.end else self.service_restored_at
        return resync_deadline(restored) if restored else None

    @property
    def manual_resync_done(self) -> bool:
        """Pasal 11 done: the manual declarations' resync flow closed its ledger.

        Its ledger is the flow directory whose name holds both "manual" and "resync"
        (``resync-manual-declarations``), written by manual mode's resync flow.
        """
        return any(
            "manual" in x.name and "resync" in x.name and x.closed and x.verified
            for x in self.ledgers
            if not x.name.startswith("records/")
        )

    @property
    def ended_at(self) -> datetime | None:
        return self.end.declared_at if self.end else None

    def phase(self, flow: str) -> Phase | None:
        return next((p for p in self.phases if p.flow == flow), None)

    @property
    def downtime(self) -> timedelta | None:
        """From detection (or declaration) to service restored: the users' view of the outage."""
        start = self.detected_at or self.declared_at
        if start is None or self.service_restored_at is None:
            return None
        return self.service_restored_at - start


@dataclass(frozen=True)
class LedgerInput:
    """What the caller read for one ledger: its name, path, records and verification result."""

    name: str
    path: str
    records: tuple[Record, ...]
    verification: VerificationResult


def build_incident(incident_id: str, ledgers: Sequence[LedgerInput]) -> IncidentFacts:
    """The incident's story from its ledgers (flows and operator records), checked for gaps."""
    flows = {x.name: x for x in ledgers if not x.name.startswith("records/")}
    records = sorted((x for x in ledgers if x.name.startswith("records/")), key=lambda x: x.name)
    declared = _first(flows.values(), "incident.declared")
    decl = declared.data if declared else {}
    approval = _first([flows[n] for n in ("failover", "drill") if n in flows], "approval.granted")
    phases = tuple(
        _phase(name, flows[name].records) for name in _ordered(flows) if flows[name].records
    )
    mode = _mode(decl, flows)
    failover = next((p for p in phases if p.flow == "failover"), None)
    restored = None
    if failover and failover.status == "completed":
        restored = failover.ended
    assessment = _latest_assessment(records)
    end = _latest_end(records)
    gates = tuple(_gates(flows))
    facts = IncidentFacts(
        incident_id=incident_id,
        mode=mode,
        category=decl.get("category"),
        declared_by=decl.get("declared_by"),
        declarer_role=decl.get("declarer_role"),
        declared_at=parse_time(decl.get("declared_at")),
        detected_at=parse_time(decl.get("detected_at")),
        basis=decl.get("basis"),
        triggers=tuple(decl.get("triggers") or ()),
        notes=tuple(decl.get("notes") or ()),
        stages=tuple(decl.get("stages") or ()),
        coordination=tuple(decl.get("coordination") or ()),
        approver=(approval.data.get("approver") or approval.data.get("approved_by"))
        if approval
        else None,
        approved_at=parse_time(approval.data.get("answered_at")) if approval else None,
        phases=phases,
        ledgers=tuple(_summary(x) for x in ledgers),
        timeline=(),
        gates=gates,
        assessment=assessment,
        end=end,
        service_restored_at=restored,
        missing=(),
        reports_issued=_reports_issued(records),
    )
    return _with_timeline_and_gaps(facts)


def _reports_issued(records: Sequence[LedgerInput]) -> tuple[str, ...]:
    """The document kinds the platform issued for the incident (``report.issued`` records)."""
    kinds: dict[str, None] = {}
    for ledger in records:
        for record in ledger.records:
            if record.kind == REPORT_ISSUED:
                kinds.update(dict.fromkeys(str(k) for k in record.data.get("kinds") or ()))
    return tuple(kinds)


def _ordered(flows: Mapping[str, LedgerInput]) -> list[str]:
    known = [name for name in FLOW_ORDER if name in flows]
    return known + sorted(name for name in flows if name not in FLOW_ORDER)


def _first(ledgers: Iterable[LedgerInput], kind: str) -> Record | None:
    for ledger in ledgers:
        for record in ledger.records:
            if record.kind == kind:
                return record
    return None


def _last(records: Iterable[Record], kind: str) -> Record | None:
    found = None
    for record in records:
        if record.kind == kind:
            found = record
    return found


def _mode(decl: Mapping[str, Any], flows: Mapping[str, LedgerInput]) -> str:
    if decl.get("mode") in ("drill", "real"):
        return str(decl["mode"])
    for ledger in flows.values():
        for record in ledger.records:
            if record.kind == "attempt.start" and record.data.get("mode") in ("drill", "real"):
                return str(record.data["mode"])
    return "unknown"


def _ts(record: Record) -> datetime:
    moment = parse_time(record.ts)
    assert moment is not None  # the chain format guarantees a UTC timestamp
    return moment


def _phase(flow: str, records: Sequence[Record]) -> Phase:
    """One flow's status, steps and RTO, from its records."""
    names: dict[tuple[str, int], tuple[str, datetime]] = {}
    steps: list[StepRow] = []
    for record in records:
        data = record.data
        if record.kind == "step.start":
            key = (str(data.get("step_id")), int(data.get("attempt") or 1))
            names[key] = (str(data.get("name") or data.get("step_id")), _ts(record))
        elif record.kind == "step.end":
            key = (str(data.get("step_id")), int(data.get("attempt") or 1))
            name, started = names.get(key, (key[0], None))
            steps.append(
                StepRow(
                    flow=flow,
                    step_id=key[0],
                    name=name,
                    started=started,
                    ended=_ts(record),
                    duration_s=float(data.get("duration_s") or 0.0),
                    budget_s=float(data.get("budget_s") or 0.0),
                    status=str(data.get("status")),
                    reason=str(data.get("reason") or ""),
                    attempt=key[1],
                )
            )
    done = _last(records, COMPLETION_KINDS.get(flow, f"{flow}.completed"))
    stopped = _last(records, STOP_KINDS.get(flow, f"{flow}.stopped"))
    started = _ts(records[0]) if records else None
    if done is not None:
        status, ended, details = "completed", _ts(done), dict(done.data)
    elif stopped is not None:
        status, ended, details = "stopped", _ts(stopped), dict(stopped.data)
    else:
        status, ended, details = "in_progress", None, {}
    rpo = details.get("rpo") if isinstance(details.get("rpo"), Mapping) else None
    point = _last(records, "recovery.point")
    rpo_text = None
    lost = None
    if rpo:
        rpo_text, lost = rpo.get("reason"), rpo.get("lost_bytes")
    elif point is not None:
        rpo_text, lost = point.data.get("reason"), point.data.get("lost_bytes")
    elif flow == "failback" and details.get("zero_loss"):
        rpo_text = str(details.get("zero_loss"))
        zero = _last(records, "failback.zero_loss")
        lost = zero.data.get("missing_bytes") if zero else None
    achieved = details.get("achieved_rto_s")
    if achieved is None and flow == "resync":
        achieved = details.get("duration_s")
    budget = details.get("rto_budget_s")
    return Phase(
        flow=flow,
        status=status,
        started=started,
        ended=ended,
        achieved_rto_s=float(achieved) if achieved is not None else None,
        rto_budget_s=float(budget) if budget is not None else None,
        steps=tuple(steps),
        rpo=rpo_text,
        lost_bytes=int(lost) if isinstance(lost, int | float) else None,
        stop_reason=str(details.get("reason") or "") if status == "stopped" else "",
        details=details,
    )


def _summary(ledger: LedgerInput) -> LedgerSummary:
    result = ledger.verification
    refs: dict[str, str] = {}
    for record in ledger.records:
        for ref in record.attachments:
            refs[ref.name] = ref.sha256
    runs = tuple(
        dict.fromkeys(
            str(r.data["flow_run_id"])
            for r in ledger.records
            if r.kind == "attempt.start" and r.data.get("flow_run_id")
        )
    )
    return LedgerSummary(
        name=ledger.name,
        path=ledger.path,
        records=result.records,
        head=result.head,
        closed=result.closed,
        verified=result.ok,
        problems=tuple(str(p) for p in result.problems),
        attachments=tuple(sorted(refs.items())),
        flow_run_ids=runs,
    )


def _latest(records: Sequence[LedgerInput], kind: str) -> Record | None:
    """The newest operator record of ``kind``: a later one corrects an earlier one."""
    found: Record | None = None
    for ledger in records:
        for record in ledger.records:
            if record.kind == kind and (found is None or record.ts >= found.ts):
                found = record
    return found


def _latest_assessment(records: Sequence[LedgerInput]) -> Assessment | None:
    record = _latest(records, ASSESSMENT)
    if record is None:
        return None
    d = record.data
    return Assessment(
        damage=str(d.get("damage") or ""),
        root_cause=str(d.get("root_cause") or ""),
        actions=str(d.get("actions") or ""),
        needs=str(d.get("needs") or ""),
        impact=str(d.get("impact") or ""),
        by=str(d.get("by") or ""),
        at=_ts(record),
    )


def _latest_end(records: Sequence[LedgerInput]) -> EndOfCondition | None:
    record = _latest(records, END_OF_CONDITION)
    if record is None:
        return None
    d = record.data
    restored = parse_time(d.get("restored_at")) or _ts(record)
    return EndOfCondition(
        declared_by=str(d.get("declared_by") or ""),
        role=str(d.get("role") or ""),
        declared_at=_ts(record),
        restored_at=restored,
        note=str(d.get("note") or ""),
    )


def _gates(flows: Mapping[str, LedgerInput]) -> Iterable[GateMeasurement]:
    for name in _ordered(flows):
        for record in flows[name].records:
            if record.kind == "approval.granted":
                d = record.data
                waited = d.get("waited_s")
                yield GateMeasurement(
                    flow=name,
                    gate="persetujuan",
                    who=str(d.get("approver") or d.get("approved_by") or ""),
                    waited_s=float(waited) if isinstance(waited, int | float) else None,
                    at=_ts(record),
                )
            elif record.kind == "isolation.confirmed":
                yield GateMeasurement(
                    name, "konfirmasi isolasi DC", str(record.data.get("by")), None, _ts(record)
                )


def _with_timeline_and_gaps(facts: IncidentFacts) -> IncidentFacts:
    events: list[TimelineEvent] = []
    if facts.detected_at:
        events.append(TimelineEvent(facts.detected_at, "deteksi", "gangguan terdeteksi"))
    if facts.declared_at:
        events.append(
            TimelineEvent(
                facts.declared_at,
                "deklarasi",
                f"Bencana TIK {facts.category or '?'} dinyatakan oleh {facts.declared_by}"
                f" ({facts.declarer_role})",
            )
        )
    if facts.approved_at:
        events.append(
            TimelineEvent(facts.approved_at, "persetujuan", f"disetujui oleh {facts.approver}")
        )
    for phase in facts.phases:
        for step in phase.steps:
            events.append(
                TimelineEvent(
                    step.ended,
                    phase.flow,
                    f"{step.name}: {_status_id(step.status)} ({step.duration_s:.1f} s dari "
                    f"anggaran {step.budget_s:.0f} s)",
                )
            )
        if phase.ended and phase.status == "completed":
            rto = f"; RTO {phase.achieved_rto_s:.1f} s" if phase.achieved_rto_s is not None else ""
            events.append(TimelineEvent(phase.ended, phase.flow, f"{phase.flow} selesai{rto}"))
        elif phase.ended:
            events.append(
                TimelineEvent(
                    phase.ended, phase.flow, f"{phase.flow} berhenti: {phase.stop_reason}"
                )
            )
    if facts.end and facts.end.declared_at:
        events.append(
            TimelineEvent(
                facts.end.declared_at,
                "berakhir",
                f"berakhirnya Kondisi TIK Tidak Normal dinyatakan oleh {facts.end.declared_by}"
                f" ({facts.end.role})",
            )
        )
    events.sort(key=lambda e: e.at)
    missing: list[str] = []
    if facts.declared_at is None:
        missing.append("deklarasi bencana tidak ditemukan di ledger (incident.declared)")
    if facts.assessment is None or not facts.assessment.damage:
        missing.append(
            "penilaian kerusakan belum dicatat (drp record assessment --incident "
            f"{facts.incident_id} --damage ...)"
        )
    if facts.assessment is None or not facts.assessment.root_cause:
        missing.append(
            "analisis akar masalah belum dicatat (drp record assessment --incident "
            f"{facts.incident_id} --root-cause ...)"
        )
    if facts.end is None:
        missing.append(
            "pernyataan berakhirnya kondisi belum dicatat (drp record end-of-condition "
            f"--incident {facts.incident_id} --declared-by NAMA --role PERAN)"
        )
    if not facts.evidence_verified:
        missing.append("ledger bukti tidak lolos verifikasi: lihat bagian Verifikasi Bukti")
    return IncidentFacts(
        **{
            **{f: getattr(facts, f) for f in facts.__dataclass_fields__},
            "timeline": tuple(events),
            "missing": tuple(missing),
        }
    )


STATUS_ID = {
    "done": "selesai",
    "already_done": "sudah dalam keadaan benar",
    "failed": "gagal",
    "skipped": "dilewati",
}


def _status_id(status: str) -> str:
    return STATUS_ID.get(status, status)
