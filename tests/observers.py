"""What clients see during a failover, observed the way they see it: a writer going through the
front door (users), and a watcher polling both servers of a pair the way clients reach them, for
two writable primaries. Shared by the drill and the site failover tests."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FrontDoorWriter:
    """Writes declarations through the front door, as users do, wherever it points; keeps the
    nomor aju of every write the SKP acknowledged (201)."""

    url: str
    interval_s: float = 0.02
    acknowledged: list[str] = field(default_factory=list)
    refused: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        from drp.adapters.http import http_json

        while not self._stop.is_set():
            key = f"DRILL-{uuid.uuid4().hex[:12]}"
            status, _ = http_json(
                f"{self.url}/declarations",
                {"nomor_aju": key, "doc_type": "PEB", "office": "drill-writer"},
                timeout=3,
            )
            if status == 201:
                self.acknowledged.append(key)
            else:
                self.refused += 1
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()


@dataclass
class ClientPathWatcher:
    """Polls both databases the way clients reach them (the DC through its uplink, the DRC
    directly) every ``interval_s``; records every moment both accepted writes.

    Like a client's pool it keeps one connection per server and asks it again each time (a
    fenced, stopped or cut-off server drops it: the next poll reconnects, and a server it
    cannot reach does not count as writable). A new connection per poll costs a scram
    handshake and a backend start each time, which on two cores slowed the very flows it
    watches."""

    dsns: tuple[str, str]
    interval_s: float = 0.05
    both_writable: list[float] = field(default_factory=list)
    polls: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _conns: dict[str, Any] = field(default_factory=dict)

    def _writable(self, dsn: str) -> bool:
        import psycopg

        try:
            conn = self._conns.get(dsn)
            if conn is None or conn.closed:
                conn = self._conns[dsn] = psycopg.connect(dsn, autocommit=True)
            row = conn.execute(
                "SELECT NOT pg_is_in_recovery()"
                " AND current_setting('default_transaction_read_only') = 'off'"
            ).fetchone()
            return bool(row and row[0])
        except psycopg.Error:
            stale = self._conns.pop(dsn, None)
            if stale is not None:
                stale.close()
            return False

    def run(self) -> None:
        try:
            while not self._stop.is_set():
                if all(self._writable(d) for d in self.dsns):
                    self.both_writable.append(time.time())
                self.polls += 1
                self._stop.wait(self.interval_s)
        finally:
            for conn in self._conns.values():
                conn.close()

    def stop(self) -> None:
        self._stop.set()
