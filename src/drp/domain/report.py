"""The regulation's documents as data: what each one must hold, filled from an incident's facts.

PER-19/BC/2023 names the documents but its annexes (Lampiran B–F, the fixed formats) are not
published with it, so the *contents* the articles list are decided here, in tested Python, and
the *presentation* lives in Jinja2 templates (``drp.documents``) that a user may replace. Each
:class:`Document` is a list of sections (text, label/value fields, tables); every section that
needs what only people can write says so in ``missing`` instead of inventing it.

Document kinds (``drp report --kind``):

- ``kaji-cepat``   laporan kaji cepat, Lampiran B (rapid assessment; Pasal 5(6), 6(4), 7(4)-(5))
- ``pemberitahuan`` pemberitahuan, Lampiran C (notice of the disaster; Pasal 5(9), 6(7), 7(7))
- ``berakhir``     pemberitahuan berakhirnya Kondisi TIK Tidak Normal, Lampiran E (Pasal 9)
- ``berita-acara`` berita acara dokumen yang dilayani, Lampiran F (Pasal 10)
- ``pasca``        laporan pasca Kondisi TIK Tidak Normal (post-condition report, Pasal 12)
- ``simulasi``     laporan simulasi dan uji coba (drill report, Pasal 15)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from drp.domain.classification import Disaster, Signals, declare
from drp.domain.incident import (
    RTO_LIMIT_S,
    IncidentFacts,
    Phase,
    days_left,
)
from drp.errors import DrpError

KINDS: tuple[str, ...] = (
    "kaji-cepat",
    "pemberitahuan",
    "berakhir",
    "berita-acara",
    "pasca",
    "simulasi",
)
FORMATS: tuple[str, ...] = ("md", "html", "xlsx", "pdf")

WIB = timezone(timedelta(hours=7), "WIB")
"""Documents show times in Jakarta time (WIB, UTC+7), the directorate's own clock."""

MISSING = "BELUM DICATAT"
"""What a document prints where a person still has to write something."""

NO_MANUAL_DOCUMENTS = "tidak ada dokumen yang dilayani secara manual tercatat"

CATEGORY_LABELS = {
    "parsial_lokal": "Bencana TIK Parsial bersifat lokal",
    "parsial_nasional": "Bencana TIK Parsial bersifat nasional",
    "katastropik": "Bencana TIK Katastropik",
}
ROLE_LABELS = {
    "direktur": "Direktur (bidang teknologi informasi)",
    "kepala_kantor": "Kepala Kantor Bea dan Cukai",
    "pejabat_ditunjuk": "Pejabat Bea dan Cukai yang ditunjuk",
}
FLOW_LABELS = {
    "failover": "Pengalihan layanan DC ke DRC (failover)",
    "resync": "Sinkronisasi ulang DC dari DRC (resync)",
    "failback": "Pengembalian layanan ke DC (failback)",
    "drill": "Simulasi (drill)",
}


PHASE_STATUS = {"completed": "selesai", "stopped": "berhenti", "in_progress": "berjalan"}


class ReportError(DrpError):
    """A document cannot be made as asked (unknown kind, or a kind that does not apply)."""


@dataclass(frozen=True)
class Table:
    """A table with typed cells (str, int, float, datetime, bool or None), for every format."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    empty_note: str = ""


@dataclass(frozen=True)
class Section:
    """One numbered part of a document."""

    title: str
    paragraphs: tuple[str, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()
    tables: tuple[Table, ...] = ()
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChartBar:
    """One bar of the RTO timeline: a step placed at its offset from the declaration."""

    label: str
    offset_s: float
    duration_s: float
    budget_s: float
    status: str

    @property
    def over_budget(self) -> bool:
        return self.duration_s > self.budget_s


@dataclass(frozen=True)
class RtoTimeline:
    """Steps against budgets, the achieved RTO against 60 minutes, and the RPO, for one phase."""

    flow: str
    bars: tuple[ChartBar, ...]
    achieved_s: float | None
    budget_s: float | None
    limit_s: float
    rpo: str | None
    lost_bytes: int | None

    @property
    def verdict(self) -> str:
        if self.achieved_s is None:
            return "layanan belum terverifikasi: RTO belum tercapai"
        within = self.achieved_s <= self.limit_s
        budget = (
            f"; anggaran runbook {_duration(self.budget_s)}" if self.budget_s is not None else ""
        )
        return (
            f"RTO tercapai {_duration(self.achieved_s)}, "
            f"{'di bawah' if within else 'MELEBIHI'} batas 60 menit Pasal 3 ayat (1) huruf b"
            f"{budget}"
        )


@dataclass(frozen=True)
class EvidenceRef:
    """A ledger the document was made from: its digest and the result of verifying it."""

    name: str
    path: str
    records: int
    head: str
    verified: bool
    problems: tuple[str, ...]


@dataclass(frozen=True)
class Document:
    """One of the regulation's documents, ready for a template."""

    kind: str
    lampiran: str
    title: str
    nomor: str
    incident_id: str
    issued_at: datetime
    is_drill: bool
    addressing: tuple[tuple[str, str], ...]
    sections: tuple[Section, ...]
    timelines: tuple[RtoTimeline, ...]
    evidence: tuple[EvidenceRef, ...]
    attachments: tuple[tuple[str, str, str], ...]  # (ledger, name, sha256)
    evidence_verified: bool
    verification_statement: str
    missing: tuple[str, ...]
    signatory: tuple[str, str] = ("", "")  # (name, role)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def all_missing(self) -> tuple[str, ...]:
        seen = dict.fromkeys([*self.missing, *(m for s in self.sections for m in s.missing)])
        return tuple(seen)


def wib(moment: datetime | None) -> str:
    """A moment as the documents print it: ``23-11-2026 21:40:56 WIB``."""
    if moment is None:
        return MISSING
    return moment.astimezone(WIB).strftime("%d-%m-%Y %H:%M:%S WIB")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} detik"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 120:
        return f"{minutes} menit {rest:02d} detik"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} jam {minutes:02d} menit"


def duration_text(seconds: float | None) -> str:
    """A duration in Bahasa Indonesia (``15.9 detik``, ``12 menit 03 detik``)."""
    return _duration(seconds)


def build_document(
    kind: str,
    facts: IncidentFacts,
    *,
    issued_at: datetime,
    served: Sequence[Mapping[str, Any]] | None = None,
    served_source: str = "",
) -> Document:
    """The document ``kind`` for the incident, every required element filled or marked missing.

    ``served`` are the documents served during manual mode (Lampiran F), or None when manual
    mode's store is not available; ``served_source`` says where they came from.
    """
    if kind not in KINDS:
        raise ReportError(f"unknown document kind {kind!r} (hint: one of {', '.join(KINDS)})")
    if kind == "simulasi" and not facts.is_drill:
        raise ReportError(
            f"incident {facts.incident_id} is not a drill (mode {facts.mode}): the Pasal 15 "
            "drill report applies to drills only (hint: use --kind pasca for a real incident)"
        )
    builder = _BUILDERS[kind]
    lampiran, title, addressing, sections, signatory = builder(facts, served, served_source)
    timelines = tuple(_timeline(p, facts) for p in facts.phases if p.flow != "drill")
    evidence = tuple(
        EvidenceRef(
            name=x.name,
            path=x.path,
            records=x.records,
            head=x.head or "",
            verified=x.verified,
            problems=x.problems,
        )
        for x in facts.ledgers
    )
    attachments = tuple(
        (x.name, name, digest) for x in facts.ledgers for name, digest in x.attachments
    )
    return Document(
        kind=kind,
        lampiran=lampiran,
        title=title,
        nomor=f"DRP/{kind.upper()}/{facts.incident_id}",
        incident_id=facts.incident_id,
        issued_at=issued_at,
        is_drill=facts.is_drill,
        addressing=addressing,
        sections=sections,
        timelines=timelines,
        evidence=evidence,
        attachments=attachments,
        evidence_verified=facts.evidence_verified,
        verification_statement=verification_statement(facts),
        missing=tuple(m for m in facts.missing if _relevant(kind, m)),
        signatory=signatory,
    )


def verification_statement(facts: IncidentFacts) -> str:
    """One sentence on whether the ledgers this document was made from are intact."""
    if not facts.ledgers:
        return "TIDAK ADA LEDGER BUKTI: dokumen ini tidak didukung bukti tercatat."
    bad = [x for x in facts.ledgers if not x.verified]
    if not bad:
        return (
            f"Seluruh {len(facts.ledgers)} ledger bukti lolos verifikasi rantai hash SHA-256 "
            "(tidak ada catatan yang diubah, dihapus, disisipkan atau dipotong)."
        )
    names = ", ".join(x.name for x in bad)
    first = bad[0].problems[0] if bad[0].problems else "tidak lolos verifikasi"
    return (
        f"PERINGATAN: {len(bad)} dari {len(facts.ledgers)} ledger bukti TIDAK LOLOS VERIFIKASI "
        f"({names}): {first}. Isi dokumen yang berasal dari ledger tersebut tidak dapat "
        "diandalkan."
    )


def _relevant(kind: str, missing: str) -> bool:
    """Which of the incident's gaps each document must state."""
    if missing.startswith("ledger bukti"):
        return True
    if missing.startswith("pernyataan berakhirnya"):
        return kind in ("berakhir", "berita-acara", "pasca")
    if missing.startswith(("penilaian kerusakan", "analisis akar")):
        return kind in ("kaji-cepat", "pasca")
    return missing.startswith("deklarasi")


def _timeline(phase: Phase, facts: IncidentFacts) -> RtoTimeline:
    """Bars placed from the phase's clock start: the declaration for a failover."""
    origin = phase.started
    if phase.flow == "failover" and facts.declared_at is not None:
        origin = facts.declared_at
    bars = []
    for step in phase.steps:
        start = step.started or (step.ended - timedelta(seconds=step.duration_s))
        offset = (start - origin).total_seconds() if origin else 0.0
        bars.append(
            ChartBar(
                label=step.name,
                offset_s=max(offset, 0.0),
                duration_s=step.duration_s,
                budget_s=step.budget_s,
                status=step.status,
            )
        )
    return RtoTimeline(
        flow=phase.flow,
        bars=tuple(bars),
        achieved_s=phase.achieved_rto_s,
        budget_s=phase.rto_budget_s,
        limit_s=RTO_LIMIT_S,
        rpo=phase.rpo,
        lost_bytes=phase.lost_bytes,
    )


# --- Shared sections --------------------------------------------------------------------------


def _category(facts: IncidentFacts) -> str:
    return CATEGORY_LABELS.get(facts.category or "", facts.category or MISSING)


def _role(role: str | None) -> str:
    return ROLE_LABELS.get(role or "", role or MISSING)


def _identity(facts: IncidentFacts) -> Section:
    fields = [
        ("Nomor insiden", facts.incident_id),
        ("Sifat", "SIMULASI (drill)" if facts.is_drill else "kejadian nyata"),
        ("Kategori", _category(facts)),
        ("Dinyatakan oleh", f"{facts.declared_by or MISSING} — {_role(facts.declarer_role)}"),
        ("Waktu deteksi", wib(facts.detected_at) if facts.detected_at else "tidak dicatat"),
        ("Waktu deklarasi", wib(facts.declared_at)),
        ("Layanan berfungsi kembali", wib(facts.service_restored_at)),
    ]
    if facts.approver:
        fields.append(("Disetujui oleh", f"{facts.approver} ({wib(facts.approved_at)})"))
    return Section("Identitas Kejadian", fields=tuple(fields))


def _basis(facts: IncidentFacts) -> Section:
    rows = tuple((t.get("article", ""), t.get("reason", "")) for t in facts.triggers)
    paragraphs = []
    if facts.basis:
        paragraphs.append(f"Dasar pernyataan (tiket/laporan): {_basis_text(facts.basis)}")
    else:
        paragraphs.append("Dasar pernyataan berupa tiket atau laporan: tidak dicatat.")
    paragraphs += [f"Catatan: {n}" for n in facts.notes]
    return Section(
        "Dasar Pernyataan",
        paragraphs=tuple(paragraphs),
        tables=(
            Table(
                "Kondisi pemicu (Pasal 5–7)",
                ("Pasal", "Kondisi"),
                rows,
                "tidak ada kondisi pemicu tercatat",
            ),
        ),
    )


def _basis_text(basis: Any) -> str:
    if isinstance(basis, Mapping):
        parts = []
        for key, value in basis.items():
            text = ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
            parts.append(f"{key}: {text}")
        return "; ".join(parts)
    return str(basis)


def _chronology(facts: IncidentFacts, title: str = "Kronologi Singkat") -> Section:
    rows = tuple((e.at, e.phase, e.what) for e in facts.timeline)
    return Section(
        title,
        tables=(Table("Kronologi", ("Waktu", "Tahap", "Kejadian"), rows, "tidak ada"),),
    )


def _steps_table(facts: IncidentFacts, flows: Sequence[str], title: str) -> Table:
    rows = []
    for phase in facts.phases:
        if phase.flow not in flows:
            continue
        for step in phase.steps:
            rows.append(
                (
                    phase.flow,
                    step.step_id,
                    step.name,
                    step.status,
                    step.duration_s,
                    step.budget_s,
                    step.over_budget,
                    step.reason,
                )
            )
    return Table(
        title,
        ("Tahap", "Langkah", "Uraian", "Status", "Durasi (s)", "Anggaran (s)", "Lewat", "Hasil"),
        tuple(rows),
        "tidak ada langkah tercatat",
    )


def _rto_section(facts: IncidentFacts) -> Section:
    fields = []
    for phase in facts.phases:
        if phase.flow == "drill":
            continue
        label = FLOW_LABELS.get(phase.flow, phase.flow)
        achieved = _duration(phase.achieved_rto_s) if phase.achieved_rto_s is not None else "-"
        fields.append((label, f"{PHASE_STATUS.get(phase.status, phase.status)}; waktu {achieved}"))
        if phase.rpo:
            fields.append((f"RPO ({phase.flow})", phase.rpo))
    failover = facts.phase("failover")
    paragraphs = []
    if failover and failover.achieved_rto_s is not None:
        within = failover.achieved_rto_s <= RTO_LIMIT_S
        paragraphs.append(
            f"RTO pengalihan ke DRC tercapai {_duration(failover.achieved_rto_s)} sejak "
            f"deklarasi, {'memenuhi' if within else 'TIDAK memenuhi'} batas 60 menit "
            "(Pasal 3 ayat (1) huruf b)."
        )
    elif failover:
        paragraphs.append("Pengalihan ke DRC belum terverifikasi: RTO belum tercapai.")
    if facts.downtime is not None:
        paragraphs.append(
            f"Layanan terganggu selama {_duration(facts.downtime.total_seconds())} dari "
            f"{'deteksi' if facts.detected_at else 'deklarasi'} sampai berfungsi kembali."
        )
    return Section(
        "Waktu Pemulihan (RTO) dan Kehilangan Data (RPO)", tuple(paragraphs), tuple(fields)
    )


def _assessment_section(
    facts: IncidentFacts, title: str, attr: str, what: str, missing_text: str
) -> Section:
    value = getattr(facts.assessment, attr, "") if facts.assessment else ""
    if value:
        by = f" (dicatat oleh {facts.assessment.by}, {wib(facts.assessment.at)})"  # type: ignore[union-attr]
        return Section(title, paragraphs=(value + by,))
    return Section(
        title,
        paragraphs=(f"{MISSING}: {what}.",),
        missing=(missing_text,),
    )


def _damage(facts: IncidentFacts) -> Section:
    return _assessment_section(
        facts,
        "Penilaian Kerusakan",
        "damage",
        "penilaian terhadap kerusakan ditulis oleh petugas",
        f"penilaian kerusakan belum dicatat (drp record assessment --incident "
        f"{facts.incident_id} --damage ...)",
    )


def _root_cause(facts: IncidentFacts) -> Section:
    return _assessment_section(
        facts,
        "Analisis Penyebab",
        "root_cause",
        "hasil analisis penyebab Kondisi TIK Tidak Normal ditulis oleh petugas",
        f"analisis akar masalah belum dicatat (drp record assessment --incident "
        f"{facts.incident_id} --root-cause ...)",
    )


def _actions(facts: IncidentFacts, flows: Sequence[str], title: str) -> Section:
    paragraphs = []
    if facts.assessment and facts.assessment.actions:
        paragraphs.append(f"Tindakan lain yang dicatat petugas: {facts.assessment.actions}")
    stages = _stage_labels(facts)
    if stages:
        paragraphs.append("Tahapan penanganan menurut kategori: " + " → ".join(stages) + ".")
    return Section(
        title,
        paragraphs=tuple(paragraphs),
        tables=(_steps_table(facts, flows, "Langkah yang dijalankan"),),
    )


def _stage_labels(facts: IncidentFacts) -> list[str]:
    disaster = _disaster(facts)
    if disaster is None:
        return list(facts.stages)
    return [s.label_id for s in disaster.stages]


def _disaster(facts: IncidentFacts) -> Disaster | None:
    """The classification's view of the category: labels, stages, parties, duties."""
    if facts.category not in CATEGORY_LABELS:
        return None
    return declare(facts.category, Signals()).disaster


def _coordination_rows(facts: IncidentFacts) -> tuple[tuple[str, str], ...]:
    disaster = _disaster(facts)
    if disaster is None:
        return tuple((c, "") for c in facts.coordination)
    return tuple((p.label_id, p.article) for p in disaster.coordination)


# --- The documents ----------------------------------------------------------------------------

_Built = tuple[str, str, tuple[tuple[str, str], ...], tuple[Section, ...], tuple[str, str]]


def _kaji_cepat(facts: IncidentFacts, served: Any, source: str) -> _Built:
    disaster = _disaster(facts)
    authors = " / ".join(r.label_id for r in disaster.rapid_assessment.authors) if disaster else ""
    article = disaster.rapid_assessment.article if disaster else "Pasal 5–7"
    addressing = (("Dasar", f"{article} PER-19/BC/2023"), ("Disusun oleh", authors or MISSING))
    sections = (
        _identity(facts),
        _chronology(facts),
        _damage(facts),
        _root_cause(facts),
        _actions(facts, ("failover", "drill"), "Tindakan Penanganan yang Diambil"),
        _rto_section(facts),
    )
    signer = facts.assessment.by if facts.assessment else ""
    return (
        "Lampiran B",
        "LAPORAN KAJI CEPAT",
        addressing,
        sections,
        (signer, "Pejabat yang ditunjuk"),
    )


def _pemberitahuan(facts: IncidentFacts, served: Any, source: str) -> _Built:
    disaster = _disaster(facts)
    if disaster is not None:
        sender = disaster.notification.sender.label_id
        recipients = disaster.notification.recipients.label_id
        channel = disaster.notification.channel_id
        article = disaster.notification.article
    else:
        sender, recipients, channel, article = MISSING, MISSING, MISSING, "Pasal 5–7"
    addressing = (
        ("Dari", sender),
        ("Kepada", recipients),
        ("Media", channel),
        ("Dasar", f"{article} PER-19/BC/2023"),
    )
    stages = _stage_labels(facts)
    body = (
        f"Dengan ini diberitahukan bahwa sejak {wib(facts.declared_at)} telah terjadi "
        f"{_category(facts)} yang dinyatakan oleh {facts.declared_by or MISSING} "
        f"({_role(facts.declarer_role)})."
    )
    paragraphs = [body]
    if stages:
        paragraphs.append("Penanganan dilakukan dengan tahapan: " + " → ".join(stages) + ".")
    if facts.service_restored_at:
        paragraphs.append(
            f"Layanan telah dialihkan ke DRC dan berfungsi sejak {wib(facts.service_restored_at)}."
        )
    else:
        paragraphs.append("Layanan sedang dipulihkan di DRC.")
    sections: list[Section] = [
        Section("Pemberitahuan", paragraphs=tuple(paragraphs)),
        _identity(facts),
        _basis(facts),
    ]
    coordination = _coordination_rows(facts)
    if coordination:
        sections.append(
            Section(
                "Tembusan dan Koordinasi (Pasal 13)",
                tables=(Table("Pihak yang dikoordinasikan", ("Pihak", "Pasal"), coordination),),
            )
        )
    signer = (facts.declared_by or "", _role(facts.declarer_role))
    return (
        "Lampiran C",
        "PEMBERITAHUAN KONDISI TIK TIDAK NORMAL",
        addressing,
        tuple(sections),
        signer,
    )


def _berakhir(facts: IncidentFacts, served: Any, source: str) -> _Built:
    disaster = _disaster(facts)
    recipients = disaster.notification.recipients.label_id if disaster else MISSING
    addressing = (
        ("Dari", _role(facts.end.role) if facts.end else _role(facts.declarer_role)),
        ("Kepada", f"{recipients}; instansi teknis terkait"),
        ("Dasar", "Pasal 9 PER-19/BC/2023"),
    )
    sections: list[Section] = []
    if facts.end is None:
        sections.append(
            Section(
                "Pernyataan Berakhirnya Kondisi TIK Tidak Normal",
                paragraphs=(
                    f"{MISSING}: berakhirnya Kondisi TIK Tidak Normal belum dinyatakan oleh "
                    "Direktur atau Kepala Kantor.",
                ),
                missing=(
                    "pernyataan berakhirnya kondisi belum dicatat (drp record end-of-condition "
                    f"--incident {facts.incident_id} --declared-by NAMA --role PERAN)",
                ),
            )
        )
        signer = ("", "")
    else:
        end = facts.end
        deadline = facts.resync_deadline
        paragraphs = [
            f"Dengan ini dinyatakan bahwa {_category(facts)} yang terjadi sejak "
            f"{wib(facts.declared_at)} telah berakhir. Layanan TIK berfungsi kembali sejak "
            f"{wib(end.restored_at)}.",
            f"Dokumen yang diterima selama Kondisi TIK Tidak Normal wajib disinkronisasi ke SKP "
            f"paling lama 30 hari sejak layanan berfungsi kembali, yaitu sampai {wib(deadline)} "
            "(Pasal 11).",
        ]
        if end.note:
            paragraphs.append(f"Catatan: {end.note}")
        sections.append(
            Section(
                "Pernyataan Berakhirnya Kondisi TIK Tidak Normal",
                paragraphs=tuple(paragraphs),
                fields=(
                    ("Dinyatakan oleh", f"{end.declared_by} — {_role(end.role)}"),
                    ("Waktu pernyataan", wib(end.declared_at)),
                    ("Layanan berfungsi kembali", wib(end.restored_at)),
                    ("Batas sinkronisasi (Pasal 11)", wib(deadline)),
                ),
            )
        )
        signer = (end.declared_by, _role(end.role))
    sections.append(_identity(facts))
    sections.append(
        Section(
            "Instansi Teknis Terkait",
            tables=(
                Table("Penerima tembusan", ("Pihak", "Pasal"), _coordination_rows(facts), "-"),
            ),
        )
    )
    return (
        "Lampiran E",
        "PEMBERITAHUAN BERAKHIRNYA KONDISI TIK TIDAK NORMAL",
        addressing,
        tuple(sections),
        signer,
    )


SERVED_HEADERS = (
    "No",
    "Nomor pendaftaran",
    "Jenis dokumen",
    "Kantor",
    "Pengaju",
    "Waktu diterima",
    "Status",
    "Bukti (SHA-256)",
)
SERVED_KEYS = (
    "registration_number",
    "doc_type",
    "office",
    "submitter",
    "received_at",
    "status",
    "evidence_sha256",
)


def _berita_acara(facts: IncidentFacts, served: Any, source: str) -> _Built:
    addressing = (("Dasar", "Pasal 10 PER-19/BC/2023"), ("Nomor insiden", facts.incident_id))
    rows = tuple(
        (i, *(_cell(doc.get(key)) for key in SERVED_KEYS))
        for i, doc in enumerate(served or (), start=1)
    )
    note = NO_MANUAL_DOCUMENTS
    if served is None:
        note = (
            f"{NO_MANUAL_DOCUMENTS} (penyimpanan mode manual tidak tersedia"
            f"{': ' + source if source else ''})"
        )
    start = wib(facts.declared_at)
    end = wib(facts.end.restored_at if facts.end else facts.service_restored_at)
    paragraphs = [
        f"Pada Kondisi TIK Tidak Normal sejak {start} sampai {end}, dokumen berikut dilayani "
        "secara manual, dengan bukti pendukung yang tercantum.",
    ]
    if not rows:
        paragraphs.append(note[0].upper() + note[1:] + ".")
    else:
        paragraphs.append(f"Jumlah dokumen yang dilayani: {len(rows)}.")
    sections = (
        Section(
            "Dokumen yang Dilayani selama Kondisi TIK Tidak Normal",
            paragraphs=tuple(paragraphs),
            tables=(Table("Daftar dokumen", SERVED_HEADERS, rows, note),),
        ),
        _identity(facts),
    )
    signer = (facts.end.declared_by, _role(facts.end.role)) if facts.end else ("", "")
    return "Lampiran F", "BERITA ACARA", addressing, sections, signer


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool | datetime):
        return value
    return str(value)


def _pasca(facts: IncidentFacts, served: Any, source: str) -> _Built:
    addressing = (("Dasar", "Pasal 12 PER-19/BC/2023"),)
    impact_fields = []
    if facts.downtime is not None:
        impact_fields.append(("Lama gangguan layanan", _duration(facts.downtime.total_seconds())))
    failover = facts.phase("failover")
    if failover and failover.lost_bytes is not None:
        impact_fields.append(("Data hilang (RPO)", f"{failover.lost_bytes} byte WAL"))
    impact_fields.append(
        ("Dokumen dilayani manual", str(len(served)) if served is not None else "tidak tercatat")
    )
    impact = Section(
        "Data Dampak terhadap SKP",
        paragraphs=(facts.assessment.impact,)
        if facts.assessment and facts.assessment.impact
        else (),
        fields=tuple(impact_fields),
    )
    needs = _assessment_section(
        facts,
        "Kebutuhan",
        "needs",
        "kebutuhan (sumber daya, perbaikan, mitigasi risiko) ditulis oleh petugas",
        f"kebutuhan belum dicatat (drp record assessment --incident {facts.incident_id} "
        "--needs ...)",
    )
    sections = (
        _identity(facts),
        _chronology(facts, "Kronologi"),
        _root_cause(facts),
        _damage(facts),
        impact,
        _actions(facts, ("failover",), "Tindakan Darurat"),
        Section(
            "Penanganan dan Perbaikan",
            tables=(_steps_table(facts, ("resync", "failback"), "Sinkronisasi dan pengembalian"),),
        ),
        _rto_section(facts),
        needs,
    )
    signer = facts.assessment.by if facts.assessment else ""
    return "Pasal 12", "LAPORAN PASCA KONDISI TIK TIDAK NORMAL", addressing, sections, (signer, "")


def _simulasi(facts: IncidentFacts, served: Any, source: str) -> _Built:
    addressing = (("Dasar", "Pasal 15 PER-19/BC/2023"), ("Skenario", _scenario(facts)))
    measure_rows = []
    for phase in facts.phases:
        if phase.flow == "drill":
            continue
        measure_rows.append(
            (
                FLOW_LABELS.get(phase.flow, phase.flow),
                PHASE_STATUS.get(phase.status, phase.status),
                phase.achieved_rto_s,
                phase.rto_budget_s,
                len(phase.steps),
                len(phase.over_budget_steps),
            )
        )
    gate_rows = tuple((g.flow, g.gate, g.who, g.waited_s, g.at) for g in facts.gates)
    tables = [
        Table(
            "Waktu respons per tahap",
            ("Tahap", "Status", "Waktu (s)", "Anggaran (s)", "Langkah", "Langkah lewat anggaran"),
            tuple(measure_rows),
            "tidak ada tahap tercatat",
        ),
        Table(
            "Waktu respons keputusan manusia",
            ("Tahap", "Keputusan", "Oleh", "Menunggu (s)", "Waktu"),
            gate_rows,
            "tidak ada keputusan tercatat",
        ),
    ]
    summary = drill_summary(facts)
    if summary:
        tables += _drill_tables(summary)
    findings = []
    for phase in facts.phases:
        for step in phase.over_budget_steps:
            findings.append(
                f"{phase.flow}/{step.step_id}: {step.duration_s:.1f} s melebihi anggaran "
                f"{step.budget_s:.0f} s — tinjau anggaran atau langkahnya dalam DRP."
            )
        if phase.status != "completed":
            findings.append(f"{phase.flow} tidak selesai: {phase.stop_reason or phase.status}.")
    failover = facts.phase("failover")
    if failover and failover.achieved_rto_s is not None:
        ok = failover.achieved_rto_s <= RTO_LIMIT_S
        findings.insert(
            0,
            f"RTO simulasi {_duration(failover.achieved_rto_s)}: "
            f"{'memenuhi' if ok else 'TIDAK memenuhi'} batas 60 menit.",
        )
    if not any(p.over_budget_steps for p in facts.phases):
        findings.append("Semua langkah selesai dalam anggaran waktunya.")
    if summary:
        findings.insert(0, f"Putusan simulasi (flow drill): {summary.get('verdict', '-')}.")
    evaluation = Section(
        "Evaluasi",
        paragraphs=tuple(findings)
        + (
            (f"Catatan petugas: {facts.assessment.actions}",)
            if facts.assessment and facts.assessment.actions
            else ()
        ),
    )
    sections = (
        _identity(facts),
        Section("Pengukuran Respons", tables=tuple(tables)),
        _steps_section(facts),
        _rto_section(facts),
        evaluation,
        Section(
            "Umpan Balik untuk Rencana Kelangsungan Layanan TIK",
            paragraphs=(
                "Hasil evaluasi ini menjadi masukan penyempurnaan rencana kelangsungan layanan "
                "TIK (Pasal 15 ayat (3)).",
            ),
        ),
    )
    return (
        "Pasal 15",
        "LAPORAN SIMULASI DAN UJI COBA",
        addressing,
        sections,
        (facts.declared_by or "", ""),
    )


def drill_summary(facts: IncidentFacts) -> Mapping[str, Any]:
    """The drill flow's own summary (``drill.completed``/``drill.failed``), when there is one."""
    drill = facts.phase("drill")
    if drill is None:
        return {}
    summary = drill.details.get("summary", drill.details)
    return summary if isinstance(summary, Mapping) else {}


def _drill_tables(summary: Mapping[str, Any]) -> list[Table]:
    """The drill flow's measurements and evaluation (Pasal 15), as it recorded them."""

    def rows(key: str, fields: Sequence[str]) -> tuple[tuple[Any, ...], ...]:
        items = summary.get(key) or []
        return tuple(
            tuple(_cell(item.get(f)) for f in fields) for item in items if isinstance(item, Mapping)
        )

    return [
        Table(
            "Tahap simulasi (flow drill)",
            ("Tahap", "Status", "Durasi (s)", "RTO (s)", "Anggaran RTO (s)", "Keterangan"),
            rows(
                "phases",
                ("phase", "status", "duration_s", "achieved_rto_s", "rto_budget_s", "reason"),
            ),
            "tidak ada",
        ),
        Table(
            "Respons keputusan manusia (flow drill)",
            ("Tahap", "Keputusan", "Oleh", "Saluran", "Menunggu (s)"),
            rows("gates", ("flow", "gate", "answered_by", "channel", "waited_s")),
            "tidak ada",
        ),
        Table(
            "Temuan evaluasi (flow drill)",
            ("Subjek", "Terpenuhi", "Alasan"),
            rows("findings", ("subject", "ok", "reason")),
            "tidak ada",
        ),
    ]


def _steps_section(facts: IncidentFacts) -> Section:
    return Section(
        "Langkah Simulasi",
        tables=(_steps_table(facts, ("failover", "resync", "failback"), "Langkah"),),
    )


def _scenario(facts: IncidentFacts) -> str:
    drill = facts.phase("drill")
    if drill and drill.details.get("scenario"):
        return str(drill.details["scenario"])
    reasons = "; ".join(t.get("reason", "") for t in facts.triggers)
    return reasons or _category(facts)


_BUILDERS = {
    "kaji-cepat": _kaji_cepat,
    "pemberitahuan": _pemberitahuan,
    "berakhir": _berakhir,
    "berita-acara": _berita_acara,
    "pasca": _pasca,
    "simulasi": _simulasi,
}


def resync_status(facts: IncidentFacts, now: datetime) -> str:
    """Pasal 11 in one sentence: the deadline and the days left."""
    deadline = facts.resync_deadline
    if deadline is None:
        return "batas sinkronisasi belum berjalan: layanan belum berfungsi kembali"
    left = days_left(deadline, now)
    if left < 0:
        return f"batas sinkronisasi {wib(deadline)} telah lewat {-left} hari"
    return f"batas sinkronisasi {wib(deadline)}: sisa {left} hari"
