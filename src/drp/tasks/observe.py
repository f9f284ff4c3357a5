"""Looking at the sites the way their clients do: is a database a writable primary, what does a
standby replay, where does the front door send users. Every flow's steps look before they act
(and again after, as proof); these are the looks they share."""

from __future__ import annotations

from drp.adapters import postgres as pg
from drp.adapters.http import http_json
from drp.domain import failover as rules
from drp.errors import PostgresError
from drp.polling import poll


def primary_accepts_writes(dsn: str) -> tuple[bool | None, str]:
    """Can a client write to this (old) primary right now? (None: cannot tell, unreachable.)"""
    try:
        role = pg.server_role(dsn)
    except PostgresError:
        return None, "the DC database refuses connections from clients"
    if role.in_recovery:
        return False, "the DC database is in recovery (a standby): it refuses writes"
    if role.read_only:
        return False, "the DC database is read-only: it refuses writes"
    return True, "the DC database is a writable primary"


def frontdoor_site(url: str, route: str | None = None) -> str | None:
    """The site the front door sends users of ``route`` (its only route by default) to."""
    path = f"/__frontdoor/{route}" if route else "/__frontdoor"
    status, body = http_json(f"{url.rstrip('/')}{path}", timeout=3)
    return body.get("active_site") if status == 200 and isinstance(body, dict) else None


def observe_standby(dsn: str) -> rules.StandbyObservation:
    try:
        role = pg.server_role(dsn)
    except PostgresError:
        return rules.StandbyObservation(reachable=False)
    if not role.in_recovery:
        return rules.StandbyObservation(reachable=True, in_recovery=False)
    rec = pg.receiver(dsn)
    return rules.StandbyObservation(
        reachable=True,
        in_recovery=True,
        streaming=rec.streaming,
        lag_bytes=rec.lag_bytes,
        replay_delay_s=rec.replay_delay_s,
        replay_paused=rec.replay_paused,
    )


def observe_caught_up(
    dsn: str, max_lag_bytes: int, catch_up_s: float = 5.0
) -> rules.StandbyObservation:
    """Observe the standby, giving replay up to ``catch_up_s`` to catch up with what it received.

    Under a steady stream of writes replay trails receipt by a few hundred bytes at any instant;
    one snapshot would call that lag. The pre-flight playbook gives the same allowance.
    """
    _, standby = poll(
        lambda: observe_standby(dsn),
        lambda s: not s.reachable or not s.in_recovery or (s.lag_bytes or 0) <= max_lag_bytes,
        catch_up_s,
        interval=0.1,
    )
    return standby
