"""The orchestrator on the lab: Prefect's server on ``ops-db`` and a worker per site.

:mod:`drp.adapters.prefect_server` knows how to run Prefect's processes; this module knows the
lab: the server's database is a ``prefect`` database in the lab's ``ops-db`` (the platform's own
database, which DC faults never touch), unless ``PREFECT_SERVER_DATABASE_CONNECTION_URL`` names
another PostgreSQL; the processes, their logs and ``PREFECT_HOME`` live under the lab root; the
pids are kept in the lab's state (``prefect_server``, ``dc_worker_pid``, ``drc_worker_pid``) so
that ``drp lab break dc-power-loss`` stops the DC's worker as it stops the DC's other processes.

Every start and stop is recorded in the platform's own ledger
(``<evidence>/platform/orchestrator/``), hash-chained like every run's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drp.adapters import prefect_server as ps
from drp.errors import EvidenceError, LabError
from drp.lab.config import OPS_DATABASE, SUPERUSER, repo_root
from drp.lab.core import Lab
from drp.lab.procs import owned
from drp.ledger import Ledger
from drp.settings import Settings

Progress = Callable[[str], None]
DATABASE_ENV = "PREFECT_SERVER_DATABASE_CONNECTION_URL"
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

    def _ledger(self) -> Ledger:
        directory = self.settings.evidence_dir / "platform" / "orchestrator"
        secrets = (self.lab.password(),)
        try:
            return Ledger.open(directory, known_secrets=secrets, reason="orchestrator change")
        except EvidenceError:
            if (directory / "manifest.json").exists():
                raise
            return Ledger.create(
                directory,
                "platform-orchestrator",
                {"lab": str(self.lab.cfg.root)},
                known_secrets=secrets,
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

    def server_up(self, host: str = ps.DEFAULT_HOST, port: int = ps.DEFAULT_PORT) -> dict[str, Any]:
        """Start the server unless ours is running; return its status."""
        self._require_lab()
        state = self.server_state()
        if owned(state.get("pid"), self.owner) and ps.healthy(state["api"]):
            self.progress(f"Prefect server already running at {state['api']}")
            return self.server_status()
        if not self.lab.status()["components"]["ops-db"]["up"]:
            raise LabError("ops-db is down: the server's database (hint: drp lab up)")
        url, source = self.database_url()
        self.progress(f"Prefect server: database {ps.redact_url(url)} ({source})")
        self.progress(f"Prefect server: starting on http://{host}:{port} (migrations, health)")
        started = ps.start_server(
            self.owner, url, self.home, self.log("prefect-server"), host=host, port=port
        )
        info = {
            "pid": started.pid,
            "api": started.endpoint,
            "ui": started.endpoint.removesuffix("/api"),
            "host": host,
            "port": port,
            "database": ps.redact_url(url),
            "database_source": source,
            "log": str(started.log),
            "started_at": datetime.now(UTC).isoformat(),
        }
        self.lab._update_state(prefect_server=info)
        self._record("prefect.server.started", info)
        for pool in ps.SITES:
            if ps.ensure_work_pool(started.endpoint, pool, POOL_DESCRIPTIONS[pool]):
                self.progress(f"work pool {pool} created (process)")
                self._record("prefect.work_pool.created", {"pool": pool, "type": "process"})
        return self.server_status()

    def server_status(self) -> dict[str, Any]:
        state = self.server_state()
        running = owned(state.get("pid"), self.owner)
        api = state.get("api")
        ok = bool(api) and running and ps.healthy(api)
        return {
            **state,
            "running": running,
            "healthy": ok,
            "version": ps.server_version(api) if ok else None,
            "pools": {
                pool: [
                    {"name": w.get("name"), "status": w.get("status")}
                    for w in ps.pool_workers(api, pool)
                ]
                for pool in ps.SITES
            }
            if ok
            else {},
        }

    def server_down(self) -> bool:
        state = self.server_state()
        stopped = ps.stop(state.get("pid"), self.owner)
        if stopped:
            self._record("prefect.server.stopped", {"pid": state.get("pid")})
        return stopped

    # -- workers -------------------------------------------------------------------------------
    def api(self) -> str:
        """The server the workers poll: ours on the lab, or PREFECT_API_URL when it is set."""
        given = os.environ.get("PREFECT_API_URL")
        if given:
            return given.rstrip("/")
        state = self.server_state()
        if not state.get("api") or not owned(state.get("pid"), self.owner):
            raise LabError("no Prefect server runs for this lab (hint: drp server up)")
        return str(state["api"])

    def workers_up(
        self, sites: Sequence[str] = ps.SITES, poll_s: float = ps.DEFAULT_WORKER_POLL_S
    ) -> dict[str, Any]:
        """Start one process worker per site (pool ``dc``, ``drc``) unless it runs."""
        self._require_lab()
        api = self.api()
        if not ps.healthy(api):
            raise LabError(f"the Prefect server at {api} does not answer (hint: drp server up)")
        state = self.lab._state()
        spawned: dict[str, tuple[int, datetime]] = {}
        for site in sites:  # all at once: each takes a few seconds to import Prefect
            key = f"{site}_worker_pid"
            if owned(state.get(key), self.owner):
                self.progress(f"{site} worker already running (pid {state[key]})")
                continue
            ps.ensure_work_pool(api, site, POOL_DESCRIPTIONS[site])
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
            )
            self.lab._update_state(**{key: spawned[site][0]})
        for site, (pid, since) in spawned.items():
            started = ps.wait_worker(self.owner, site, api, pid, since, self.log(f"worker-{site}"))
            self.progress(f"{site} worker: polling pool {site} (pid {pid})")
            self._record(
                "prefect.worker.started",
                {"site": site, "pool": site, "pid": pid, "api": api, "log": str(started.log)},
            )
        return self.workers_status()

    def workers_status(self) -> dict[str, Any]:
        state = self.lab._state()
        try:
            api: str | None = self.api()
        except LabError:
            api = None
        known = {site: ps.pool_workers(api, site) if api else [] for site in ps.SITES}
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


def for_lab(root: Path | None = None, progress: Progress = _quiet) -> Orchestrator:
    settings = Settings()
    return Orchestrator(Lab.from_env(root=root or settings.lab_root), progress, settings)
