"""SKP stand-in: a small HTTP service per site that writes and reads declarations.

``python -m drp.lab.skp_app --site dc --port 55411 --dsn-file PATH [--service ID]``

- ``GET /health``: 200 with the site, its database's role (primary/standby) and whether it can
  write — and, in a site lab (``--service``), the service it is; 503 when the database cannot
  be reached.
- ``POST /declarations`` (JSON: nomor_aju, doc_type, office, payload): stores one declaration in
  the site's database; 201 with the stored row; 503 when the database is read-only or down;
  409 when the nomor_aju exists.
- ``GET /declarations[?nomor_aju=X]``: the stored declarations (newest first, at most 100).

It opens a connection per request on purpose: after a failover it must follow the database's
real state, not a pooled connection's memory of it. The DSN is read from a file (mode 0600) so
the password never appears on a command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

REQUIRED = ("nomor_aju", "doc_type", "office")


class SkpHandler(BaseHTTPRequestHandler):
    server_version = "skp-standin/1"
    site: str = "dc"
    dsn: str = ""
    service: str | None = None
    """The service this app is (a site lab runs one per service per site); None in the lab of
    one service, whose answers stay as they always were."""

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.site}-app {self.address_string()} {format % args}\n")

    # -- helpers ---------------------------------------------------------------------------
    def _send(self, status: int, body: dict[str, Any] | list[Any]) -> None:
        data = json.dumps(body, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-DRP-Site", self.site)
        if self.service:
            self.send_header("X-DRP-Service", self.service)
        self.end_headers()
        self.wfile.write(data)

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self.dsn, connect_timeout=2, autocommit=True, row_factory=dict_row)

    # -- routes ----------------------------------------------------------------------------
    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/health":
            return self._health()
        if url.path == "/declarations":
            return self._list(parse_qs(url.query).get("nomor_aju", [None])[0])
        return self._send(HTTPStatus.NOT_FOUND, {"error": f"no route {url.path}"})

    def do_POST(self) -> None:
        if urlparse(self.path).path != "/declarations":
            return self._send(HTTPStatus.NOT_FOUND, {"error": "no route"})
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError as exc:
            return self._send(HTTPStatus.BAD_REQUEST, {"error": f"body is not JSON: {exc}"})
        missing = [k for k in REQUIRED if not body.get(k)]
        if missing:
            return self._send(HTTPStatus.BAD_REQUEST, {"error": f"missing fields: {missing}"})
        return self._create(body)

    def _identity(self) -> dict[str, str]:
        return {"site": self.site, **({"service": self.service} if self.service else {})}

    def _health(self) -> None:
        try:
            with self._connect() as conn:
                row = conn.execute(
                    "SELECT pg_is_in_recovery() AS standby,"
                    " current_setting('default_transaction_read_only') = 'on' AS read_only"
                ).fetchone()
        except psycopg.Error as exc:
            return self._send(
                HTTPStatus.SERVICE_UNAVAILABLE,
                {**self._identity(), "db_role": "down", "writable": False, "error": str(exc)[:200]},
            )
        assert row is not None
        role = "standby" if row["standby"] else "primary"
        writable = not row["standby"] and not row["read_only"]
        self._send(HTTPStatus.OK, {**self._identity(), "db_role": role, "writable": writable})

    def _create(self, body: dict[str, Any]) -> None:
        try:
            with self._connect() as conn:
                row = conn.execute(
                    "INSERT INTO declarations (nomor_aju, doc_type, office, payload, site)"
                    " VALUES (%s, %s, %s, %s, %s)"
                    " RETURNING id, nomor_aju, doc_type, office, site, created_at",
                    (
                        body["nomor_aju"],
                        body["doc_type"],
                        body["office"],
                        Jsonb(body.get("payload") or {}),
                        self.site,
                    ),
                ).fetchone()
        except psycopg.errors.UniqueViolation:
            return self._send(HTTPStatus.CONFLICT, {"error": "nomor_aju already stored"})
        except psycopg.errors.ReadOnlySqlTransaction:
            return self._send(
                HTTPStatus.SERVICE_UNAVAILABLE,
                {"site": self.site, "error": "database is read-only at this site"},
            )
        except psycopg.Error as exc:
            return self._send(
                HTTPStatus.SERVICE_UNAVAILABLE, {"site": self.site, "error": str(exc)[:200]}
            )
        self._send(HTTPStatus.CREATED, row or {})

    def _list(self, nomor_aju: str | None) -> None:
        sql = "SELECT id, nomor_aju, doc_type, office, payload, site, created_at FROM declarations"
        params: tuple[Any, ...] = ()
        if nomor_aju:
            sql += " WHERE nomor_aju = %s"
            params = (nomor_aju,)
        sql += " ORDER BY id DESC LIMIT 100"
        try:
            with self._connect() as conn:
                rows = conn.execute(sql, params).fetchall()
        except psycopg.Error as exc:
            return self._send(
                HTTPStatus.SERVICE_UNAVAILABLE, {"site": self.site, "error": str(exc)[:200]}
            )
        self._send(HTTPStatus.OK, rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", required=True, choices=["dc", "drc"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn-file", type=Path, required=True)
    parser.add_argument("--service", default=None, help="the service it is (a site lab)")
    parser.add_argument("--lab-root", default="", help="marks the process as the lab's")
    args = parser.parse_args(argv)
    handler = type(
        "Handler",
        (SkpHandler,),
        {"site": args.site, "dsn": args.dsn_file.read_text(), "service": args.service},
    )
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    server.daemon_threads = True
    name = f"{args.service}-{args.site}" if args.service else args.site
    sys.stderr.write(f"{name}-app listening on 127.0.0.1:{args.port}\n")
    server.serve_forever()


if __name__ == "__main__":
    main()
