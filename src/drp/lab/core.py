"""The embedded DC/DRC lab: up, status, break, repair, down.

One object, :class:`Lab`, over one root directory. Every operation is idempotent: ``up`` starts
what is not running and builds what does not exist; ``down`` stops by process id what the lab
started. The lab never makes two writable primaries itself: it will not start the old DC primary
of a pair while its DRC standby has been promoted (that is the resync flow's job).

What the lab is made of is its :class:`~drp.lab.site.Shape`: one database pair and one service
(the lab of ``runbooks/lab.yaml``), or, built with ``up(runbook=...)``, a small site — a pair per
runbook database, an app per service per site, a front-door route per service — remembered in
``state.json`` so that every later command keeps it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from drp.adapters import postgres as pg
from drp.adapters.http import http_json
from drp.errors import LabError, PostgresError
from drp.lab import facility, frontdoor, inventory, pairs, placement, ready, site, sshd
from drp.lab.config import (
    APP_DATABASE,
    OPS_DATABASE,
    SUPERUSER,
    LabConfig,
    extra_pair_names,
    find_pg_bin,
    run_as_user,
    unprivileged_users,
)
from drp.lab.pgcluster import Cluster
from drp.lab.procs import kill_now, owned, spawn, terminate, terminate_all, wait_until
from drp.lab.site import AppShape, PairShape, Shape

T = TypeVar("T")
FAULTS = ("dc-db-crash", "dc-power-loss", "dc-heat", "national-network-loss")
DEFAULT_READY_TIMEOUT_S = 60.0


def default_ready_timeout() -> float:
    """How long ``drp lab up`` waits for its standbys: ``DRP_LAB_READY_TIMEOUT_S`` or 60 s."""
    raw = os.environ.get("DRP_LAB_READY_TIMEOUT_S")
    if not raw:
        return DEFAULT_READY_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError as exc:
        raise LabError(
            f"DRP_LAB_READY_TIMEOUT_S={raw!r} is not a number of seconds (hint: 60)"
        ) from exc
    if value <= 0:
        raise LabError(f"DRP_LAB_READY_TIMEOUT_S={raw!r} must be more than 0 seconds")
    return value


Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass
class Lab:
    cfg: LabConfig
    progress: Progress = field(default=_quiet)

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_env(
        cls, root: Path | None = None, port_base: int | None = None, progress: Progress = _quiet
    ) -> Lab:
        return cls(LabConfig.from_env(root, port_base), progress)

    @property
    def marker(self) -> str:
        """A string every lab process carries on its command line (for safe kills)."""
        return str(self.cfg.root)

    # -- persistent state ----------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        try:
            return json.loads(self.cfg.state_file.read_text())
        except FileNotFoundError:
            return {}

    def _save_state(self, state: dict[str, Any]) -> None:
        self.cfg.root.mkdir(parents=True, exist_ok=True)
        tmp = self.cfg.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(tmp, self.cfg.state_file)

    def _update_state(self, **changes: Any) -> None:
        state = self._state()
        state.update(changes)
        self._save_state(state)

    def password(self) -> str:
        """The lab's database password, generated once and kept in a 0600 file."""
        path = self.cfg.secrets_file
        if path.exists():
            return json.loads(path.read_text())["password"]
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        value = secrets.token_urlsafe(18)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"password": value}, fh)
        return value

    def cluster(self, name: str) -> Cluster:
        return Cluster(self.cfg, name, find_pg_bin(), run_as_user(), self.password())

    # -- where the servers' state lives --------------------------------------------------------
    def _place_servers(self) -> None:
        """Decide (once per lab) where the state that the unprivileged users must reach lives,
        and check that they can reach it: raises LabError before anything starts when not.

        Kept inside the root when they can enter it; otherwise in a server directory of its own
        outside the checkout (:mod:`drp.lab.placement`). A lab keeps what it was built with."""
        cfg = self.cfg
        users = unprivileged_users()
        state = self._state()
        in_root_before = (cfg.root / "pg").is_dir() and not (cfg.root / "pg").is_symlink()
        new_lab = "server_dir" not in state and not in_root_before
        if not new_lab:  # decided when it was built (or built before server directories)
            server_root = Path(state["server_dir"]) if state.get("server_dir") else None
        elif users and placement.first_block(cfg.root, users) is not None:
            server_root = placement.server_dir_for(cfg.root)
        else:
            server_root = None
        if server_root is None:
            block = placement.first_block(cfg.root, users) if users and not new_lab else None
            if block is not None:
                user, where = block
                raise LabError(
                    f"the lab at {cfg.root} keeps its PostgreSQL data inside it, and {user!r} "
                    f"(who runs its servers) can no longer enter {where}: nothing was started "
                    "(hint: rebuild it with `drp lab down --purge` then `drp lab up`: its "
                    f"servers then live in {placement.server_dir_for(cfg.root)}; or let that "
                    f"user enter {where} yourself)"
                )
            self._update_state(server_dir=None)
            return
        with placement.locked(server_root.parent):
            made = placement.prepare(server_root, cfg.root)
            block = placement.first_block(server_root, users)
            if block is not None:
                if made:
                    placement.remove_unlocked(server_root, cfg.root)
                    (cfg.root / "pg").unlink(missing_ok=True)
                user, where = block
                raise LabError(
                    f"the lab's servers run as {user!r}, who cannot enter {where} on the way "
                    f"to their directory {server_root}: nothing was started (hint: set "
                    "DRP_LAB_SERVER_BASE to a directory that user can reach, such as "
                    f"{placement.DEFAULT_BASE})"
                )
            self._update_state(server_dir=str(server_root))
            for gone in placement.prune_orphans(server_root.parent, keep=server_root):
                self.progress(f"removed {gone}: the server directory of a lab that is gone")
        self.cfg = replace(cfg, server_root=server_root)

    # -- shape ---------------------------------------------------------------------------------
    @property
    def shape(self) -> Shape:
        """What this lab is made of: the site it was built for (``up(runbook=...)``), else the
        lab of ``runbooks/lab.yaml`` (one pair, one service)."""
        recorded = self._state().get("shape")
        return Shape.from_dict(recorded) if recorded else site.default()

    def _adopt_shape(self, runbook: str | Path | None) -> Shape:
        """The shape ``up`` builds: the recorded one, or the runbook's for a lab not built yet.
        A built lab keeps its shape: another one is refused before anything starts (``reset``
        with a runbook rebuilds the sites in a new shape)."""
        recorded = self._state().get("shape")
        current = Shape.from_dict(recorded) if recorded else site.default()
        if runbook is None:
            shape = current
        else:
            wanted = _runbook_shape(runbook)
            if _same_shape(wanted, current):
                shape = current if recorded else wanted
            elif recorded or self.cluster("dc-db").exists:
                built_for = current.runbook or "runbooks/lab.yaml"
                raise LabError(
                    f"the lab at {self.cfg.root} is built for {built_for}"
                    f" ({_describe(current)}), not for {wanted.runbook} ({_describe(wanted)}): "
                    f"nothing was changed (hint: drp lab reset --runbook {runbook} rebuilds the "
                    "sites in that shape and keeps ops-db and Prefect)"
                )
            else:
                shape = wanted
        if shape.routed:
            self._update_state(shape=shape.as_dict())
        self.cfg = replace(self.cfg, site_ports=shape.ports)
        return shape

    # -- up ------------------------------------------------------------------------------------
    def up(
        self,
        sync: bool = False,
        extra_pairs: int | None = None,
        ready_timeout: float | None = None,
        runbook: str | Path | None = None,
    ) -> dict[str, Any]:
        """Build what is missing, start what is stopped, and return the status once the lab is
        ready: every standby streams from its primary and, with ``sync``, a commit on each DC
        primary waits for its DRC standby (:mod:`drp.lab.ready`; LabError after
        ``ready_timeout`` seconds, default ``DRP_LAB_READY_TIMEOUT_S`` or 60).

        ``runbook`` (a lab runbook, such as ``runbooks/lab-site.yaml``) builds the site it
        describes (:mod:`drp.lab.site`); left out, the lab keeps the shape it was built with.
        ``extra_pairs`` adds plain database pairs beyond the lab's own (for readiness checks at
        scale); left out, the lab keeps the number it was started with."""
        timeout = ready_timeout if ready_timeout is not None else default_ready_timeout()
        self.cfg.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.cfg.root, 0o755)  # the lab's own directory; its ancestors are not ours
        self._place_servers()
        shape = self._adopt_shape(runbook)
        cfg = self.cfg
        for sub in (cfg.logs, cfg.run_dir):
            sub.mkdir(parents=True, exist_ok=True)
        state = self._state()
        state.update(
            root=str(cfg.root),
            port_base=cfg.port_base,
            pg_bin=str(find_pg_bin()),
            run_as=run_as_user(),
            sync=sync if "sync" not in state or sync else state["sync"],
        )
        self._save_state(state)
        ops = self.cluster("ops-db")
        if not cfg.facility_file.exists():
            facility.write(cfg, facility.normal())
        from drp.lab.approvers import enrol_lab_roster  # one-time codes of the lab roster

        enrol_lab_roster(cfg)

        self.progress("ops-db: the platform's own database")
        ops.initdb()
        ops.start()
        ops.ensure_database(OPS_DATABASE)

        self._start_uplink(shape)

        sync_on = bool(self._state().get("sync"))
        _each(shape.pairs, lambda pair: self._up_pair(pair, sync_on))

        self.start_apps(shape.apps)

        self.progress("front door: nginx")
        frontdoor.write_config(cfg, active_site="dc", shape=shape)
        if not owned(frontdoor.pid(cfg), self.marker):
            frontdoor.start(cfg)

        self.progress("sshd: loopback, host-key checked")
        sshd.prepare(cfg)
        if not owned(sshd.pid(cfg), self.marker):
            sshd.start(cfg)

        self._write_inventory_vars()
        if extra_pairs is not None:
            if extra_pairs < self.extra_pairs:  # fewer than before: stop the ones beyond
                pairs.stop_all(self.cluster, self.extra_pairs, keep=extra_pairs)
            self._update_state(extra_pairs=extra_pairs)
        pairs.build_and_start(self.cluster, self.extra_pairs, self.progress)
        took = ready.wait_ready(self.replication_links(), timeout, self.progress)
        self.progress(f"ready: every standby streams ({took:.1f} s)")
        return self.status()

    def _up_pair(self, pair: PairShape, sync: bool) -> None:
        """Build one database pair where it is missing (the standby by base backup through the
        DC uplink, as the DRC reaches the DC), start it, and on a DC that is primary: the SKP
        schema and the replication mode."""
        dc, drc = self.cluster(pair.dc), self.cluster(pair.drc)
        if not dc.exists:
            self.progress(f"{pair.dc}: building the DC primary" + _of(pair))
            dc.initdb()
        if not drc.exists:
            self._start_dc_db_if_safe(dc, drc, assume_primary=True)
            dc.ensure_slot(pair.slot)
            dc.ensure_app_schema()
            self.progress(f"{pair.drc}: base backup of {pair.dc} into a streaming standby")
            drc.basebackup_from(self.cfg.port(pair.uplink), slot=pair.slot)
        if drc.is_standby_configured:  # not promoted: the DC may start first, so that the
            self._start_dc_db_if_safe(dc, drc)  # standby finds its primary at its first try
        if not drc.running():
            self.progress(f"{pair.drc}: starting")
            drc.start()
        self._start_dc_db_if_safe(dc, drc)
        if dc.running() and not pg.server_role(dc.dsn()).in_recovery:
            dc.ensure_app_schema()
            dc.set_synchronous(pair.slot if sync else None)
            if sync:
                self.progress(f"{pair.dc}: synchronous replication to {pair.drc}")

    def replication_links(self) -> list[ready.Link]:
        """The replication the lab keeps, as it stands: each pair's DRC standby of its DC
        primary (synchronous when the lab is) and every extra pair's standby of its primary.

        After a failover of a pair (its DRC promoted) that pair has no link the lab keeps:
        rebuilding the old primary as a standby is the resync flow's, which waits for it."""
        links: list[ready.Link] = []
        sync = bool(self._state().get("sync"))
        for pair in self.shape.pairs:
            dc, drc = self.cluster(pair.dc), self.cluster(pair.drc)
            dc_primary = dc.running() and _safe(
                lambda dc=dc: not pg.server_role(dc.dsn()).in_recovery, False
            )
            if dc_primary and drc.is_standby_configured:
                links.append(ready.Link(drc, dc, pair.slot, sync=sync))
            elif dc.exists or drc.exists:
                self.progress(
                    f"{pair.id}: the DC is not the primary of a DRC standby (after a failover?): "
                    "not waiting for it (the resync flow rebuilds the old primary and waits)"
                )
        for index in range(1, self.extra_pairs + 1):
            primary, standby = (self.cluster(n) for n in extra_pair_names(index))
            links.append(ready.Link(standby, primary, pairs.SLOT))
        return links

    # -- reset ---------------------------------------------------------------------------------
    def reset(
        self,
        sync: bool | None = None,
        ready_timeout: float | None = None,
        runbook: str | Path | None = None,
    ) -> dict[str, Any]:
        """Rebuild both sites fresh — every database pair (extra pairs too), every app, the DC
        uplink, every front-door route to the DC, the facility normal — and keep the platform:
        ops-db (never stopped: it holds the Prefect server's database, the registry, the
        outbox), the Prefect server and workers of ``drp server up`` / ``drp workers up``, the
        lab's password, SSH keys and sshd. ``sync``: None keeps the lab's replication mode.
        ``runbook``: rebuild the sites in that runbook's shape (None keeps the lab's). Returns
        the status once ready, as :meth:`up` does; with no lab yet, it builds one."""
        if not self.cfg.state_file.exists():
            return self.up(sync=bool(sync), ready_timeout=ready_timeout, runbook=runbook)
        new_shape = _runbook_shape(runbook) if runbook is not None else None  # before stopping
        self._place_servers()
        state = self._state()
        shape = self.shape
        if new_shape is not None and _same_shape(new_shape, shape):
            new_shape = None  # the shape it has: keep it (and the ports it handed out)
        self.progress("reset: stopping the sites (ops-db and Prefect keep running)")
        keys = (*(app.pid_key for app in shape.apps), "uplink_pid")
        terminate_all([state.get(key) for key in keys] + [frontdoor.pid(self.cfg)], self.marker)
        names = [name for pair in shape.pairs for name in (pair.dc, pair.drc)]
        for index in range(1, self.extra_pairs + 1):
            names += extra_pair_names(index)

        def discard(name: str) -> None:
            cluster = self.cluster(name)
            cluster.stop(mode="immediate")  # thrown away next: no need for a clean shutdown
            cluster.remove()

        _each(names, discard)  # side by side: deleting a data directory is most of the time
        frontdoor.remove_routes(self.cfg)
        facility.write(self.cfg, facility.normal())
        if sync is not None:
            self._update_state(sync=sync)
        if new_shape is not None:
            self._update_state(shape=new_shape.as_dict() if new_shape.routed else None)
            self.cfg = replace(self.cfg, site_ports=new_shape.ports)
        self.progress("reset: building the DC and DRC sites fresh")
        return self.up(sync=bool(self._state().get("sync")), ready_timeout=ready_timeout)

    @property
    def extra_pairs(self) -> int:
        """How many extra database pairs this lab runs (``drp lab up --extra-pairs N``)."""
        return int(self._state().get("extra_pairs") or 0)

    def pair_dsns(self, index: int) -> tuple[str, str]:
        """(DC primary, DRC standby) DSNs of extra pair ``index`` (1-based)."""
        if not 1 <= index <= self.extra_pairs:
            raise LabError(
                f"the lab has {self.extra_pairs} extra database pairs, not {index} "
                f"(hint: drp lab up --extra-pairs {index})"
            )
        dc, drc = (self.cluster(n) for n in extra_pair_names(index))
        return dc.dsn(), drc.dsn()

    def site_pair_dsns(self, pair_id: str, application_name: str = "drp") -> tuple[str, str]:
        """(DC primary, DRC standby) DSNs of one of the lab's database pairs, on its SKP
        database: the DC reached through the uplink, as its clients reach it (a cut network
        makes it unreachable), the DRC directly."""
        pair = self.shape.pair(pair_id)
        cfg = self.cfg
        dc = (
            f"host=127.0.0.1 port={cfg.port(pair.uplink)} dbname={APP_DATABASE} "
            f"user={SUPERUSER} password={self.password()} application_name={application_name}"
        )
        drc = self.cluster(pair.drc).dsn(APP_DATABASE)
        return dc, drc.replace("application_name=drp", f"application_name={application_name}")

    def _start_dc_db_if_safe(self, dc: Cluster, drc: Cluster, assume_primary: bool = False) -> None:
        """Start a pair's DC server unless that could make a second writable primary."""
        if dc.running():
            return
        if dc.is_standby_configured or assume_primary or not drc.exists:
            self.progress(f"{dc.name}: starting")
            dc.start()
            return
        if drc.running() and not pg.server_role(drc.dsn()).in_recovery:
            self.progress(
                f"{dc.name}: left stopped — {drc.name} has been promoted; starting the old "
                "primary would make two writable primaries (rebuild it as a standby with the "
                "resync flow)"
            )
            return
        self.progress(f"{dc.name}: starting")
        dc.start()

    def _start_uplink(self, shape: Shape | None = None) -> None:
        """The DC's network link: one relay for every DC app, every DC database and sshd."""
        if owned(self._state().get("uplink_pid"), self.marker):
            return
        self.progress("uplink: the DC's network link")
        shape = shape or self.shape
        cfg = self.cfg
        routes = [
            *(f"{cfg.port(s.uplink)}:{cfg.port(s.dc_app.name)}" for s in shape.services),
            *(f"{cfg.port(p.uplink)}:{cfg.port(p.dc)}" for p in shape.pairs),
            f"{cfg.port('uplink-ssh')}:{cfg.port('ssh')}",
        ]
        pid = spawn(
            [
                sys.executable,
                "-m",
                "drp.lab.uplink",
                "--lab-root",
                self.marker,
                *(arg for route in routes for arg in ("--route", route)),
            ],
            cfg.logs / "uplink.log",
        )
        self._update_state(uplink_pid=pid)
        if not wait_until(lambda: _port_open(cfg.port("uplink-db")), 10):
            raise LabError(f"uplink did not start; see {cfg.logs / 'uplink.log'}")

    def start_app(self, site: str, service: str | None = None) -> None:
        """Start a service's SKP stand-in at a site (the first service's by default) unless it
        runs; it connects to its service's database pair at that site. The lab records its pid
        for ``down``."""
        shape = self.shape
        self.start_apps([(shape.service(service) if service else shape.main_service).app(site)])

    def start_apps(self, apps: Sequence[AppShape]) -> None:
        """Start the apps that do not run, all at once, then wait until each answers (a
        Python start each: side by side, ten apps take the time of one)."""
        started = [(app, port) for app in apps if (port := self._spawn_app(app)) is not None]
        for app, port in started:
            if not wait_until(lambda port=port: _port_open(port), 10):
                log = self.cfg.logs / f"{app.name}.log"
                raise LabError(f"{app.name} did not start; see {log}")

    def _spawn_app(self, app: AppShape) -> int | None:
        """Spawn one app unless it runs; its port, or None when it was running already."""
        if owned(self._state().get(app.pid_key), self.marker):
            return None
        shape = self.shape
        self.progress(f"{app.name}: SKP stand-in" + (f" of {app.service}" if shape.routed else ""))
        cfg = self.cfg
        pair = shape.pair(shape.service(app.service).pair)
        dsn_file = cfg.run_dir / f"{app.name}.dsn"
        fd = os.open(dsn_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(
                self.cluster(pair.server(app.site))
                .dsn(APP_DATABASE)
                .replace("application_name=drp", f"application_name={app.name}")
            )
        port = cfg.port(app.name)
        pid = spawn(
            [
                sys.executable,
                "-m",
                "drp.lab.skp_app",
                "--site",
                app.site,
                "--port",
                str(port),
                "--dsn-file",
                str(dsn_file),
                *(("--service", app.service) if shape.routed else ()),
                "--lab-root",
                self.marker,
            ],
            cfg.logs / f"{app.name}.log",
        )
        self._update_state(**{app.pid_key: pid})
        return port

    def _write_inventory_vars(self) -> None:
        """Variables for Ansible, as an inventory file used beside ``inventory/lab.yml`` (or,
        for a site lab, beside its runbook's inventory): :mod:`drp.lab.inventory`."""
        self.cfg.inventory_vars.write_text(inventory.render(self.cfg, self.shape))

    # -- status --------------------------------------------------------------------------------
    def dsn(self, name: str, dbname: str | None = None) -> str:
        if name in ("dc-db", "drc-db") or name in self._site_servers():
            default_db = APP_DATABASE
        elif name == "ops-db":
            default_db = OPS_DATABASE
        else:  # an extra pair: PostgreSQL only
            default_db = "postgres"
        return self.cluster(name).dsn(dbname or default_db)

    def _site_servers(self) -> set[str]:
        return {name for pair in self.shape.pairs for name in (pair.dc, pair.drc)}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.cfg.port(name)}"

    def app_url(self, service: str, site: str) -> str:
        """Where a service's app at a site answers (directly, not through the uplink)."""
        return self.url(self.shape.service(service).app(site).name)

    def route_url(self, service: str) -> str:
        """Where users reach a service at the front door: its route in a site lab, the front
        door itself in the lab of one service."""
        shape = self.shape
        shape.service(service)
        return self.url("frontdoor") + (f"/{service}" if shape.routed else "")

    def status(self) -> dict[str, Any]:
        """Every component: endpoint, up/down, role, replication and lag, the active site; and
        per database pair, per app and per route, the site's view of them."""
        cfg = self.cfg
        state = self._state()
        comps: dict[str, dict[str, Any]] = {}
        if not cfg.state_file.exists():
            return {"root": str(cfg.root), "built": False, "components": {}}
        shape = self.shape
        for name in ("dc-db", "drc-db", "ops-db"):
            comps[name] = self._db_status(name)
        for pair in shape.pairs[1:]:
            for name in (pair.dc, pair.drc):
                comps[name] = self._db_status(name)
        for app in shape.apps:
            comps[app.name] = self._app_status(app, state.get(app.pid_key))
        comps["frontdoor"] = {
            "url": self.url("frontdoor"),
            "up": frontdoor.served_site(cfg) is not None,
            "configured_site": frontdoor.configured_site(cfg),
            "serving_site": frontdoor.served_site(cfg),
        }
        comps["uplink"] = {
            "up": owned(state.get("uplink_pid"), self.marker),
            "ports": [cfg.port("uplink-app"), cfg.port("uplink-db"), cfg.port("uplink-ssh")]
            + [cfg.port(s.uplink) for s in shape.services[1:]]
            + [cfg.port(p.uplink) for p in shape.pairs[1:]],
        }
        p = sshd.paths(cfg)
        comps["sshd"] = {
            "host": "127.0.0.1",
            "port": cfg.port("ssh"),
            "up": owned(sshd.pid(cfg), self.marker) and _port_open(cfg.port("ssh")),
            "user": sshd.login_user(),
            "private_key": str(p["operator_key"]),
            "known_hosts": str(p["known_hosts"]),
        }
        comps["facility"] = {"file": str(cfg.facility_file), **facility.read(cfg)}
        extra = []
        for index in range(1, int(state.get("extra_pairs") or 0) + 1):
            dc_name, drc_name = extra_pair_names(index)
            extra.append(
                {
                    "index": index,
                    "dc": {"name": dc_name, **self._db_status(dc_name)},
                    "drc": {"name": drc_name, **self._db_status(drc_name)},
                }
            )
        return {
            "root": str(cfg.root),
            "built": True,
            "server_dir": str(cfg.server_root) if cfg.server_root else None,
            "sync": bool(state.get("sync")),
            "runbook": shape.runbook,
            "pairs": [_pair_status(pair, comps) for pair in shape.pairs],
            "apps": [
                {"service": a.service, "site": a.site, "name": a.name, **comps[a.name]}
                for a in shape.apps
            ],
            "routes": self._routes_status(shape),
            "extra_pairs": extra,
            "active_site": comps["frontdoor"]["serving_site"],
            "inventory_vars": str(cfg.inventory_vars),
            "components": comps,
        }

    def _routes_status(self, shape: Shape) -> list[dict[str, Any]]:
        """Each service's route: where its file sends it and where nginx really does."""
        if not shape.routed:
            service = shape.main_service.id
            return [
                {
                    "service": service,
                    "url": self.url("frontdoor"),
                    "configured_site": frontdoor.configured_site(self.cfg),
                    "serving_site": frontdoor.served_site(self.cfg),
                }
            ]
        return [
            {
                "service": s.id,
                "url": self.route_url(s.id),
                "configured_site": frontdoor.configured_site(self.cfg, None if s.main else s.id),
                "serving_site": frontdoor.served_site(self.cfg, s.id),
            }
            for s in shape.services
        ]

    def _db_status(self, name: str) -> dict[str, Any]:
        cl = self.cluster(name)
        out: dict[str, Any] = {
            "port": cl.port,
            "data": str(cl.data),
            "dsn": self.dsn(name),
            "up": False,
            "role": "down",
        }
        if not cl.exists:
            out["role"] = "absent"
            return out
        try:
            role = pg.server_role(cl.dsn())
        except PostgresError:
            return out
        out.update(up=True, role=role.role, writable=role.writable, timeline=role.timeline)
        try:
            if role.in_recovery:
                rec = pg.receiver(cl.dsn())
                out["replication"] = {
                    "streaming": rec.streaming,
                    "receive_lsn": rec.receive_lsn,
                    "replay_lsn": rec.replay_lsn,
                    "lag_bytes": rec.lag_bytes,
                    "replay_delay_s": rec.replay_delay_s,
                    "replay_paused": rec.replay_paused,
                }
            else:
                out["standbys"] = [s.__dict__ for s in pg.senders(cl.dsn())]
        except PostgresError as exc:
            out["replication_error"] = str(exc)
        return out

    def _app_status(self, app: AppShape, pid: int | None) -> dict[str, Any]:
        url = self.url(app.name)
        out: dict[str, Any] = {"url": url, "up": owned(pid, self.marker), "health": None}
        if out["up"]:
            out["health"] = http_json(f"{url}/health")[1]
        return out

    # -- faults --------------------------------------------------------------------------------
    def break_(
        self, fault: str, percent: float = 50.0, celsius: float = 35.0, pair: str | None = None
    ) -> str:
        """Inject a fault the way it happens; return a sentence saying what was done. A DC
        fault hits the whole DC: every DC database and app of the lab's pairs and services.
        ``pair`` (``dc-db-crash`` only) crashes just that pair's DC server."""
        cfg = self.cfg
        shape = self.shape
        if pair is not None and fault != "dc-db-crash":
            raise LabError(f"--pair is for dc-db-crash only, not {fault}")
        if fault == "dc-db-crash":
            chosen = [shape.pair(pair)] if pair is not None else list(shape.pairs)
            crashed = [p.dc for p in chosen if self.cluster(p.dc).stop(mode="immediate")]
            if not crashed:
                return f"{_names(p.dc for p in chosen)} {_was_were(chosen)} not running"
            return f"{_names(crashed)} crashed (pg_ctl stop -m immediate)"
        if fault == "dc-power-loss":
            signals = facility.read(cfg)
            signals["dc_power"] = False
            facility.write(cfg, signals)
            _each([p.dc for p in shape.pairs], lambda n: self.cluster(n).stop(mode="immediate"))
            state = self._state()
            for app in shape.apps:
                if app.site == "dc":
                    kill_now(state.get(app.pid_key), self.marker)
            kill_now(state.get("uplink_pid"), self.marker)
            worker = kill_now(state.get("dc_worker_pid"), self.marker)  # `drp workers up`
            dbs = _names(p.dc for p in shape.pairs)
            apps = _names(a.name for a in shape.apps if a.site == "dc")
            return f"DC power lost: {dbs} crashed, {apps} and the DC uplink are gone" + (
                ", and so is the DC's Prefect worker" if worker else ""
            )
        if fault == "dc-heat":
            if not 0 < percent <= 100:
                raise LabError(f"--percent {percent} must be within (0, 100]")
            signals, share = facility.heat(facility.read(cfg), percent, celsius)
            facility.write(cfg, signals)
            return f"DC heat: {share:.1f}% of the server area is now at {celsius:.1f} °C"
        if fault == "national-network-loss":
            signals = facility.read(cfg)
            signals["national_network"] = False
            facility.write(cfg, signals)
            kill_now(self._state().get("uplink_pid"), self.marker)
            return "national network lost: the DC is running but unreachable (uplink cut)"
        raise LabError(f"unknown fault {fault!r} (choose from {', '.join(FAULTS)})")

    def repair(self) -> list[str]:
        """Clear every injected fault; never starts a pair's old primary beside its promoted
        DRC standby."""
        done: list[str] = []
        facility.write(self.cfg, facility.normal())
        done.append("facility signals back to normal (power on, 23.5 °C, network up)")
        before = {k: v for k, v in self.status()["components"].items()}
        self.up(sync=bool(self._state().get("sync")))
        after = self.status()["components"]
        for name, comp in after.items():
            if name == "facility":
                continue
            if not before.get(name, {}).get("up") and comp.get("up"):
                done.append(f"{name} restarted")
        for pair in self.shape.pairs:
            if not after[pair.dc]["up"]:
                done.append(f"{pair.dc} left stopped: {pair.drc} is primary (use the resync flow)")
        return done

    # -- down ----------------------------------------------------------------------------------
    def down(self, purge: bool = False) -> list[str]:
        """Stop everything the lab started (by pid); with ``purge`` also delete the lab root and
        its server directory, if it has one outside the root."""
        stopped: list[str] = []
        if self.cfg.state_file.exists():
            state = self._state()
            shape = self.shape
            # The orchestrator first (`drp workers up`, `drp server up`): it uses ops-db.
            for key in ("dc_worker_pid", "drc_worker_pid"):
                if terminate(state.get(key), self.marker):
                    stopped.append(key.removesuffix("_pid").replace("_", "-"))
            if terminate((state.get("prefect_server") or {}).get("pid"), self.marker):
                stopped.append("prefect-server")
            named = {app.name: state.get(app.pid_key) for app in shape.apps}
            named["uplink"] = state.get("uplink_pid")
            ended = set(terminate_all(list(named.values()), self.marker))
            stopped += [name for name, pid in named.items() if pid in ended]
            if terminate(frontdoor.pid(self.cfg), self.marker):
                stopped.append("frontdoor")
            if terminate(sshd.pid(self.cfg), self.marker):
                stopped.append("sshd")
            stopped += pairs.stop_all(self.cluster, int(state.get("extra_pairs") or 0))
            for pair in shape.pairs[1:]:
                for name in (pair.dc, pair.drc):
                    cl = self.cluster(name)
                    if cl.exists and cl.stop(mode="fast"):
                        stopped.append(name)
            for name in ("dc-db", "drc-db", "ops-db"):
                cl = self.cluster(name)
                if cl.exists and cl.stop(mode="fast"):
                    stopped.append(name)
        if purge:
            if self.cfg.server_root is not None:
                placement.remove(self.cfg.server_root, self.cfg.root)
            if self.cfg.root.exists():
                shutil.rmtree(self.cfg.root)
        return stopped


def _runbook_shape(runbook: str | Path) -> Shape:
    """The site a lab runbook describes; LabError when the runbook is not valid or not a lab's."""
    from drp.errors import RunbookError
    from drp.runbooks import load_runbook

    path = Path(runbook).resolve()
    try:
        loaded = load_runbook(path)
    except RunbookError as exc:
        raise LabError(f"the lab is built from a valid runbook: {exc}") from exc
    return site.from_runbook(loaded, str(path))


def _same_shape(a: Shape, b: Shape) -> bool:
    """Same pairs (ids and groups) and services (ids and pairs), and both routed or not."""
    return (
        a.routed == b.routed
        and a.as_dict()["pairs"] == b.as_dict()["pairs"]
        and (a.as_dict()["services"] == b.as_dict()["services"])
    )


def _describe(shape: Shape) -> str:
    return f"{len(shape.pairs)} database pair(s), {len(shape.services)} service(s)" + (
        ", a route per service" if shape.routed else ", one route"
    )


def _of(pair: PairShape) -> str:
    return "" if pair.main else f" of {pair.id}"


def _names(names: Any) -> str:
    items = list(names)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _was_were(items: list[Any]) -> str:
    return "was" if len(items) == 1 else "were"


def _each(items: Sequence[T], fn: Callable[[T], None]) -> None:
    """Run ``fn`` for every item side by side (database pairs are independent: built,
    started or discarded at once); the first failure is raised once all have finished."""
    if len(items) <= 1:
        for item in items:
            fn(item)
        return
    with ThreadPoolExecutor(max_workers=min(4, len(items)), thread_name_prefix="drp-site") as pool:
        for future in [pool.submit(fn, item) for item in items]:
            future.result()


def _pair_status(pair: PairShape, comps: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One pair at a glance: each side's role, whether the standby streams, whether commits
    wait for it (sync), and its lag."""
    dc, drc = comps[pair.dc], comps[pair.drc]
    sender = next(
        (s for s in dc.get("standbys") or [] if s.get("application_name") == pair.slot), None
    )
    replication = drc.get("replication") or {}
    return {
        "id": pair.id,
        "primary_group": pair.primary_group,
        "standby_group": pair.standby_group,
        "dc": {"name": pair.dc, "role": dc["role"], "writable": dc.get("writable", False)},
        "drc": {"name": pair.drc, "role": drc["role"], "writable": drc.get("writable", False)},
        "streaming": bool(replication.get("streaming")) and sender is not None,
        "sync_state": sender.get("sync_state") if sender else None,
        "sync": bool(sender and sender.get("sync_state") == "sync"),
        "lag_bytes": replication.get("lag_bytes"),
        "sent_lag_bytes": sender.get("lag_bytes") if sender else None,
    }


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _safe(fn: Callable[[], Any], default: Any) -> Any:
    try:
        return fn()
    except PostgresError:
        return default


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    if not wait_until(condition, timeout):
        raise LabError(f"timed out after {timeout:.0f} s waiting for {what}")
