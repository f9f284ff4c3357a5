"""Where a runbook's parts are: DSNs, the front door, the inventories Ansible gets.

For a ``lab`` runbook everything comes from the embedded lab (the DC is reached through its
uplink, as clients reach it, so a cut network really makes it unreachable). For other
environments it comes from :mod:`drp.settings`. This module decides nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from drp.adapters.ansible import lab_inventories
from drp.domain.runbook import Runbook
from drp.errors import PreconditionFailed
from drp.lab.config import APP_DATABASE, SUPERUSER
from drp.lab.core import Lab
from drp.settings import Settings


@dataclass(frozen=True)
class Topology:
    inventories: tuple[Path, ...]
    primary_dsn: str  # the old primary, reached the way its clients reach it
    standby_dsn: str
    frontdoor_url: str
    standby_app_url: str | None = None  # the DRC app itself, to look before starting it
    primary_site: str = "dc"
    standby_site: str = "drc"
    known_secrets: tuple[str, ...] = ()
    ops_dsn: str | None = None  # the platform's own database (alert state of readiness checks)


def resolve(runbook: Runbook, runbook_inventory: Path, settings: Settings) -> Topology:
    if runbook.environment == "lab":
        lab = Lab.from_env(root=settings.lab_root)
        if not lab.cfg.state_file.exists():
            raise PreconditionFailed(f"no lab at {lab.cfg.root} (hint: drp lab up)")
        password = lab.password()
        cfg = lab.cfg
        primary = (
            f"host=127.0.0.1 port={cfg.port('uplink-db')} dbname={APP_DATABASE} user={SUPERUSER} "
            f"password={password} application_name=drp-failover connect_timeout=2"
        )
        return Topology(
            inventories=lab_inventories(cfg.root),
            primary_dsn=primary,
            standby_dsn=lab.dsn("drc-db") + " connect_timeout=2",
            frontdoor_url=lab.url("frontdoor"),
            standby_app_url=lab.url("drc-app"),
            known_secrets=(password,),
            ops_dsn=lab.dsn("ops-db") + " connect_timeout=2",
        )
    missing = [
        name
        for name, value in (
            ("DRP_PRIMARY_DSN", settings.primary_dsn),
            ("DRP_STANDBY_DSN", settings.standby_dsn),
            ("DRP_FRONTDOOR_URL", settings.frontdoor_url),
        )
        if not value
    ]
    if missing:
        raise PreconditionFailed(
            f"runbook environment {runbook.environment!r} needs {', '.join(missing)} "
            "(see README, 'Running it for real')"
        )
    inventories = (runbook_inventory,)
    if settings.inventory_extra:
        inventories += (settings.inventory_extra,)
    return Topology(
        inventories=inventories,
        primary_dsn=settings.primary_dsn or "",
        standby_dsn=settings.standby_dsn or "",
        frontdoor_url=settings.frontdoor_url or "",
        standby_app_url=settings.standby_app_url,
        ops_dsn=settings.ops_dsn,
    )
