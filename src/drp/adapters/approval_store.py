"""Proofs already used, in ``ops-db`` (schema ``approvals``): the replay protection of the
human gates.

A one-time code is readable after use by anyone who can read the run's input in Prefect, and
a Slack proof likewise; both must therefore count once. The table is in ``ops-db`` rather than a
file beside the secrets because workers at both sites judge gates: a file would let a code used
at the DRC be replayed at the DC within its 90 seconds. ``ops-db`` is the platform's own
database, reachable from every worker (in production it sits at the DRC, replicated back).

Per person, a transaction holds an advisory lock (:meth:`UsedProofs.for_person`), so that two
answers with the same code, judged at once on two workers, cannot both pass: the second waits,
then sees the first's step. What is kept: who, which TOTP time step (a number: the time divided
by 30 s, not the code) or Slack proof nonce, when, for which incident and run. Never a code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg

from drp.adapters import postgres as pg
from drp.errors import PostgresError

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS approvals;
CREATE TABLE IF NOT EXISTS approvals.used_proofs (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('totp', 'slack-signature')),
    person text NOT NULL,
    totp_step bigint,
    nonce text,
    used_at timestamptz NOT NULL DEFAULT now(),
    incident_id text NOT NULL DEFAULT '',
    flow_run_id text NOT NULL DEFAULT '',
    gate text NOT NULL DEFAULT '',
    UNIQUE (kind, person, totp_step),
    UNIQUE (kind, nonce)
);
"""

SCHEMA_LOCK = 0x64727061  # "drpa": serialises the schema's creation
CONNECT_TIMEOUT_S = 3


@dataclass
class PersonProofs:
    """The used proofs of one person, inside the locked transaction."""

    conn: psycopg.Connection
    person: str

    def last_totp_step(self) -> int | None:
        row = self.conn.execute(
            "SELECT max(totp_step) FROM approvals.used_proofs WHERE kind = 'totp' AND person = %s",
            (self.person,),
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def nonce_used(self, nonce: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM approvals.used_proofs WHERE kind = 'slack-signature' AND nonce = %s",
            (nonce,),
        ).fetchone()
        return row is not None

    def use_totp_step(self, step: int, *, incident_id: str, flow_run_id: str, gate: str) -> None:
        self.conn.execute(
            "INSERT INTO approvals.used_proofs (kind, person, totp_step, incident_id, flow_run_id,"
            " gate) VALUES ('totp', %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (self.person, step, incident_id, flow_run_id, gate),
        )

    def use_nonce(self, nonce: str, *, incident_id: str, flow_run_id: str, gate: str) -> None:
        self.conn.execute(
            "INSERT INTO approvals.used_proofs (kind, person, nonce, incident_id, flow_run_id,"
            " gate) VALUES ('slack-signature', %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (self.person, nonce, incident_id, flow_run_id, gate),
        )


class UsedProofs:
    """The replay store of one ``ops-db``."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def ensure_schema(self) -> None:
        with pg.connect(self.dsn, autocommit=False, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            conn.execute(SCHEMA_SQL)
            conn.commit()

    @contextmanager
    def for_person(self, person: str) -> Iterator[PersonProofs]:
        """One transaction holding ``person``'s lock: read what they used, judge, record, and
        commit on a clean exit (an exception rolls back: nothing is marked used)."""
        try:
            self.ensure_schema()
            with pg.connect(self.dsn, autocommit=False, connect_timeout=CONNECT_TIMEOUT_S) as conn:
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                    (f"drp-approvals:{person}",),
                )
                yield PersonProofs(conn, person)
                conn.commit()
        except PostgresError as exc:
            raise PostgresError(
                f"the replay protection of approvals is unavailable ({exc}): without it a used "
                "code could be replayed, so the answer is refused — check ops-db (DRP_OPS_DSN)"
            ) from exc

    def used(self, incident_id: str | None = None) -> list[dict[str, object]]:
        """What was used (for tests and auditors): never a code, only steps and nonces."""
        self.ensure_schema()
        sql = (
            "SELECT kind, person, totp_step, nonce, used_at, incident_id, flow_run_id, gate"
            " FROM approvals.used_proofs"
        )
        params: tuple[str, ...] = ()
        if incident_id is not None:
            sql += " WHERE incident_id = %s"
            params = (incident_id,)
        rows = pg.query(self.dsn, sql + " ORDER BY id", params)
        keys = ("kind", "person", "totp_step", "nonce", "used_at", "incident_id", "flow_run_id")
        return [dict(zip((*keys, "gate"), row, strict=True)) for row in rows]
