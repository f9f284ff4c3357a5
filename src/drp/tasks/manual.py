"""Manual mode's steps (Pasal 8–10): activate and deactivate intake, take in a declaration file,
the work queue, serving, inter-office notes, and the served-documents export.

Each step is a plain function (the CLI runs it directly: a counter clerk should not wait for a
Prefect server) with a Prefect task wrapper at the bottom for the flows. A step asks
:mod:`drp.domain.manual` to decide, the adapters (:mod:`drp.adapters.spreadsheets`,
:mod:`drp.adapters.manual_store`) to act, and records what happened in a ledger of its own under
``<evidence>/<incident>/manual/``: one ledger per action, so that twenty clerks submitting at
once never write into the same chain.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from prefect import task
from prefect.cache_policies import NO_CACHE

from drp.adapters import manual_store as store
from drp.adapters import spreadsheets
from drp.domain.manual import codes
from drp.domain.manual.fields import HEADER_SHEET, DocType, parse_doc_type
from drp.domain.manual.numbering import NumberFormat, NumberFormatError, number_format
from drp.domain.manual.requirements import RequirementsError, RequirementsTable, parse_requirements
from drp.domain.manual.validation import Validation, raw_records, validate_workbook
from drp.domain.manual.workbook import Limits, Problem, Workbook
from drp.domain.manual.worklist import QueueEntry, Ranked, order_queue
from drp.errors import DrpError, PreconditionFailed
from drp.ledger import Ledger
from drp.notify import Notifier, build_notifiers, notify_safely
from drp.settings import Settings

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
DEFAULT_REQUIREMENTS = DATA_DIR / "manual_requirements.csv"
DEFAULT_NUMBER_FORMAT = DATA_DIR / "manual_number_format.yaml"
NO_INCIDENT = "no-incident"
log = logging.getLogger("drp.manual")


class ManualModeError(DrpError):
    """A manual-mode action cannot be done as asked; the message says what to do instead."""


@dataclass(frozen=True)
class ManualConfig:
    """Where manual mode keeps things and by which rules it judges (built once per command)."""

    ops_dsn: str
    evidence_dir: Path
    requirements: RequirementsTable
    numbers: NumberFormat
    limits: Limits = field(default_factory=Limits)
    known_secrets: tuple[str, ...] = ()
    settings: Settings | None = field(default=None, compare=False)


def load_requirements(path: Path | None) -> RequirementsTable:
    """The HS requirements table: the user's (``DRP_MANUAL_REQUIREMENTS``) or the sample."""
    source = path or DEFAULT_REQUIREMENTS
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManualModeError(
            f"cannot read the requirements table {source}: {exc} "
            "(hint: DRP_MANUAL_REQUIREMENTS names a CSV file; unset it to use the sample)"
        ) from exc
    try:
        return parse_requirements(text, str(source))
    except RequirementsError as exc:
        raise ManualModeError(str(exc)) from exc


def load_number_format(path: Path | None) -> NumberFormat:
    """The registration-number format: the user's (``DRP_MANUAL_NUMBER_FORMAT``) or the default."""
    source = path or DEFAULT_NUMBER_FORMAT
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ManualModeError(f"cannot read the number format {source}: {exc}") from exc
    if not isinstance(data, dict):
        raise ManualModeError(f"{source}: expected a mapping with pattern, skp_pattern, timezone")
    try:
        fmt = number_format(data)
        ZoneInfo(fmt.timezone)
    except NumberFormatError as exc:
        raise ManualModeError(f"{source}: {exc}") from exc
    except (KeyError, ValueError) as exc:
        raise ManualModeError(f"{source}: unknown timezone {data.get('timezone')!r}") from exc
    return fmt


def manual_config(settings: Settings | None = None, runbook: str | None = None) -> ManualConfig:
    """Resolve the ops database (the runbook's topology, else ``DRP_OPS_DSN``) and the rules."""
    settings = settings or Settings()
    ops_dsn, secrets = settings.ops_dsn, ()
    if runbook:
        from drp.runbooks import load_runbook
        from drp.topology import resolve

        rb = load_runbook(runbook)
        topology = resolve(rb, Path(rb.inventory), settings)
        ops_dsn = topology.ops_dsn or ops_dsn
        secrets = topology.known_secrets
    if not ops_dsn:
        raise PreconditionFailed(
            "no ops database: set DRP_OPS_DSN, or give the lab runbook (start it with drp lab up)"
        )
    return ManualConfig(
        ops_dsn=ops_dsn,
        evidence_dir=settings.evidence_dir,
        requirements=load_requirements(settings.manual_requirements),
        numbers=load_number_format(settings.manual_number_format),
        limits=Limits(max_bytes=settings.manual_max_bytes),
        known_secrets=tuple(secrets),
        settings=settings,
    )


def _stamp(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}"


def _ledger(cfg: ManualConfig, incident_id: str, where: str, meta: dict[str, Any]) -> Ledger:
    directory = cfg.evidence_dir / incident_id / "manual" / where
    return Ledger.create(
        directory, f"manual/{incident_id}/{where}", meta, known_secrets=cfg.known_secrets
    )


def _notifiers(cfg: ManualConfig, ledger: Ledger, incident_id: str) -> list[Notifier]:
    return build_notifiers(
        ledger, log, flow="manual-mode", incident_id=incident_id, mode="real", settings=cfg.settings
    )


# -- activation -----------------------------------------------------------------------------------
def parse_offices(offices: list[str] | str | None) -> list[str]:
    """Office codes from a list or a comma-separated string; each must be six digits."""
    if offices is None:
        return []
    raw = offices.split(",") if isinstance(offices, str) else offices
    found = [o.strip() for o in raw if o and o.strip()]
    bad = [f"{o!r}: {msg}" for o in found if (msg := codes.check_office(o))]
    if bad:
        raise ManualModeError("; ".join(bad))
    return sorted(set(found))


def parse_types(types: list[str] | str | None) -> list[str]:
    if types is None:
        return [d.value for d in DocType]
    raw = types.split(",") if isinstance(types, str) else types
    try:
        return sorted({parse_doc_type(t).value for t in raw if t and t.strip()})
    except ValueError as exc:
        raise ManualModeError(str(exc)) from exc


def activate(
    cfg: ManualConfig,
    incident_id: str,
    offices: list[str] | str | None,
    types: list[str] | str | None = None,
    by: str = "operator",
) -> dict[str, Any]:
    """Open intake for the offices and document types a declared disaster affects, publish the
    templates beside the incident's evidence, record it and tell people."""
    if not incident_id.strip():
        raise ManualModeError("an incident id is required: manual mode belongs to an incident")
    office_list, type_list = parse_offices(offices), parse_types(types)
    if not office_list:
        raise ManualModeError("name the affected offices (six-digit codes, e.g. 040300,050100)")
    now = datetime.now(UTC)
    ledger = _ledger(cfg, incident_id, f"activate-{_stamp(now)}", {"flow": "manual-mode"})
    activation, changed = store.activate(
        cfg.ops_dsn, incident_id, office_list, type_list, by, str(ledger.directory)
    )
    published = publish_templates(cfg, incident_id, ledger)
    ledger.append(
        "manual.activated" if changed else "manual.already_active",
        {"activation": activation.as_dict(), "templates": published},
    )
    if changed:
        notify_safely(
            _notifiers(cfg, ledger, incident_id),
            ledger,
            "manual.activated",
            f"{incident_id}: layanan manual aktif (manual mode on) for office(s) "
            f"{', '.join(activation.offices)}, documents {', '.join(activation.doc_types)}: "
            "declarations are accepted as spreadsheets (Pasal 8)",
            offices=list(activation.offices),
            doc_types=list(activation.doc_types),
        )
    ledger.close({"status": "active", "changed": changed})
    return {
        "status": "active",
        "changed": changed,
        **activation.as_dict(),
        "templates": published,
        "ledger": str(ledger.directory),
    }


def publish_templates(cfg: ManualConfig, incident_id: str, ledger: Ledger) -> list[str]:
    """Write the PIB and PEB templates (.xlsx and .xls) where the incident's people find them."""
    folder = cfg.evidence_dir / incident_id / "manual" / "templates"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for doc in DocType:
        for fmt in spreadsheets.FORMATS:
            path = folder / f"template-{doc.value.lower()}.{fmt}"
            if not path.exists():
                spreadsheets.write_workbook(path, doc, fmt)
            ref = ledger.attach(path.name, path)
            ledger.append("manual.template", {"path": str(path), "file": ref.to_dict()})
            written.append(str(path))
    return written


def deactivate(cfg: ManualConfig, incident_id: str, by: str = "operator") -> dict[str, Any]:
    """Close intake at the end of the abnormal condition (Pasal 9); the queue stays."""
    now = datetime.now(UTC)
    ledger = _ledger(cfg, incident_id, f"deactivate-{_stamp(now)}", {"flow": "manual-mode"})
    closed = store.deactivate(cfg.ops_dsn, incident_id, by)
    pending = len(store.declarations(cfg.ops_dsn, incident_id=incident_id, pending_only=True))
    if closed is None:
        ledger.append("manual.not_active", {"incident_id": incident_id})
        ledger.close({"status": "not_active"})
        return {
            "incident_id": incident_id,
            "status": "not_active",
            "pending": pending,
            "ledger": str(ledger.directory),
        }
    ledger.append("manual.deactivated", {"activation": closed.as_dict(), "pending": pending})
    notify_safely(
        _notifiers(cfg, ledger, incident_id),
        ledger,
        "manual.deactivated",
        f"{incident_id}: layanan manual berakhir (manual intake closed) for office(s) "
        f"{', '.join(closed.offices)}; {pending} registered declaration(s) still to serve; "
        "resync into SKP within 30 days (Pasal 11)",
        pending=pending,
    )
    ledger.close({"status": "closed", "pending": pending})
    return {
        **closed.as_dict(),
        "status": "closed",
        "pending": pending,
        "ledger": str(ledger.directory),
    }


# -- intake ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SubmitOutcome:
    """What became of one submitted file."""

    submission_id: str
    status: str  # "registered" or "rejected"
    incident_id: str | None
    office: str
    file_name: str
    file_sha256: str
    doc_type: str | None
    registered: tuple[dict[str, Any], ...]
    problems: tuple[Problem, ...]
    ledger: str

    @property
    def ok(self) -> bool:
        return self.status == "registered"

    def as_dict(self) -> dict[str, Any]:
        return {
            "submission_id": self.submission_id,
            "status": self.status,
            "incident_id": self.incident_id,
            "office": self.office,
            "file_name": self.file_name,
            "file_sha256": self.file_sha256,
            "doc_type": self.doc_type,
            "registered": list(self.registered),
            "problems": [p.as_dict() for p in self.problems],
            "ledger": self.ledger,
        }


def submit(
    cfg: ManualConfig,
    path: Path,
    office: str,
    submitted_by: str = "operator",
    *,
    now: datetime | None = None,
) -> SubmitOutcome:
    """Take in one declaration file: keep it, judge it, and register it whole or not at all.

    The original bytes are stored (``ops-db`` and the ledger) before anything is judged, so a
    rejected file is kept too. Numbers are given only when every declaration in the file passes.
    """
    if codes.check_office(office):
        raise ManualModeError(f"--office {office!r}: {codes.check_office(office)}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ManualModeError(f"cannot read {path}: {exc}") from exc
    now = now or datetime.now(UTC)
    sha = hashlib.sha256(data).hexdigest()
    with store.session(cfg.ops_dsn) as db:
        return _submit(cfg, db, path, data, sha, office, submitted_by, now)


def _submit(
    cfg: ManualConfig,
    db: Any,
    path: Path,
    data: bytes,
    sha: str,
    office: str,
    submitted_by: str,
    now: datetime,
) -> SubmitOutcome:
    store.keep_file(db, sha, data)
    incident_id = store.open_incident_for(db, office, None)
    submission_id = uuid.uuid4()
    ledger = Ledger.create(
        cfg.evidence_dir
        / (incident_id or NO_INCIDENT)
        / "manual"
        / "submissions"
        / str(submission_id),
        f"manual-submission/{submission_id}",
        {"flow": "manual-submit", "office": office, "file": path.name},
        known_secrets=cfg.known_secrets,
    )
    original = ledger.attach(path.name, data)
    received_at = store.open_submission(
        db,
        submission=submission_id,
        incident_id=incident_id,
        office=office,
        file_name=path.name,
        sha256=sha,
        submitted_by=submitted_by,
        ledger=str(ledger.directory),
    )
    ledger.append(
        "manual.submission.received",
        {
            "submission_id": str(submission_id),
            "incident_id": incident_id,
            "office": office,
            "file_name": path.name,
            "sha256": sha,
            "size": len(data),
            "submitted_by": submitted_by,
            "received_at": received_at.isoformat(),
        },
        attachments=[original],
    )
    verdict, problems, workbook = _judge(cfg, db, data, path.name, office, incident_id, sha, now)
    if verdict is not None and verdict.doc_type is not None:
        # another open incident may take this document type at this office
        incident_id = store.open_incident_for(db, office, verdict.doc_type.value) or incident_id
    doc_type = verdict.doc_type.value if verdict and verdict.doc_type else None
    registered: list[dict[str, Any]] = []
    if not problems and verdict is not None and incident_id is not None:
        try:
            registered = _register(cfg, db, submission_id, incident_id, office, verdict, now)
        except store.DuplicateDeclaration as exc:
            problems = _duplicate_problems(verdict, exc.found)
    base = dict(
        submission_id=str(submission_id),
        incident_id=incident_id,
        office=office,
        file_name=path.name,
        file_sha256=sha,
        doc_type=doc_type,
        ledger=str(ledger.directory),
    )
    if problems:
        parsed = raw_records(workbook) if workbook is not None else None
        store.reject_submission(
            db, submission_id, [p.as_dict() for p in problems], parsed, doc_type
        )
        ledger.append(
            "manual.submission.rejected",
            {"problems": [p.as_dict() for p in problems], "registered": 0},
        )
        ledger.close({"status": "rejected", "problems": len(problems)})
        return SubmitOutcome(status="rejected", registered=(), problems=tuple(problems), **base)
    ledger.append("manual.submission.registered", {"doc_type": doc_type, "registered": registered})
    ledger.close({"status": "registered", "declarations": len(registered)})
    return SubmitOutcome(status="registered", registered=tuple(registered), problems=(), **base)


def _judge(
    cfg: ManualConfig,
    db: Any,
    data: bytes,
    file_name: str,
    office: str,
    incident_id: str | None,
    sha: str,
    now: datetime,
) -> tuple[Validation | None, list[Problem], Workbook | None]:
    if incident_id is None:
        problem = [
            Problem(
                "intake.closed",
                f"manual mode is not active for office {office}: no declaration is taken in",
                f"activate it first: drp manual activate --incident ID --offices {office}",
            )
        ]
        return None, problem, None
    try:
        workbook = spreadsheets.read_workbook(data, file_name, max_bytes=cfg.limits.max_bytes)
    except spreadsheets.SpreadsheetRejected as exc:
        return None, [exc.problem], None
    tz = ZoneInfo(cfg.numbers.timezone)
    today = now.astimezone(tz).date()
    verdict = validate_workbook(
        workbook,
        office=office,
        requirements=cfg.requirements,
        today=today,
        limits=cfg.limits,
        tz=tz,
    )
    problems = list(verdict.problems)
    if verdict.doc_type is not None and not store.open_incident_for(
        db, office, verdict.doc_type.value
    ):
        problems.insert(
            0,
            Problem(
                "intake.type_closed",
                f"manual mode for incident {incident_id} does not take {verdict.doc_type.value} "
                f"declarations at office {office}",
                f"drp manual activate --incident {incident_id} --offices {office} "
                f"--types {verdict.doc_type.value.lower()}",
                sheet=HEADER_SHEET,
            ),
        )
    earlier = store.earlier_registration_of_file(db, sha)
    if earlier:
        problems.insert(
            0,
            Problem(
                "file.duplicate",
                f"this very file was registered already (submission {earlier})",
                "do not send a declaration twice; `drp manual queue` lists what is registered",
            ),
        )
    elif verdict.ok:
        taken = store.registered_nomor_aju(db, [d.nomor_aju for d in verdict.declarations])
        problems += _duplicate_problems(verdict, taken)
    return verdict, problems, workbook


def _duplicate_problems(verdict: Validation, found: dict[str, str]) -> list[Problem]:
    problems = []
    for decl in verdict.declarations:
        if decl.nomor_aju in found:
            problems.append(
                Problem(
                    "row.already_registered",
                    f"nomor aju {decl.nomor_aju} was registered already as {found[decl.nomor_aju]}",
                    "a declaration is submitted once; correct the nomor aju if this is a new one",
                    sheet=HEADER_SHEET,
                    row=decl.row,
                    column=decl.aju_column,
                    field="Nomor Aju",
                )
            )
    return problems


def _register(
    cfg: ManualConfig,
    db: Any,
    submission_id: uuid.UUID,
    incident_id: str,
    office: str,
    verdict: Validation,
    now: datetime,
) -> list[dict[str, Any]]:
    assert verdict.doc_type is not None
    doc = verdict.doc_type
    year = now.astimezone(ZoneInfo(cfg.numbers.timezone)).year
    numbered = store.register_submission(
        db,
        submission_id=submission_id,
        incident_id=incident_id,
        office=office,
        doc_type=doc.value,
        year=year,
        render=lambda seq: cfg.numbers.render(office, doc, year, seq),
        declarations=[
            store.NewDeclaration(
                nomor_aju=d.nomor_aju,
                npwp=d.npwp,
                nama=d.nama,
                tanggal_dokumen=d.tanggal_dokumen,
                waktu_closing=d.waktu_closing,
                valuta=d.valuta,
                nilai=d.nilai,
                record=d.as_record(),
            )
            for d in verdict.declarations
        ],
        parsed=None,  # an accepted file's parsed records are its declarations' records
        registered_at=now,
    )
    return [
        {"registration_number": number, "seq": seq, "nomor_aju": d.nomor_aju, "row": d.row}
        for (number, seq), d in zip(numbered, verdict.declarations, strict=True)
    ]


# -- the queue, serving, notes, the served list ---------------------------------------------------
def work_queue(
    cfg: ManualConfig,
    *,
    office: str | None = None,
    incident_id: str | None = None,
    now: datetime | None = None,
) -> list[Ranked]:
    """Registered declarations not yet served, exports by closing time first."""
    pending = store.declarations(
        cfg.ops_dsn, office=office, incident_id=incident_id, pending_only=True
    )
    entries = [
        QueueEntry(
            registration_number=d.registration_number,
            doc_type=DocType(d.doc_type),
            office=d.office,
            nomor_aju=d.nomor_aju,
            registered_at=d.registered_at,
            closing_time=d.waktu_closing,
        )
        for d in pending
    ]
    return order_queue(entries, now or datetime.now(UTC))


def ranked_as_dict(r: Ranked) -> dict[str, Any]:
    e = r.entry
    return {
        "position": r.position,
        "registration_number": e.registration_number,
        "doc_type": e.doc_type.value,
        "office": e.office,
        "nomor_aju": e.nomor_aju,
        "registered_at": e.registered_at.isoformat(),
        "closing_time": e.closing_time.isoformat() if e.closing_time else None,
        "urgency": r.urgency,
        "reason": r.reason,
    }


def _known(cfg: ManualConfig, registration_number: str) -> store.RegisteredDeclaration:
    found = store.declaration(cfg.ops_dsn, registration_number)
    if found is None:
        hint = (
            "a manual registration number looks like "
            f"{cfg.numbers.render('040300', DocType.PIB, 2026, 1)}"
        )
        if cfg.numbers.looks_like_skp(registration_number):
            hint = "that is an SKP number, not a manual one"
        raise ManualModeError(f"no manual declaration {registration_number!r} ({hint})")
    return found


def serve(
    cfg: ManualConfig,
    registration_number: str,
    by: str,
    evidence: list[Path] | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Record that a declaration was served, with its evidence (kept by content)."""
    decl = _known(cfg, registration_number)
    now = datetime.now(UTC)
    ledger = _ledger(
        cfg, decl.incident_id, f"served/{_stamp(now)}", {"registration_number": registration_number}
    )
    refs = []
    for item in evidence or []:
        try:
            content = item.read_bytes()
        except OSError as exc:
            raise ManualModeError(f"cannot read evidence {item}: {exc}") from exc
        sha = hashlib.sha256(content).hexdigest()
        store.keep_file(cfg.ops_dsn, sha, content)
        ref = ledger.attach(item.name, content)
        refs.append(
            {"name": item.name, "sha256": sha, "size": len(content), "ledger": ref.to_dict()}
        )
    updated = store.mark_served(cfg.ops_dsn, registration_number, by=by, note=note, evidence=refs)
    assert updated is not None
    ledger.append(
        "manual.served",
        {
            "registration_number": registration_number,
            "served_by": updated.served_by,
            "served_at": updated.served_at.isoformat() if updated.served_at else None,
            "note": note,
            "evidence": refs,
        },
    )
    ledger.close({"status": "served"})
    return {
        "registration_number": registration_number,
        "incident_id": decl.incident_id,
        "served_at": updated.served_at.isoformat() if updated.served_at else None,
        "served_by": updated.served_by,
        "evidence": refs,
        "ledger": str(ledger.directory),
    }


def send_note(
    cfg: ManualConfig,
    registration_number: str,
    *,
    to_office: str,
    text: str,
    author: str,
    from_office: str | None = None,
) -> dict[str, Any]:
    """A note about a declaration to another office (Pasal 8(4)(d)): stored, then sent."""
    decl = _known(cfg, registration_number)
    if codes.check_office(to_office):
        raise ManualModeError(f"--to {to_office!r}: {codes.check_office(to_office)}")
    if not text.strip():
        raise ManualModeError("the note is empty: say what the other office should know or do")
    sender = from_office or decl.office
    now = datetime.now(UTC)
    ledger = _ledger(
        cfg, decl.incident_id, f"notes/{_stamp(now)}", {"registration_number": registration_number}
    )
    saved = store.add_note(
        cfg.ops_dsn,
        incident_id=decl.incident_id,
        registration_number=registration_number,
        from_office=sender,
        to_office=to_office,
        author=author,
        text=text.strip(),
        ledger=str(ledger.directory),
    )
    ledger.append("manual.note", saved)
    notify_safely(
        _notifiers(cfg, ledger, decl.incident_id),
        ledger,
        "manual.note",
        f"Nota dinas {sender} → {to_office} tentang {registration_number} "
        f"({decl.doc_type} {decl.nomor_aju}) dari {author}: {text.strip()}",
        registration_number=registration_number,
        from_office=sender,
        to_office=to_office,
    )
    ledger.close({"status": "sent"})
    return saved


SERVED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("registration_number", "Nomor Pendaftaran Manual"),
    ("doc_type", "Jenis Dokumen"),
    ("office", "Kode Kantor"),
    ("nomor_aju", "Nomor Aju"),
    ("npwp", "NPWP"),
    ("nama", "Nama"),
    ("tanggal_dokumen", "Tanggal Dokumen"),
    ("valuta", "Valuta"),
    ("nilai", "Nilai"),
    ("waktu_closing", "Waktu Closing"),
    ("registered_at", "Waktu Pendaftaran"),
    ("status", "Status"),
    ("served_at", "Waktu Dilayani"),
    ("served_by", "Dilayani Oleh"),
    ("file_name", "Berkas"),
    ("file_sha256", "SHA-256 Berkas"),
    ("evidence", "Bukti Pelayanan (SHA-256)"),
    ("notes", "Nota Antar Kantor"),
    ("skp_status", "Status Sinkronisasi SKP"),
    ("skp_id", "ID SKP"),
)


def export_served(cfg: ManualConfig, incident_id: str, out: Path) -> dict[str, Any]:
    """The served-documents list of an incident as xlsx, the berita acara's input (Pasal 10)."""
    documents = store.served_documents(cfg.ops_dsn, incident_id)
    rows = []
    for d in documents:
        row = d.__dict__.copy()
        row["evidence"] = [f"{e['name']} {e['sha256']}" for e in d.served_evidence]
        row["notes"] = [f"{n['from_office']}→{n['to_office']}: {n['text']}" for n in d.notes]
        rows.append(row)
    spreadsheets.write_table_xlsx(
        out,
        "DOKUMEN DILAYANI",
        f"Daftar dokumen yang dilayani secara manual — insiden {incident_id} "
        f"(PER-19/BC/2023 Pasal 10), dibuat {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        SERVED_COLUMNS,
        rows,
    )
    served = sum(1 for d in documents if d.status == "dilayani")
    return {
        "incident_id": incident_id,
        "out": str(out),
        "documents": len(documents),
        "served": served,
        "registered_only": len(documents) - served,
        "rows": [d.as_dict() for d in documents],
    }


def write_template(doc_type: str, fmt: str, out: Path) -> Path:
    """The empty PIB or PEB form as .xlsx or .xls."""
    try:
        doc = parse_doc_type(doc_type)
    except ValueError as exc:
        raise ManualModeError(str(exc)) from exc
    if fmt not in spreadsheets.FORMATS:
        raise ManualModeError(f"--format {fmt!r}: choose xlsx or xls")
    return spreadsheets.write_workbook(out, doc, fmt)


def today_in(cfg: ManualConfig, now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(ZoneInfo(cfg.numbers.timezone)).date()


# -- Prefect tasks ------------------------------------------------------------------------------
@task(name="manual:activate", timeout_seconds=120, cache_policy=NO_CACHE, retries=0)
def activate_task(
    cfg: ManualConfig, incident_id: str, offices: list[str], types: list[str] | None, by: str
) -> dict[str, Any]:
    return activate(cfg, incident_id, offices, types, by)


@task(name="manual:deactivate", timeout_seconds=120, cache_policy=NO_CACHE, retries=0)
def deactivate_task(cfg: ManualConfig, incident_id: str, by: str) -> dict[str, Any]:
    return deactivate(cfg, incident_id, by)


@task(name="manual:submit", timeout_seconds=300, cache_policy=NO_CACHE, retries=0)
def submit_task(cfg: ManualConfig, path: str, office: str, submitted_by: str) -> dict[str, Any]:
    return submit(cfg, Path(path), office, submitted_by).as_dict()
