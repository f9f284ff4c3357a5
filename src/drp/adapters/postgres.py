"""PostgreSQL adapter (psycopg 3): connections with timeouts, role and replication probes.

Thin and typed: every function takes a DSN and returns plain data. Library exceptions become
:class:`drp.errors.PostgresError` with a message that says what to check. Statements get a
``statement_timeout`` so that a hung server cannot block a caller forever (a Prefect task timeout
cannot interrupt a blocked sync call).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from drp.errors import PostgresError

DEFAULT_CONNECT_TIMEOUT_S = 3
DEFAULT_STATEMENT_TIMEOUT_MS = 10_000


def safe_dsn(dsn: str) -> str:
    """The DSN with its password removed, for messages and logs."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable dsn>"
    params.pop("password", None)
    return make_conninfo(**{k: v for k, v in params.items() if v is not None})


@contextmanager
def connect(
    dsn: str,
    *,
    autocommit: bool = True,
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT_S,
    statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
) -> Iterator[psycopg.Connection]:
    """A connection with bounded connect and statement time; closed on exit."""
    try:
        conn = psycopg.connect(
            dsn,
            autocommit=autocommit,
            connect_timeout=connect_timeout,
            options=f"-c statement_timeout={statement_timeout_ms}",
        )
    except psycopg.OperationalError as exc:
        raise PostgresError(
            f"cannot connect to {safe_dsn(dsn)}: {_first_line(exc)} "
            "(check that the server is running and reachable)"
        ) from exc
    try:
        yield conn
    except psycopg.Error as exc:
        raise PostgresError(f"{safe_dsn(dsn)}: {_first_line(exc)}") from exc
    finally:
        conn.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Session:
    """One open connection reused for several questions (see :func:`session`): a check that
    asks a server five things opens one connection, not five — with scram authentication a
    connection costs more CPU than the questions."""

    def __init__(self, dsn: str, conn: psycopg.Connection) -> None:
        self.dsn = dsn
        self.conn = conn


@contextmanager
def session(dsn: str, *, connect_timeout: int = DEFAULT_CONNECT_TIMEOUT_S) -> Iterator[Session]:
    """An autocommit connection to reuse with :func:`query` and the functions built on it."""
    with connect(dsn, connect_timeout=connect_timeout) as conn:
        yield Session(dsn, conn)


Target = str | Session
"""Where a question goes: a DSN (a connection just for it) or an open :class:`Session`."""


def query(
    target: Target, sql: str, params: tuple[Any, ...] | dict[str, Any] | None = None
) -> list[tuple]:
    """Run one statement and return all rows (empty list when it returns none)."""
    if isinstance(target, Session):
        try:
            with target.conn.cursor() as cur:
                cur.execute(sql, params)  # type: ignore[arg-type]
                return cur.fetchall() if cur.description else []
        except psycopg.Error as exc:
            raise PostgresError(f"{safe_dsn(target.dsn)}: {_first_line(exc)}") from exc
    with connect(target) as conn, conn.cursor() as cur:
        cur.execute(sql, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def is_reachable(dsn: str, timeout: int = 2) -> bool:
    """True when a connection can be opened and ``SELECT 1`` answers."""
    try:
        with connect(dsn, connect_timeout=timeout) as conn:
            conn.execute("SELECT 1")
        return True
    except PostgresError:
        return False


@dataclass(frozen=True)
class ServerRole:
    """What a server is right now: primary or standby, and whether it takes writes."""

    in_recovery: bool
    read_only: bool
    timeline: int | None

    @property
    def role(self) -> str:
        return "standby" if self.in_recovery else "primary"

    @property
    def writable(self) -> bool:
        return not self.in_recovery and not self.read_only


def server_role(dsn: Target) -> ServerRole:
    """Ask the server whether it is in recovery and whether new transactions are read-only.

    ``default_transaction_read_only`` is how a fenced primary that is still running refuses
    writes, so "writable" means: not in recovery *and* not read-only by default.
    """
    rows = query(
        dsn,
        "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only') = 'on',"
        " (SELECT timeline_id FROM pg_control_checkpoint())",
    )
    in_recovery, read_only, timeline = rows[0]
    return ServerRole(in_recovery=bool(in_recovery), read_only=bool(read_only), timeline=timeline)


@dataclass(frozen=True)
class SenderStatus:
    """One row of ``pg_stat_replication`` on a primary: a connected standby."""

    application_name: str
    state: str
    sync_state: str
    sent_lsn: str | None
    replay_lsn: str | None
    lag_bytes: int | None
    replay_lag_s: float | None


@dataclass(frozen=True)
class ReceiverStatus:
    """What a standby knows about its own replication (``pg_stat_wal_receiver`` and replay)."""

    streaming: bool
    receive_lsn: str | None
    replay_lsn: str | None
    lag_bytes: int | None
    last_replay_ts: str | None
    replay_delay_s: float | None
    replay_paused: bool


def senders(dsn: Target) -> list[SenderStatus]:
    """Connected standbys of a primary, with lag in bytes and seconds."""
    rows = query(
        dsn,
        "SELECT application_name, state, sync_state, sent_lsn::text, replay_lsn::text,"
        " pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint,"
        " EXTRACT(EPOCH FROM replay_lag)::float8"
        " FROM pg_stat_replication ORDER BY application_name",
    )
    return [SenderStatus(*row) for row in rows]


def receiver(dsn: Target) -> ReceiverStatus:
    """A standby's view: is the WAL receiver streaming, how far behind is replay."""
    rows = query(
        dsn,
        "SELECT (SELECT status = 'streaming' FROM pg_stat_wal_receiver),"
        " pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text,"
        " pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint,"
        " pg_last_xact_replay_timestamp()::text,"
        " EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8,"
        " pg_is_wal_replay_paused()",
    )
    streaming, recv, replay, lag, ts, delay, paused = rows[0]
    return ReceiverStatus(
        streaming=bool(streaming),
        receive_lsn=recv,
        replay_lsn=replay,
        lag_bytes=lag,
        last_replay_ts=ts,
        replay_delay_s=delay,
        replay_paused=bool(paused),
    )
