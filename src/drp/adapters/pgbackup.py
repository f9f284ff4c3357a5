"""PostgreSQL backup tools as commands-as-data: pg_basebackup, pg_verifybackup, pg_ctl.

The command lines are built by pure functions (unit-testable, like ansible-runner's); running
them is separate. Passwords never go on a command line (where ``ps`` and error messages would
show them): they travel in ``PGPASSWORD`` in the child's environment only. Failures become
:class:`drp.errors.PostgresError` with the tool's last lines and what to check.

The restore test's scratch server runs as the unprivileged user (``runuser``) when we are root,
listens on 127.0.0.1 only, with no Unix socket, and is always stopped by the caller.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from drp.adapters import postgres as pg
from drp.errors import PostgresError

TABLE_STATE_SQL = (
    "SELECT count(*)::bigint, coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text"
    " FROM {} AS t"
)
"""Row count and an order-independent checksum (the sum of each row's 64-bit hash): it streams,
so a large table costs one sequential scan and no memory. ``hashtextextended`` (the hash behind
hash partitioning) is about a third cheaper than an md5 per row; a restore is always compared on
the same major version, where it is stable. It finds damage and divergence, not a forger."""


@dataclass(frozen=True)
class Conn:
    """A libpq connection split into the part that may be shown and the password."""

    conninfo: str  # no password
    password: str | None
    host: str
    port: str

    @classmethod
    def parse(cls, dsn: str) -> Conn:
        params = conninfo_to_dict(dsn)
        password = params.pop("password", None)
        return cls(
            make_conninfo(**{k: v for k, v in params.items() if v is not None}),
            str(password) if password is not None else None,
            str(params.get("host") or "localhost"),
            str(params.get("port") or "5432"),
        )

    def with_target(self, *, host: str | None = None, port: int | None = None, dbname: str) -> str:
        """A full DSN (with password) to another server or database (the restored copy)."""
        params = conninfo_to_dict(self.conninfo)
        params.update(dbname=dbname)
        if host is not None:
            params["host"] = host
        if port is not None:
            params["port"] = str(port)
        if self.password is not None:
            params["password"] = self.password
        return make_conninfo(**{k: v for k, v in params.items() if v is not None})


def basebackup_argv(pg_bin: Path, target: Path, conn: Conn, label: str) -> list[str]:
    """``pg_basebackup``: tar format, WAL streamed into pg_wal.tar, a manifest, fast checkpoint."""
    return [
        str(pg_bin / "pg_basebackup"),
        "-D",
        str(target),
        "-Ft",
        "-X",
        "stream",
        "-c",
        "fast",
        "--manifest-checksums=CRC32C",
        "-l",
        label,
        "--no-password",
        "-d",
        conn.conninfo,
    ]


def verifybackup_argv(pg_bin: Path, directory: Path) -> list[str]:
    """``pg_verifybackup`` on an unpacked backup (PostgreSQL before 18 reads no tar files)."""
    return [str(pg_bin / "pg_verifybackup"), str(directory)]


def pg_ctl_start_argv(pg_bin: Path, data: Path, port: int, log: Path) -> list[str]:
    """Start a restored copy on its own loopback port, cut off from replication and archiving.

    The copy carries the primary's settings (``postgresql.auto.conf`` may name synchronous
    standbys or an archive command): they are overridden on the command line.
    """
    options = (
        f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
        "-c archive_mode=off -c synchronous_standby_names='' -c shared_buffers=32MB "
        "-c max_connections=20"
    )
    return [
        str(pg_bin / "pg_ctl"),
        "start",
        "-D",
        str(data),
        "-l",
        str(log),
        "-w",
        "-t",
        "120",
        "-s",
        "-o",
        options,
    ]


def pg_ctl_stop_argv(pg_bin: Path, data: Path) -> list[str]:
    return [str(pg_bin / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate", "-w", "-s"]


def run_tool(
    argv: Sequence[str],
    *,
    password: str | None = None,
    user: str | None = None,
    timeout: float = 3600.0,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run one PostgreSQL tool; a failure (when ``check``) is a PostgresError with its last lines.

    ``user``: run as this user through ``runuser`` (PostgreSQL refuses to run as root).
    """
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    env.pop("PGPASSWORD", None)
    if password is not None:
        env["PGPASSWORD"] = password
    full = ["runuser", "-u", user, "--", *argv] if user else list(argv)
    tool = Path(argv[0]).name
    try:
        result = subprocess.run(
            full, capture_output=True, text=True, timeout=timeout, env=env, cwd="/"
        )
    except subprocess.TimeoutExpired as exc:
        raise PostgresError(f"{tool} did not finish within {timeout:.0f} s") from exc
    except OSError as exc:
        raise PostgresError(f"cannot run {tool}: {exc} (hint: DRP_PG_BIN, make setup)") from exc
    if check and result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise PostgresError(f"{tool} failed (exit {result.returncode}): " + " | ".join(lines))
    return result


def table_state(dsn: str, table: str, timeout_ms: int = 3_600_000) -> tuple[int, str]:
    """Row count and checksum of ``table`` (``name`` or ``schema.name``)."""
    schema, _, name = table.rpartition(".")
    ident = sql.Identifier(schema, name) if schema else sql.Identifier(name)
    statement = sql.SQL(TABLE_STATE_SQL).format(ident)
    with pg.connect(dsn, statement_timeout_ms=timeout_ms) as conn:
        row = conn.execute(statement).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def server_facts(dsn: str) -> tuple[str, int]:
    """Server version and WAL segment size (bytes) of the server backed up."""
    rows = pg.query(
        dsn,
        "SELECT current_setting('server_version'),"
        " (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size')",
    )
    return str(rows[0][0]), int(rows[0][1])
