"""The embedded DC/DRC lab: up, status, break, repair, down.

One object, :class:`Lab`, over one root directory. Every operation is idempotent: ``up`` starts
what is not running and builds what does not exist; ``down`` stops by process id what the lab
started. The lab never makes two writable primaries itself: it will not start the old DC primary
while the DRC has been promoted (that is the resync flow's job).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from drp.adapters import postgres as pg
from drp.adapters.http import http_json
from drp.errors import LabError, PostgresError
from drp.lab import facility, frontdoor, pairs, placement, ready, sshd
from drp.lab.config import (
    APP_DATABASE,
    OPS_DATABASE,
    SLOT_NAME,
    SUPERUSER,
    LabConfig,
    extra_pair_names,
    find_pg_bin,
    repo_root,
    run_as_user,
    unprivileged_users,
)
from drp.lab.pgcluster import Cluster
from drp.lab.procs import kill_now, owned, spawn, terminate, wait_until

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

    # -- up ------------------------------------------------------------------------------------
    def up(
        self,
        sync: bool = False,
        extra_pairs: int | None = None,
        ready_timeout: float | None = None,
    ) -> dict[str, Any]:
        """Build what is missing, start what is stopped, and return the status once the lab is
        ready: every standby streams from its primary and, with ``sync``, a commit on the DC
        primary waits for the DRC standby (:mod:`drp.lab.ready`; LabError after
        ``ready_timeout`` seconds, default ``DRP_LAB_READY_TIMEOUT_S`` or 60).

        ``extra_pairs`` adds database pairs beyond the main one (for readiness checks at scale);
        left out, the lab keeps the number it was started with."""
        timeout = ready_timeout if ready_timeout is not None else default_ready_timeout()
        self.cfg.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.cfg.root, 0o755)  # the lab's own directory; its ancestors are not ours
        self._place_servers()
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
        dc, drc, ops = self.cluster("dc-db"), self.cluster("drc-db"), self.cluster("ops-db")
        if not cfg.facility_file.exists():
            facility.write(cfg, facility.normal())
        from drp.lab.approvers import enrol_lab_roster  # one-time codes of the lab roster

        enrol_lab_roster(cfg)

        self.progress("ops-db: the platform's own database")
        ops.initdb()
        ops.start()
        ops.ensure_database(OPS_DATABASE)

        self._start_uplink()

        if not dc.exists:
            self.progress("dc-db: building the DC primary")
            dc.initdb()
        if not drc.exists:
            self._start_dc_db_if_safe(dc, drc, assume_primary=True)
            dc.ensure_slot()
            dc.ensure_app_schema()
            self.progress("drc-db: base backup of dc-db into a streaming standby")
            drc.basebackup_from(cfg.port("uplink-db"))
        if drc.is_standby_configured:  # not promoted: the DC may start first, so that the
            self._start_dc_db_if_safe(dc, drc)  # standby finds its primary at its first try
        if not drc.running():
            self.progress("drc-db: starting")
            drc.start()
        self._start_dc_db_if_safe(dc, drc)
        if dc.running() and not pg.server_role(dc.dsn()).in_recovery:
            dc.ensure_app_schema()
            dc.set_synchronous(SLOT_NAME if self._state().get("sync") else None)
            if state.get("sync"):
                self.progress("dc-db: synchronous replication to drc-db")

        for site in ("dc", "drc"):
            self.start_app(site)

        self.progress("front door: nginx")
        frontdoor.write_config(cfg, active_site="dc")
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

    def replication_links(self) -> list[ready.Link]:
        """The replication the lab keeps, as it stands: the DRC standby of the DC primary
        (synchronous when the lab is) and every extra pair's standby of its primary.

        After a failover (the DRC promoted) the main pair has no link the lab keeps: rebuilding
        the old primary as a standby is the resync flow's, which waits for it itself."""
        dc, drc = self.cluster("dc-db"), self.cluster("drc-db")
        links: list[ready.Link] = []
        dc_primary = dc.running() and _safe(lambda: not pg.server_role(dc.dsn()).in_recovery, False)
        if dc_primary and drc.is_standby_configured:
            links.append(ready.Link(drc, dc, SLOT_NAME, sync=bool(self._state().get("sync"))))
        elif dc.exists or drc.exists:
            self.progress(
                "main pair: the DC is not the primary of a DRC standby (after a failover?): not "
                "waiting for it (the resync flow rebuilds the old primary and waits for it)"
            )
        for index in range(1, self.extra_pairs + 1):
            primary, standby = (self.cluster(n) for n in extra_pair_names(index))
            links.append(ready.Link(standby, primary, pairs.SLOT))
        return links

    # -- reset ---------------------------------------------------------------------------------
    def reset(self, sync: bool | None = None, ready_timeout: float | None = None) -> dict[str, Any]:
        """Rebuild both sites fresh — database pairs (extra pairs too), apps, the DC uplink, the
        front door to the DC, the facility normal — and keep the platform: ops-db (never
        stopped: it holds the Prefect server's database, the registry, the outbox), the Prefect
        server and workers of ``drp server up`` / ``drp workers up``, the lab's password, SSH
        keys and sshd. ``sync``: None keeps the lab's replication mode. Returns the status once
        ready, as :meth:`up` does; with no lab yet, it builds one."""
        if not self.cfg.state_file.exists():
            return self.up(sync=bool(sync), ready_timeout=ready_timeout)
        self._place_servers()
        state = self._state()
        self.progress("reset: stopping the sites (ops-db and Prefect keep running)")
        for key in ("dc_app_pid", "drc_app_pid", "uplink_pid"):
            terminate(state.get(key), self.marker)
        terminate(frontdoor.pid(self.cfg), self.marker)
        names = ["dc-db", "drc-db"]
        for index in range(1, self.extra_pairs + 1):
            names += extra_pair_names(index)
        for name in names:
            cluster = self.cluster(name)
            cluster.stop(mode="immediate")  # thrown away next: no need for a clean shutdown
            cluster.remove()
        (self.cfg.frontdoor_dir / "active-site.conf").unlink(missing_ok=True)
        facility.write(self.cfg, facility.normal())
        if sync is not None:
            self._update_state(sync=sync)
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

    def _start_dc_db_if_safe(self, dc: Cluster, drc: Cluster, assume_primary: bool = False) -> None:
        """Start dc-db unless that could make a second writable primary."""
        if dc.running():
            return
        if dc.is_standby_configured or assume_primary or not drc.exists:
            self.progress("dc-db: starting")
            dc.start()
            return
        if drc.running() and not pg.server_role(drc.dsn()).in_recovery:
            self.progress(
                "dc-db: left stopped — drc-db has been promoted; starting the old primary would "
                "make two writable primaries (rebuild it as a standby with the resync flow)"
            )
            return
        self.progress("dc-db: starting")
        dc.start()

    def _start_uplink(self) -> None:
        if owned(self._state().get("uplink_pid"), self.marker):
            return
        self.progress("uplink: the DC's network link")
        cfg = self.cfg
        pid = spawn(
            [
                sys.executable,
                "-m",
                "drp.lab.uplink",
                "--lab-root",
                self.marker,
                "--route",
                f"{cfg.port('uplink-app')}:{cfg.port('dc-app')}",
                "--route",
                f"{cfg.port('uplink-db')}:{cfg.port('dc-db')}",
                "--route",
                f"{cfg.port('uplink-ssh')}:{cfg.port('ssh')}",
            ],
            cfg.logs / "uplink.log",
        )
        self._update_state(uplink_pid=pid)
        if not wait_until(lambda: _port_open(cfg.port("uplink-db")), 10):
            raise LabError(f"uplink did not start; see {cfg.logs / 'uplink.log'}")

    def start_app(self, site: str) -> None:
        """Start a site's SKP stand-in unless it runs (the lab records its pid for `down`)."""
        key = f"{site}_app_pid"
        if owned(self._state().get(key), self.marker):
            return
        self.progress(f"{site}-app: SKP stand-in")
        cfg = self.cfg
        name = f"{site}-db"
        dsn_file = cfg.run_dir / f"{site}-app.dsn"
        fd = os.open(dsn_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(
                self.cluster(name)
                .dsn(APP_DATABASE)
                .replace("application_name=drp", f"application_name={site}-app")
            )
        port = cfg.port(f"{site}-app")
        pid = spawn(
            [
                sys.executable,
                "-m",
                "drp.lab.skp_app",
                "--site",
                site,
                "--port",
                str(port),
                "--dsn-file",
                str(dsn_file),
                "--lab-root",
                self.marker,
            ],
            cfg.logs / f"{site}-app.log",
        )
        self._update_state(**{key: pid})
        if not wait_until(lambda: _port_open(port), 10):
            raise LabError(f"{site}-app did not start; see {cfg.logs / f'{site}-app.log'}")

    def _write_inventory_vars(self) -> None:
        """Variables for Ansible, as an inventory file used beside ``inventory/lab.yml``."""
        cfg = self.cfg
        pg_bin = str(find_pg_bin())
        user = run_as_user()
        data = {
            "all": {
                "vars": {
                    "drp_lab_root": str(cfg.root),
                    "drp_repo_root": str(repo_root()),
                    "drp_python": sys.executable,
                    "pg_bin": pg_bin,
                    "pg_os_user": user or sshd.login_user(),
                    "pg_superuser": SUPERUSER,
                    "pg_password_file": str(cfg.secrets_file),
                    "lab_ssh_port": cfg.port("ssh"),
                    "dc_ssh_port": cfg.port("uplink-ssh"),
                    "lab_ssh_user": sshd.login_user(),
                    "lab_ssh_private_key": str(sshd.paths(cfg)["operator_key"]),
                    "lab_ssh_known_hosts": str(sshd.paths(cfg)["known_hosts"]),
                    "frontdoor_port": cfg.port("frontdoor"),
                    "frontdoor_dir": str(cfg.frontdoor_dir),
                    "frontdoor_site_ports": {
                        "dc": frontdoor.site_app_port(cfg, "dc"),
                        "drc": frontdoor.site_app_port(cfg, "drc"),
                    },
                    "facility_file": str(cfg.facility_file),
                },
            },
            "dc_db": {"hosts": {"dc-db1": self._db_vars("dc-db")}},
            "drc_db": {"hosts": {"drc-db1": self._db_vars("drc-db")}},
            "ops_db": {"hosts": {"ops-db1": self._db_vars("ops-db")}},
            "dc_app": {"hosts": {"dc-app1": {"app_port": cfg.port("dc-app"), "app_site": "dc"}}},
            "drc_app": {
                "hosts": {"drc-app1": {"app_port": cfg.port("drc-app"), "app_site": "drc"}}
            },
        }
        header = "# Generated by `drp lab up` for this lab; used beside inventory/lab.yml.\n"
        cfg.inventory_vars.write_text(header + yaml.safe_dump(data, sort_keys=False))

    def _db_vars(self, name: str) -> dict[str, Any]:
        return {
            "pg_port": self.cfg.port(name),
            "pg_data": str(self.cfg.pgdata(name)),
            "pg_log_file": str(self.cfg.pg_log(name)),  # one log per server, resyncs included
        }

    # -- status --------------------------------------------------------------------------------
    def dsn(self, name: str, dbname: str | None = None) -> str:
        if name in ("dc-db", "drc-db"):
            default_db = APP_DATABASE
        elif name == "ops-db":
            default_db = OPS_DATABASE
        else:  # an extra pair: PostgreSQL only
            default_db = "postgres"
        return self.cluster(name).dsn(dbname or default_db)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.cfg.port(name)}"

    def status(self) -> dict[str, Any]:
        """Every component: endpoint, up/down, role, replication and lag, the active site."""
        cfg = self.cfg
        state = self._state()
        comps: dict[str, dict[str, Any]] = {}
        if not cfg.state_file.exists():
            return {"root": str(cfg.root), "built": False, "components": {}}
        for name in ("dc-db", "drc-db", "ops-db"):
            comps[name] = self._db_status(name)
        for site in ("dc", "drc"):
            comps[f"{site}-app"] = self._app_status(site, state.get(f"{site}_app_pid"))
        comps["frontdoor"] = {
            "url": self.url("frontdoor"),
            "up": frontdoor.served_site(cfg) is not None,
            "configured_site": frontdoor.configured_site(cfg),
            "serving_site": frontdoor.served_site(cfg),
        }
        comps["uplink"] = {
            "up": owned(state.get("uplink_pid"), self.marker),
            "ports": [cfg.port("uplink-app"), cfg.port("uplink-db"), cfg.port("uplink-ssh")],
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
            "extra_pairs": extra,
            "active_site": comps["frontdoor"]["serving_site"],
            "inventory_vars": str(cfg.inventory_vars),
            "components": comps,
        }

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

    def _app_status(self, site: str, pid: int | None) -> dict[str, Any]:
        url = self.url(f"{site}-app")
        out: dict[str, Any] = {"url": url, "up": owned(pid, self.marker), "health": None}
        if out["up"]:
            out["health"] = http_json(f"{url}/health")[1]
        return out

    # -- faults --------------------------------------------------------------------------------
    def break_(self, fault: str, percent: float = 50.0, celsius: float = 35.0) -> str:
        """Inject a fault the way it happens; return a sentence saying what was done."""
        cfg = self.cfg
        if fault == "dc-db-crash":
            stopped = self.cluster("dc-db").stop(mode="immediate")
            return (
                "dc-db crashed (pg_ctl stop -m immediate)" if stopped else "dc-db was not running"
            )
        if fault == "dc-power-loss":
            signals = facility.read(cfg)
            signals["dc_power"] = False
            facility.write(cfg, signals)
            self.cluster("dc-db").stop(mode="immediate")
            kill_now(self._state().get("dc_app_pid"), self.marker)
            kill_now(self._state().get("uplink_pid"), self.marker)
            worker = kill_now(self._state().get("dc_worker_pid"), self.marker)  # `drp workers up`
            return "DC power lost: dc-db crashed, dc-app and the DC uplink are gone" + (
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
        """Clear every injected fault; never starts the old primary beside a promoted DRC."""
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
        if not after["dc-db"]["up"]:
            done.append("dc-db left stopped: drc-db is primary (use the resync flow)")
        return done

    # -- down ----------------------------------------------------------------------------------
    def down(self, purge: bool = False) -> list[str]:
        """Stop everything the lab started (by pid); with ``purge`` also delete the lab root and
        its server directory, if it has one outside the root."""
        stopped: list[str] = []
        if self.cfg.state_file.exists():
            state = self._state()
            # The orchestrator first (`drp workers up`, `drp server up`): it uses ops-db.
            for key in ("dc_worker_pid", "drc_worker_pid"):
                if terminate(state.get(key), self.marker):
                    stopped.append(key.removesuffix("_pid").replace("_", "-"))
            if terminate((state.get("prefect_server") or {}).get("pid"), self.marker):
                stopped.append("prefect-server")
            for key in ("dc_app_pid", "drc_app_pid", "uplink_pid"):
                if terminate(state.get(key), self.marker):
                    stopped.append(key.removesuffix("_pid").replace("_", "-"))
            if terminate(frontdoor.pid(self.cfg), self.marker):
                stopped.append("frontdoor")
            if terminate(sshd.pid(self.cfg), self.marker):
                stopped.append("sshd")
            stopped += pairs.stop_all(self.cluster, int(state.get("extra_pairs") or 0))
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
