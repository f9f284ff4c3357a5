"""Replication and configuration readiness: observe both sites, let ``drp.domain.readiness``
judge, and keep the alert state in the platform's own database (``ops-db``).

Observation never raises for a server that does not answer: "unreachable" is an observation the
rules judge (``not_ready``), not an error of the check. The Prefect tasks at the bottom wrap the
plain functions, so that ``drp check`` runs the same code without Prefect.

The topology addresses one database pair (the DC primary and the DRC standby); every pair of
the runbook is observed through it until topologies name more than one pair.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from drp.adapters import postgres as pg
from drp.domain import readiness as rules
from drp.domain.runbook import Runbook
from drp.errors import PostgresError
from drp.topology import Topology

SLOTS_SQL = (
    "SELECT slot_name::text, active,"
    " CASE WHEN pg_is_in_recovery() OR restart_lsn IS NULL THEN NULL"
    " ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint END"
    " FROM pg_replication_slots ORDER BY slot_name"
)
SETTINGS_SQL = "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)"

ALERT_TABLE_SQL = (
    "CREATE TABLE IF NOT EXISTS drp_alert_state ("
    " key text PRIMARY KEY, breached boolean NOT NULL, since timestamptz, reason text NOT NULL"
    " DEFAULT '', status text NOT NULL DEFAULT 'ready', updated timestamptz NOT NULL DEFAULT now())"
)


# -- observing ----------------------------------------------------------------------------------
def observe_server(name: str, dsn: str) -> rules.ServerObservation:
    """Role, timeline, and the replication view that fits the role (senders and slots on a
    primary, the receiver on a standby)."""
    try:
        role = pg.server_role(dsn)
    except PostgresError as exc:
        return rules.ServerObservation(name=name, reachable=False, error=str(exc))
    base = rules.ServerObservation(
        name=name,
        reachable=True,
        in_recovery=role.in_recovery,
        writable=role.writable,
        timeline=role.timeline,
    )
    try:
        if role.in_recovery:
            rec = pg.receiver(dsn)
            return replace(
                base,
                streaming=rec.streaming,
                receive_lsn=rec.receive_lsn,
                replay_lsn=rec.replay_lsn,
                lag_bytes=rec.lag_bytes,
                replay_delay_s=rec.replay_delay_s,
                replay_paused=rec.replay_paused,
            )
        senders = tuple(
            rules.SenderObservation(
                s.application_name, s.state, s.sync_state, s.lag_bytes, s.replay_lag_s
            )
            for s in pg.senders(dsn)
        )
        slots = tuple(
            rules.SlotObservation(str(n), bool(a), r) for n, a, r in pg.query(dsn, SLOTS_SQL)
        )
        return replace(base, senders=senders, slots=slots)
    except PostgresError as exc:
        return replace(base, error=str(exc))


def observe_pairs(runbook: Runbook, topology: Topology) -> dict[str, rules.PairObservation]:
    """Every database pair of the runbook, observed through the topology's DSNs."""
    primary = observe_server(f"{topology.primary_site}-db", topology.primary_dsn)
    standby = observe_server(f"{topology.standby_site}-db", topology.standby_dsn)
    return {p.id: rules.PairObservation(p.id, primary, standby) for p in runbook.databases}


def read_settings(dsn: str, names: tuple[str, ...] = rules.DRIFT_SETTINGS) -> dict[str, str]:
    """The named settings as ``pg_settings`` reports them (raw ``setting`` strings)."""
    return {str(n): str(v) for n, v in pg.query(dsn, SETTINGS_SQL, (list(names),))}


def check_readiness(runbook: Runbook, topology: Topology) -> rules.ReadinessReport:
    """Observe and judge: the verdict per pair and per service."""
    return rules.assess_runbook(runbook, observe_pairs(runbook, topology))


def check_drift(runbook: Runbook, topology: Topology) -> tuple[rules.Verdict, ...]:
    """Compare the takeover settings of both sites, one verdict per database pair."""
    errors: list[str] = []
    sides: list[dict[str, str]] = []
    for site, dsn in (
        (topology.primary_site, topology.primary_dsn),
        (topology.standby_site, topology.standby_dsn),
    ):
        try:
            sides.append(read_settings(dsn))
        except PostgresError as exc:
            errors.append(f"cannot read the settings at the {site.upper()}: {exc}")
            sides.append({})
    drifts = () if errors else rules.compare_settings(sides[0], sides[1])
    return tuple(rules.drift_verdict(p.id, drifts, errors) for p in runbook.databases)


# -- alert state in ops-db ------------------------------------------------------------------------
def update_alerts(
    ops_dsn: str, prefix: str, verdicts: Mapping[str, rules.Verdict], now: datetime
) -> tuple[rules.Alert, ...]:
    """Apply :func:`rules.next_alerts` to the stored state of ``prefix``'s keys, atomically.

    The table is locked for the read-decide-write, so two checks running at once cannot both
    announce the same breach.
    """
    keyed = {f"{prefix}/{k}": v for k, v in verdicts.items()}
    with pg.connect(ops_dsn, autocommit=False) as conn:
        conn.execute(ALERT_TABLE_SQL)
        conn.execute("LOCK TABLE drp_alert_state IN SHARE ROW EXCLUSIVE MODE")
        rows = conn.execute(
            "SELECT key, breached, since, reason, status FROM drp_alert_state WHERE key = ANY(%s)",
            (list(keyed),),
        ).fetchall()
        previous = {
            k: rules.AlertState(bool(b), s, r or "", _status(st)) for k, b, s, r, st in rows
        }
        state, alerts = rules.next_alerts(previous, keyed, now)
        for key in keyed:
            st = state[key]
            conn.execute(
                "INSERT INTO drp_alert_state (key, breached, since, reason, status, updated)"
                " VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (key) DO UPDATE SET"
                " breached = EXCLUDED.breached, since = EXCLUDED.since,"
                " reason = EXCLUDED.reason, status = EXCLUDED.status, updated = now()",
                (key, st.breached, st.since, st.reason, st.status.value),
            )
        conn.commit()
    return alerts


def _status(value: str | None) -> rules.Readiness:
    """A stored status; anything unknown reads as ``degraded`` (in breach, not the worst)."""
    try:
        return rules.Readiness(value)
    except ValueError:
        return rules.Readiness.DEGRADED


def runbook_slug(runbook: Runbook) -> str:
    """The runbook's name as an artifact key and alert-key prefix (lowercase, digits, dashes)."""
    slug = "".join(c if c.isalnum() else "-" for c in runbook.name.lower())
    return "-".join(part for part in slug.split("-") if part) or "runbook"


def summary_markdown(
    runbook: Runbook, report: rules.ReadinessReport, drift: tuple[rules.Verdict, ...]
) -> str:
    """The readiness table for Prefect's Artifacts page."""
    overall = rules.worst([report.status, *(d.status for d in drift)])
    lines = [
        f"# Readiness of {runbook.name}: **{overall}**",
        "",
        "| Subject | Status | Reasons |",
        "|---|---|---|",
    ]
    for v in (*report.verdicts, *drift):
        why = "<br>".join([*v.reasons, *(f"note: {n}" for n in v.notes)]) or "—"
        lines.append(f"| {v.subject} | {v.status.value} | {why} |")
    drifts = [d for v in drift for d in v.data.get("drifts", [])]  # type: ignore[attr-defined]
    if drifts:
        lines += ["", "| Setting | Primary | Standby | Severity |", "|---|---|---|---|"]
        lines += [
            f"| {d['setting']} | {d['primary']} | {d['standby']} | {d['severity']} |"
            for d in drifts
        ]
    return "\n".join(lines) + "\n"


# -- Prefect tasks ------------------------------------------------------------------------------
@task(name="observe-readiness", timeout_seconds=60, cache_policy=NO_CACHE, retries=0)
def readiness_task(runbook: Runbook, topology: Topology) -> rules.ReadinessReport:
    return check_readiness(runbook, topology)


@task(name="compare-settings", timeout_seconds=60, cache_policy=NO_CACHE, retries=0)
def drift_task(runbook: Runbook, topology: Topology) -> tuple[rules.Verdict, ...]:
    return check_drift(runbook, topology)


@task(name="update-alert-state", timeout_seconds=60, cache_policy=NO_CACHE, retries=0)
def alerts_task(
    ops_dsn: str, prefix: str, verdicts: dict[str, rules.Verdict], now: datetime
) -> tuple[rules.Alert, ...]:
    return update_alerts(ops_dsn, prefix, verdicts, now)


def verdicts_by_key(
    report: rules.ReadinessReport, drift: tuple[rules.Verdict, ...]
) -> dict[str, rules.Verdict]:
    """The subjects alerts are tracked by."""
    return {v.subject: v for v in (*report.verdicts, *drift)}


def result_data(report: rules.ReadinessReport, drift: tuple[rules.Verdict, ...]) -> dict[str, Any]:
    """Plain data for ``--json``, the ledger and the flow's return value."""
    return {
        "status": rules.worst([report.status, *(d.status for d in drift)]).value,
        **{k: v for k, v in report.as_dict().items() if k != "status"},
        "readiness_status": report.status.value,
        "drift": [d.as_dict() for d in drift],
    }
