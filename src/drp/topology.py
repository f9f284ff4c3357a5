"""Where a runbook's parts are: DSNs, the front door, the inventories Ansible gets — and, for
the lab only, its facility sensors and its fault injector.

For a ``lab`` runbook everything comes from the embedded lab (the DC is reached through its
uplink, as clients reach it, so a cut network really makes it unreachable): per database pair
its DSNs (:attr:`Topology.pairs`), per service its endpoints (:attr:`Topology.services`: its
route at the front door, its app at each site). A site lab (``drp lab up --runbook``) has a
pair per runbook database and a route and an app per service and site; the lab of one service
routes every service through its one front door. For other environments it comes from
:mod:`drp.settings`. This module decides nothing. It is, with the lab's own commands, the only
production module that knows the lab: flows and tasks see the lab only through
:class:`Topology`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from drp.adapters.ansible import lab_inventories
from drp.domain.runbook import Runbook
from drp.errors import PreconditionFailed
from drp.lab import facility
from drp.lab.config import APP_DATABASE, SUPERUSER
from drp.lab.core import Lab
from drp.settings import Settings


class FaultInjector(Protocol):
    """What a drill needs to break a site and mend it (the lab implements it; a production
    site has none: drills never break production)."""

    def inject(self, fault: str, **options: Any) -> str:
        """Break the site the way ``fault`` says; return the sentence for the ledger."""
        ...

    def repair(self) -> list[str]:
        """Clear the faults (never starting an old primary beside its promoted standby)."""
        ...

    def writable_on_site(self) -> bool:
        """Seen from the DC itself (not through its cut network): does its database still
        accept writes?"""
        ...

    def stop_on_site(self) -> str:
        """Stop the DC's database on site (what people do before its network returns)."""
        ...


@dataclass(frozen=True)
class ServiceEndpoints:
    """Where one service is reached: through the front door (its own route, on a site with
    one route per service), and each site's application directly."""

    frontdoor_url: str
    route: str | None = None  # the front door's route for the service (None: its only one)
    standby_app_url: str | None = None
    primary_app_url: str | None = None


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
    services: Mapping[str, ServiceEndpoints] = field(default_factory=dict)
    facility: Callable[[], Mapping[str, Any]] | None = None  # the site's sensors (lab)
    faults: FaultInjector | None = None  # the lab's fault injector (drills only)

    def pair(self, pair_id: str | None) -> PairDsns:
        """The DSNs of one of the runbook's database pairs (the main pair by default)."""
        found = self.pairs.get(pair_id) if pair_id else None
        return found or PairDsns(self.primary_dsn, self.standby_dsn)

    def service(self, service_id: str) -> ServiceEndpoints:
        """Where a service is reached (the front door's only route by default)."""
        return self.services.get(service_id) or ServiceEndpoints(
            self.frontdoor_url, None, self.standby_app_url
        )

    def observed_signals(self) -> dict[str, Any]:
        """What the site's own sensors say now (power, temperatures, network); nothing where
        the platform has no sensors of its own (the signals are then given by people)."""
        return dict(self.facility()) if self.facility is not None else {}


@dataclass(frozen=True)
class PairDsns:
    """Where one database pair's primary (DC) and standby (DRC) are reached, and the
    replication slots of each direction."""

    primary_dsn: str
    standby_dsn: str
    standby_slot: str = "drc_db"  # on the DC primary: the slot its DRC standby streams from
    rejoin_slot: str = "dc_db"  # on the DRC, once promoted: the slot the old primary rejoins on


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
        from drp.lab.faults import LabFaults

        return Topology(
            facility=lambda: facility.read(cfg),
            faults=LabFaults(lab),
            inventories=lab_inventories(cfg.root),
            primary_dsn=primary,
            standby_dsn=lab.dsn("drc-db") + " connect_timeout=2",
            frontdoor_url=lab.url("frontdoor"),
            standby_app_url=lab.url("drc-app"),
            known_secrets=(password,),
            ops_dsn=lab.dsn("ops-db") + " connect_timeout=2",
            pairs=_lab_pairs(runbook, lab, primary, lab.dsn("drc-db") + " connect_timeout=2"),
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
            "(see docs/production.md, 'Settings')"
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
        pairs[db.id] = PairDsns(dc + " connect_timeout=2", drc + " connect_timeout=2")
    services: dict[str, ServiceEndpoints] = {}
    for service in runbook.services:
        services[service.id] = ServiceEndpoints(
            frontdoor_url=lab.route_url(service.id),
            route=service.id,
            standby_app_url=lab.app_url(service.id, "drc"),
            primary_app_url=lab.url(shape.service(service.id).uplink),
        )
    main = shape.main_pair
    first = runbook.databases[0].id if runbook.databases else main.id
    main_dsns = pairs.get(first) or PairDsns(*lab.site_pair_dsns(main.id, "drp-failover"))
    from drp.lab.faults import LabFaults

    return Topology(
        facility=lambda: facility.read(cfg),
        faults=LabFaults(lab),
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


def _lab_pairs(runbook: Runbook, lab: Lab, primary: str, standby: str) -> dict[str, PairDsns]:
    """The runbook's first pair is the lab's main pair; the next ones its extra pairs."""
    pairs = {}
    for index, db in enumerate(runbook.databases):
        if index == 0:
            pairs[db.id] = PairDsns(primary, standby)
            continue
        if index > lab.extra_pairs:
            raise PreconditionFailed(
                f"runbook database {db.id!r} is pair {index + 1}, but the lab runs "
                f"{lab.extra_pairs} extra pairs (hint: drp lab up --extra-pairs {index})"
            )
        dc, drc = lab.pair_dsns(index)
        pairs[db.id] = PairDsns(dc + " connect_timeout=2", drc + " connect_timeout=2")
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
        if isinstance(entry, dict) and entry.get("primary_dsn") and entry.get("standby_dsn"):
            pairs[db.id] = PairDsns(str(entry["primary_dsn"]), str(entry["standby_dsn"]))
        elif index == 0 and settings.primary_dsn and settings.standby_dsn:
            pairs[db.id] = PairDsns(settings.primary_dsn, settings.standby_dsn)
        else:
            raise PreconditionFailed(
                f"no DSNs for runbook database {db.id!r}: add it to DRP_DATABASE_PAIRS "
                f"({db.id}: {{primary_dsn: ..., standby_dsn: ...}})"
            )
    return pairs


def platform_dsn(ops_dsn: str | None, lab_root: Path | None, environment: str | None = None) -> str:
    """The platform's own database (registry, outbox, approvals, alert state): ``DRP_OPS_DSN``,
    else — for the lab, or when no runbook says otherwise — the lab's ops-db when a lab exists.
    Raises :class:`PreconditionFailed` (with what to set) when there is none."""
    if ops_dsn:
        return ops_dsn
    if environment not in (None, "lab"):
        raise PreconditionFailed(
            f"no ops database for a {environment} runbook: set DRP_OPS_DSN (the platform's "
            "database at the DRC)"
        )
    lab = Lab.from_env(root=lab_root)
    if not lab.cfg.state_file.exists():
        raise PreconditionFailed(
            f"no ops database: DRP_OPS_DSN is not set and there is no lab at {lab.cfg.root} "
            "(hint: set DRP_OPS_DSN, or drp lab up)"
        )
    return lab.dsn("ops-db") + " connect_timeout=2"
