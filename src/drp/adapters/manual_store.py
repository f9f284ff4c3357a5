"""The manual-mode store in the platform's own database (``ops-db``, schema ``manual``).

What it keeps, and why here: activations (which offices and document types take manual
declarations for which incident), every submitted file byte for byte (content-addressed by
SHA-256), each submission's parsed records and outcome, the registered declarations with their
registration numbers, notes between offices, and what the resync into SKP did. ``ops-db`` sits
at the DRC in production and outlives the DC, which is exactly when manual mode runs.

Registration numbers come from ``manual.counters`` (one row per office, document type and year)
updated *in the same transaction* that inserts the declarations and marks the submission
registered: a rolled-back submission (duplicate, lost connection) takes its increment with it,
so numbers have no gaps; a committed number is never handed out again, because the counter only
grows and declarations are never deleted; the counter row's lock serialises concurrent
submitters. A file lock could do none of this across machines.

Thin: the rules live in :mod:`drp.domain.manual`; this module only reads and writes.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from drp.adapters import postgres as pg
from drp.errors import PostgresError

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS manual;
CREATE TABLE IF NOT EXISTS manual.activations (
    id             bigserial PRIMARY KEY,
    incident_id    text NOT NULL,
    offices        text[] NOT NULL,
    doc_types      text[] NOT NULL,
    activated_at   timestamptz NOT NULL DEFAULT now(),
    activated_by   text NOT NULL,
    deactivated_at timestamptz,
    deactivated_by text,
    ledger         text
);
CREATE UNIQUE INDEX IF NOT EXISTS activations_one_open
    ON manual.activations (incident_id) WHERE deactivated_at IS NULL;
CREATE TABLE IF NOT EXISTS manual.files (
    sha256     text PRIMARY KEY,
    size       bigint NOT NULL,
    content    bytea NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS manual.submissions (
    id           uuid PRIMARY KEY,
    incident_id  text,
    office       text NOT NULL,
    file_name    text NOT NULL,
    file_sha256  text NOT NULL REFERENCES manual.files (sha256),
    submitted_by text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    status       text NOT NULL CHECK (status IN ('received', 'registered', 'rejected')),
    doc_type     text,
    declarations integer NOT NULL DEFAULT 0,
    problems     jsonb NOT NULL DEFAULT '[]'::jsonb,
    parsed       jsonb,
    ledger       text,
    decided_at   timestamptz
);
CREATE INDEX IF NOT EXISTS submissions_by_file ON manual.submissions (file_sha256);
CREATE TABLE IF NOT EXISTS manual.counters (
    office   text NOT NULL,
    doc_type text NOT NULL,
    year     integer NOT NULL,
    last_seq bigint NOT NULL CHECK (last_seq > 0),
    PRIMARY KEY (office, doc_type, year)
);
CREATE TABLE IF NOT EXISTS manual.declarations (
    id                  bigserial PRIMARY KEY,
    registration_number text NOT NULL UNIQUE,
    office              text NOT NULL,
    doc_type            text NOT NULL,
    year                integer NOT NULL,
    seq                 bigint NOT NULL,
    nomor_aju           text NOT NULL UNIQUE,
    submission_id       uuid NOT NULL REFERENCES manual.submissions (id),
    incident_id         text NOT NULL,
    npwp                text NOT NULL,
    nama                text NOT NULL,
    tanggal_dokumen     date NOT NULL,
    waktu_closing       timestamptz,
    valuta              text NOT NULL,
    nilai               numeric NOT NULL,
    record              jsonb NOT NULL,
    registered_at       timestamptz NOT NULL,
    served_at           timestamptz,
    served_by           text,
    served_note         text,
    served_evidence     jsonb NOT NULL DEFAULT '[]'::jsonb,
    skp_status          text,
    skp_id              bigint,
    skp_reason          text,
    skp_synced_at       timestamptz,
    UNIQUE (office, doc_type, year, seq)
);
CREATE INDEX IF NOT EXISTS declarations_by_incident ON manual.declarations (incident_id);
CREATE TABLE IF NOT EXISTS manual.notes (
    id                  bigserial PRIMARY KEY,
    incident_id         text NOT NULL,
    registration_number text NOT NULL REFERENCES manual.declarations (registration_number),
    from_office         text NOT NULL,
    to_office           text NOT NULL,
    author              text NOT NULL,
    text                text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    ledger              text
);
CREATE TABLE IF NOT EXISTS manual.deadline_alerts (
    incident_id text NOT NULL,
    alert       text NOT NULL,
    sent_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (incident_id, alert)
);
"""
_SCHEMA_LOCK_KEY = 7_007_007  # advisory lock: two first submitters must not race the DDL
_ready: set[str] = set()
_ready_lock = threading.Lock()


Db = str | psycopg.Connection


@contextmanager
def session(dsn: str) -> Iterator[psycopg.Connection]:
    """One connection for a whole action (a submission makes about ten statements: one
    connection instead of ten saves most of its time); every function here takes it in place
    of a DSN."""
    ensure_schema(dsn)
    with pg.connect(dsn) as conn:
        yield conn


@contextmanager
def _db(db: Db) -> Iterator[psycopg.Connection]:
    """A connection for ``db``: a new one for a DSN, or the session's, with errors translated."""
    if isinstance(db, str):
        with pg.connect(db) as conn:
            yield conn
        return
    try:
        yield db
    except psycopg.Error as exc:
        raise PostgresError(
            f"{pg.safe_dsn(db.info.dsn)}: {str(exc).strip().splitlines()[0]}"
        ) from exc


def _query(db: Db, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with _db(db) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


class DuplicateDeclaration(PostgresError):
    """A nomor aju is registered already; ``found`` maps it to its registration number."""

    def __init__(self, found: dict[str, str]) -> None:
        listed = ", ".join(f"{a} (registered as {n})" for a, n in sorted(found.items())[:5])
        super().__init__(f"already registered: {listed}")
        self.found = found


def ensure_schema(dsn: Db) -> None:
    """Create the ``manual`` schema and tables when missing (idempotent, once per process).

    Given an open connection (a :func:`session`), the schema was ensured when it was opened.
    """
    if not isinstance(dsn, str):
        return
    with _ready_lock:
        if dsn in _ready:
            return
        with pg.connect(dsn, autocommit=False) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
            conn.execute(SCHEMA_SQL)  # type: ignore[arg-type]
            conn.commit()
        _ready.add(dsn)


# -- activations --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Activation:
    incident_id: str
    offices: tuple[str, ...]
    doc_types: tuple[str, ...]
    activated_at: datetime
    activated_by: str
    deactivated_at: datetime | None = None
    deactivated_by: str | None = None
    ledger: str | None = None

    @property
    def open(self) -> bool:
        return self.deactivated_at is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "offices": list(self.offices),
            "doc_types": list(self.doc_types),
            "activated_at": self.activated_at.isoformat(),
            "activated_by": self.activated_by,
            "deactivated_at": self.deactivated_at.isoformat() if self.deactivated_at else None,
            "deactivated_by": self.deactivated_by,
            "open": self.open,
            "ledger": self.ledger,
        }


_ACTIVATION_COLS = (
    "incident_id, offices, doc_types, activated_at, activated_by, deactivated_at, "
    "deactivated_by, ledger"
)


def _activation(row: Sequence[Any]) -> Activation:
    return Activation(row[0], tuple(row[1]), tuple(row[2]), *row[3:])


def activate(
    dsn: Db,
    incident_id: str,
    offices: Iterable[str],
    doc_types: Iterable[str],
    by: str,
    ledger: str | None,
) -> tuple[Activation, bool]:
    """Open intake for the incident (or widen an open one); returns it and whether it changed."""
    ensure_schema(dsn)
    offices, doc_types = sorted(set(offices)), sorted(set(doc_types))
    with _db(dsn) as conn, conn.transaction():
        row = conn.execute(
            f"SELECT {_ACTIVATION_COLS} FROM manual.activations"
            " WHERE incident_id = %s AND deactivated_at IS NULL FOR UPDATE",
            (incident_id,),
        ).fetchone()
        if row is not None:
            current = _activation(row)
            wider_offices = sorted(set(current.offices) | set(offices))
            wider_types = sorted(set(current.doc_types) | set(doc_types))
            if wider_offices == list(current.offices) and wider_types == list(current.doc_types):
                return current, False
            row = conn.execute(
                "UPDATE manual.activations SET offices = %s, doc_types = %s"
                f" WHERE incident_id = %s AND deactivated_at IS NULL RETURNING {_ACTIVATION_COLS}",
                (wider_offices, wider_types, incident_id),
            ).fetchone()
        else:
            row = conn.execute(
                "INSERT INTO manual.activations (incident_id, offices, doc_types, activated_by,"
                f" ledger) VALUES (%s, %s, %s, %s, %s) RETURNING {_ACTIVATION_COLS}",
                (incident_id, offices, doc_types, by, ledger),
            ).fetchone()
    assert row is not None
    return _activation(row), True


def deactivate(dsn: Db, incident_id: str, by: str) -> Activation | None:
    """Close the incident's intake; None when it was not open."""
    ensure_schema(dsn)
    with _db(dsn) as conn:
        row = conn.execute(
            "UPDATE manual.activations SET deactivated_at = now(), deactivated_by = %s"
            f" WHERE incident_id = %s AND deactivated_at IS NULL RETURNING {_ACTIVATION_COLS}",
            (by, incident_id),
        ).fetchone()
    return _activation(row) if row else None


def activations(dsn: Db, incident_id: str | None = None) -> list[Activation]:
    ensure_schema(dsn)
    sql = f"SELECT {_ACTIVATION_COLS} FROM manual.activations"
    params: tuple[Any, ...] = ()
    if incident_id:
        sql += " WHERE incident_id = %s"
        params = (incident_id,)
    return [_activation(r) for r in _query(dsn, sql + " ORDER BY activated_at", params)]


def open_incident_for(dsn: Db, office: str, doc_type: str | None) -> str | None:
    """The incident whose open activation covers ``office`` (and ``doc_type`` when given)."""
    ensure_schema(dsn)
    rows = _query(
        dsn,
        "SELECT incident_id FROM manual.activations WHERE deactivated_at IS NULL"
        " AND %s = ANY(offices) AND (%s::text IS NULL OR %s = ANY(doc_types))"
        " ORDER BY activated_at DESC LIMIT 1",
        (office, doc_type, doc_type),
    )
    return rows[0][0] if rows else None


# -- files and submissions ----------------------------------------------------------------------
def keep_file(dsn: Db, sha256: str, content: bytes) -> None:
    """Store a submitted file unchanged, once per content (committed before any judgement)."""
    ensure_schema(dsn)
    with _db(dsn) as conn:
        conn.execute(
            "INSERT INTO manual.files (sha256, size, content) VALUES (%s, %s, %s)"
            " ON CONFLICT (sha256) DO NOTHING",
            (sha256, len(content), content),
        )


def file_content(dsn: Db, sha256: str) -> bytes | None:
    rows = _query(dsn, "SELECT content FROM manual.files WHERE sha256 = %s", (sha256,))
    return bytes(rows[0][0]) if rows else None


def open_submission(
    dsn: Db,
    *,
    submission: uuid.UUID,
    incident_id: str | None,
    office: str,
    file_name: str,
    sha256: str,
    submitted_by: str,
    ledger: str | None,
) -> datetime:
    """Record that a file arrived (status ``received``) before it is judged."""
    with _db(dsn) as conn:
        row = conn.execute(
            "INSERT INTO manual.submissions (id, incident_id, office, file_name, file_sha256,"
            " submitted_by, status, ledger) VALUES (%s, %s, %s, %s, %s, %s, 'received', %s)"
            " RETURNING received_at",
            (submission, incident_id, office, file_name, sha256, submitted_by, ledger),
        ).fetchone()
    assert row is not None
    return row[0]


def earlier_registration_of_file(dsn: Db, sha256: str) -> str | None:
    """The id of an earlier submission of the same bytes that was registered, if any."""
    rows = _query(
        dsn,
        "SELECT id::text FROM manual.submissions WHERE file_sha256 = %s AND status = 'registered'"
        " ORDER BY received_at LIMIT 1",
        (sha256,),
    )
    return rows[0][0] if rows else None


def registered_nomor_aju(dsn: Db, nomor_aju: Sequence[str]) -> dict[str, str]:
    """Which of these nomor aju are registered already, with their registration numbers."""
    rows = _query(
        dsn,
        "SELECT nomor_aju, registration_number FROM manual.declarations WHERE nomor_aju = ANY(%s)",
        (list(nomor_aju),),
    )
    return {a: n for a, n in rows}


def reject_submission(
    dsn: Db,
    submission_id: uuid.UUID,
    problems: list[dict[str, Any]],
    parsed: Any,
    doc_type: str | None,
) -> None:
    with _db(dsn) as conn:
        conn.execute(
            "UPDATE manual.submissions SET status = 'rejected', problems = %s, parsed = %s,"
            " doc_type = %s, decided_at = now() WHERE id = %s",
            (Jsonb(problems), Jsonb(_jsonable(parsed)), doc_type, submission_id),
        )


@dataclass(frozen=True)
class NewDeclaration:
    """What the store needs of one validated declaration to register it."""

    nomor_aju: str
    npwp: str
    nama: str
    tanggal_dokumen: date
    waktu_closing: datetime | None
    valuta: str
    nilai: Decimal
    record: dict[str, Any]


def register_submission(
    dsn: Db,
    *,
    submission_id: uuid.UUID,
    incident_id: str,
    office: str,
    doc_type: str,
    year: int,
    render: Any,
    declarations: Sequence[NewDeclaration],
    parsed: Any,
    registered_at: datetime,
) -> list[tuple[str, int]]:
    """Number and register every declaration of a submission, all or nothing.

    ``render(seq) -> str`` formats a registration number. Returns ``(number, seq)`` per
    declaration in order. Raises :class:`DuplicateDeclaration` (nothing registered, no number
    used) when a nomor aju is registered already, including by a submitter racing this one.
    """
    count = len(declarations)
    if count == 0:
        raise ValueError("a submission without declarations cannot be registered")
    with _db(dsn) as conn:
        try:
            with conn.transaction():
                taken = conn.execute(
                    "SELECT nomor_aju, registration_number FROM manual.declarations"
                    " WHERE nomor_aju = ANY(%s)",
                    ([d.nomor_aju for d in declarations],),
                ).fetchall()
                if taken:
                    raise DuplicateDeclaration({a: n for a, n in taken})
                row = conn.execute(
                    "INSERT INTO manual.counters (office, doc_type, year, last_seq)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (office, doc_type, year)"
                    " DO UPDATE SET last_seq = manual.counters.last_seq + EXCLUDED.last_seq"
                    " RETURNING last_seq",
                    (office, doc_type, year, count),
                ).fetchone()
                assert row is not None
                first = int(row[0]) - count + 1
                numbered = [(render(first + i), first + i) for i in range(count)]
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO manual.declarations (registration_number, office, doc_type,"
                        " year, seq, nomor_aju, submission_id, incident_id, npwp, nama,"
                        " tanggal_dokumen, waktu_closing, valuta, nilai, record, registered_at)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        [
                            (
                                number,
                                office,
                                doc_type,
                                year,
                                seq,
                                d.nomor_aju,
                                submission_id,
                                incident_id,
                                d.npwp,
                                d.nama,
                                d.tanggal_dokumen,
                                d.waktu_closing,
                                d.valuta,
                                d.nilai,
                                Jsonb({**d.record, "registration_number": number}),
                                registered_at,
                            )
                            for (number, seq), d in zip(numbered, declarations, strict=True)
                        ],
                    )
                conn.execute(
                    "UPDATE manual.submissions SET status = 'registered', declarations = %s,"
                    " doc_type = %s, parsed = %s, decided_at = now() WHERE id = %s",
                    (count, doc_type, Jsonb(_jsonable(parsed)), submission_id),
                )
        except psycopg.errors.UniqueViolation as exc:
            if "nomor_aju" in str(exc):
                raise DuplicateDeclaration(
                    {d.nomor_aju: "(by a concurrent submission)" for d in declarations}
                ) from exc
            raise
    return numbered


def submission(dsn: Db, submission_id: str) -> dict[str, Any] | None:
    rows = _query(
        dsn,
        "SELECT id::text, incident_id, office, file_name, file_sha256, submitted_by, received_at,"
        " status, doc_type, declarations, problems, ledger FROM manual.submissions WHERE id = %s",
        (submission_id,),
    )
    if not rows:
        return None
    keys = [
        "id",
        "incident_id",
        "office",
        "file_name",
        "file_sha256",
        "submitted_by",
        "received_at",
        "status",
        "doc_type",
        "declarations",
        "problems",
        "ledger",
    ]
    return dict(zip(keys, rows[0], strict=True))


def counts(dsn: Db) -> dict[str, int]:
    """How many submissions, declarations and files the store holds (tests, status)."""
    ensure_schema(dsn)
    row = _query(
        dsn,
        "SELECT (SELECT count(*) FROM manual.submissions), (SELECT count(*) FROM"
        " manual.declarations), (SELECT count(*) FROM manual.files)",
    )[0]
    return {"submissions": row[0], "declarations": row[1], "files": row[2]}


def sequences(dsn: Db, office: str, doc_type: str, year: int) -> tuple[list[int], int | None]:
    """The registered sequence numbers (sorted) and the counter, to check for gaps."""
    seqs = [
        int(r[0])
        for r in _query(
            dsn,
            "SELECT seq FROM manual.declarations WHERE office = %s AND doc_type = %s"
            " AND year = %s ORDER BY seq",
            (office, doc_type, year),
        )
    ]
    counter = _query(
        dsn,
        "SELECT last_seq FROM manual.counters WHERE office = %s AND doc_type = %s AND year = %s",
        (office, doc_type, year),
    )
    return seqs, (int(counter[0][0]) if counter else None)


# -- the queue, serving, notes ------------------------------------------------------------------
@dataclass(frozen=True)
class RegisteredDeclaration:
    registration_number: str
    doc_type: str
    office: str
    nomor_aju: str
    incident_id: str
    npwp: str
    nama: str
    tanggal_dokumen: date
    waktu_closing: datetime | None
    valuta: str
    nilai: Decimal
    registered_at: datetime
    submission_id: str
    file_sha256: str
    file_name: str
    served_at: datetime | None
    served_by: str | None
    served_note: str | None
    served_evidence: tuple[dict[str, Any], ...]
    skp_status: str | None
    skp_id: int | None
    skp_reason: str | None
    skp_synced_at: datetime | None
    record: dict[str, Any] = field(default_factory=dict, compare=False)


_DECL_SQL = (
    "SELECT d.registration_number, d.doc_type, d.office, d.nomor_aju, d.incident_id, d.npwp,"
    " d.nama, d.tanggal_dokumen, d.waktu_closing, d.valuta, d.nilai, d.registered_at,"
    " d.submission_id::text, s.file_sha256, s.file_name, d.served_at, d.served_by,"
    " d.served_note, d.served_evidence, d.skp_status, d.skp_id, d.skp_reason, d.skp_synced_at,"
    " d.record FROM manual.declarations d JOIN manual.submissions s ON s.id = d.submission_id"
)


def _declaration(row: Sequence[Any]) -> RegisteredDeclaration:
    values = list(row)
    values[18] = tuple(values[18] or ())
    return RegisteredDeclaration(*values)


def declarations(
    dsn: Db,
    *,
    incident_id: str | None = None,
    office: str | None = None,
    pending_only: bool = False,
) -> list[RegisteredDeclaration]:
    """Registered declarations (by registration order), filtered as asked."""
    ensure_schema(dsn)
    where, params = [], []
    if incident_id:
        where.append("d.incident_id = %s")
        params.append(incident_id)
    if office:
        where.append("d.office = %s")
        params.append(office)
    if pending_only:
        where.append("d.served_at IS NULL")
    sql = _DECL_SQL + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY d.id"
    return [_declaration(r) for r in _query(dsn, sql, tuple(params))]


def declaration(dsn: Db, registration_number: str) -> RegisteredDeclaration | None:
    ensure_schema(dsn)
    rows = _query(dsn, _DECL_SQL + " WHERE d.registration_number = %s", (registration_number,))
    return _declaration(rows[0]) if rows else None


def mark_served(
    dsn: Db,
    registration_number: str,
    *,
    by: str,
    note: str | None,
    evidence: list[dict[str, Any]],
) -> RegisteredDeclaration | None:
    """Record that a declaration was served (once; a second call adds evidence only)."""
    with _db(dsn) as conn:
        conn.execute(
            "UPDATE manual.declarations SET served_at = COALESCE(served_at, now()),"
            " served_by = COALESCE(served_by, %s), served_note = COALESCE(%s, served_note),"
            " served_evidence = served_evidence || %s WHERE registration_number = %s",
            (by, note, Jsonb(evidence), registration_number),
        )
    return declaration(dsn, registration_number)


def add_note(
    dsn: Db,
    *,
    incident_id: str,
    registration_number: str,
    from_office: str,
    to_office: str,
    author: str,
    text: str,
    ledger: str | None,
) -> dict[str, Any]:
    ensure_schema(dsn)
    with _db(dsn) as conn:
        row = conn.execute(
            "INSERT INTO manual.notes (incident_id, registration_number, from_office, to_office,"
            " author, text, ledger) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " RETURNING id, created_at",
            (incident_id, registration_number, from_office, to_office, author, text, ledger),
        ).fetchone()
    assert row is not None
    return {
        "id": row[0],
        "incident_id": incident_id,
        "registration_number": registration_number,
        "from_office": from_office,
        "to_office": to_office,
        "author": author,
        "text": text,
        "created_at": row[1].isoformat(),
        "ledger": ledger,
    }


def notes(dsn: Db, registration_number: str) -> list[dict[str, Any]]:
    ensure_schema(dsn)
    keys = ("id", "from_office", "to_office", "author", "text", "created_at")
    rows = _query(
        dsn,
        "SELECT id, from_office, to_office, author, text, created_at FROM manual.notes"
        " WHERE registration_number = %s ORDER BY id",
        (registration_number,),
    )
    return [dict(zip(keys, r, strict=True)) for r in rows]


# -- berita acara input (Pasal 10) --------------------------------------------------------------
@dataclass(frozen=True)
class ServedDocument:
    """One document handled by the manual service during an incident, with its evidence.

    The shape is a contract with the berita acara (Lampiran F) writer; fields are only added:

    - ``registration_number``: the manual number (Lampiran D format), ``doc_type`` PIB/PEB,
      ``office``, ``nomor_aju``, ``npwp``, ``nama`` (importer/exporter), ``tanggal_dokumen``,
      ``nilai`` and ``valuta`` (CIF for PIB, FOB for PEB), ``waktu_closing`` (PEB only);
    - ``registered_at``: when the number was given; ``status``: ``"dilayani"`` (served: an
      officer recorded the service) or ``"terdaftar"`` (registered, not yet marked served);
      ``served_at``/``served_by``/``served_note`` when served;
    - evidence: ``file_sha256`` and ``file_name`` of the submitted spreadsheet (kept unchanged
      in ``manual.files``), ``submission_id``, ``served_evidence`` (content-addressed files given
      when serving: dicts with ``name``, ``sha256``, ``size``), ``notes`` (inter-office notes);
    - resync (Pasal 11): ``skp_status`` (``synced``, ``already``, ``conflict``, ``failed`` or
      None), ``skp_id`` (SKP's own id), ``skp_synced_at``.
    """

    registration_number: str
    doc_type: str
    office: str
    nomor_aju: str
    npwp: str
    nama: str
    tanggal_dokumen: date
    nilai: Decimal
    valuta: str
    waktu_closing: datetime | None
    registered_at: datetime
    status: str
    served_at: datetime | None
    served_by: str | None
    served_note: str | None
    submission_id: str
    file_sha256: str
    file_name: str
    served_evidence: tuple[dict[str, Any], ...]
    notes: tuple[dict[str, Any], ...]
    skp_status: str | None
    skp_id: int | None
    skp_synced_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return _jsonable(self.__dict__)


def served_documents(ops_dsn: Db, incident_id: str) -> list[ServedDocument]:
    """Every declaration registered by manual mode for ``incident_id``, in registration order,
    with its evidence (see :class:`ServedDocument`): the input of the berita acara (Pasal 10)."""
    found = declarations(ops_dsn, incident_id=incident_id)
    by_number: dict[str, list[dict[str, Any]]] = {}
    if found:
        for row in _query(
            ops_dsn,
            "SELECT registration_number, from_office, to_office, author, text, created_at"
            " FROM manual.notes WHERE incident_id = %s ORDER BY id",
            (incident_id,),
        ):
            by_number.setdefault(row[0], []).append(
                {
                    "from_office": row[1],
                    "to_office": row[2],
                    "author": row[3],
                    "text": row[4],
                    "created_at": row[5].isoformat(),
                }
            )
    return [
        ServedDocument(
            registration_number=d.registration_number,
            doc_type=d.doc_type,
            office=d.office,
            nomor_aju=d.nomor_aju,
            npwp=d.npwp,
            nama=d.nama,
            tanggal_dokumen=d.tanggal_dokumen,
            nilai=d.nilai,
            valuta=d.valuta,
            waktu_closing=d.waktu_closing,
            registered_at=d.registered_at,
            status="dilayani" if d.served_at else "terdaftar",
            served_at=d.served_at,
            served_by=d.served_by,
            served_note=d.served_note,
            submission_id=d.submission_id,
            file_sha256=d.file_sha256,
            file_name=d.file_name,
            served_evidence=d.served_evidence,
            notes=tuple(by_number.get(d.registration_number, ())),
            skp_status=d.skp_status,
            skp_id=d.skp_id,
            skp_synced_at=d.skp_synced_at,
        )
        for d in found
    ]


# -- resync bookkeeping -------------------------------------------------------------------------
def record_resync(
    dsn: str, registration_number: str, status: str, skp_id: int | None, reason: str
) -> None:
    with _db(dsn) as conn:
        conn.execute(
            "UPDATE manual.declarations SET skp_status = %s, skp_id = COALESCE(%s, skp_id),"
            " skp_reason = %s, skp_synced_at = CASE WHEN %s IN ('synced', 'already')"
            " THEN COALESCE(skp_synced_at, now()) ELSE skp_synced_at END"
            " WHERE registration_number = %s",
            (status, skp_id, reason, status, registration_number),
        )


def deadline_alerts_sent(dsn: Db, incident_id: str) -> set[str]:
    ensure_schema(dsn)
    rows = _query(
        dsn, "SELECT alert FROM manual.deadline_alerts WHERE incident_id = %s", (incident_id,)
    )
    return {r[0] for r in rows}


def claim_deadline_alert(dsn: Db, incident_id: str, alert: str) -> bool:
    """True for the one caller that records this alert first (so it is sent once)."""
    with _db(dsn) as conn:
        row = conn.execute(
            "INSERT INTO manual.deadline_alerts (incident_id, alert) VALUES (%s, %s)"
            " ON CONFLICT DO NOTHING RETURNING alert",
            (incident_id, alert),
        ).fetchone()
    return row is not None


def _jsonable(value: Any) -> Any:
    """Plain JSON values (dates as ISO text, decimals as text) for jsonb and ``--json``."""
    return json.loads(json.dumps(value, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"not JSON: {type(value).__name__}")
