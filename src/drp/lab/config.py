"""Where the embedded lab lives and how its parts are addressed.

Everything is derived from two values: the lab's root directory (default ``.lab/`` in the
repository, ``DRP_LAB_ROOT`` to change it) and a port base (``DRP_LAB_PORT_BASE``, default 25400),
so that a test can run its own lab beside an operator's without a clash.

One more place may hold part of a lab: its *server directory*. Run as root, the lab's PostgreSQL
servers run as an unprivileged user (``postgres``) and nginx's workers as ``nobody``; when those
users cannot enter the lab's root (a checkout in root's home or in a ``mktemp -d`` folder, mode
0700), what they must reach — data directories, PostgreSQL's logs, initdb's password file,
nginx's temporary files — lives in ``/var/lib/drp-lab/<name>-<hash of the root>/`` instead
(``DRP_LAB_SERVER_BASE`` to change the base), recorded in ``state.json`` and linked from the root
(see :mod:`drp.lab.placement`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from drp.adapters.pgbin import find_pg_bin as find_pg_bin  # the lab's modules import them here
from drp.adapters.pgbin import run_as_user as run_as_user
from drp.errors import LabError
from drp.paths import repo_root as repo_root

# Below Linux's ephemeral range (32768-60999): a lab port there can be taken at random by any
# outgoing connection on the machine, which made servers fail to bind now and then.
DEFAULT_PORT_BASE = 25400
PORT_OFFSETS: dict[str, int] = {
    "dc-db": 1,
    "drc-db": 2,
    "ops-db": 3,
    "dc-app": 11,
    "drc-app": 12,
    "ssh": 22,
    "uplink-app": 31,
    "uplink-db": 32,
    "uplink-ssh": 33,
    "frontdoor": 80,
    "prefect": 70,  # the lab's Prefect server, for a lab off the default base (prefect_port)
}
DEFAULT_PREFECT_PORT = 4200
"""The default lab's Prefect server and UI (``make ui``), where Prefect users look first."""
DATABASES = ("dc-db", "drc-db", "ops-db")
EXTRA_PAIRS_OFFSET = 100
MAX_EXTRA_PAIRS = 40
"""Extra database pairs (``drp lab up --extra-pairs N``) for checks at scale: ports base+100 on."""


def extra_pair_names(index: int) -> tuple[str, str]:
    """The primary (DC) and standby (DRC) server names of extra pair ``index`` (1-based)."""
    return f"pair{index:02d}-dc", f"pair{index:02d}-drc"


def extra_pair_index(name: str) -> tuple[int, int] | None:
    """(pair index, 0 for the DC side / 1 for the DRC side), or None for a regular name."""
    if not name.startswith("pair") or "-" not in name:
        return None
    number, _, side = name[4:].partition("-")
    if not number.isdigit() or side not in ("dc", "drc"):
        return None
    index = int(number)
    if not 1 <= index <= MAX_EXTRA_PAIRS:
        raise LabError(f"extra pair {index} is outside 1..{MAX_EXTRA_PAIRS}")
    return index, 0 if side == "dc" else 1


SITES = ("dc", "drc")
SUPERUSER = "drp"
APP_DATABASE = "skp"
OPS_DATABASE = "drp"
SLOT_NAME = "drc_db"


def default_root() -> Path:
    env = os.environ.get("DRP_LAB_ROOT")
    return Path(env).resolve() if env else repo_root() / ".lab"


def default_port_base() -> int:
    raw = os.environ.get("DRP_LAB_PORT_BASE")
    if raw is None:
        return DEFAULT_PORT_BASE
    try:
        base = int(raw)
    except ValueError as exc:
        raise LabError(f"DRP_LAB_PORT_BASE={raw!r} is not a number (hint: 25400)") from exc
    if not 1024 <= base <= 32600:
        raise LabError(
            f"DRP_LAB_PORT_BASE={base} is outside 1024..32600 (the lab's ports must stay below "
            "the ephemeral range that starts at 32768)"
        )
    return base


def _built_port_base(root: Path) -> int | None:
    try:
        return int(json.loads((root / "state.json").read_text())["port_base"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _built_site_ports(root: Path) -> tuple[tuple[str, int], ...]:
    """The port offsets a site lab handed out to its extra pairs, uplinks and apps."""
    try:
        shape = json.loads((root / "state.json").read_text()).get("shape") or {}
        return tuple((str(k), int(v)) for k, v in (shape.get("ports") or {}).items())
    except (OSError, ValueError, AttributeError, TypeError):
        return ()


def _built_server_root(root: Path) -> Path | None:
    try:
        value = json.loads((root / "state.json").read_text()).get("server_dir")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(value) if isinstance(value, str) and value else None


NGINX_WORKER_USER = "nobody"
"""Who nginx's workers run as when root starts the front door (its master stays root)."""


def unprivileged_users() -> list[str]:
    """The users the lab's processes switch to (when we are root), each of which must reach
    what it reads and writes: PostgreSQL's user and nginx's workers' user."""
    user = run_as_user()
    return [user, NGINX_WORKER_USER] if user else []


@dataclass(frozen=True)
class LabConfig:
    """Paths and ports of one lab.

    ``server_root`` is where the state that the lab's unprivileged users (PostgreSQL's, nginx's
    workers') must reach is kept: None keeps it inside ``root``; a directory outside the
    checkout when they cannot enter ``root`` (decided once, at the first ``drp lab up``).

    ``site_ports`` are the offsets of the names a site lab adds (``drp lab up --runbook``: its
    other database pairs, their uplinks, the apps of its other services; see
    :mod:`drp.lab.site`), as recorded in ``state.json``."""

    root: Path
    port_base: int
    server_root: Path | None = None
    site_ports: tuple[tuple[str, int], ...] = ()

    @classmethod
    def from_env(cls, root: Path | None = None, port_base: int | None = None) -> LabConfig:
        """The lab at ``root``; an existing lab keeps the port base and the server directory
        it was built with."""
        resolved = (root or default_root()).resolve()
        if port_base is None:
            port_base = _built_port_base(resolved) or default_port_base()
        return cls(
            root=resolved,
            port_base=port_base,
            server_root=_built_server_root(resolved),
            site_ports=_built_site_ports(resolved),
        )

    @property
    def prefect_port(self) -> int:
        """Where this lab's Prefect server listens: 4200 for the default lab; base + 70 for a
        lab moved with ``DRP_LAB_PORT_BASE`` (a second lab, a test's), so two never collide."""
        if self.port_base == DEFAULT_PORT_BASE:
            return DEFAULT_PREFECT_PORT
        return self.port("prefect")

    def port(self, name: str) -> int:
        for site_name, offset in self.site_ports:
            if site_name == name:
                return self.port_base + offset
        extra = extra_pair_index(name)
        if extra is not None:  # pairNN-dc / pairNN-drc: two ports each from base + 100
            return self.port_base + EXTRA_PAIRS_OFFSET + 2 * (extra[0] - 1) + extra[1]
        return self.port_base + PORT_OFFSETS[name]

    # -- paths -----------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets" / "lab.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def servers(self) -> Path:
        """The directory holding what the unprivileged users reach (the root, or outside it)."""
        return self.server_root or self.root

    def pgdata(self, name: str) -> Path:
        """A server's data directory: its real path, which ``postgres`` can reach (``.lab/pg``
        is a link to it when the server directory is outside the root)."""
        return self.servers / "pg" / name

    def pg_log(self, name: str) -> Path:
        """A server's log (``pg_ctl -l``, opened by ``postgres``); ``.lab/logs/<name>.log``
        links to it when the server directory is outside the root."""
        return self.servers / "logs" / f"{name}.log"

    @property
    def pg_run_dir(self) -> Path:
        """Short-lived files ``postgres`` reads (initdb's password file, deleted after use)."""
        return self.servers / "run"

    @property
    def frontdoor_tmp(self) -> Path:
        """nginx's temporary files, written by its workers (``nobody`` when root runs it)."""
        return self.servers / "frontdoor" / "tmp"

    @property
    def facility_file(self) -> Path:
        return self.root / "facility" / "dc.json"

    @property
    def frontdoor_dir(self) -> Path:
        return self.root / "frontdoor"

    @property
    def ssh_dir(self) -> Path:
        return self.root / "ssh"

    @property
    def inventory_vars(self) -> Path:
        """Inventory file of the lab's variables, given to Ansible beside inventory/lab.yml."""
        return self.root / "inventory-vars.yml"
