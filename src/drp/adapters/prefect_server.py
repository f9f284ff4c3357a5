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

Authentication: the server runs with Prefect's own basic auth (``PREFECT_SERVER_API_AUTH_STRING``,
``user:password``); every client (the workers, their flow runs, ``prefect`` commands, and every
HTTP call made here, with ``auth=``) sends ``PREFECT_API_AUTH_STRING``. Only ``/api/health``
answers without it (Prefect keeps it open for probes).

Secrets: the database password and the API credential travel only in the processes'
environments (never on a command line, in a log line, in a state file or in output);
:func:`redact_url` is what is shown.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from drp.adapters import postgres as pg
from drp.adapters.http import http_json
from drp.errors import AdapterError
from drp.polling import poll
from drp.procs import owned, spawn, terminate

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


def check_auth_string(auth: str) -> None:
    """Prefect's basic auth wants ``user:password``; refuse anything else before a server starts
    that no client could log in to."""
    user, sep, password = auth.partition(":")
    if not sep or not user or not password or any(c.isspace() for c in auth):
        raise PrefectServerError(
            "the Prefect API credential must be 'user:password' without spaces "
            "(hint: PREFECT_SERVER_API_AUTH_STRING=drp:$(openssl rand -base64 24))"
        )


def server_env(
    database: str,
    host: str,
    port: int,
    home: Path,
    base: Mapping[str, str] | None = None,
    auth: str | None = None,
) -> dict[str, str]:
    """The server's settings: PostgreSQL, loopback, no analytics, its own PREFECT_HOME, and the
    API credential it requires (its own services are clients too: they send it)."""
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
    if auth is not None:
        check_auth_string(auth)
        env.update(PREFECT_SERVER_API_AUTH_STRING=auth, PREFECT_API_AUTH_STRING=auth)
    return env


def client_env(api: str, auth: str | None) -> dict[str, str]:
    """What a Prefect client needs to reach the server: its address and, when the server asks
    for one, the credential."""
    env = {"PREFECT_API_URL": api}
    if auth is not None:
        env["PREFECT_API_AUTH_STRING"] = auth
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
    auth: str | None = None,
) -> dict[str, str]:
    """A worker's settings. Flow runs inherit them: ``DRP_REPO_ROOT`` is where prefect.yaml's
    pull step sets the working directory (the checkout on the worker's host); DRP_LAB_ROOT and
    DRP_EVIDENCE_DIR pass through from the caller's environment; the API credential reaches the
    flow runs the same way."""
    env = dict(base or {})
    env.pop("PREFECT_SERVER_DATABASE_CONNECTION_URL", None)  # a worker never needs it
    env.pop("PREFECT_SERVER_API_AUTH_STRING", None)  # the server's setting, not a client's
    env.pop("PREFECT_API_AUTH_STRING", None)
    env.update(client_env(api, auth))
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_WORKER_QUERY_SECONDS=f"{poll_s:g}",
        PREFECT_WORKER_PREFETCH_SECONDS="10",
        DRP_REPO_ROOT=str(repo_root),
    )
    return env


# -- HTTP to the server -----------------------------------------------------------------------
def basic_auth_header(auth: str) -> str:
    """The ``Authorization`` value Prefect's server checks for ``user:password``."""
    return "Basic " + base64.b64encode(auth.encode("utf-8")).decode("ascii")


def _request(
    method: str, url: str, body: Any = None, timeout: float = 5.0, auth: str | None = None
) -> tuple[int, Any]:
    """(HTTP status, JSON body); status 0 when the server could not be reached."""
    headers = {"Authorization": basic_auth_header(auth)} if auth is not None else None
    return http_json(url, body, timeout, method=method, headers=headers)


def healthy(api: str) -> bool:
    """The server answers (``/api/health`` needs no credential)."""
    status, body = _request("GET", f"{api}/health", timeout=2.0)
    return status == 200 and body is True


def access(api: str, auth: str | None) -> int:
    """HTTP status of an authenticated read: 200 when the credential is accepted, 401 when the
    server refuses it, 0 when it does not answer."""
    return _request("GET", f"{api}/admin/version", timeout=2.0, auth=auth)[0]


def server_version(api: str, auth: str | None = None) -> str | None:
    status, body = _request("GET", f"{api}/admin/version", timeout=2.0, auth=auth)
    return str(body) if status == 200 else None


def _refused(status: int, api: str) -> str:
    if status == 401:
        return (
            f"the Prefect server at {api} refused the credential (HTTP 401; hint: the client "
            "needs PREFECT_API_AUTH_STRING as the server's PREFECT_SERVER_API_AUTH_STRING)"
        )
    return f"HTTP {status} from {api} (hint: is the server up? drp server status)"


def ensure_work_pool(api: str, name: str, description: str, auth: str | None = None) -> bool:
    """Create process work pool ``name`` unless it exists; True when it was created."""
    from prefect.workers.process import ProcessWorker

    status, _ = _request("GET", f"{api}/work_pools/{name}", auth=auth)
    if status == 200:
        return False
    if status == 401:
        raise PrefectServerError(_refused(status, api))
    body = {
        "name": name,
        "type": "process",
        "description": description,
        "base_job_template": ProcessWorker.get_default_base_job_template(),
    }
    status, answer = _request("POST", f"{api}/work_pools/", body, auth=auth)
    if status in (200, 201):
        return True
    if status == 409:  # created meanwhile by someone else: fine
        return False
    raise PrefectServerError(
        f"could not create work pool {name!r} at {api}: HTTP {status} {answer} "
        "(hint: is the server up? drp server status)"
    )


def pool_workers(api: str, pool: str, auth: str | None = None) -> list[dict[str, Any]]:
    """The workers the server knows for ``pool``: name, status, last heartbeat."""
    status, body = _request("POST", f"{api}/work_pools/{pool}/workers/filter", {}, auth=auth)
    return list(body) if status == 200 and isinstance(body, list) else []


def _heartbeat_after(worker: Mapping[str, Any], since: datetime) -> bool:
    raw = worker.get("last_heartbeat_time")
    if not raw:
        return False
    return datetime.fromisoformat(str(raw).replace("Z", "+00:00")) >= since


# -- the scheduler ----------------------------------------------------------------------------
def scheduler_settings() -> dict[str, Any]:
    """The scheduler settings a server started from this environment runs with (Prefect's own
    settings model reads ``PREFECT_SERVER_SERVICES_SCHEDULER_*`` and applies its defaults)."""
    from prefect.settings.models.server.services import ServerServicesSchedulerSettings

    current = ServerServicesSchedulerSettings()
    return {
        "enabled": bool(current.enabled),
        "loop_seconds": float(current.loop_seconds),
        "max_scheduled_time_s": current.max_scheduled_time.total_seconds(),
    }


_LOG_RECORD = re.compile(
    r"^(?P<time>\d{2}:\d{2}:\d{2}\.\d{3}) \| (?P<level>[A-Z]+)\s*\| (?P<logger>\S+) - (?P<msg>.*)$"
)
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:: .*)?$")
SCHEDULER_TASKS = ("schedule_deployments", "schedule_recent_deployments")
"""Prefect 3.8 runs its scheduler as docket tasks with these names; an error in one is logged
by ``docket.dependencies`` with the task's name, followed by the traceback."""
SCHEDULER_LOGGERS = ("prefect.server.services.scheduler",)


def scheduler_errors(lines: Iterable[str]) -> tuple[int, str | None]:
    """(number of scheduler errors, the last one in a line: its time, task and the exception
    that ends its traceback) in lines of a Prefect server's log."""
    count = 0
    last: str | None = None
    head: str | None = None  # "HH:MM:SS.mmm task" of the error being read
    exception: str | None = None

    def close() -> None:
        nonlocal last, head, exception
        if head is not None:
            last = f"{head}: {exception}" if exception else head
        head, exception = None, None

    for raw in lines:
        line = raw.rstrip("\n")
        record = _LOG_RECORD.match(line)
        if record:
            close()
            if record["level"] not in ("ERROR", "CRITICAL"):
                continue
            task = next((t for t in SCHEDULER_TASKS if f"{t}()" in record["msg"]), None)
            if task is None and record["logger"] not in SCHEDULER_LOGGERS:
                continue
            count += 1
            head = f"{record['time']} {task or record['logger']}"
            continue
        if head is not None and _EXCEPTION_LINE.match(line):
            exception = line[:300]
    close()
    return count, last


def read_log_since(log: Path, offset: int) -> list[str]:
    """The lines a log got from byte ``offset`` on (what one server wrote since it started)."""
    try:
        with log.open("rb") as fh:
            fh.seek(offset if offset <= log.stat().st_size else 0)
            return fh.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _when(raw: Any) -> datetime | None:
    if not raw:
        return None
    return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))


def describe_schedule(schedule: Mapping[str, Any]) -> str:
    """``every 300 s``, ``cron 0 4 * * * (Asia/Jakarta)``, ``rrule ...``."""
    tz = f" ({schedule['timezone']})" if schedule.get("timezone") else ""
    if "interval" in schedule:
        return f"every {float(schedule['interval']):g} s"
    if "cron" in schedule:
        return f"cron {schedule['cron']}{tz}"
    if "rrule" in schedule:
        return f"rrule {schedule['rrule']}{tz}"
    return json.dumps(dict(schedule), sort_keys=True)


def next_schedule_date(schedules: Sequence[Mapping[str, Any]], now: datetime) -> datetime | None:
    """The earliest next date of these schedules from ``now``, computed by Prefect's own
    schedule classes (the ones its scheduler uses)."""
    from prefect.server.schemas.schedules import SCHEDULE_TYPES
    from pydantic import TypeAdapter

    adapter: TypeAdapter[Any] = TypeAdapter(SCHEDULE_TYPES)
    dates: list[datetime] = []
    for schedule in schedules:
        parsed = adapter.validate_python(dict(schedule))
        dates += [d for d in parsed._get_dates_generator(n=1, start=now)]
    return min(dates) if dates else None


def scheduled_deployments(api: str, auth: str | None = None) -> list[dict[str, Any]]:
    """Deployments that are not paused and have at least one active schedule: id, full name
    (flow/deployment), the active schedules, and when they last changed."""
    status, body = _request("POST", f"{api}/deployments/filter", {"limit": 200}, auth=auth)
    if status != 200 or not isinstance(body, list):
        raise PrefectServerError(f"could not list deployments: {_refused(status, api)}")
    chosen = [
        d
        for d in body
        if not d.get("paused") and any(s.get("active") for s in d.get("schedules") or [])
    ]
    flow_ids = sorted({str(d["flow_id"]) for d in chosen})
    names: dict[str, str] = {}
    if flow_ids:
        status, flows = _request(
            "POST", f"{api}/flows/filter", {"flows": {"id": {"any_": flow_ids}}}, auth=auth
        )
        if status == 200 and isinstance(flows, list):
            names = {str(f["id"]): str(f["name"]) for f in flows}
    out: list[dict[str, Any]] = []
    for d in chosen:
        active = [s for s in d["schedules"] if s.get("active")]
        changed = [w for w in (_when(s.get("updated")) for s in active) if w is not None]
        out.append(
            {
                "id": str(d["id"]),
                "name": f"{names.get(str(d['flow_id']), '?')}/{d['name']}",
                "schedules": [s["schedule"] for s in active],
                "changed": max(changed) if changed else None,
            }
        )
    return sorted(out, key=lambda d: d["name"])


def _runs(api: str, auth: str | None, body: dict[str, Any]) -> list[dict[str, Any]]:
    status, found = _request("POST", f"{api}/flow_runs/filter", body, auth=auth)
    return list(found) if status == 200 and isinstance(found, list) else []


def deployment_runs(
    api: str, deployment_id: str, now: datetime, auth: str | None = None
) -> dict[str, Any]:
    """What the scheduler made of one deployment: upcoming runs (scheduled, expected after
    ``now``), the next one, overdue ones (scheduled, due over a minute ago: no worker took
    them), when the newest auto-scheduled run was created, and the last one that started."""
    deployment = {"id": {"any_": [deployment_id]}}
    scheduled = {"type": {"any_": ["SCHEDULED"]}}
    upcoming_filter = {
        "deployments": deployment,
        "flow_runs": {"state": scheduled, "expected_start_time": {"after_": now.isoformat()}},
    }
    status, upcoming = _request("POST", f"{api}/flow_runs/count", upcoming_filter, auth=auth)
    overdue_before = (now - timedelta(minutes=1)).isoformat()
    overdue_filter = {
        "deployments": deployment,
        "flow_runs": {"state": scheduled, "expected_start_time": {"before_": overdue_before}},
    }
    _, overdue = _request("POST", f"{api}/flow_runs/count", overdue_filter, auth=auth)
    following = _runs(api, auth, {**upcoming_filter, "sort": "EXPECTED_START_TIME_ASC", "limit": 1})
    furthest = _runs(
        api, auth, {"deployments": deployment, "sort": "EXPECTED_START_TIME_DESC", "limit": 10}
    )
    started = _runs(
        api,
        auth,
        {
            "deployments": deployment,
            "flow_runs": {"state": {"type": {"not_any_": ["SCHEDULED", "PENDING"]}}},
            "sort": "START_TIME_DESC",
            "limit": 10,
        },
    )
    created = [_when(r.get("created")) for r in furthest if r.get("auto_scheduled")]
    last = next((r for r in started if r.get("auto_scheduled")), None)
    return {
        "upcoming": int(upcoming) if status == 200 and isinstance(upcoming, int) else 0,
        "overdue": int(overdue) if isinstance(overdue, int) else 0,
        "next_run": following[0].get("expected_start_time") if following else None,
        "newest_auto_created": max((c for c in created if c), default=None),
        "last_auto_run": (
            {
                "id": last.get("id"),
                "state": (last.get("state") or {}).get("type"),
                "started": last.get("start_time"),
            }
            if last
            else None
        ),
    }


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
    auth: str | None = None,
) -> Started:
    """Start ``prefect server start`` on PostgreSQL (requiring ``auth`` from its clients when
    given); return once ``/api/health`` answers."""
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
        env=server_env(database, host, port, home, base=env, auth=auth),
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
    auth: str | None = None,
) -> tuple[int, datetime]:
    """Start a process worker on pool ``site``: (pid, when). Wait with :func:`wait_worker`."""
    since = datetime.now(UTC).replace(microsecond=0)
    pid = spawn(
        worker_command(owner, site),
        log,
        env=worker_env(api, home, repo_root, poll_s, base=env, auth=auth),
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
    auth: str | None = None,
) -> Started:
    """Return once the server has a heartbeat of the worker newer than ``since``; a worker that
    does not get there is stopped and the error quotes its log."""
    name = worker_name(site)

    def registered() -> bool:
        return any(
            w.get("name") == name and _heartbeat_after(w, since)
            for w in pool_workers(api, site, auth=auth)
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
