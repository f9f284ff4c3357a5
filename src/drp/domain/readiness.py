"""Normal-condition readiness: can the DRC take over *now*, within each service's RPO?

Pure rules over plain observations (gathered by :mod:`drp.tasks.replication`). Each verdict is
``ready``, ``degraded`` (a takeover would work but lose data or need care) or ``not_ready`` (a
takeover would fail or the pair is unsafe), with one sentence per reason, so that the operator
and the ledger read the same explanation.

The rules, and why:

- **Exactly one writable primary.** Two writable servers is split brain: ``not_ready``, said
  loudly, because every write at the wrong one is lost at the next resync. No writable primary
  (fenced, down, or still in recovery) is ``not_ready`` too.
- **The standby is a standby and streams.** A standby that is down, promoted, or in recovery but
  not streaming cannot keep any RPO: ``not_ready``.
- **Timelines are equal.** A standby on another timeline has a diverged history: ``not_ready``.
- **Un-replayed WAL against the RPO.** "Pending" is the larger of the standby's receive-minus-
  replay bytes and the primary's current-minus-replay bytes for this standby. Up to
  :data:`CATCH_UP_ALLOWANCE_BYTES` counts as caught up (WAL in flight between two polls), so a
  busy but healthy pair is not flagged. Beyond it: with RPO 0 any pending WAL is ``degraded``;
  with an RPO of N seconds the pending WAL is judged by its age (the primary's ``replay_lag``,
  else the standby's ``now() - last replayed commit``) and ``degraded`` beyond N. The standby's
  replay delay alone is never used when nothing is pending: on an idle primary it grows
  without any data being at risk.
- **Replay paused** (``pg_wal_replay_pause()``): ``degraded``: the standby falls behind with
  every write, and promotion would first have to resume it.
- **An inactive replication slot retaining WAL**: ``degraded``: it grows the primary's disk
  until the primary stops.
- **Asynchronous replication with RPO 0** is a *note*, not a downgrade: the lab and many sites
  run asynchronously and keep RPO 0 in practice while lag is zero, which the lag rule checks.

Drift (:func:`compare_settings`): the settings a takeover depends on must match between the two
sites. For the hot-standby minimums a standby *lower* than its primary stops replaying, so that
is ``not_ready``; any other difference is ``degraded``; ``shared_buffers`` only warns.

Alerts (:func:`next_alerts`): a state machine that fires once when a breach starts and once
when it clears, never on every check (and once more if a breach worsens to ``not_ready``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from drp.domain.runbook import Runbook

CATCH_UP_ALLOWANCE_BYTES = 64 * 1024
"""WAL that may be in flight between two observations without being a lag (64 KiB)."""

SPLIT_BRAIN = "SPLIT BRAIN"


class Readiness(StrEnum):
    READY = "ready"
    DEGRADED = "degraded"
    NOT_READY = "not_ready"

    @property
    def rank(self) -> int:
        return {"ready": 0, "degraded": 1, "not_ready": 2}[self.value]


def worst(statuses: Iterable[Readiness]) -> Readiness:
    """The most severe status (``ready`` for none)."""
    return max(statuses, key=lambda s: s.rank, default=Readiness.READY)


# -- observations -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SenderObservation:
    """A row of ``pg_stat_replication`` on the primary."""

    application_name: str
    state: str
    sync_state: str
    lag_bytes: int | None
    replay_lag_s: float | None


@dataclass(frozen=True)
class SlotObservation:
    """A row of ``pg_replication_slots`` with the WAL it keeps on its server (a slot left on a
    standby holds WAL back there too)."""

    name: str
    active: bool
    retained_bytes: int | None


@dataclass(frozen=True)
class ServerObservation:
    """One server as seen now; ``error`` is set (and the rest unknown) when it did not answer."""

    name: str
    reachable: bool
    in_recovery: bool = False
    writable: bool = False
    timeline: int | None = None
    error: str | None = None
    # Primary side.
    senders: tuple[SenderObservation, ...] = ()
    slots: tuple[SlotObservation, ...] = ()
    # Standby side.
    streaming: bool = False
    receive_lsn: str | None = None
    replay_lsn: str | None = None
    lag_bytes: int | None = None
    replay_delay_s: float | None = None
    replay_paused: bool = False


@dataclass(frozen=True)
class PairObservation:
    pair_id: str
    primary: ServerObservation
    standby: ServerObservation


# -- verdicts -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """A status for one subject (``pair:skp-db``, ``service:skp``, ``drift:skp-db``) and why."""

    subject: str
    status: Readiness
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    data: Mapping[str, object] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.status is Readiness.READY

    def as_dict(self) -> dict[str, object]:
        return {
            "subject": self.subject,
            "status": self.status.value,
            "reasons": list(self.reasons),
            "notes": list(self.notes),
            **({"data": dict(self.data)} if self.data else {}),
        }


def assess_pair(obs: PairObservation, rpo_seconds: int) -> Verdict:
    """The pair's readiness against ``rpo_seconds`` (the strictest RPO of its services)."""
    p, s = obs.primary, obs.standby
    not_ready: list[str] = []
    degraded: list[str] = []
    notes: list[str] = []
    if _swapped(p, s):
        # After a failover and a resync the DRC is the primary and the DC streams from it:
        # a healthy pair with the roles the other way round, judged as such.
        p, s = s, p
        notes.append(
            f"roles are swapped: {p.name} is the primary (since a failover) and {s.name} "
            "streams from it"
        )

    if p.reachable and s.reachable and p.writable and s.writable:
        not_ready.append(
            f"{SPLIT_BRAIN}: both {p.name} and {s.name} accept writes; stop writes at one of "
            "them now (fence the old primary) before anything else"
        )
    if not p.reachable:
        not_ready.append(f"{p.name} does not answer ({p.error or 'unreachable'})")
    elif p.in_recovery:
        not_ready.append(f"{p.name} is in recovery, not a primary")
    elif not p.writable:
        not_ready.append(f"{p.name} is a primary but refuses writes (fenced or read-only)")
    if not s.reachable:
        not_ready.append(f"{s.name} does not answer ({s.error or 'unreachable'})")
    elif not s.in_recovery:
        if not s.writable or not p.writable:
            not_ready.append(f"{s.name} is not a standby (promoted): resync before relying on it")
    elif not s.streaming:
        not_ready.append(f"{s.name} is in recovery but not streaming from {p.name}")
    if (
        p.reachable
        and s.reachable
        and not s.streaming  # a streaming standby follows the primary's timeline; its
        # checkpoint's timeline only catches up at its next restartpoint
        and p.timeline is not None
        and s.timeline is not None
        and p.timeline != s.timeline
    ):
        not_ready.append(
            f"timelines differ: {p.name} on {p.timeline}, {s.name} on {s.timeline} "
            "(diverged history: rebuild or rewind the standby)"
        )

    standby_ok = s.reachable and s.in_recovery
    if standby_ok and s.replay_paused:
        degraded.append(
            f"replay is paused on {s.name}: it falls behind with every write "
            "(resume with SELECT pg_wal_replay_resume())"
        )
    if p.reachable and standby_ok:
        degraded.extend(_lag_reasons(p, s, rpo_seconds))
        if (
            rpo_seconds == 0
            and p.senders
            and not any(x.sync_state in ("sync", "quorum") for x in p.senders)
        ):
            notes.append(
                "replication is asynchronous: RPO 0 holds only while nothing is pending "
                "(the lag rule checks that); a crash of the primary can lose the last commits"
            )
    for server, role in ((p, "primary"), (s, "standby")):
        if not server.reachable:
            continue
        for slot in server.slots:
            if not slot.active and (slot.retained_bytes or 0) > 0:
                degraded.append(
                    f"replication slot {slot.name} on {server.name} is inactive and retains "
                    f"{_size(slot.retained_bytes or 0)} of WAL (the {role}'s disk fills)"
                )

    status = (
        Readiness.NOT_READY if not_ready else Readiness.DEGRADED if degraded else Readiness.READY
    )
    return Verdict(
        subject=f"pair:{obs.pair_id}",
        status=status,
        reasons=tuple(not_ready + degraded),
        notes=tuple(notes),
        data={"rpo_seconds": rpo_seconds, "pending_bytes": _pending(p, s)},
    )


def _swapped(p: ServerObservation, s: ServerObservation) -> bool:
    """The configured standby is the writable primary and the configured primary streams."""
    return (
        p.reachable
        and s.reachable
        and bool(p.in_recovery)
        and bool(p.streaming)
        and not s.in_recovery
        and bool(s.writable)
    )


def _pending(p: ServerObservation, s: ServerObservation) -> int | None:
    values = [s.lag_bytes] + [x.lag_bytes for x in p.senders]
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _lag_reasons(p: ServerObservation, s: ServerObservation, rpo_seconds: int) -> list[str]:
    pending = _pending(p, s)
    if pending is None or pending <= CATCH_UP_ALLOWANCE_BYTES:
        return []
    if rpo_seconds == 0:
        return [
            f"{_size(pending)} of WAL not yet replayed on {s.name}; RPO 0 allows none beyond "
            f"the {_size(CATCH_UP_ALLOWANCE_BYTES)} catch-up allowance"
        ]
    ages = [x.replay_lag_s for x in p.senders if x.replay_lag_s is not None]
    age = max(ages) if ages else s.replay_delay_s
    if age is None:
        return [
            f"{_size(pending)} of WAL not yet replayed on {s.name} and its age is unknown; "
            f"cannot show it is within the RPO of {rpo_seconds} s"
        ]
    if age > rpo_seconds:
        return [
            f"{_size(pending)} of WAL not yet replayed on {s.name}, {age:.1f} s behind: "
            f"beyond the RPO of {rpo_seconds} s"
        ]
    return []


def _size(n: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n} B"


@dataclass(frozen=True)
class ReadinessReport:
    pairs: tuple[Verdict, ...]
    services: tuple[Verdict, ...]

    @property
    def status(self) -> Readiness:
        return worst(v.status for v in (*self.pairs, *self.services))

    @property
    def verdicts(self) -> tuple[Verdict, ...]:
        return (*self.pairs, *self.services)

    def as_dict(self) -> dict[str, object]:
        return {
            "status": self.status.value,
            "pairs": [v.as_dict() for v in self.pairs],
            "services": [v.as_dict() for v in self.services],
        }


def strictest_rpo(runbook: Runbook, pair_id: str) -> int:
    """The smallest RPO among the services on ``pair_id`` (0 when none names it: be strict)."""
    rpos = [s.rpo_seconds for s in runbook.services if s.database == pair_id]
    return min(rpos, default=0)


def assess_runbook(
    runbook: Runbook, observations: Mapping[str, PairObservation]
) -> ReadinessReport:
    """Every database pair against its strictest RPO, then every service against its own."""
    pairs = []
    for pair in runbook.databases:
        obs = observations.get(pair.id)
        if obs is None:
            pairs.append(
                Verdict(f"pair:{pair.id}", Readiness.NOT_READY, ("no observation of this pair",))
            )
        else:
            pairs.append(assess_pair(obs, strictest_rpo(runbook, pair.id)))
    services = []
    for service in runbook.services:
        obs = observations.get(service.database or "")
        if service.database is None:
            services.append(
                Verdict(
                    f"service:{service.id}",
                    Readiness.READY,
                    notes=("no database pair: nothing to replicate",),
                )
            )
            continue
        if obs is None:
            services.append(
                Verdict(
                    f"service:{service.id}",
                    Readiness.NOT_READY,
                    (f"no observation of its database pair {service.database}",),
                )
            )
            continue
        verdict = assess_pair(obs, service.rpo_seconds)
        services.append(
            replace(
                verdict,
                subject=f"service:{service.id}",
                data={**verdict.data, "database": service.database},
            )
        )
    return ReadinessReport(tuple(pairs), tuple(services))


# -- drift --------------------------------------------------------------------------------------
HOT_STANDBY_MINIMUMS = (
    "max_connections",
    "max_wal_senders",
    "max_worker_processes",
    "max_prepared_transactions",
    "max_locks_per_transaction",
)
"""A standby with a lower value than its primary stops replaying (PostgreSQL's own rule)."""

MUST_MATCH = ("wal_level", "hot_standby", "wal_log_hints", "data_checksums", "server_version_num")
WARN_ONLY = ("shared_buffers",)
DRIFT_SETTINGS = (*HOT_STANDBY_MINIMUMS, *MUST_MATCH, *WARN_ONLY)
"""What ``pg_settings`` is asked for on both sides."""


@dataclass(frozen=True)
class Drift:
    setting: str
    primary: str | None
    standby: str | None
    severity: Readiness  # degraded or not_ready; ready means a warning only
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {
            "setting": self.setting,
            "primary": self.primary,
            "standby": self.standby,
            "severity": "warning" if self.severity is Readiness.READY else self.severity.value,
            "reason": self.reason,
        }


def compare_settings(
    primary: Mapping[str, str], standby: Mapping[str, str], names: Iterable[str] = DRIFT_SETTINGS
) -> tuple[Drift, ...]:
    """Every setting that differs between the two sites, with both values and why it matters."""
    drifts = []
    for name in names:
        a, b = primary.get(name), standby.get(name)
        if a == b:
            continue
        drifts.append(_drift(name, a, b))
    return tuple(drifts)


def _drift(name: str, a: str | None, b: str | None) -> Drift:
    shown_a = a if a is not None else "(absent)"
    shown_b = b if b is not None else "(absent)"
    both = f"primary {shown_a}, standby {shown_b}"
    if name in WARN_ONLY:
        return Drift(
            name,
            a,
            b,
            Readiness.READY,
            f"{name} differs ({both}, in 8 kB pages as pg_settings reports it): after a "
            "takeover the DRC performs differently",
        )
    if name in HOT_STANDBY_MINIMUMS and _int(b) is not None and _int(a) is not None:
        if _int(b) < _int(a):  # type: ignore[operator]
            return Drift(
                name,
                a,
                b,
                Readiness.NOT_READY,
                f"{name} is lower at the standby "
                f"({both}): PostgreSQL stops replay on a standby below its primary",
            )
        return Drift(
            name,
            a,
            b,
            Readiness.DEGRADED,
            f"{name} differs ({both}): after a takeover "
            "the old primary, rebuilt as a standby, would stop replaying",
        )
    if name == "server_version_num" and _int(a) is not None and _int(b) is not None:
        if _int(a) // 10000 != _int(b) // 10000:  # type: ignore[operator]
            return Drift(
                name,
                a,
                b,
                Readiness.NOT_READY,
                f"major versions differ ({both}): "
                "streaming replication needs the same major version",
            )
        return Drift(
            name,
            a,
            b,
            Readiness.DEGRADED,
            f"minor versions differ ({both}): upgrade the older side",
        )
    return Drift(
        name,
        a,
        b,
        Readiness.DEGRADED,
        f"{name} differs ({both}): the DRC would run differently after a takeover",
    )


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def drift_verdict(pair_id: str, drifts: Iterable[Drift], errors: Iterable[str] = ()) -> Verdict:
    """``not_ready`` when a side could not be read or a drift stops replay; warnings are notes."""
    drifts = tuple(drifts)
    errs = tuple(errors)
    reasons = (*errs, *(d.reason for d in drifts if d.severity is not Readiness.READY))
    status = worst([*(Readiness.NOT_READY for _ in errs), *(d.severity for d in drifts)])
    return Verdict(
        subject=f"drift:{pair_id}",
        status=status,
        reasons=reasons,
        notes=tuple(d.reason for d in drifts if d.severity is Readiness.READY),
        data={"drifts": [d.as_dict() for d in drifts]},
    )


# -- alerts -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AlertState:
    """What the last check found for one subject: in breach since when, how badly, and why."""

    breached: bool
    since: datetime | None = None
    reason: str = ""
    status: Readiness = Readiness.READY


class AlertKind(StrEnum):
    BREACH = "breach"
    ESCALATED = "escalated"
    CLEARED = "cleared"


@dataclass(frozen=True)
class Alert:
    key: str
    kind: AlertKind
    status: Readiness
    text: str
    since: datetime | None


def next_alerts(
    previous: Mapping[str, AlertState], current: Mapping[str, Verdict], now: datetime
) -> tuple[dict[str, AlertState], tuple[Alert, ...]]:
    """The new state and the alerts to send: one when a breach starts, one when it clears.

    A subject still in breach keeps its ``since`` (and its reason is refreshed) without a new
    alert, with one exception: a breach that worsens from ``degraded`` to ``not_ready`` (split
    brain appearing while a lag was already announced, say) alerts once more, because silence
    there would hide the worst news. Subjects not checked this time keep their state untouched.
    """
    state = dict(previous)
    alerts: list[Alert] = []
    for key, verdict in current.items():
        before = previous.get(key, AlertState(False))
        reason = "; ".join(verdict.reasons)
        if verdict.ready:
            state[key] = AlertState(False)
            if before.breached:
                started = before.since.isoformat() if before.since else "an unknown time"
                text = f"{key} is ready again (in breach since {started}: {before.reason})"
                alerts.append(Alert(key, AlertKind.CLEARED, verdict.status, text, before.since))
            continue
        since = before.since if before.breached else now
        state[key] = AlertState(True, since, reason, verdict.status)
        text = f"{key} is {verdict.status.value}: {reason}"
        if not before.breached:
            alerts.append(Alert(key, AlertKind.BREACH, verdict.status, text, since))
        elif verdict.status.rank > before.status.rank:
            alerts.append(Alert(key, AlertKind.ESCALATED, verdict.status, text, since))
    return state, tuple(alerts)
