"""Prefect's own machinery as processes: a server on PostgreSQL and one process worker per site.

Why here and not in a shell script: the DR platform must outlive the DC, so production runs
Prefect's server (backed by PostgreSQL at the DRC) and a process worker at each site, each
polling its site's work pool (``dc``, ``drc``). On the lab the same processes run on this
machine: the server's database is a ``prefect`` database in the lab's ``ops-db`` (with
``pg_trgm``, which Prefect's PostgreSQL schema needs), never SQLite, whose "database is locked"
answers under concurrent runs are the failure this avoids.

Commands as data, like the other adapters: :func:`server_command`, :func:`server_env`,
:func:`worker_command` and :func:`worker_env` are pure and unit-tested; :func:`start_server` and
:func:`start_worker` spawn them (own session, logs to files), wait for health with a deadline and
say where the log is when they fail. Every process carries the lab root on its command line
(``--owner``), so it is only ever signalled after checking that (a recycled pid is never killed).

Secrets: the database password travels only in the server's environment (never on a command
line, in a log line, in a state file or in output); :func:`redact_url` is what is shown.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drp.adapters import postgres as pg
from drp.errors import AdapterError
from drp.lab.procs import owned, spawn, terminate
from drp.polling import poll

SITES = ("dc", "drc")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200
SERVER_DATABASE = "prefect"
SERVER_START_TIMEOUT_S = 120.0  # first start on PostgreSQL runs every migration
WORKER_START_TIMEOUT_S = 60.0
DEFAULT_WORKER_POLL_S = 2.0  # Prefect's default (10 s) is slow for a one-hour RTO on the lab
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class PrefectServerError(AdapterError):
    """The Prefect server or a worker could not be started, reached or stopped."""


# -- commands as data -------------------------------------------------------------------------
def redact_url(url: str) -> str:
    """A database URL with its password replaced by ``***`` (for output and state files)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def database_url(host: str, port: int, user: str, password: str, dbname: str) -> str:
    """The SQLAlchemy URL Prefect's server wants: ``postgresql+asyncpg://``."""
    quoted = urllib.parse.quote(password, safe="")
    return (
        f"postgresql+asyncpg://{urllib.parse.quote(user, safe='')}:{quoted}@{host}:{port}/{dbname}"
    )


def check_database_url(url: str) -> None:
    """Refuse what is not PostgreSQL through asyncpg (SQLite locks under concurrent runs)."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme != "postgresql+asyncpg":
        raise PrefectServerError(
            f"PREFECT_SERVER_DATABASE_CONNECTION_URL has scheme {scheme or '(none)'!r}: the "
            "server must run on PostgreSQL (hint: postgresql+asyncpg://USER:PASSWORD@HOST:PORT/"
            "prefect, PostgreSQL >= 14.9 with the pg_trgm extension)"
        )


def check_loopback(host: str) -> None:
    """The lab never listens beyond this machine."""
    if host not in LOOPBACK:
        raise PrefectServerError(
            f"--host {host} is not a loopback address; the lab's Prefect server listens on "
            "127.0.0.1 only (put a TLS reverse proxy in front of it for a real deployment)"
        )


def api_url(host: str, port: int) -> str:
    return f"http://{host}:{port}/api"


def _wrapped(owner: str, prefect_args: Sequence[str]) -> list[str]:
    """``python -m drp.adapters.prefect_server --owner ROOT <prefect args>``: the owner mark
    on the command line is what makes a later kill safe."""
    return [sys.executable, "-m", "drp.adapters.prefect_server", "--owner", owner, *prefect_args]


def server_command(owner: str, host: str, port: int) -> list[str]:
    return _wrapped(owner, ["server", "start", "--host", host, "--port", str(port)])


def server_env(
    database: str, host: str, port: int, home: Path, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The server's settings: PostgreSQL, loopback, no analytics, its own PREFECT_HOME."""
    check_database_url(database)
    env = dict(base or {})
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_DATABASE_CONNECTION_URL=database,
        PREFECT_SERVER_DATABASE_MIGRATE_ON_START="true",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_API_URL=api_url(host, port),
        PREFECT_UI_API_URL=api_url(host, port),
        PREFECT_SERVER_API_HOST=host,
        PREFECT_SERVER_API_PORT=str(port),
    )
    return env


def worker_name(site: str) -> str:
    return f"{site}-worker"


def worker_command(owner: str, site: str) -> list[str]:
    if site not in SITES:
        raise PrefectServerError(f"unknown site {site!r} (choose from {', '.join(SITES)})")
    return _wrapped(
        owner,
        ["worker", "start", "--pool", site, "--type", "process", "--name", worker_name(site)],
    )


def worker_env(
    api: str,
    home: Path,
    repo_root: Path,
    poll_s: float = DEFAULT_WORKER_POLL_S,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A worker's settings. Flow runs inherit them: ``DRP_REPO_ROOT`` is where prefect.yaml's
    pull step sets the working directory (the checkout on the worker's host); DRP_LAB_ROOT and
    DRP_EVIDENCE_DIR pass through from the caller's environment."""
    env = dict(base or {})
    env.pop("PREFECT_SERVER_DATABASE_CONNECTION_URL", None)  # a worker never needs it
    env.update(
        PREFECT_API_URL=api,
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_WORKER_QUERY_SECONDS=f"{poll_s:g}",
        PREFECT_WORKER_PREFETCH_SECONDS="10",
        DRP_REPO_ROOT=str(repo_root),
    )
    return env


# -- HTTP to the server -----------------------------------------------------------------------
def _request(method: str, url: str, body: Any = None, timeout: float = 5.0) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, None
    except (OSError, ValueError):
        return 0, None


def healthy(api: str) -> bool:
    status, body = _request("GET", f"{api}/health", timeout=2.0)
    return status == 200 and body is True


def server_version(api: str) -> str | None:
    status, body = _request("GET", f"{api}/admin/version", timeout=2.0)
    return str(body) if status == 200 else None


def ensure_work_pool(api: str, name: str, description: str) -> bool:
    """Create process work pool ``name`` unless it exists; True when it was created."""
    from prefect.workers.process import ProcessWorker

    status, _ = _request("GET", f"{api}/work_pools/{name}")
    if status == 200:
        return False
    body = {
        "name": name,
        "type": "process",
        "description": description,
        "base_job_template": ProcessWorker.get_default_base_job_template(),
    }
    status, answer = _request("POST", f"{api}/work_pools/", body)
    if status in (200, 201):
        return True
    if status == 409:  # created meanwhile by someone else: fine
        return False
    raise PrefectServerError(
        f"could not create work pool {name!r} at {api}: HTTP {status} {answer} "
        "(hint: is the server up? drp server status)"
    )


def pool_workers(api: str, pool: str) -> list[dict[str, Any]]:
    """The workers the server knows for ``pool``: name, status, last heartbeat."""
    status, body = _request("POST", f"{api}/work_pools/{pool}/workers/filter", {})
    return list(body) if status == 200 and isinstance(body, list) else []


def _heartbeat_after(worker: Mapping[str, Any], since: datetime) -> bool:
    raw = worker.get("last_heartbeat_time")
    if not raw:
        return False
    return datetime.fromisoformat(str(raw).replace("Z", "+00:00")) >= since


# -- processes --------------------------------------------------------------------------------
def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def _exit_status(pid: int) -> str:
    """How a process we spawned ended ("exited with status 1", "was killed by signal 9")."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return "exited"  # not our child (started by another drp command) or already reaped
    if done == 0:
        return "stopped answering"
    if os.WIFSIGNALED(status):
        return f"was killed by signal {os.WTERMSIG(status)}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def _wait(
    condition: Callable[[], bool],
    alive: Callable[[], bool],
    timeout: float,
    what: str,
    log: Path,
    pid: int,
    interval: float = 0.25,
) -> None:
    """Poll until ``condition``; fail at once when the process died, or at the deadline."""
    _, state = poll(
        lambda: "ready" if condition() else ("waiting" if alive() else "died"),
        lambda s: s != "waiting",
        timeout,
        interval,
    )
    if state == "died":
        raise PrefectServerError(
            f"{what} {_exit_status(pid)} while starting; see {log}:\n{tail(log)}"
        )
    if state == "waiting":
        raise PrefectServerError(f"{what} not ready after {timeout:.0f} s; see {log}:\n{tail(log)}")


def ensure_server_database(admin_dsn: str, dbname: str = SERVER_DATABASE) -> None:
    """Create the server's database and ``pg_trgm`` in it (idempotent), and check the version
    (Prefect needs PostgreSQL 14.9 or later)."""
    version = int(pg.query(admin_dsn, "SHOW server_version_num")[0][0])
    if version < 140009:
        raise PrefectServerError(
            f"PostgreSQL {version} is too old for Prefect's server (needs 14.9 or later)"
        )
    if not pg.query(admin_dsn, "SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)):
        pg.query(admin_dsn, f'CREATE DATABASE "{dbname}"')
    db_dsn = f"{admin_dsn} dbname={dbname}"
    pg.query(db_dsn, "CREATE EXTENSION IF NOT EXISTS pg_trgm")


@dataclass(frozen=True)
class Started:
    """A process this adapter started: what, its pid, where it answers, where it logs."""

    name: str
    pid: int
    log: Path
    endpoint: str
    already_running: bool = False


def start_server(
    owner: str,
    database: str,
    home: Path,
    log: Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    timeout: float = SERVER_START_TIMEOUT_S,
    env: Mapping[str, str] | None = None,
) -> Started:
    """Start ``prefect server start`` on PostgreSQL; return once ``/api/health`` answers."""
    check_loopback(host)
    api = api_url(host, port)
    if port_open(host, port):
        raise PrefectServerError(
            f"port {host}:{port} is already taken (another Prefect server? `drp server status`;"
            " or choose --port)"
        )
    home.mkdir(parents=True, exist_ok=True)
    pid = spawn(
        server_command(owner, host, port),
        log,
        env=server_env(database, host, port, home, base=env),
    )
    try:
        _wait(lambda: healthy(api), lambda: owned(pid, owner), timeout, "Prefect server", log, pid)
    except PrefectServerError:
        terminate(pid, owner)
        raise
    return Started("prefect-server", pid, log, api)


def spawn_worker(
    owner: str,
    site: str,
    api: str,
    home: Path,
    log: Path,
    repo_root: Path,
    poll_s: float = DEFAULT_WORKER_POLL_S,
    env: Mapping[str, str] | None = None,
) -> tuple[int, datetime]:
    """Start a process worker on pool ``site``: (pid, when). Wait with :func:`wait_worker`."""
    since = datetime.now(UTC).replace(microsecond=0)
    pid = spawn(
        worker_command(owner, site), log, env=worker_env(api, home, repo_root, poll_s, base=env)
    )
    return pid, since


def wait_worker(
    owner: str,
    site: str,
    api: str,
    pid: int,
    since: datetime,
    log: Path,
    timeout: float = WORKER_START_TIMEOUT_S,
) -> Started:
    """Return once the server has a heartbeat of the worker newer than ``since``; a worker that
    does not get there is stopped and the error quotes its log."""
    name = worker_name(site)

    def registered() -> bool:
        return any(
            w.get("name") == name and _heartbeat_after(w, since) for w in pool_workers(api, site)
        )

    try:
        _wait(registered, lambda: owned(pid, owner), timeout, f"{site} worker", log, pid, 0.5)
    except PrefectServerError:
        terminate(pid, owner)
        raise
    return Started(name, pid, log, f"{api} pool {site}")


def stop(pid: int | None, owner: str) -> bool:
    """SIGTERM (then SIGKILL) a process this adapter started; True when it was running."""
    return terminate(pid, owner, timeout=15.0)


def _main(argv: Sequence[str]) -> None:
    """``python -m drp.adapters.prefect_server --owner ROOT <prefect CLI arguments>``."""
    args = list(argv)
    if len(args) < 2 or args[0] != "--owner":
        raise SystemExit("usage: python -m drp.adapters.prefect_server --owner ROOT ARGS...")
    os.environ.setdefault("DRP_PREFECT_OWNER", args[1])
    from prefect.cli import app

    sys.argv = ["prefect", *args[2:]]
    app()


if __name__ == "__main__":
    _main(sys.argv[1:])
