"""Resync of manual declarations into SKP (Pasal 11): write what manual mode registered into the
SKP database, idempotently, track the 30-day deadline and say what was and was not synchronised.

The SKP stand-in's ``declarations`` table gains one column, ``nomor_pendaftaran_manual`` (the
manual registration number, kept beside SKP's own ``id``), added here with an idempotent
``ALTER TABLE ... ADD COLUMN IF NOT EXISTS`` so that the lab's schema stays the lab's. A
declaration is written with ``ON CONFLICT (nomor_aju) DO NOTHING``: running the resync again
finds it there with the same manual number and reports it as already synchronised; a row with
that nomor aju but *another* (or no) manual number is SKP's own and is left alone, reported as a
conflict for a person to resolve.

The service-restored time starts the 30-day clock: it is the ``failover.completed`` record of
the incident's failover ledger (the moment service was verified at the DRC), unless the caller
gives one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from prefect import task
from prefect.cache_policies import NO_CACHE
from psycopg.types.json import Jsonb

from drp.adapters import manual_store as store
from drp.adapters import postgres as pg
from drp.domain.manual.deadline import ResyncDeadline, alerts_due, resync_deadline
from drp.errors import PostgresError
from drp.ledger import Ledger, read_records
from drp.notify import build_notifiers, notify_safely
from drp.tasks.manual import ManualConfig, ManualModeError, _stamp
from drp.topology import Topology

SKP_COLUMNS_SQL = (
    "ALTER TABLE declarations ADD COLUMN IF NOT EXISTS nomor_pendaftaran_manual text;"
    " CREATE UNIQUE INDEX IF NOT EXISTS declarations_nomor_pendaftaran_manual"
    " ON declarations (nomor_pendaftaran_manual) WHERE nomor_pendaftaran_manual IS NOT NULL"
)
log = logging.getLogger("drp.manual.resync")


def restored_at_from_failover(evidence_dir: Path, incident_id: str) -> datetime | None:
    """When the incident's failover verified service (its ``failover.completed`` record)."""
    ledger_dir = evidence_dir / incident_id / "failover"
    if not (ledger_dir / "ledger.jsonl").exists():
        return None
    found = None
    for _, rec in read_records(ledger_dir):
        if not isinstance(rec, str) and rec.kind == "failover.completed":
            found = datetime.fromisoformat(rec.ts.replace("Z", "+00:00"))
    return found


def parse_restored_at(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ManualModeError(
            f"restored_at {text!r} is not an ISO time (e.g. 2026-11-20T08:30:00+07:00)"
        ) from exc
    if moment.tzinfo is None:
        raise ManualModeError(f"restored_at {text!r} needs a time zone (+07:00 for WIB)")
    return moment


@dataclass(frozen=True)
class SkpTarget:
    site: str | None
    dsn: str | None
    reason: str


def writable_skp(topology: Topology) -> SkpTarget:
    """The SKP database that takes writes now (after a failover, the DRC's); refuse two."""
    writable, seen = [], []
    for site, dsn in (
        (topology.primary_site, topology.primary_dsn),
        (topology.standby_site, topology.standby_dsn),
    ):
        if not dsn:
            continue
        try:
            role = pg.server_role(dsn)
        except PostgresError as exc:
            seen.append(f"{site.upper()}: unreachable ({exc})")
            continue
        seen.append(f"{site.upper()}: {role.role}{'' if role.writable else ', read-only'}")
        if role.writable:
            writable.append((site, dsn))
    if len(writable) == 1:
        site, dsn = writable[0]
        return SkpTarget(site, dsn, f"SKP database at the {site.upper()} takes writes")
    if not writable:
        return SkpTarget(None, None, "no SKP database takes writes (" + "; ".join(seen) + ")")
    return SkpTarget(
        None, None, "two SKP databases take writes (split brain): resolve that before syncing"
    )


def _sync_one(
    conn: psycopg.Connection, site: str, d: store.RegisteredDeclaration
) -> tuple[str, int | None, str]:
    payload = {**d.record, "manual": True, "incident_id": d.incident_id}
    row = conn.execute(
        "INSERT INTO declarations (nomor_aju, doc_type, office, payload, site,"
        " nomor_pendaftaran_manual) VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (nomor_aju) DO NOTHING RETURNING id",
        (d.nomor_aju, d.doc_type, d.office, Jsonb(payload), site, d.registration_number),
    ).fetchone()
    if row is not None:
        return "synced", int(row[0]), f"written to SKP at the {site.upper()} as id {row[0]}"
    there = conn.execute(
        "SELECT id, nomor_pendaftaran_manual FROM declarations WHERE nomor_aju = %s",
        (d.nomor_aju,),
    ).fetchone()
    if there is not None and there[1] == d.registration_number:
        return "already", int(there[0]), f"already in SKP as id {there[0]}"
    other = there[1] if there else None
    return (
        "conflict",
        None,
        f"nomor aju {d.nomor_aju} is in SKP already as id {there[0] if there else '?'} "
        + (f"under manual number {other}" if other else "registered by SKP itself")
        + ": compare the two and resolve by hand (nothing was overwritten)",
    )


def resync_declarations(
    cfg: ManualConfig,
    topology: Topology,
    incident_id: str,
    *,
    restored_at: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Write the incident's manual declarations into SKP and report, with the deadline."""
    now = now or datetime.now(UTC)
    ledger = Ledger.create(
        cfg.evidence_dir / incident_id / "manual-resync" / _stamp(datetime.now(UTC)),
        f"manual-resync/{incident_id}",
        {"flow": "resync-manual-declarations"},
        known_secrets=cfg.known_secrets,
    )
    notifiers = build_notifiers(
        ledger,
        log,
        flow="resync-manual-declarations",
        incident_id=incident_id,
        mode="real",
        settings=cfg.settings,
    )
    if restored_at:
        restored, source = parse_restored_at(restored_at), "parameter"
    else:
        restored = restored_at_from_failover(cfg.evidence_dir, incident_id)
        source = "failover ledger (failover.completed)" if restored else None
    deadline: ResyncDeadline | None = resync_deadline(restored, now) if restored else None
    alerts = _deadline_alerts(cfg, incident_id, deadline, ledger, notifiers)
    ledger.append(
        "resync.deadline",
        {
            "restored_at": restored.isoformat() if restored else None,
            "source": source,
            "deadline": deadline.deadline.isoformat() if deadline else None,
            "level": deadline.level if deadline else "unknown",
            "alerts": alerts,
        },
    )
    with store.session(cfg.ops_dsn) as db:
        pending = store.declarations(db, incident_id=incident_id)
        intake_open = any(a.open for a in store.activations(db, incident_id))
        target = writable_skp(topology)
        results: dict[str, list[dict[str, Any]]] = {"synced": [], "already": [], "not_synced": []}
        if target.dsn is None:
            for d in pending:
                store.record_resync(db, d.registration_number, "failed", None, target.reason)
                results["not_synced"].append(
                    {"registration_number": d.registration_number, "reason": target.reason}
                )
        else:
            assert target.site is not None
            try:
                with pg.connect(target.dsn) as conn:
                    conn.execute(SKP_COLUMNS_SQL)  # type: ignore[arg-type]
                    for d in pending:
                        try:
                            status, skp_id, why = _sync_one(conn, target.site, d)
                        except psycopg.Error as exc:
                            status, skp_id, why = "failed", None, f"SKP refused it: {exc}"
                        store.record_resync(db, d.registration_number, status, skp_id, why)
                        entry = {
                            "registration_number": d.registration_number,
                            "skp_id": skp_id,
                            "nomor_aju": d.nomor_aju,
                            "reason": why,
                        }
                        key = status if status in ("synced", "already") else "not_synced"
                        results[key].append(entry)
            except PostgresError as exc:
                done = {e["registration_number"] for k in results for e in results[k]}
                for d in pending:
                    if d.registration_number not in done:
                        results["not_synced"].append(
                            {
                                "registration_number": d.registration_number,
                                "reason": f"SKP database lost during the resync: {exc}",
                            }
                        )
    complete = not results["not_synced"]
    report = {
        "incident_id": incident_id,
        "status": "complete" if complete else "incomplete",
        "skp_site": target.site,
        "skp": target.reason,
        "restored_at": restored.isoformat() if restored else None,
        "restored_from": source,
        "deadline": deadline.deadline.isoformat() if deadline else None,
        "days_left": round(deadline.remaining.total_seconds() / 86400, 2) if deadline else None,
        "deadline_level": deadline.level if deadline else "unknown",
        "deadline_note": deadline.sentence()
        if deadline
        else (
            "service-restored time unknown: no failover.completed record in the incident's "
            "failover ledger; give restored_at (--restored-at) to track the 30-day deadline"
        ),
        "intake_open": intake_open,
        "declarations": len(pending),
        "synced": results["synced"],
        "already": results["already"],
        "not_synced": results["not_synced"],
        "alerts": alerts,
        "ledger": str(ledger.directory),
    }
    ledger.append("resync.manual_declarations", report)
    if not complete or intake_open:
        notify_safely(
            notifiers,
            ledger,
            "manual.resync.incomplete" if not complete else "manual.resync.note",
            f"{incident_id}: {len(results['not_synced'])} manual declaration(s) not synchronised "
            f"into SKP; {len(results['synced']) + len(results['already'])} are"
            + ("; manual intake is still open" if intake_open else ""),
        )
    ledger.close({"status": report["status"], "not_synced": len(results["not_synced"])})
    return report


def _deadline_alerts(
    cfg: ManualConfig,
    incident_id: str,
    deadline: ResyncDeadline | None,
    ledger: Ledger,
    notifiers: list[Any],
) -> list[str]:
    """Send each due alert once across runs (the claim in ops-db decides who sends it)."""
    if deadline is None:
        return []
    sent = store.deadline_alerts_sent(cfg.ops_dsn, incident_id)
    fired = []
    for key in alerts_due(deadline, sent):
        if store.claim_deadline_alert(cfg.ops_dsn, incident_id, key):
            notify_safely(
                notifiers,
                ledger,
                f"manual.resync.deadline.{key}",
                f"{incident_id}: Pasal 11 — {deadline.sentence()}",
                deadline=deadline.deadline.isoformat(),
                alert=key,
            )
            fired.append(key)
    return fired


@task(name="manual:resync-into-skp", timeout_seconds=600, cache_policy=NO_CACHE, retries=0)
def resync_task(
    cfg: ManualConfig, topology: Topology, incident_id: str, restored_at: str | None
) -> dict[str, Any]:
    return resync_declarations(cfg, topology, incident_id, restored_at=restored_at)
