"""The ChatOps outbox in ``ops-db`` (schema ``chatops``): every message is stored before it is
sent, so that a Slack outage, a 429 or a crash loses nothing and blocks nothing.

Tables (created idempotently, under an advisory lock so that two processes starting at once do
not race on ``CREATE SCHEMA``):

- ``chatops.outbox``: one row per message, with its idempotency ``key`` (unique: queueing the
  same message twice is a no-op), its ``kind`` (root, reply, update, post), the thread it
  belongs to, its ``state`` (queued → sending → sent, or failed, or superseded for a status
  update overtaken by a newer one) and ``why`` (the last error, in words);
- ``chatops.incidents``: what an approval click needs to be judged (flow run, declarer, mode,
  runbook), written when the incident is announced;
- ``chatops.clicks``: every button click, allowed or refused, with who and why.

Order: messages are delivered in ``id`` order by one sender at a time (a session advisory lock,
:meth:`Outbox.drainer_lock`), which keeps every thread in order. Enqueueing is one short
transaction with a 2-second connect and statement timeout: a step never waits longer on chat.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import Jsonb

from drp.adapters import postgres as pg
from drp.domain.chatops import OutgoingMessage
from drp.errors import PostgresError

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS chatops;
CREATE TABLE IF NOT EXISTS chatops.outbox (
    id bigserial PRIMARY KEY,
    key text NOT NULL UNIQUE,
    kind text NOT NULL CHECK (kind IN ('root', 'reply', 'update', 'post')),
    channel text NOT NULL,
    thread_key text NOT NULL,
    incident_id text NOT NULL DEFAULT '',
    event text NOT NULL DEFAULT '',
    text text NOT NULL,
    blocks jsonb NOT NULL DEFAULT '[]',
    state text NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'superseded')),
    attempts integer NOT NULL DEFAULT 0,
    why text NOT NULL DEFAULT '',
    posted_channel text,
    ts text,
    queued_at timestamptz NOT NULL DEFAULT now(),
    first_tried_at timestamptz,
    sent_at timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_pending ON chatops.outbox (id)
    WHERE state IN ('queued', 'sending');
CREATE INDEX IF NOT EXISTS outbox_thread ON chatops.outbox (thread_key, kind);
CREATE TABLE IF NOT EXISTS chatops.incidents (
    incident_id text PRIMARY KEY,
    flow text NOT NULL,
    flow_run_id text NOT NULL DEFAULT '',
    declared_by text NOT NULL DEFAULT '',
    mode text NOT NULL DEFAULT 'drill',
    runbook text NOT NULL DEFAULT '',
    channel text NOT NULL DEFAULT '',
    updated timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS chatops.clicks (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    incident_id text NOT NULL,
    flow_run_id text NOT NULL,
    slack_user_id text NOT NULL,
    person text,
    role text,
    action text NOT NULL,
    allowed boolean NOT NULL,
    reason text NOT NULL
);
"""

T = TypeVar("T")

SCHEMA_LOCK = 0x64727063  # "drpc": serialises the schema's creation
DRAINER_LOCK = 0x64727064  # "drpd": one sender drains the outbox at a time

ENQUEUE_TIMEOUT_S = 2
ENQUEUE_STATEMENT_MS = 2000

COLUMNS = (
    "id, key, kind, channel, thread_key, incident_id, event, text, blocks, state, attempts,"
    " why, posted_channel, ts, queued_at, first_tried_at, sent_at"
)


@dataclass(frozen=True)
class Row:
    """One stored message."""

    id: int
    key: str
    kind: str
    channel: str
    thread_key: str
    incident_id: str
    event: str
    text: str
    blocks: tuple[dict[str, Any], ...]
    state: str
    attempts: int
    why: str
    posted_channel: str | None
    ts: str | None
    queued_at: datetime
    first_tried_at: datetime | None
    sent_at: datetime | None

    @classmethod
    def from_tuple(cls, row: Sequence[Any]) -> Row:
        values = list(row)
        blocks = values[8]
        values[8] = tuple(json.loads(blocks) if isinstance(blocks, str) else blocks or ())
        return cls(*values)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` (blocks left out: they are long and say what text says)."""
        return {
            "id": self.id,
            "key": self.key,
            "kind": self.kind,
            "channel": self.channel,
            "incident_id": self.incident_id,
            "event": self.event,
            "state": self.state,
            "attempts": self.attempts,
            "why": self.why,
            "ts": self.ts,
            "queued_at": self.queued_at.isoformat(),
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
            "text": self.text[:200],
        }


@dataclass(frozen=True)
class IncidentRecord:
    """What ``chatops.incidents`` keeps for judging a click."""

    incident_id: str
    flow: str
    flow_run_id: str
    declared_by: str
    mode: str
    runbook: str
    channel: str


class Outbox:
    """The outbox of one ``ops-db``. Cheap to create; the schema is made on first use."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._ready = False
        self._writer: psycopg.Connection | None = None
        self._writer_lock = threading.Lock()

    def _write(self, work: Callable[[psycopg.Connection], T]) -> T:
        """Run ``work`` in one transaction on a kept connection (a new connection costs a
        SCRAM handshake, several times the insert). A broken connection is replaced and the
        work retried once: the statements are idempotent (keys)."""
        with self._writer_lock:
            for attempt in (1, 2):
                conn = self._writer
                if conn is None or conn.closed:
                    try:
                        conn = psycopg.connect(
                            self.dsn,
                            autocommit=False,
                            connect_timeout=ENQUEUE_TIMEOUT_S,
                            options=f"-c statement_timeout={ENQUEUE_STATEMENT_MS}",
                        )
                    except psycopg.Error as exc:
                        raise PostgresError(
                            f"cannot connect to {pg.safe_dsn(self.dsn)}: {exc} (the ChatOps "
                            "outbox lives in ops-db: check that it runs)"
                        ) from exc
                    self._writer = conn
                try:
                    result = work(conn)
                    conn.commit()
                    return result
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    conn.close()
                    self._writer = None
                    if attempt == 2 or isinstance(exc, psycopg.errors.QueryCanceled):
                        raise PostgresError(f"chatops outbox write failed: {exc}") from exc
                except psycopg.Error as exc:
                    conn.rollback()
                    raise PostgresError(f"chatops outbox write failed: {exc}") from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._writer_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    # -- schema ------------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        if self._ready:
            return
        with self._connect(autocommit=False) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            conn.execute(SCHEMA_SQL)
            conn.commit()
        self._ready = True

    @contextmanager
    def _connect(
        self, *, autocommit: bool = True, timeout_s: int = ENQUEUE_TIMEOUT_S
    ) -> Iterator[psycopg.Connection]:
        with pg.connect(
            self.dsn,
            autocommit=autocommit,
            connect_timeout=timeout_s,
            statement_timeout_ms=ENQUEUE_STATEMENT_MS,
        ) as conn:
            yield conn

    # -- writing -----------------------------------------------------------------------------
    def enqueue(self, messages: Iterable[OutgoingMessage], incident_id: str = "") -> list[str]:
        """Store messages in order (one transaction); a key already stored is skipped.

        Returns the keys that were new.
        """
        self.ensure_schema()
        batch = list(messages)

        def insert(conn: psycopg.Connection) -> list[str]:
            added: list[str] = []
            for m in batch:
                cur = conn.execute(
                    "INSERT INTO chatops.outbox (key, kind, channel, thread_key, incident_id,"
                    " event, text, blocks) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (key) DO NOTHING RETURNING key",
                    (
                        m.key,
                        m.kind,
                        m.channel,
                        m.thread_key,
                        incident_id,
                        m.event,
                        m.text,
                        Jsonb(list(m.blocks)),
                    ),
                )
                if cur.fetchone():
                    added.append(m.key)
            return added

        return self._write(insert)

    def remember_incident(self, record: IncidentRecord) -> None:
        """Keep (or refresh) what a click on this incident's buttons is judged against."""
        self.ensure_schema()
        self._write(
            lambda conn: conn.execute(
                "INSERT INTO chatops.incidents (incident_id, flow, flow_run_id, declared_by,"
                " mode, runbook, channel) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (incident_id) DO UPDATE SET flow = EXCLUDED.flow,"
                " flow_run_id = EXCLUDED.flow_run_id, declared_by = EXCLUDED.declared_by,"
                " mode = EXCLUDED.mode, runbook = EXCLUDED.runbook, channel = EXCLUDED.channel,"
                " updated = now()",
                (
                    record.incident_id,
                    record.flow,
                    record.flow_run_id,
                    record.declared_by,
                    record.mode,
                    record.runbook,
                    record.channel,
                ),
            )
        )

    def incident(self, incident_id: str) -> IncidentRecord | None:
        self.ensure_schema()
        with self._connect() as conn:
            row = conn.execute(
                "SELECT incident_id, flow, flow_run_id, declared_by, mode, runbook, channel"
                " FROM chatops.incidents WHERE incident_id = %s",
                (incident_id,),
            ).fetchone()
        return IncidentRecord(*row) if row else None

    def record_click(
        self,
        *,
        incident_id: str,
        flow_run_id: str,
        slack_user_id: str,
        person: str | None,
        role: str | None,
        action: str,
        allowed: bool,
        reason: str,
    ) -> None:
        self.ensure_schema()
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO chatops.clicks (incident_id, flow_run_id, slack_user_id, person,"
                " role, action, allowed, reason) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (incident_id, flow_run_id, slack_user_id, person, role, action, allowed, reason),
            )

    def clicks(self, incident_id: str) -> list[dict[str, Any]]:
        self.ensure_schema()
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT slack_user_id, person, role, action, allowed, reason FROM chatops.clicks"
                " WHERE incident_id = %s ORDER BY id",
                (incident_id,),
            ).fetchall()
        keys = ("slack_user_id", "person", "role", "action", "allowed", "reason")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    # -- the sender's side -------------------------------------------------------------------
    @contextmanager
    def drainer_lock(self) -> Iterator[psycopg.Connection | None]:
        """A connection holding the drainer lock, or None when another sender holds it.

        Session-level: if the holder dies, PostgreSQL releases the lock with its connection.
        """
        self.ensure_schema()
        with self._connect(timeout_s=3) as conn:
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", (DRAINER_LOCK,)).fetchone()
            if not got or not got[0]:
                yield None
                return
            try:
                yield conn
            finally:
                # If the connection is gone, the lock went with it.
                with suppress(psycopg.Error):
                    conn.execute("SELECT pg_advisory_unlock(%s)", (DRAINER_LOCK,))

    @staticmethod
    def next_pending(conn: psycopg.Connection) -> Row | None:
        """The oldest message not yet sent or failed (the head of the queue)."""
        try:
            row = conn.execute(
                f"SELECT {COLUMNS} FROM chatops.outbox WHERE state IN ('queued', 'sending')"
                " ORDER BY id LIMIT 1"
            ).fetchone()
        except psycopg.Error as exc:
            raise PostgresError(f"cannot read the chatops outbox: {exc}") from exc
        return Row.from_tuple(row) if row else None

    @staticmethod
    def newer_update_exists(conn: psycopg.Connection, row: Row) -> bool:
        found = conn.execute(
            "SELECT 1 FROM chatops.outbox WHERE thread_key = %s AND kind = 'update'"
            " AND id > %s AND state IN ('queued', 'sending') LIMIT 1",
            (row.thread_key, row.id),
        ).fetchone()
        return found is not None

    @staticmethod
    def thread_root(conn: psycopg.Connection, thread_key: str) -> Row | None:
        row = conn.execute(
            f"SELECT {COLUMNS} FROM chatops.outbox WHERE thread_key = %s AND kind = 'root'"
            " ORDER BY id LIMIT 1",
            (thread_key,),
        ).fetchone()
        return Row.from_tuple(row) if row else None

    @staticmethod
    def mark_sending(conn: psycopg.Connection, row: Row) -> None:
        """Written *before* the Slack call: from here on, a re-send must look first."""
        conn.execute(
            "UPDATE chatops.outbox SET state = 'sending', attempts = attempts + 1,"
            " first_tried_at = coalesce(first_tried_at, now()) WHERE id = %s",
            (row.id,),
        )

    @staticmethod
    def mark_sent(conn: psycopg.Connection, row: Row, channel: str, ts: str, why: str) -> None:
        conn.execute(
            "UPDATE chatops.outbox SET state = 'sent', posted_channel = %s, ts = %s,"
            " sent_at = now(), why = %s WHERE id = %s",
            (channel, ts, why, row.id),
        )

    @staticmethod
    def mark(conn: psycopg.Connection, row: Row, state: str, why: str) -> None:
        conn.execute(
            "UPDATE chatops.outbox SET state = %s, why = %s WHERE id = %s", (state, why, row.id)
        )

    @staticmethod
    def note(conn: psycopg.Connection, row: Row, why: str) -> None:
        """Say why a message is still waiting (its state is left as it is)."""
        conn.execute("UPDATE chatops.outbox SET why = %s WHERE id = %s", (why, row.id))

    # -- reading -----------------------------------------------------------------------------
    def status(self, *, incident_id: str | None = None, limit: int = 50) -> dict[str, Any]:
        """Counts by state, every message not sent (with why), and the latest sent ones."""
        self.ensure_schema()
        where, params = ("WHERE incident_id = %s", [incident_id]) if incident_id else ("", [])
        with self._connect() as conn:
            counts = dict(
                conn.execute(
                    f"SELECT state, count(*) FROM chatops.outbox {where} GROUP BY state",
                    params,
                ).fetchall()
            )
            joiner = "AND" if where else "WHERE"
            open_rows = conn.execute(
                f"SELECT {COLUMNS} FROM chatops.outbox {where} {joiner}"
                " state IN ('queued', 'sending', 'failed') ORDER BY id LIMIT %s",
                [*params, limit],
            ).fetchall()
            sent_rows = conn.execute(
                f"SELECT {COLUMNS} FROM chatops.outbox {where} {joiner} state = 'sent'"
                " ORDER BY id DESC LIMIT %s",
                [*params, min(limit, 10)],
            ).fetchall()
        return {
            "counts": {s: int(counts.get(s, 0)) for s in ("queued", "sending", "sent", "failed")}
            | {"superseded": int(counts.get("superseded", 0))},
            "pending": [Row.from_tuple(r).as_dict() for r in open_rows],
            "recently_sent": [Row.from_tuple(r).as_dict() for r in reversed(sent_rows)],
        }

    def rows(self, *, incident_id: str | None = None) -> list[Row]:
        """Every message (of one incident), in queue order: for tests and evidence."""
        self.ensure_schema()
        where, params = ("WHERE incident_id = %s", [incident_id]) if incident_id else ("", [])
        with self._connect() as conn:
            found = conn.execute(
                f"SELECT {COLUMNS} FROM chatops.outbox {where} ORDER BY id", params
            ).fetchall()
        return [Row.from_tuple(r) for r in found]
