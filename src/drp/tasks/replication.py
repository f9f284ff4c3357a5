"""Replication and configuration readiness: observe both sites, let ``drp.domain.readiness``
judge, and keep the alert state in the platform's own database (``ops-db``).

Observation never raises for a server that does not answer: "unreachable" is an observation the
rules judge (``not_ready``), not an error of the check. The Prefect tasks at the bottom wrap the
plain functions, so that ``drp check`` runs the same code without Prefect.

The topology addresses one database pair (the DC primary and the DRC standby); every pair of
the runbook is observed through it until topologies name more than one pair.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

from prefect import task
from prefect.cache_policies import NO_CACHE

from drp.adapters import postgres as pg
from drp.domain import readiness as rules
from drp.domain.runbook import Runbook
from drp.errors import PostgresError
from drp.topology import Topology

T = TypeVar("T")
R = TypeVar("R")

SLOTS_SQL = (
    "SELECT slot_name::text, active,"
    " CASE WHEN restart_lsn IS NULL THEN NULL"
    " WHEN pg_is_in_recovery()"
    " THEN pg_wal_lsn_diff(pg_last_wal_replay_lsn(), restart_lsn)::bigint"
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
    return survey_server(name, name, dsn, with_settings=False).observation


def _observe(name: str, conn: pg.Session) -> rules.ServerObservation:
    try:
        role = pg.server_role(conn)
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
            rec = pg.receiver(conn)
            return replace(
                base,
                streaming=rec.streaming,
                receive_lsn=rec.receive_lsn,
                replay_lsn=rec.replay_lsn,
                lag_bytes=rec.lag_bytes,
                replay_delay_s=rec.replay_delay_s,
                replay_paused=rec.replay_paused,
                slots=_slots(conn),  # a slot left on a standby holds its WAL back too
            )
        senders = tuple(
            rules.SenderObservation(
                s.application_name, s.state, s.sync_state, s.lag_bytes, s.replay_lag_s
            )
            for s in pg.senders(conn)
        )
        return replace(base, senders=senders, slots=_slots(conn))
    except PostgresError as exc:
        return replace(base, error=str(exc))


@dataclass(frozen=True)
class ServerSurvey:
    """What one connection to one server found: its observation and, if asked, its settings."""

    observation: rules.ServerObservation
    settings: dict[str, str]
    settings_error: str | None = None


def survey_server(name: str, site: str, dsn: str, with_settings: bool) -> ServerSurvey:
    """Observe a server (and read its takeover settings) over ONE connection: with scram
    authentication, connecting costs more CPU than every question after it."""
    try:
        with pg.session(dsn) as conn:
            observation = _observe(name, conn)
            if not with_settings:
                return ServerSurvey(observation, {})
            try:
                return ServerSurvey(observation, read_settings(conn))
            except PostgresError as exc:
                return ServerSurvey(observation, {}, _settings_error(site, exc))
    except PostgresError as exc:
        return ServerSurvey(
            rules.ServerObservation(name=name, reachable=False, error=str(exc)),
            {},
            _settings_error(site, exc),
        )


def _settings_error(site: str, exc: Exception) -> str:
    return f"cannot read the settings at the {site.upper()}: {exc}"


def survey_pairs(
    runbook: Runbook, topology: Topology, with_settings: bool
) -> dict[str, tuple[ServerSurvey, ServerSurvey]]:
    """Both servers of every database pair, all at once (each survey waits on the network):
    a check of twenty pairs takes about as long as a check of one, not twenty times."""
    servers: list[tuple[str, str, str]] = []  # (name, site, dsn), primary then standby
    for p in runbook.databases:
        dsns = topology.pair(p.id)
        servers.append((f"{topology.primary_site}-db", topology.primary_site, dsns.primary_dsn))
        servers.append((f"{topology.standby_site}-db", topology.standby_site, dsns.standby_dsn))
    found = _concurrently(lambda s: survey_server(*s, with_settings=with_settings), servers)
    return {p.id: (found[2 * i], found[2 * i + 1]) for i, p in enumerate(runbook.databases)}


def _concurrently(fn: Callable[[T], R], items: list[T]) -> list[R]:
    """``fn`` over ``items`` in threads, results in order."""
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(32, len(items)), thread_name_prefix="drp-obs") as ex:
        return list(ex.map(fn, items))


def _slots(conn: pg.Session) -> tuple[rules.SlotObservation, ...]:
    return tuple(rules.SlotObservation(str(n), bool(a), r) for n, a, r in pg.query(conn, SLOTS_SQL))


def observe_pairs(runbook: Runbook, topology: Topology) -> dict[str, rules.PairObservation]:
    """Every database pair of the runbook, observed through the topology's DSNs."""
    return _observations(survey_pairs(runbook, topology, with_settings=False))


def _observations(
    surveys: Mapping[str, tuple[ServerSurvey, ServerSurvey]],
) -> dict[str, rules.PairObservation]:
    return {
        pair_id: rules.PairObservation(pair_id, primary.observation, standby.observation)
        for pair_id, (primary, standby) in surveys.items()
    }


def _drift(
    runbook: Runbook, surveys: Mapping[str, tuple[ServerSurvey, ServerSurvey]]
) -> tuple[rules.Verdict, ...]:
    verdicts = []
    for p in runbook.databases:
        primary, standby = surveys[p.id]
        errors = [e for e in (primary.settings_error, standby.settings_error) if e]
        drifts = () if errors else rules.compare_settings(primary.settings, standby.settings)
        verdicts.append(rules.drift_verdict(p.id, drifts, errors))
    return tuple(verdicts)


def read_settings(dsn: pg.Target, names: tuple[str, ...] = rules.DRIFT_SETTINGS) -> dict[str, str]:
    """The named settings as ``pg_settings`` reports them (raw ``setting`` strings)."""
    return {str(n): str(v) for n, v in pg.query(dsn, SETTINGS_SQL, (list(names),))}


def check_readiness(runbook: Runbook, topology: Topology) -> rules.ReadinessReport:
    """Observe and judge: the verdict per pair and per service."""
    return rules.assess_runbook(runbook, observe_pairs(runbook, topology))


def check_drift(runbook: Runbook, topology: Topology) -> tuple[rules.Verdict, ...]:
    """Compare the takeover settings of both sites, one verdict per database pair."""
    return _drift(runbook, survey_pairs(runbook, topology, with_settings=True))


def check_all(
    runbook: Runbook, topology: Topology
) -> tuple[rules.ReadinessReport, tuple[rules.Verdict, ...]]:
    """Readiness and drift from one connection per server (what the scheduled check runs)."""
    surveys = survey_pairs(runbook, topology, with_settings=True)
    return rules.assess_runbook(runbook, _observations(surveys)), _drift(runbook, surveys)


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
@task(name="observe-readiness-and-settings", timeout_seconds=60, cache_policy=NO_CACHE, retries=0)
def check_all_task(
    runbook: Runbook, topology: Topology
) -> tuple[rules.ReadinessReport, tuple[rules.Verdict, ...]]:
    return check_all(runbook, topology)


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
