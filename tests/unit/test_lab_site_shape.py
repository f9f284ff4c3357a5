"""The site lab's shape, computed from a runbook: pairs, apps, routes, ports and the inventory
that Ansible gets — checked without building anything."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest
import yaml

from drp.adapters import ansible as a
from drp.errors import LabError
from drp.lab import frontdoor, inventory, site
from drp.lab.config import PORT_OFFSETS, LabConfig
from drp.lab.site import Shape
from drp.runbooks import inventory_groups, load_runbook
from drp.topology import ServiceEndpoints, Topology

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SITE_RUNBOOK = REPO / "runbooks" / "lab-site.yaml"


@pytest.fixture(scope="module")
def shape() -> Shape:
    return site.from_runbook(load_runbook(SITE_RUNBOOK), str(SITE_RUNBOOK))


def _cfg(tmp_path: Path, shape: Shape) -> LabConfig:
    return LabConfig(root=tmp_path / "lab", port_base=20000, site_ports=shape.ports)


def test_the_site_runbook_gives_a_pair_per_database_and_an_app_per_service_and_site(
    shape: Shape,
) -> None:
    assert shape.routed and shape.runbook == str(SITE_RUNBOOK)
    assert shape.pair_ids == ("skp-db", "perbendaharaan-db", "manifest-db")
    main, perbendaharaan, manifest = shape.pairs
    assert (main.dc, main.drc, main.uplink) == ("dc-db", "drc-db", "uplink-db")
    assert (perbendaharaan.dc, perbendaharaan.drc) == (
        "perbendaharaan-db-dc",
        "perbendaharaan-db-drc",
    )
    assert (manifest.primary_group, manifest.standby_group) == ("manifest_dc_db", "manifest_drc_db")
    assert [(s.id, s.pair) for s in shape.services] == [
        ("skp", "skp-db"),
        ("perbendaharaan", "perbendaharaan-db"),
        ("portal", "skp-db"),
        ("manifest", "manifest-db"),
        ("tpb", "skp-db"),
    ]
    skp, portal = shape.service("skp"), shape.service("portal")
    assert (skp.dc_app.name, skp.drc_app.name, skp.uplink) == ("dc-app", "drc-app", "uplink-app")
    assert skp.dc_app.pid_key == "dc_app_pid"  # the main apps keep their place in state.json
    assert (portal.dc_app.name, portal.drc_app.group) == ("portal-dc-app", "portal_drc_app")
    assert portal.uplink == "uplink-portal-app"


def test_every_port_is_its_own_and_stays_below_the_extra_pairs_range(
    tmp_path: Path, shape: Shape
) -> None:
    cfg = _cfg(tmp_path, shape)
    names = [n for p in shape.pairs for n in (p.dc, p.drc, p.uplink)]
    names += [n for s in shape.services for n in (s.dc_app.name, s.drc_app.name, s.uplink)]
    ports = [cfg.port(n) for n in {*names, *PORT_OFFSETS}]
    assert len(ports) == len(set(ports))
    assert all(20001 <= cfg.port(n) < 20100 for n in names)


def test_the_lab_without_a_runbook_is_the_lab_of_one_service() -> None:
    shape = site.default()
    assert not shape.routed and shape.ports == ()
    assert [(p.id, p.dc, p.drc) for p in shape.pairs] == [("skp-db", "dc-db", "drc-db")]
    assert [(s.id, s.dc_app.name, s.drc_app.name) for s in shape.services] == [
        ("skp", "dc-app", "drc-app")
    ]


def test_a_recorded_shape_comes_back_with_the_ports_it_was_given(shape: Shape) -> None:
    moved = dict(shape.ports) | {"manifest-db-dc": 99}
    again = Shape.from_dict({**shape.as_dict(), "ports": moved})
    assert dict(again.ports)["manifest-db-dc"] == 99
    assert again.as_dict()["pairs"] == shape.as_dict()["pairs"]
    assert Shape.from_dict(shape.as_dict()) == shape


@pytest.mark.parametrize(
    ("pairs", "services", "message"),
    [
        ([("a", "dc_db", "drc_db"), ("b", "dc_db", "b_drc")], [("s", "a")], "used twice"),
        ([("a", "dc_db", "drc_db"), ("b", "frontdoor", "b_drc")], [("s", "a")], "reserved"),
        ([("a", "dc_db", "drc_db"), ("b", "b-dc", "b_drc")], [("s", "a")], "not an Ansible"),
        ([("a", "dc_db", "drc_db")], [("s", "nope")], "not one of the database pairs"),
        ([("a", "dc_db", "drc_db"), ("app", "x_dc", "x_drc")], [("s", "a")], "'uplink-app'"),
        ([("a", "dc_db", "drc_db"), ("pair01", "x_dc", "x_drc")], [("s", "a")], "'pair01-dc'"),
        ([("a", "dc_db", "drc_db")], [("s", "a"), ("s", "a")], "listed twice"),
    ],
)
def test_a_shape_the_lab_cannot_build_is_refused_naming_the_entry(
    pairs: list[tuple[str, str, str]], services: list[tuple[str, str]], message: str
) -> None:
    with pytest.raises(LabError, match=message):
        site.build(pairs, services, runbook="r.yaml")


def test_too_many_pairs_and_services_for_the_lab_s_ports_are_refused() -> None:
    pairs = [("p0", "dc_db", "drc_db")] + [(f"p{i}", f"p{i}_dc", f"p{i}_drc") for i in range(1, 40)]
    with pytest.raises(LabError, match="too many database pairs and services"):
        site.build(pairs, [("s", "p0")], runbook="r.yaml")


def test_only_a_lab_runbook_builds_a_lab() -> None:
    ceisa = load_runbook(REPO / "runbooks" / "ceisa.yaml")
    with pytest.raises(LabError, match="lab runbook only"):
        site.from_runbook(ceisa, "runbooks/ceisa.yaml")


# -- the front door ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("route", "site_name", "port"), [("portal", "drc", 55412), ("tpb-2", "dc", 1)]
)
def test_the_route_template_writes_what_the_lab_writes(
    route: str, site_name: str, port: int
) -> None:
    env = jinja2.Environment(keep_trailing_newline=True, trim_blocks=True)
    source = (a.PLAYBOOKS_DIR / "templates" / "route.conf.j2").read_text()
    rendered = env.from_string(source).render(
        route_name=route, target_site=site_name, site_ports={site_name: port}
    )
    assert rendered == frontdoor.route_conf(route, site_name, port)


def test_the_front_door_of_one_service_has_no_routes_of_its_own(tmp_path: Path) -> None:
    cfg = LabConfig(root=tmp_path / "lab", port_base=20000)
    conf = frontdoor.nginx_conf(cfg, site.default())
    assert conf == frontdoor.nginx_conf(cfg)
    assert "routes/" not in conf and "/__frontdoor/" not in conf


def test_the_site_front_door_routes_each_service_by_its_own_file(
    tmp_path: Path, shape: Shape
) -> None:
    conf = frontdoor.nginx_conf(_cfg(tmp_path, shape), shape)
    for service in shape.services:
        assert f"location /{service.id}/ {{" in conf
        assert f"location = /__frontdoor/{service.id} {{" in conf
    assert "proxy_pass http://skp_active/;" in conf  # /skp/ is the main route, as / is
    assert "proxy_pass http://drp_route_portal/;" in conf
    assert f"include {tmp_path / 'lab' / 'frontdoor'}/routes/*.conf;" in conf


# -- Ansible -------------------------------------------------------------------------------------
def _hosts_by_group(data: dict) -> dict[str, set[str]]:
    """group -> hosts, through children, of a parsed YAML inventory."""
    out: dict[str, set[str]] = {}

    def walk(name: str, body: dict | None) -> set[str]:
        body = body or {}
        hosts = set(body.get("hosts") or {})
        for child, child_body in (body.get("children") or {}).items():
            hosts |= walk(child, child_body)
        out.setdefault(name, set()).update(hosts)
        return hosts

    for name, body in data.items():
        walk(name, body)
    return out


def test_the_generated_inventory_has_the_groups_and_hosts_of_inventory_lab_site(
    tmp_path: Path, shape: Shape
) -> None:
    generated = inventory.site(_cfg(tmp_path, shape), shape)
    static = yaml.safe_load((REPO / "inventory" / "lab-site.yml").read_text())
    static_groups = _hosts_by_group(static)
    generated_groups = _hosts_by_group(generated)
    for group in inventory_groups(static) - {"all", "ungrouped"}:
        assert generated_groups.get(group) == static_groups[group], group


def test_the_generated_inventory_says_how_to_act_per_service_and_per_pair(
    tmp_path: Path, shape: Shape
) -> None:
    cfg = _cfg(tmp_path, shape)
    data = inventory.site(cfg, shape)
    assert data["perbendaharaan_dc_db"]["hosts"]["perbendaharaan-db-dc1"]["pg_port"] == cfg.port(
        "perbendaharaan-db-dc"
    )
    assert data["portal_drc_app"]["hosts"]["portal-drc-app1"] == {
        "app_port": cfg.port("portal-drc-app"),
        "app_site": "drc",
        "lab_service": "portal",
    }
    assert data["dc"]["vars"]["ansible_port"] == cfg.port("uplink-ssh")  # the DC via the uplink
    assert "dc-db1" in data["dc_db"]["hosts"] and "dc-app1" in data["dc_app"]["hosts"]
    routes = data["all"]["vars"]["frontdoor_routes"]
    assert routes["portal"]["db_groups"] == {"dc": "dc_db", "drc": "drc_db"}
    assert routes["manifest"]["db_groups"] == {"dc": "manifest_dc_db", "drc": "manifest_drc_db"}
    assert routes["manifest"]["site_ports"] == {
        "dc": cfg.port("uplink-manifest-app"),
        "drc": cfg.port("manifest-drc-app"),
    }
    assert routes["skp"]["main"] and routes["skp"]["conf"].endswith("/active-site.conf")
    assert routes["tpb"]["conf"].endswith("/routes/tpb.conf")
    assert data["all"]["vars"]["lab_app_ports"]["tpb"] == {
        "dc": cfg.port("tpb-dc-app"),
        "drc": cfg.port("tpb-drc-app"),
    }


def test_the_lab_of_one_service_writes_the_inventory_it_always_did(tmp_path: Path) -> None:
    cfg = LabConfig(root=tmp_path / "lab", port_base=20000)
    text = inventory.render(cfg, site.default())
    assert text.startswith(inventory.HEADER)
    data = yaml.safe_load(text)
    assert list(data) == ["all", "dc_db", "drc_db", "ops_db", "dc_app", "drc_app"]
    assert "frontdoor_routes" not in data["all"]["vars"]


def test_a_topology_without_service_endpoints_falls_back_to_its_front_door() -> None:
    topo = Topology(
        inventories=(),
        primary_dsn="p",
        standby_dsn="s",
        frontdoor_url="http://fd",
        standby_app_url="http://drc",
    )
    assert topo.service("anything") == ServiceEndpoints(
        frontdoor_url="http://fd", route=None, standby_app_url="http://drc"
    )
