"""The orchestrator on the lab: Prefect's server on ``ops-db`` and a worker per site.

:mod:`drp.adapters.prefect_server` knows how to run Prefect's processes; this module knows the
lab: the server's database is a ``prefect`` database in the lab's ``ops-db`` (the platform's own
database, which DC faults never touch), unless ``PREFECT_SERVER_DATABASE_CONNECTION_URL`` names
another PostgreSQL; the processes, their logs and ``PREFECT_HOME`` live under the lab root; the
pids are kept in the lab's state (``prefect_server``, ``dc_worker_pid``, ``drc_worker_pid``) so
that ``drp lab break dc-power-loss`` stops the DC's worker as it stops the DC's other processes.

Every start and stop is recorded in the platform's own ledger
(``<evidence>/platform/orchestrator/``), hash-chained like every run's.

The server requires Prefect's basic auth: the credential (``drp:<random>``) is generated once
into the lab's secrets (``<lab>/secrets/prefect-api-auth``, mode 0600), given to the server and
the workers in their environments, sent on every call drp makes, and never printed, logged or
recorded. :meth:`Orchestrator.client_env` is what any other part of drp uses to talk to the
lab's server.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from drp.adapters import prefect_server as ps
from drp.domain.scheduling import (
    SchedulerLog,
    SchedulerSettings,
    ScheduleView,
    expected_window,
    judge_scheduler,
)
from drp.errors import EvidenceError, LabError
from drp.lab.config import OPS_DATABASE, SUPERUSER, repo_root
from drp.lab.core import Lab
from drp.lab.procs import owned
from drp.ledger import Ledger
from drp.settings import Settings

Progress = Callable[[str], None]
DATABASE_ENV = "PREFECT_SERVER_DATABASE_CONNECTION_URL"
AUTH_FILE = "prefect-api-auth"
AUTH_USER = "drp"
POOL_DESCRIPTIONS = {
    "dc": "Runs at the Data Center: checks and backups beside the primary.",
    "drc": "Runs at the Disaster Recovery Center: failover, resync, failback, drills, manual "
    "mode; it must outlive the DC.",
}


def _quiet(_: str) -> None:
    pass


@dataclass
class Orchestrator:
    """Prefect server and workers of one lab."""

    lab: Lab
    progress: Progress = field(default=_quiet)
    settings: Settings = field(default_factory=Settings)

    # -- places --------------------------------------------------------------------------------
    @property
    def owner(self) -> str:
        return self.lab.marker

    @property
    def home(self) -> Path:
        return self.lab.cfg.root / "prefect" / "home"

    def log(self, name: str) -> Path:
        return self.lab.cfg.logs / f"{name}.log"

    def _require_lab(self) -> None:
        if not self.lab.cfg.state_file.exists():
            raise LabError(f"no lab at {self.lab.cfg.root} (hint: drp lab up)")

    # -- the API credential --------------------------------------------------------------------
    @property
    def auth_file(self) -> Path:
        return self.lab.cfg.secrets_file.parent / AUTH_FILE

    def auth_string(self) -> str:
        """The lab server's API credential (``drp:<random>``), generated once into a 0600 file
        in the lab's secrets; a shell reads it with ``$(cat <lab>/secrets/prefect-api-auth)``."""
        path = self.auth_file
        if path.exists():
            value = path.read_text().strip()
            ps.check_auth_string(value)
            return value
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        value = f"{AUTH_USER}:{secrets.token_urlsafe(24)}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
        return value

    def _known_secrets(self) -> tuple[str, ...]:
        auth = self.auth_string()
        return (self.lab.password(), auth, auth.partition(":")[2])

    def _ledger(self) -> Ledger:
        directory = self.settings.evidence_dir / "platform" / "orchestrator"
        known = self._known_secrets()
        try:
            return Ledger.open(directory, known_secrets=known, reason="orchestrator change")
        except EvidenceError:
            if (directory / "manifest.json").exists():
                raise
            return Ledger.create(
                directory,
                "platform-orchestrator",
                {"lab": str(self.lab.cfg.root)},
                known_secrets=known,
            )

    def _record(self, kind: str, data: dict[str, Any]) -> None:
        self._ledger().append(kind, data)

    # -- server --------------------------------------------------------------------------------
    def database_url(self) -> tuple[str, str]:
        """(URL, where it comes from). The lab's ops-db unless the environment names one."""
        given = os.environ.get(DATABASE_ENV)
        if given:
            ps.check_database_url(given)
            return given, f"{DATABASE_ENV} (environment)"
        cfg = self.lab.cfg
        admin = self.lab.cluster("ops-db").dsn(OPS_DATABASE)
        ps.ensure_server_database(admin, ps.SERVER_DATABASE)
        url = ps.database_url(
            "127.0.0.1", cfg.port("ops-db"), SUPERUSER, self.lab.password(), ps.SERVER_DATABASE
        )
        return url, f"lab ops-db, database {ps.SERVER_DATABASE!r}"

    def server_state(self) -> dict[str, Any]:
        return dict(self.lab._state().get("prefect_server") or {})

    def server_up(self, host: str = ps.DEFAULT_HOST, port: int | None = None) -> dict[str, Any]:
        """Start the server unless ours is running; return its status. ``port`` defaults to the
        lab's (:attr:`drp.lab.config.LabConfig.prefect_port`)."""
        self._require_lab()
        port = port or self.lab.cfg.prefect_port
        state = self.server_state()
        if owned(state.get("pid"), self.owner) and ps.healthy(state["api"]):
            self.progress(f"Prefect server already running at {state['api']}")
            return self.server_status()
        if not self.lab.status()["components"]["ops-db"]["up"]:
            raise LabError("ops-db is down: the server's database (hint: drp lab up)")
        url, source = self.database_url()
        auth = self.auth_string()
        self.progress(f"Prefect server: database {ps.redact_url(url)} ({source})")
        self.progress(f"Prefect server: starting on http://{host}:{port} (migrations, health)")
        log = self.log("prefect-server")
        log_offset = log.stat().st_size if log.exists() else 0  # this server's lines start here
        scheduler = ps.scheduler_settings()  # what the server reads from the same environment
        started = ps.start_server(self.owner, url, self.home, log, host=host, port=port, auth=auth)
        info = {
            "pid": started.pid,
            "api": started.endpoint,
            "ui": started.endpoint.removesuffix("/api"),
            "host": host,
            "port": port,
            "database": ps.redact_url(url),
            "database_source": source,
            "log": str(started.log),
            "log_offset": log_offset,
            "started_at": datetime.now(UTC).isoformat(),
            "auth": f"basic ({AUTH_USER}:***, {self.auth_file})",
            "scheduler": scheduler,
        }
        self.lab._update_state(prefect_server=info)
        self._record("prefect.server.started", info)
        for pool in ps.SITES:
            if ps.ensure_work_pool(started.endpoint, pool, POOL_DESCRIPTIONS[pool], auth=auth):
                self.progress(f"work pool {pool} created (process)")
                self._record("prefect.work_pool.created", {"pool": pool, "type": "process"})
        return self.server_status()

    def server_status(self, now: datetime | None = None) -> dict[str, Any]:
        """Whether the server runs, answers and accepts our credential; its pools' workers; and
        the scheduler's health (:func:`drp.domain.scheduling.judge_scheduler`). ``ok`` is what
        ``drp server status`` exits on."""
        state = self.server_state()
        running = owned(state.get("pid"), self.owner)
        api = state.get("api")
        ok = bool(api) and running and ps.healthy(api)
        auth = self.auth_string() if ok else None
        access = ps.access(api, auth) if ok else 0
        authorized = access == 200
        status = {
            **state,
            "running": running,
            "healthy": ok,
            "authorized": authorized,
            "version": ps.server_version(api, auth) if authorized else None,
            "pools": {
                pool: [
                    {"name": w.get("name"), "status": w.get("status")}
                    for w in ps.pool_workers(api, pool, auth=auth)
                ]
                for pool in ps.SITES
            }
            if authorized
            else {},
        }
        if ok and not authorized:
            status["problem"] = (
                f"the server refuses the lab's credential (HTTP {access}); it was started with "
                f"another one (hint: drp server down; drp server up)"
            )
        status["scheduler"] = (
            self.scheduler_health(api, auth, now or datetime.now(UTC)) if authorized else None
        )
        status["ok"] = ok and authorized and bool(status["scheduler"]["ok"])
        return status

    def scheduler_health(self, api: str, auth: str | None, now: datetime) -> dict[str, Any]:
        """Deployments with active schedules, what the scheduler made of each, its errors in
        the server's log since the server started, and the verdict."""
        state = self.server_state()
        given = state.get("scheduler") or ps.scheduler_settings()
        settings = SchedulerSettings(
            enabled=bool(given["enabled"]),
            loop_seconds=float(given["loop_seconds"]),
            horizon=timedelta(seconds=float(given["max_scheduled_time_s"])),
        )
        started = datetime.fromisoformat(state["started_at"]) if state.get("started_at") else now
        lines = ps.read_log_since(Path(state.get("log", "")), int(state.get("log_offset") or 0))
        errors, last_error = ps.scheduler_errors(lines)
        log = SchedulerLog(errors, last_error)
        views: list[ScheduleView] = []
        rows: list[dict[str, Any]] = []
        for dep in ps.scheduled_deployments(api, auth):
            runs = ps.deployment_runs(api, dep["id"], now, auth)
            changed = dep["changed"]
            view = ScheduleView(
                deployment=dep["name"],
                active_since=max(started, changed) if changed else started,
                next_due=ps.next_schedule_date(dep["schedules"], now),
                upcoming=runs["upcoming"],
                newest_auto_created=runs["newest_auto_created"],
            )
            views.append(view)
            rows.append(
                {
                    "deployment": view.deployment,
                    "schedules": [ps.describe_schedule(s) for s in dep["schedules"]],
                    "next_due": view.next_due.isoformat() if view.next_due else None,
                    "upcoming": view.upcoming,
                    "next_run": runs["next_run"],
                    "overdue": runs["overdue"],
                    "newest_auto_created": _iso(view.newest_auto_created),
                    "last_auto_run": runs["last_auto_run"],
                }
            )
        verdict = judge_scheduler(views, log, settings, now)
        newest = max(
            (v for v in views if v.newest_auto_created),
            key=lambda v: v.newest_auto_created or now,
            default=None,
        )
        return {
            "state": verdict.state.value,
            "ok": verdict.ok,
            "reasons": list(verdict.reasons),
            "hint": verdict.hint,
            "settings": {**asdict(settings), "horizon": settings.horizon.total_seconds()},
            "window_s": expected_window(settings).total_seconds(),
            "deployments": rows,
            "newest_auto_scheduled": {
                "deployment": newest.deployment,
                "created": _iso(newest.newest_auto_created),
            }
            if newest
            else None,
            "log_errors": {"count": errors, "last": last_error, "log": state.get("log")},
        }

    def server_down(self) -> bool:
        state = self.server_state()
        stopped = ps.stop(state.get("pid"), self.owner)
        if stopped:
            self._record("prefect.server.stopped", {"pid": state.get("pid")})
        return stopped

    # -- clients -------------------------------------------------------------------------------
    def api(self) -> str:
        """The server the workers poll: ours on the lab, or PREFECT_API_URL when it is set."""
        return self.access()[0]

    def access(self) -> tuple[str, str | None]:
        """(API address, credential) of the server drp talks to: the lab's own (with the lab's
        credential), or the one PREFECT_API_URL names (with PREFECT_API_AUTH_STRING, if set)."""
        state = self.server_state()
        ours = str(state["api"]) if state.get("api") else None
        given = (os.environ.get("PREFECT_API_URL") or "").rstrip("/")
        if given and given != ours:
            return given, os.environ.get("PREFECT_API_AUTH_STRING") or None
        if not ours or not owned(state.get("pid"), self.owner):
            raise LabError("no Prefect server runs for this lab (hint: drp server up)")
        return ours, self.auth_string()

    def client_env(self) -> dict[str, str]:
        """The environment a Prefect client (a ``drp`` flow command, ``prefect deploy``, a
        worker) needs for the lab's server: PREFECT_API_URL and PREFECT_API_AUTH_STRING. The
        credential is a secret: pass this to a child process, never print it."""
        return ps.client_env(*self.access())

    # -- workers -------------------------------------------------------------------------------
    def workers_up(
        self, sites: Sequence[str] = ps.SITES, poll_s: float = ps.DEFAULT_WORKER_POLL_S
    ) -> dict[str, Any]:
        """Start one process worker per site (pool ``dc``, ``drc``) unless it runs."""
        self._require_lab()
        api, auth = self.access()
        if not ps.healthy(api):
            raise LabError(f"the Prefect server at {api} does not answer (hint: drp server up)")
        state = self.lab._state()
        spawned: dict[str, tuple[int, datetime]] = {}
        for site in sites:  # all at once: each takes a few seconds to import Prefect
            key = f"{site}_worker_pid"
            if owned(state.get(key), self.owner):
                self.progress(f"{site} worker already running (pid {state[key]})")
                continue
            ps.ensure_work_pool(api, site, POOL_DESCRIPTIONS[site], auth=auth)
            self.progress(f"{site} worker: starting on pool {site}")
            spawned[site] = ps.spawn_worker(
                self.owner,
                site,
                api,
                self.home,
                self.log(f"worker-{site}"),
                repo_root(),
                poll_s=poll_s,
                env={**os.environ, "DRP_LAB_ROOT": str(self.lab.cfg.root)},
                auth=auth,
            )
            self.lab._update_state(**{key: spawned[site][0]})
        for site, (pid, since) in spawned.items():
            started = ps.wait_worker(
                self.owner, site, api, pid, since, self.log(f"worker-{site}"), auth=auth
            )
            self.progress(f"{site} worker: polling pool {site} (pid {pid})")
            self._record(
                "prefect.worker.started",
                {"site": site, "pool": site, "pid": pid, "api": api, "log": str(started.log)},
            )
        return self.workers_status()

    def workers_status(self) -> dict[str, Any]:
        state = self.lab._state()
        try:
            api, auth = self.access()
        except LabError:
            api, auth = None, None
        known = {site: ps.pool_workers(api, site, auth=auth) if api else [] for site in ps.SITES}
        out: dict[str, Any] = {}
        for site in ps.SITES:
            pid = state.get(f"{site}_worker_pid")
            seen = [w for w in known[site] if w.get("name") == ps.worker_name(site)]
            out[site] = {
                "pool": site,
                "name": ps.worker_name(site),
                "pid": pid,
                "running": owned(pid, self.owner),
                "server_status": seen[0].get("status") if seen else None,
                "last_heartbeat": seen[0].get("last_heartbeat_time") if seen else None,
                "log": str(self.log(f"worker-{site}")),
            }
        return out

    def workers_down(self, sites: Sequence[str] = ps.SITES) -> list[str]:
        stopped: list[str] = []
        state = self.lab._state()
        for site in sites:
            pid = state.get(f"{site}_worker_pid")
            if ps.stop(pid, self.owner):
                stopped.append(site)
                self._record("prefect.worker.stopped", {"site": site, "pid": pid})
        return stopped


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def for_lab(root: Path | None = None, progress: Progress = _quiet) -> Orchestrator:
    settings = Settings()
    return Orchestrator(Lab.from_env(root=root or settings.lab_root), progress, settings)
