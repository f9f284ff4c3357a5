"""The shape of a lab: which database pairs, which service apps, which front-door routes.

``drp lab up`` alone builds the lab of ``runbooks/lab.yaml``: one database pair (``dc-db`` and
``drc-db``) and one SKP stand-in per site behind a single front-door route. ``drp lab up
--runbook R`` builds a small *site* from a lab runbook instead:

- one database pair per ``databases`` entry, with real streaming replication: the first is the
  main pair (``dc-db``/``drc-db``), every other one ``<pair id>-dc``/``<pair id>-drc``; each
  standby streams from its primary through the DC uplink (a network loss cuts every pair);
- one SKP stand-in per service per site, connected to its own service's pair at its site;
- a front-door route per service (``/<service id>/``), switched on its own, so that a partial
  failover of one service leaves the others at the DC.

This module only *computes* that shape from a runbook (pure: names, ports, inventory groups and
hosts), so that a unit test can check it and ``state.json`` can remember it; :mod:`drp.lab.core`
builds it. A shape is fixed when the lab is built: later commands read it from the state, not
from the runbook file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from drp.errors import LabError
from drp.lab.config import (
    EXTRA_PAIRS_OFFSET,
    MAX_EXTRA_PAIRS,
    PORT_OFFSETS,
    SITES,
    SLOT_NAME,
    extra_pair_names,
)

MAIN_PAIR_ID = "skp-db"
MAIN_SERVICE_ID = "skp"
"""The pair and the service of the lab without a runbook (``runbooks/lab.yaml``)."""

RESERVED_GROUPS = frozenset(
    {"all", "ungrouped", "dc", "drc", "dc_db", "drc_db", "dc_app", "drc_app", "ops_db",
     "frontdoor", "lab_ssh"}
)  # fmt: skip
"""Inventory groups the lab always defines; only the main pair may name dc_db / drc_db."""


def _site_offsets() -> list[int]:
    """Port offsets a site's extra pairs and apps may take, in the order they are handed out:
    the free ones below the extra pairs' range (+100), never one of :data:`PORT_OFFSETS`
    (read when called, so an offset added there is never handed out twice). The middle of the
    range comes first, away from the fixed offsets that new components are likely to take."""
    taken = set(PORT_OFFSETS.values())
    order = [*range(40, 80), *range(81, 100), *range(34, 40), *range(4, 34)]
    return [o for o in order if o not in taken and o < EXTRA_PAIRS_OFFSET]


def route_var(service_id: str) -> str:
    """An nginx-safe suffix for a service's route (``tpb-2`` -> ``tpb_2``): service ids are
    lowercase letters, digits and dashes, so this never maps two ids to one name."""
    return service_id.replace("-", "_")


def group_name(service_id: str, site: str) -> str:
    """The inventory group of a service's app at a site: ``portal_drc_app``."""
    return f"{route_var(service_id)}_{site}_app"


@dataclass(frozen=True)
class PairShape:
    """One database pair: the DC primary and the DRC standby streaming from it."""

    id: str
    dc: str
    """Server name of the DC primary (its data directory, log and port name)."""
    drc: str
    uplink: str
    """Port name of the DC uplink's relay to the primary (what the standby and clients use)."""
    primary_group: str
    standby_group: str
    dc_host: str
    drc_host: str
    main: bool = False
    slot: str = SLOT_NAME
    """The standby's replication slot and application_name (``drc_db`` for every pair)."""

    def server(self, site: str) -> str:
        return self.dc if site == "dc" else self.drc

    def host(self, site: str) -> str:
        return self.dc_host if site == "dc" else self.drc_host

    def group(self, site: str) -> str:
        return self.primary_group if site == "dc" else self.standby_group


@dataclass(frozen=True)
class AppShape:
    """One service's SKP stand-in at one site."""

    service: str
    site: str
    name: str
    """Port name, log name and pid key stem: ``dc-app`` for the main service, else
    ``<service>-<site>-app``."""
    host: str
    group: str

    @property
    def pid_key(self) -> str:
        """Its pid's key in ``state.json`` (``dc_app_pid`` for the main service, as before)."""
        return f"{self.name.replace('-', '_')}_pid"


@dataclass(frozen=True)
class ServiceShape:
    """A service: its pair, its apps at both sites, and the uplink relay to its DC app."""

    id: str
    pair: str
    dc_app: AppShape
    drc_app: AppShape
    uplink: str
    main: bool = False

    def app(self, site: str) -> AppShape:
        return self.dc_app if site == "dc" else self.drc_app

    @property
    def apps(self) -> tuple[AppShape, AppShape]:
        return (self.dc_app, self.drc_app)


@dataclass(frozen=True)
class Shape:
    """What a lab is made of. ``runbook`` is None for the lab without one (one pair, one
    service, one front-door route: the lab as it always was); ``routed`` labs give each
    service a route of its own at the front door."""

    pairs: tuple[PairShape, ...]
    services: tuple[ServiceShape, ...]
    runbook: str | None = None
    ports: tuple[tuple[str, int], ...] = ()
    """Ports of the names that are not fixed offsets (extra pairs' servers, uplinks, apps)."""

    @property
    def routed(self) -> bool:
        return self.runbook is not None

    @property
    def main_pair(self) -> PairShape:
        return self.pairs[0]

    @property
    def main_service(self) -> ServiceShape:
        return self.services[0]

    def pair(self, pair_id: str) -> PairShape:
        for pair in self.pairs:
            if pair.id == pair_id:
                return pair
        raise LabError(
            f"the lab has no database pair {pair_id!r} (it has {', '.join(self.pair_ids)})"
        )

    def service(self, service_id: str) -> ServiceShape:
        for service in self.services:
            if service.id == service_id:
                return service
        raise LabError(
            f"the lab has no service {service_id!r} (it has "
            f"{', '.join(s.id for s in self.services)})"
        )

    @property
    def pair_ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.pairs)

    @property
    def apps(self) -> tuple[AppShape, ...]:
        return tuple(app for s in self.services for app in s.apps)

    def services_on(self, pair_id: str) -> tuple[ServiceShape, ...]:
        return tuple(s for s in self.services if s.pair == pair_id)

    # -- state.json ------------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        return {
            "runbook": self.runbook,
            "pairs": [
                {"id": p.id, "primary_group": p.primary_group, "standby_group": p.standby_group}
                for p in self.pairs
            ],
            "services": [{"id": s.id, "pair": s.pair} for s in self.services],
            "ports": dict(self.ports),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Shape:
        """The shape recorded in ``state.json`` (ports as they were handed out then)."""
        return build(
            [(p["id"], p["primary_group"], p["standby_group"]) for p in data["pairs"]],
            [(s["id"], s["pair"]) for s in data["services"]],
            runbook=data.get("runbook"),
            ports=data.get("ports") or {},
        )


def default() -> Shape:
    """The lab of ``runbooks/lab.yaml``: pair ``skp-db`` and service ``skp``, one route."""
    return build([(MAIN_PAIR_ID, "dc_db", "drc_db")], [(MAIN_SERVICE_ID, MAIN_PAIR_ID)])


def from_runbook(runbook: Any, path: str) -> Shape:
    """The site a lab runbook describes (a validated :class:`drp.domain.runbook.Runbook`):
    its ``databases`` are the pairs, its ``services`` the apps and routes. A service names its
    pair with ``database``; one without runs on the first pair."""
    if runbook.environment != "lab":
        raise LabError(
            f"{path}: environment {runbook.environment!r}: the lab is built from a lab runbook "
            "only (hint: environment: lab, as in runbooks/lab-site.yaml)"
        )
    if not runbook.databases:
        raise LabError(
            f"{path}: no databases: a site lab needs at least one database pair (hint: "
            "databases: [{id: skp-db, primary_group: dc_db, standby_group: drc_db}])"
        )
    first = runbook.databases[0].id
    return build(
        [(d.id, d.primary_group, d.standby_group) for d in runbook.databases],
        [(s.id, s.database or first) for s in runbook.services],
        runbook=path,
    )


_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_GROUP = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def build(
    pairs: Iterable[tuple[str, str, str]],
    services: Iterable[tuple[str, str]],
    runbook: str | None = None,
    ports: Mapping[str, int] | None = None,
) -> Shape:
    """The shape of ``pairs`` (id, primary group, standby group) and ``services`` (id, pair
    id); ``ports`` keeps offsets handed out before (a built lab), new names get free ones.
    LabError, naming the entry, for anything the lab could not build."""
    pair_list = list(pairs)
    service_list = list(services)
    where = runbook or "the lab"
    if not pair_list or not service_list:
        raise LabError(f"{where}: a lab needs at least one database pair and one service")
    reserved_names = set(PORT_OFFSETS) | {"ops-db"}
    for index in range(1, MAX_EXTRA_PAIRS + 1):
        reserved_names.update(extra_pair_names(index))
    names: dict[str, None] = {}  # in the order they are claimed: a pair's ports side by side

    def claim(name: str, what: str) -> str:
        if name in names or name in reserved_names:
            raise LabError(
                f"{where}: {what} would be named {name!r}, which the lab already uses "
                "(hint: rename it)"
            )
        names[name] = None
        return name

    groups: set[str] = set()

    def group(name: str, what: str, main: bool) -> str:
        allowed_reserved = main and name in ("dc_db", "drc_db")
        if not _GROUP.match(name):
            raise LabError(
                f"{where}: {what} group {name!r} is not an Ansible group name (hint: letters, "
                "digits and underscores, such as manifest_dc_db)"
            )
        if name in groups or (name in RESERVED_GROUPS and not allowed_reserved):
            raise LabError(
                f"{where}: {what} group {name!r} is used twice or reserved by the lab "
                f"({', '.join(sorted(RESERVED_GROUPS))}; only the first pair may use dc_db and "
                "drc_db) (hint: name each pair's groups after it, such as manifest_dc_db)"
            )
        groups.add(name)
        return name

    built_pairs: list[PairShape] = []
    for index, (pair_id, primary_group, standby_group) in enumerate(pair_list):
        if not _ID.match(pair_id):
            raise LabError(f"{where}: database pair id {pair_id!r} is not lowercase-dashed")
        main = index == 0
        what = f"database pair {pair_id!r}"
        if main:
            names.update(dict.fromkeys(("dc-db", "drc-db", "uplink-db")))
            shaped = PairShape(
                pair_id, "dc-db", "drc-db", "uplink-db",
                group(primary_group, what, True), group(standby_group, what, True),
                "dc-db1", "drc-db1", main=True,
            )  # fmt: skip
        else:
            shaped = PairShape(
                pair_id,
                claim(f"{pair_id}-dc", what),
                claim(f"{pair_id}-drc", what),
                claim(f"uplink-{pair_id}", what),
                group(primary_group, what, False),
                group(standby_group, what, False),
                f"{pair_id}-dc1",
                f"{pair_id}-drc1",
            )
        if any(p.id == pair_id for p in built_pairs):
            raise LabError(f"{where}: database pair {pair_id!r} is listed twice")
        built_pairs.append(shaped)

    pair_ids = {p.id for p in built_pairs}
    built_services: list[ServiceShape] = []
    for index, (service_id, pair_id) in enumerate(service_list):
        if not _ID.match(service_id):
            raise LabError(f"{where}: service id {service_id!r} is not lowercase-dashed")
        if pair_id not in pair_ids:
            raise LabError(
                f"{where}: service {service_id!r} runs on {pair_id!r}, which is not one of the "
                f"database pairs ({', '.join(sorted(pair_ids))})"
            )
        if any(s.id == service_id for s in built_services):
            raise LabError(f"{where}: service {service_id!r} is listed twice")
        main = index == 0
        what = f"service {service_id!r}"
        apps = []
        for site in SITES:
            app_group = group(group_name(service_id, site), what, False)
            if main:
                name, host = f"{site}-app", f"{site}-app1"
                names[name] = None
            else:
                name = claim(f"{service_id}-{site}-app", what)
                host = f"{service_id}-{site}-app1"
            apps.append(AppShape(service_id, site, name, host, app_group))
        uplink = "uplink-app" if main else claim(f"uplink-{service_id}-app", what)
        if main:
            names[uplink] = None
        built_services.append(ServiceShape(service_id, pair_id, apps[0], apps[1], uplink, main))

    given = dict(ports or {})
    free = [o for o in _site_offsets() if o not in given.values()]
    handed: dict[str, int] = {}
    for name in (n for n in names if n not in PORT_OFFSETS):
        if name in given:
            handed[name] = int(given[name])
            continue
        if not free:
            raise LabError(
                f"{where}: too many database pairs and services for one lab's ports "
                f"({len(_site_offsets())} spare ports, 3 per pair or service beyond the first) "
                "(hint: fewer pairs, or services sharing a pair)"
            )
        handed[name] = free.pop(0)
    return Shape(
        pairs=tuple(built_pairs),
        services=tuple(built_services),
        runbook=runbook,
        ports=tuple(sorted(handed.items(), key=lambda item: item[1])),
    )
