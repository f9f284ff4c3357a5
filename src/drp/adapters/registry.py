"""The incident registry in ops-db (schema ``registry``): an index derived from the ledgers.

The ledgers are the truth; the registry only makes them queryable (``drp incidents``, the
downtime KPI, ``drp compliance``) without reading every file. So it is never written by hand:
:func:`index_incident` rebuilds an incident's row from its ledgers (idempotent upsert, called at
the end of every incident flow and by ``drp record``/``drp report``) and :func:`rescan` rebuilds
the whole index from the evidence directory (and drops rows whose evidence is gone). Deleting
the schema loses nothing that a rescan cannot bring back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb

from drp.adapters import postgres as pg
from drp.documents.collect import list_incident_ids, load_incident
from drp.domain.incident import IncidentFacts

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS registry;
CREATE TABLE IF NOT EXISTS registry.incidents (
    incident_id text PRIMARY KEY,
    category text,
    mode text NOT NULL,
    is_drill boolean NOT NULL,
    declared_by text,
    declarer_role text,
    basis jsonb,
    detected_at timestamptz,
    declared_at timestamptz,
    approved_by text,
    service_restored_at timestamptz,
    ended_at timestamptz,
    end_declared_by text,
    end_role text,
    resync_deadline timestamptz,
    failover_status text,
    achieved_rto_s double precision,
    evidence_verified boolean NOT NULL,
    missing jsonb NOT NULL DEFAULT '[]',
    reports_issued jsonb NOT NULL DEFAULT '[]',
    manual_resync_done boolean NOT NULL DEFAULT false,
    evidence_dir text NOT NULL,
    indexed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS registry.ledgers (
    incident_id text NOT NULL REFERENCES registry.incidents ON DELETE CASCADE,
    name text NOT NULL,
    path text NOT NULL,
    records integer NOT NULL,
    head text,
    closed boolean NOT NULL,
    verified boolean NOT NULL,
    flow_run_ids text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (incident_id, name)
);
ALTER TABLE registry.incidents ADD COLUMN IF NOT EXISTS reports_issued jsonb NOT NULL DEFAULT '[]';
ALTER TABLE registry.incidents
    ADD COLUMN IF NOT EXISTS manual_resync_done boolean NOT NULL DEFAULT false;
"""

_LOCK = "SELECT pg_advisory_xact_lock(hashtext('drp.registry'))"
"""Concurrent CREATE ... IF NOT EXISTS can still collide in the catalog: serialise them."""

_COLUMNS = (
    "incident_id",
    "category",
    "mode",
    "is_drill",
    "declared_by",
    "declarer_role",
    "basis",
    "detected_at",
    "declared_at",
    "approved_by",
    "service_restored_at",
    "ended_at",
    "end_declared_by",
    "end_role",
    "resync_deadline",
    "failover_status",
    "achieved_rto_s",
    "evidence_verified",
    "missing",
    "reports_issued",
    "manual_resync_done",
    "evidence_dir",
)


@dataclass(frozen=True)
class LedgerRow:
    """One ledger that belongs to an incident."""

    name: str
    path: str
    records: int
    head: str | None
    closed: bool
    verified: bool
    flow_run_ids: tuple[str, ...]


@dataclass(frozen=True)
class IncidentRow:
    """One incident as the registry holds it."""

    incident_id: str
    category: str | None
    mode: str
    is_drill: bool
    declared_by: str | None
    declarer_role: str | None
    basis: Any
    detected_at: datetime | None
    declared_at: datetime | None
    approved_by: str | None
    service_restored_at: datetime | None
    ended_at: datetime | None
    end_declared_by: str | None
    end_role: str | None
    resync_deadline: datetime | None
    failover_status: str | None
    achieved_rto_s: float | None
    evidence_verified: bool
    missing: tuple[str, ...]
    reports_issued: tuple[str, ...]
    manual_resync_done: bool
    evidence_dir: str
    ledgers: tuple[LedgerRow, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` (times as ISO strings)."""
        out: dict[str, Any] = {}
        for name in (*_COLUMNS, "ledgers"):
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif name == "ledgers":
                value = [
                    ledger.__dict__ | {"flow_run_ids": list(ledger.flow_run_ids)}
                    for ledger in value
                ]
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out


def ensure_schema(dsn: str) -> None:
    """Create the schema and tables when missing (safe to call from many processes)."""
    with pg.connect(dsn, autocommit=False) as conn, conn.transaction():
        conn.execute(_LOCK)
        conn.execute(SCHEMA_SQL)


def row_from_facts(facts: IncidentFacts, evidence_dir: Path) -> IncidentRow:
    """The registry row an incident's facts make (pure)."""
    failover = facts.phase("failover")
    return IncidentRow(
        incident_id=facts.incident_id,
        category=facts.category,
        mode=facts.mode,
        is_drill=facts.is_drill,
        declared_by=facts.declared_by,
        declarer_role=facts.declarer_role,
        basis=facts.basis,
        detected_at=facts.detected_at,
        declared_at=facts.declared_at,
        approved_by=facts.approver,
        service_restored_at=facts.end.restored_at if facts.end else facts.service_restored_at,
        ended_at=facts.ended_at,
        end_declared_by=facts.end.declared_by if facts.end else None,
        end_role=facts.end.role if facts.end else None,
        resync_deadline=facts.resync_deadline,
        failover_status=failover.status if failover else None,
        achieved_rto_s=failover.achieved_rto_s if failover else None,
        evidence_verified=facts.evidence_verified,
        missing=facts.missing,
        reports_issued=facts.reports_issued,
        manual_resync_done=facts.manual_resync_done,
        evidence_dir=str(evidence_dir / facts.incident_id),
        ledgers=tuple(
            LedgerRow(x.name, x.path, x.records, x.head, x.closed, x.verified, x.flow_run_ids)
            for x in facts.ledgers
        ),
    )


def index_incident(ops_dsn: str, evidence_dir: Path, incident_id: str) -> IncidentRow:
    """Rebuild the incident's registry row from its ledgers (idempotent upsert)."""
    row = row_from_facts(load_incident(Path(evidence_dir), incident_id), Path(evidence_dir))
    ensure_schema(ops_dsn)
    with pg.connect(ops_dsn, autocommit=False) as conn, conn.transaction():
        _upsert(conn, row)
    return row


def _upsert(conn: Any, row: IncidentRow) -> None:
    values = [getattr(row, c) for c in _COLUMNS]
    values[_COLUMNS.index("basis")] = Jsonb(row.basis)
    values[_COLUMNS.index("missing")] = Jsonb(list(row.missing))
    values[_COLUMNS.index("reports_issued")] = Jsonb(list(row.reports_issued))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS[1:])
    conn.execute(
        f"INSERT INTO registry.incidents ({', '.join(_COLUMNS)}, indexed_at) "
        f"VALUES ({', '.join(['%s'] * len(_COLUMNS))}, now()) "
        f"ON CONFLICT (incident_id) DO UPDATE SET {updates}, indexed_at = now()",
        values,
    )
    conn.execute("DELETE FROM registry.ledgers WHERE incident_id = %s", (row.incident_id,))
    for ledger in row.ledgers:
        conn.execute(
            "INSERT INTO registry.ledgers (incident_id, name, path, records, head, closed,"
            " verified, flow_run_ids) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                row.incident_id,
                ledger.name,
                ledger.path,
                ledger.records,
                ledger.head,
                ledger.closed,
                ledger.verified,
                list(ledger.flow_run_ids),
            ),
        )


def rescan(ops_dsn: str, evidence_dir: Path) -> list[IncidentRow]:
    """Rebuild the whole index from the evidence directory; rows without evidence are dropped."""
    ids = list_incident_ids(Path(evidence_dir))
    rows = [row_from_facts(load_incident(Path(evidence_dir), i), Path(evidence_dir)) for i in ids]
    ensure_schema(ops_dsn)
    with pg.connect(ops_dsn, autocommit=False) as conn, conn.transaction():
        for row in rows:
            _upsert(conn, row)
        conn.execute(
            "DELETE FROM registry.incidents WHERE evidence_dir LIKE %s AND NOT"
            " (incident_id = ANY(%s))",
            (str(Path(evidence_dir)) + "/%", ids),
        )
    return rows


def list_incidents(
    ops_dsn: str, *, year: int | None = None, drills: bool | None = None
) -> list[IncidentRow]:
    """Incidents, newest declaration first; optionally one year's, drills only or real only."""
    ensure_schema(ops_dsn)
    where, params = [], []
    if year is not None:
        where.append("EXTRACT(YEAR FROM coalesce(declared_at, indexed_at) AT TIME ZONE 'UTC') = %s")
        params.append(year)
    if drills is not None:
        where.append("is_drill = %s")
        params.append(drills)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    with pg.connect(ops_dsn) as conn:
        rows = conn.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM registry.incidents {clause} "
            "ORDER BY declared_at DESC NULLS LAST, incident_id",
            params,
        ).fetchall()
        ledgers = conn.execute(
            "SELECT incident_id, name, path, records, head, closed, verified, flow_run_ids"
            " FROM registry.ledgers ORDER BY incident_id, name"
        ).fetchall()
    by_incident: dict[str, list[LedgerRow]] = {}
    for incident_id, *rest in ledgers:
        name, path, records, head, closed, verified, runs = rest
        by_incident.setdefault(incident_id, []).append(
            LedgerRow(name, path, records, head, closed, verified, tuple(runs or ()))
        )
    out = []
    for values in rows:
        data = dict(zip(_COLUMNS, values, strict=True))
        data["missing"] = tuple(data["missing"] or ())
        data["reports_issued"] = tuple(data["reports_issued"] or ())
        data["basis"] = json.loads(json.dumps(data["basis"]))
        out.append(IncidentRow(**data, ledgers=tuple(by_incident.get(data["incident_id"], ()))))
    return out


def resolve_ops_dsn(ops_dsn: str | None, lab_root: Path | None) -> str:
    """The platform's database: ``DRP_OPS_DSN``, else the lab's ops-db when a lab exists
    (resolved by :func:`drp.topology.platform_dsn`, the one place that knows the lab)."""
    from drp.topology import platform_dsn

    return platform_dsn(ops_dsn, lab_root)
