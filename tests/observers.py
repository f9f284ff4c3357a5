"""What clients see during a failover, observed the way they see it: a writer going through the
front door (users), and a watcher polling both servers of a pair the way clients reach them, for
two writable primaries. Shared by the drill and the site failover tests."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field


@dataclass
class FrontDoorWriter:
    """Writes declarations through the front door, as users do, wherever it points; keeps the
    nomor aju of every write the SKP acknowledged (201)."""

    url: str
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
            self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()


@dataclass
class ClientPathWatcher:
    """Polls both databases the way clients reach them (the DC through its uplink, the DRC
    directly) every 50 ms; records every moment both accepted writes."""

    dsns: tuple[str, str]
    both_writable: list[float] = field(default_factory=list)
    polls: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    @staticmethod
    def _writable(dsn: str) -> bool:
        import psycopg

        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT NOT pg_is_in_recovery()"
                    " AND current_setting('default_transaction_read_only') = 'off'"
                ).fetchone()
                return bool(row and row[0])
        except psycopg.Error:
            return False

    def run(self) -> None:
        while not self._stop.is_set():
            if all(self._writable(d) for d in self.dsns):
                self.both_writable.append(time.time())
            self.polls += 1
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
