"""Where a runbook's parts are: DSNs, the front door, the inventories Ansible gets.

For a ``lab`` runbook everything comes from the embedded lab (the DC is reached through its
uplink, as clients reach it, so a cut network really makes it unreachable): per database pair
its DSNs (:attr:`Topology.pairs`), per service its endpoints (:attr:`Topology.services`: its
route at the front door, its app at each site) and the inventory groups that act on them. A
site lab (``drp lab up --runbook``) has a pair per runbook database and a route and an app per
service and site; the lab of one service routes every service through its one front door. For
other environments it comes from :mod:`drp.settings`. This module decides nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

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
    pairs: Mapping[str, PairDsns] = field(default_factory=dict)  # every runbook database pair
    services: Mapping[str, ServiceEndpoints] = field(default_factory=dict)  # every service

    def pair(self, pair_id: str) -> PairDsns:
        """The DSNs of one of the runbook's database pairs (the main pair by default)."""
        return self.pairs.get(pair_id) or PairDsns(self.primary_dsn, self.standby_dsn)

    def service(self, service_id: str) -> ServiceEndpoints:
        """Where one of the runbook's services is reached (the front door and the DRC app of
        the topology by default, for environments that name no service endpoints)."""
        return self.services.get(service_id) or ServiceEndpoints(
            frontdoor_url=self.frontdoor_url,
            route_status_url=f"{self.frontdoor_url}/__frontdoor",
            standby_app_url=self.standby_app_url,
        )


@dataclass(frozen=True)
class PairDsns:
    """Where one database pair's primary (DC) and standby (DRC) are reached, and the inventory
    groups that act on them (fence the primary, promote the standby)."""

    primary_dsn: str
    standby_dsn: str
    primary_group: str = ""
    standby_group: str = ""


@dataclass(frozen=True)
class ServiceEndpoints:
    """Where one service is reached: by users (its route at the front door), by the platform
    (each site's app), and which inventory groups start its apps."""

    frontdoor_url: str
    """The service's base URL for users (``<front door>/<service>`` in a site lab): POST
    ``/declarations`` under it, GET ``/health``."""
    route_status_url: str
    """GET answers ``{"active_site": ...}`` for this service's route."""
    standby_app_url: str | None = None
    """The DRC app itself, to look before starting it."""
    primary_app_url: str | None = None
    """The DC app as users' traffic reaches it (through the DC uplink in the lab)."""
    pair: str | None = None
    """The database pair the service runs on."""
    route: str | None = None
    """The route switch_traffic.yml switches for it (``route`` extra var); None: the one
    route of the front door."""
    app_groups: Mapping[str, str] = field(default_factory=dict)
    """Site (dc, drc) -> the inventory group of the service's app there."""


def resolve(runbook: Runbook, runbook_inventory: Path, settings: Settings) -> Topology:
    if runbook.environment == "lab":
        lab = Lab.from_env(root=settings.lab_root)
        if not lab.cfg.state_file.exists():
            raise PreconditionFailed(f"no lab at {lab.cfg.root} (hint: drp lab up)")
        if lab.shape.routed:
            return _site_lab(runbook, runbook_inventory, lab)
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
            pairs=_lab_pairs(runbook, lab, primary, lab.dsn("drc-db") + " connect_timeout=2"),
            services=_one_route_services(runbook, lab),
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
        pairs=_configured_pairs(runbook, settings),
    )


def _site_lab(runbook: Runbook, runbook_inventory: Path, lab: Lab) -> Topology:
    """A site lab: each runbook database is one of its pairs, each service has its route and
    its apps; Ansible gets the runbook's inventory beside the lab's variables."""
    shape = lab.shape
    built_for = shape.runbook or "?"
    hint = (
        f"(hint: drp lab reset --runbook <this runbook> rebuilds the lab's sites for it; the lab "
        f"is built for {built_for})"
    )
    missing_pairs = [d.id for d in runbook.databases if d.id not in shape.pair_ids]
    known_services = {s.id for s in shape.services}
    missing_services = [s.id for s in runbook.services if s.id not in known_services]
    if missing_pairs or missing_services:
        what = []
        if missing_pairs:
            what.append(f"database pair(s) {', '.join(missing_pairs)}")
        if missing_services:
            what.append(f"service(s) {', '.join(missing_services)}")
        raise PreconditionFailed(f"the lab at {lab.cfg.root} has no {' and no '.join(what)} {hint}")
    password = lab.password()
    cfg = lab.cfg
    pairs: dict[str, PairDsns] = {}
    for db in runbook.databases:
        dc, drc = lab.site_pair_dsns(db.id, application_name="drp-failover")
        pairs[db.id] = PairDsns(
            dc + " connect_timeout=2",
            drc + " connect_timeout=2",
            primary_group=db.primary_group,
            standby_group=db.standby_group,
        )
    services: dict[str, ServiceEndpoints] = {}
    for service in runbook.services:
        lab_service = shape.service(service.id)
        services[service.id] = ServiceEndpoints(
            frontdoor_url=lab.route_url(service.id),
            route_status_url=f"{lab.url('frontdoor')}/__frontdoor/{service.id}",
            standby_app_url=lab.app_url(service.id, "drc"),
            primary_app_url=lab.url(lab_service.uplink),
            pair=lab_service.pair,
            route=service.id,
            app_groups={app.site: app.group for app in lab_service.apps},
        )
    main = shape.main_pair
    first = runbook.databases[0].id if runbook.databases else main.id
    main_dsns = pairs.get(first) or PairDsns(*lab.site_pair_dsns(main.id, "drp-failover"))
    return Topology(
        inventories=(Path(runbook_inventory), cfg.inventory_vars),
        primary_dsn=main_dsns.primary_dsn,
        standby_dsn=main_dsns.standby_dsn,
        frontdoor_url=lab.url("frontdoor"),
        standby_app_url=lab.url("drc-app"),
        known_secrets=(password,),
        ops_dsn=lab.dsn("ops-db") + " connect_timeout=2",
        pairs=pairs,
        services=services,
    )


def _one_route_services(runbook: Runbook, lab: Lab) -> dict[str, ServiceEndpoints]:
    """The lab of one service: every runbook service is served by its one front door route
    and its one app per site."""
    frontdoor = lab.url("frontdoor")
    return {
        service.id: ServiceEndpoints(
            frontdoor_url=frontdoor,
            route_status_url=f"{frontdoor}/__frontdoor",
            standby_app_url=lab.url("drc-app"),
            primary_app_url=lab.url("uplink-app"),
            pair=service.database,
            app_groups={"dc": "dc_app", "drc": "drc_app"},
        )
        for service in runbook.services
    }


def _lab_pairs(runbook: Runbook, lab: Lab, primary: str, standby: str) -> dict[str, PairDsns]:
    """The runbook's first pair is the lab's main pair; the next ones its extra pairs."""
    pairs = {}
    for index, db in enumerate(runbook.databases):
        if index == 0:
            pairs[db.id] = PairDsns(primary, standby, db.primary_group, db.standby_group)
            continue
        if index > lab.extra_pairs:
            raise PreconditionFailed(
                f"runbook database {db.id!r} is pair {index + 1}, but the lab runs "
                f"{lab.extra_pairs} extra pairs (hint: drp lab up --extra-pairs {index})"
            )
        dc, drc = lab.pair_dsns(index)
        pairs[db.id] = PairDsns(
            dc + " connect_timeout=2",
            drc + " connect_timeout=2",
            db.primary_group,
            db.standby_group,
        )
    return pairs


def _configured_pairs(runbook: Runbook, settings: Settings) -> dict[str, PairDsns]:
    """From DRP_DATABASE_PAIRS (a YAML or JSON file); the first pair may use the single DSNs."""
    found: dict[str, object] = {}
    if settings.database_pairs:
        path = settings.database_pairs
        try:
            text = path.read_text()
            loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise PreconditionFailed(f"DRP_DATABASE_PAIRS={path}: cannot read it: {exc}") from exc
        if not isinstance(loaded, dict):
            raise PreconditionFailed(
                f"DRP_DATABASE_PAIRS={path}: expected a mapping of pair id to "
                "{primary_dsn, standby_dsn}"
            )
        found = loaded
    pairs: dict[str, PairDsns] = {}
    for index, db in enumerate(runbook.databases):
        entry = found.get(db.id)
        groups = (db.primary_group, db.standby_group)
        if isinstance(entry, dict) and entry.get("primary_dsn") and entry.get("standby_dsn"):
            pairs[db.id] = PairDsns(str(entry["primary_dsn"]), str(entry["standby_dsn"]), *groups)
        elif index == 0 and settings.primary_dsn and settings.standby_dsn:
            pairs[db.id] = PairDsns(settings.primary_dsn, settings.standby_dsn, *groups)
        else:
            raise PreconditionFailed(
                f"no DSNs for runbook database {db.id!r}: add it to DRP_DATABASE_PAIRS "
                f"({db.id}: {{primary_dsn: ..., standby_dsn: ...}})"
            )
    return pairs
