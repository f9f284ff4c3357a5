"""The site lab (`drp lab up --runbook runbooks/lab-site.yaml --sync`): every database pair
streams synchronously, each service's app writes to its own pair, each service has its own
route; the real playbooks switch one route, fence, promote and verify one pair and one
service; faults hit the whole DC; `reset` keeps the shape; `down --purge` leaves nothing.

One site lab for the module, on ``DRP_TEST_PORT_BASE + 900`` (a site lab's ports stay within
base+1..base+99: tests/conftest.py lists the ranges). The tests run in file order and each
leaves the lab as the next one expects (the one that fails a pair over says so).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from drp.adapters import ansible as a
from drp.adapters import postgres as pg
from drp.adapters.http import http_json
from drp.commands import lab as lab_cli
from drp.lab import frontdoor
from drp.lab.core import Lab
from drp.lab.procs import owned, pid_alive
from drp.runbooks import load_runbook
from drp.settings import Settings
from drp.tasks.observe import frontdoor_site
from drp.topology import Topology, resolve

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SITE_RUNBOOK = REPO / "runbooks" / "lab-site.yaml"
PORT_BASE = int(os.environ.get("DRP_TEST_PORT_BASE", "26400")) + 900
SERVICES = ("skp", "perbendaharaan", "portal", "manifest", "tpb")
PAIR_OF = {
    "skp": "skp-db",
    "perbendaharaan": "perbendaharaan-db",
    "portal": "skp-db",
    "manifest": "manifest-db",
    "tpb": "skp-db",
}


@pytest.fixture(scope="module")
def site_lab() -> Iterator[Lab]:
    root = Path(tempfile.mkdtemp(prefix="drp-site-lab-", dir="/tmp"))
    lab = Lab.from_env(root=root / "lab", port_base=PORT_BASE)
    try:
        lab.up(sync=True, runbook=SITE_RUNBOOK)
        yield lab
    finally:
        lab.down(purge=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def topology(site_lab: Lab) -> Topology:
    runbook = load_runbook(SITE_RUNBOOK)
    return resolve(runbook, Path(runbook.inventory), Settings(lab_root=site_lab.cfg.root))


def _status(lab: Lab) -> dict[str, Any]:
    """What `drp lab status --json` says (the command itself)."""
    result = CliRunner().invoke(lab_cli.app, ["status", "--json", "--root", str(lab.cfg.root)])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _run(topology: Topology, playbook: str, **extra_vars: Any) -> a.PlaybookResult:
    return a.run_playbook(
        a.PlaybookCall(
            a.playbook_path(playbook), topology.inventories, extra_vars=extra_vars, timeout_s=120
        )
    )


def _routes(lab: Lab) -> dict[str, str | None]:
    return {s: frontdoor.served_site(lab.cfg, s) for s in SERVICES}


def _rows(dsn: str, nomor_aju: str) -> list[tuple[Any, ...]]:
    return pg.query(dsn, "SELECT site FROM declarations WHERE nomor_aju = %s", (nomor_aju,))


def _all_dbs(lab: Lab) -> dict[tuple[str, str], str]:
    """(pair, site) -> a DSN straight to that server's SKP database."""
    return {
        (pair.id, side): lab.dsn(pair.server(side))
        for pair in lab.shape.pairs
        for side in ("dc", "drc")
    }


# -- right after up ------------------------------------------------------------------------------
def test_every_pair_streams_synchronously_right_after_up(site_lab: Lab) -> None:
    status = _status(site_lab)
    assert status["runbook"] == str(SITE_RUNBOOK)
    assert [
        (p["id"], p["dc"]["role"], p["drc"]["role"], p["streaming"], p["sync"])
        for p in status["pairs"]
    ] == [
        ("skp-db", "primary", "standby", True, True),
        ("perbendaharaan-db", "primary", "standby", True, True),
        ("manifest-db", "primary", "standby", True, True),
    ]
    for pair in site_lab.shape.pairs:  # the primary's own view: its standby, synchronous
        senders = pg.senders(site_lab.dsn(pair.dc))
        assert [(s.application_name, s.state, s.sync_state) for s in senders] == [
            ("drc_db", "streaming", "sync")
        ]


def test_each_app_writes_to_its_own_pair_and_the_pair_replicates_it(site_lab: Lab) -> None:
    dbs = _all_dbs(site_lab)
    for service in SERVICES:
        aju = f"SITE-{service}-{uuid.uuid4().hex[:8]}"
        status, row = http_json(
            f"{site_lab.app_url(service, 'dc')}/declarations",
            {"nomor_aju": aju, "doc_type": "PIB", "office": "040300"},
        )
        assert status == 201 and row["site"] == "dc", (service, status, row)
        for (pair, side), dsn in dbs.items():
            found = _rows(dsn, aju)
            # Synchronous: the row is at the DRC standby of the same pair when the write returns.
            assert found == ([("dc",)] if pair == PAIR_OF[service] else []), (service, pair, side)
        drc_health = http_json(f"{site_lab.app_url(service, 'drc')}/health")
        assert drc_health == (
            200,
            {"site": "drc", "service": service, "db_role": "standby", "writable": False},
        )


def test_every_route_goes_to_the_dc_and_reaches_its_own_service(site_lab: Lab) -> None:
    assert _routes(site_lab) == dict.fromkeys(SERVICES, "dc")
    front = site_lab.url("frontdoor")
    for service in SERVICES:
        status, health = http_json(f"{front}/{service}/health")
        assert status == 200 and (health["site"], health["service"]) == ("dc", service)
    assert http_json(f"{front}/health")[1]["service"] == "skp"  # / stays the first route
    assert [(r["service"], r["serving_site"]) for r in _status(site_lab)["routes"]] == [
        (s, "dc") for s in SERVICES
    ]


def test_the_topology_gives_each_pair_its_dsns_and_each_service_its_endpoints(
    site_lab: Lab, topology: Topology
) -> None:
    cfg = site_lab.cfg
    assert topology.inventories == (REPO / "inventory" / "lab-site.yml", cfg.inventory_vars)
    for pair in site_lab.shape.pairs:
        dsns = topology.pairs[pair.id]
        assert f"port={cfg.port(pair.uplink)} " in dsns.primary_dsn  # the DC through the uplink
        assert pg.server_role(dsns.primary_dsn).writable
        assert pg.server_role(dsns.standby_dsn).in_recovery
        assert (dsns.standby_slot, dsns.rejoin_slot) == (pair.slot, "dc_db")
    for service in SERVICES:
        ends = topology.services[service]
        assert ends.route == service
        assert http_json(f"{ends.frontdoor_url}/health")[1]["service"] == service
        assert frontdoor_site(topology.frontdoor_url, ends.route) == "dc"
        assert http_json(f"{ends.standby_app_url}/health")[1]["site"] == "drc"
        assert http_json(f"{ends.primary_app_url}/health")[1] == {
            "site": "dc",
            "service": service,
            "db_role": "primary",
            "writable": True,
        }


def _without_tpb(folder: Path) -> Path:
    """runbooks/lab-site.yaml without its last service: another shape of site."""
    text = SITE_RUNBOOK.read_text().replace("../inventory/", f"{REPO}/inventory/")
    text = text.replace("playbook_dir: ../playbooks", f"playbook_dir: {REPO}/playbooks")
    cut = text.index("  - id: tpb\n")
    other = folder / "without-tpb.yaml"
    other.write_text(text[:cut] + text[text.index("\ncoordination:") :])
    return other


def test_the_lab_keeps_its_shape_and_refuses_another_before_changing_anything(
    site_lab: Lab, tmp_path: Path
) -> None:
    other = _without_tpb(tmp_path)
    before = site_lab._state()
    result = CliRunner().invoke(
        lab_cli.app, ["up", "--runbook", str(other), "--root", str(site_lab.cfg.root)]
    )
    assert result.exit_code != 0
    said = " ".join(result.output.split())  # as printed, wrapped at the terminal's width
    assert "drp lab reset --runbook" in said and "nothing was changed" in said, said
    assert site_lab._state() == before
    again = CliRunner().invoke(lab_cli.app, ["up", "--json", "--root", str(site_lab.cfg.root)])
    assert again.exit_code == 0, again.output
    assert len(json.loads(again.output)["pairs"]) == 3  # without --runbook: the shape it has


# -- the playbooks, per route and per pair --------------------------------------------------------
@pytest.fixture
def portal_back_on_dc(site_lab: Lab) -> Iterator[Lab]:
    yield site_lab
    portal = site_lab.shape.service("portal")
    if frontdoor.served_site(site_lab.cfg, "portal") != "dc":
        frontdoor.write_route(site_lab.cfg, portal, "dc")
        frontdoor.reload(site_lab.cfg, expect_site="dc", route="portal")


def test_switching_one_route_moves_only_that_service(
    portal_back_on_dc: Lab, topology: Topology
) -> None:
    lab = portal_back_on_dc
    moved = _run(topology, "switch_traffic.yml", route="portal", target_site="drc")
    moved.raise_for_failure()
    assert moved.changed
    assert moved.stats_data["switch"]["lb1"]["route"] == "portal"
    assert _routes(lab) == {**dict.fromkeys(SERVICES, "dc"), "portal": "drc"}
    front = lab.url("frontdoor")
    assert http_json(f"{front}/portal/health")[1]["site"] == "drc"
    for service in ("skp", "perbendaharaan", "manifest", "tpb"):  # still served from the DC
        aju = f"STAY-{service}-{uuid.uuid4().hex[:8]}"
        status, row = http_json(
            f"{front}/{service}/declarations", {"nomor_aju": aju, "doc_type": "BC", "office": "x"}
        )
        assert status == 201 and row["site"] == "dc", service
    assert frontdoor.configured_site(lab.cfg, "portal") == "drc"
    assert frontdoor.configured_site(lab.cfg) == "dc"  # the main route's file is untouched

    again = _run(topology, "switch_traffic.yml", route="portal", target_site="drc")
    again.raise_for_failure()
    assert not again.changed and again.stats_data["switch"]["lb1"]["already_on_target"]

    back = _run(topology, "switch_traffic.yml", route="portal", target_site="dc")
    back.raise_for_failure()
    assert _routes(lab) == dict.fromkeys(SERVICES, "dc")


def test_switching_an_unknown_route_is_refused_and_changes_nothing(
    site_lab: Lab, topology: Topology
) -> None:
    result = _run(topology, "switch_traffic.yml", route="nope", target_site="drc")
    assert not result.ok
    assert "route nope is not a route of this front door" in result.failure_message()
    assert _routes(site_lab) == dict.fromkeys(SERVICES, "dc")


def test_verify_refuses_a_route_still_served_by_the_other_site(topology: Topology) -> None:
    result = _run(topology, "verify_service.yml", service="manifest", expected_site="drc")
    assert not result.ok
    assert "served by site dc, not drc" in result.failure_message()


def test_one_pair_fenced_promoted_switched_and_verified_at_the_drc(
    site_lab: Lab, topology: Topology
) -> None:
    """perbendaharaan fails over on its own; this lab stays that way for the fault tests."""
    for playbook, group_var, group in (
        ("preflight.yml", "standby_group", "perbendaharaan_drc_db"),
        ("fence_primary.yml", "primary_group", "perbendaharaan_dc_db"),
        ("promote_standby.yml", "standby_group", "perbendaharaan_drc_db"),
    ):
        _run(topology, playbook, **{group_var: group}).raise_for_failure()
    started = _run(
        topology,
        "start_app.yml",
        app_group="perbendaharaan_drc_app",
        app_service="perbendaharaan",
        require_writable=True,
    )
    started.raise_for_failure()
    assert started.stats_data["app"]["perbendaharaan-drc-app1"]["health"] == {
        "site": "drc",
        "service": "perbendaharaan",
        "db_role": "primary",
        "writable": True,
    }
    switched = _run(topology, "switch_traffic.yml", route="perbendaharaan", target_site="drc")
    switched.raise_for_failure()

    verified = _run(topology, "verify_service.yml", service="perbendaharaan", expected_site="drc")
    verified.raise_for_failure()
    verify = verified.stats_data["verify"]
    assert verify["db_group"] == "perbendaharaan_drc_db"
    assert verify["database"] == {
        "perbendaharaan-db-drc1": {
            "found": True,
            "site": "drc",
            "created_at": verify["database"]["perbendaharaan-db-drc1"]["created_at"],
            "in_recovery": False,
        }
    }
    # The row is in that pair's DRC database and in no other server of the site.
    where = {
        key: bool(_rows(dsn, verify["nomor_aju"]))
        for key, dsn in _all_dbs(site_lab).items()
        if key != ("perbendaharaan-db", "dc")  # fenced: stopped
    }
    assert where == {
        ("skp-db", "dc"): False,
        ("skp-db", "drc"): False,
        ("perbendaharaan-db", "drc"): True,
        ("manifest-db", "dc"): False,
        ("manifest-db", "drc"): False,
    }
    assert _routes(site_lab) == {**dict.fromkeys(SERVICES, "dc"), "perbendaharaan": "drc"}
    # The other services still verify at the DC, each in its own pair.
    manifest = _run(topology, "verify_service.yml", service="manifest", expected_site="dc")
    manifest.raise_for_failure()
    assert list(manifest.stats_data["verify"]["database"]) == ["manifest-db-dc1"]


# -- faults and repair ----------------------------------------------------------------------------
def _perbendaharaan_still_failed_over(lab: Lab) -> None:
    """Never two writable primaries: the promoted DRC stays primary, the old DC never writes."""
    assert pg.server_role(lab.dsn("perbendaharaan-db-drc")).writable
    dc = lab.cluster("perbendaharaan-db-dc")
    assert not dc.running() or not pg.server_role(lab.dsn("perbendaharaan-db-dc")).writable


def test_a_crash_of_one_pair_leaves_the_others_and_repair_restarts_it(site_lab: Lab) -> None:
    said = site_lab.break_("dc-db-crash", pair="manifest-db")
    assert said == "manifest-db-dc crashed (pg_ctl stop -m immediate)"
    assert not site_lab.cluster("manifest-db-dc").running()
    assert site_lab.cluster("dc-db").running()
    done = site_lab.repair()
    assert "manifest-db-dc restarted" in done
    pairs = {p["id"]: p for p in _status(site_lab)["pairs"]}
    assert pairs["manifest-db"]["dc"]["role"] == "primary" and pairs["manifest-db"]["sync"]
    _perbendaharaan_still_failed_over(site_lab)


def test_a_dc_db_crash_crashes_every_dc_primary(site_lab: Lab) -> None:
    said = site_lab.break_("dc-db-crash")
    assert (
        "dc-db" in said
        and "manifest-db-dc" in said
        and said.endswith("crashed (pg_ctl stop -m immediate)")
    )
    assert not any(site_lab.cluster(p.dc).running() for p in site_lab.shape.pairs)
    site_lab.repair()
    assert pg.server_role(site_lab.dsn("dc-db")).writable
    assert pg.server_role(site_lab.dsn("manifest-db-dc")).writable
    _perbendaharaan_still_failed_over(site_lab)


def test_dc_power_loss_takes_the_whole_dc_and_repair_brings_it_back(site_lab: Lab) -> None:
    site_lab.break_("dc-power-loss")
    comps = _status(site_lab)["components"]
    dc_side = [p.dc for p in site_lab.shape.pairs] + [
        app.name for app in site_lab.shape.apps if app.site == "dc"
    ]
    assert [n for n in dc_side if comps[n]["up"]] == []
    assert not comps["uplink"]["up"] and comps["facility"]["dc_power"] is False
    drc_side = [p.drc for p in site_lab.shape.pairs] + [
        app.name for app in site_lab.shape.apps if app.site == "drc"
    ]
    assert all(comps[n]["up"] for n in drc_side)
    # Users of the failed-over service are still served; the others are not.
    front = site_lab.url("frontdoor")
    assert http_json(f"{front}/perbendaharaan/health")[1]["site"] == "drc"
    assert http_json(f"{front}/portal/health")[0] == 502

    site_lab.repair()
    comps = _status(site_lab)["components"]
    assert [n for n in [*dc_side, "uplink"] if not comps[n]["up"]] == []
    _perbendaharaan_still_failed_over(site_lab)


def test_national_network_loss_cuts_every_dc_service_off_but_leaves_it_running(
    site_lab: Lab, topology: Topology
) -> None:
    site_lab.break_("national-network-loss")
    try:
        assert site_lab.cluster("manifest-db-dc").running()
        assert pg.server_role(site_lab.dsn("manifest-db-dc")).writable  # running, unreachable
        for pair_id in ("skp-db", "manifest-db"):
            assert not pg.is_reachable(topology.pairs[pair_id].primary_dsn, timeout=2)
        front = site_lab.url("frontdoor")
        for service in ("skp", "portal", "manifest", "tpb"):
            assert http_json(f"{front}/{service}/health")[0] == 502, service
        assert http_json(f"{front}/perbendaharaan/health")[0] == 200
    finally:
        site_lab.repair()
    assert pg.is_reachable(topology.pairs["manifest-db"].primary_dsn, timeout=2)


# -- reset, down ----------------------------------------------------------------------------------
def test_reset_rebuilds_every_pair_and_route_in_the_same_shape_and_keeps_ops_db(
    site_lab: Lab,
) -> None:
    servers = [n for p in site_lab.shape.pairs for n in (p.dc, p.drc)]
    before = {
        n: pg.query(site_lab.dsn(n), "SELECT system_identifier FROM pg_control_system()")
        for n in servers
        if site_lab.cluster(n).running()
    }
    ops_pid = site_lab.cluster("ops-db").postmaster_pid()
    result = CliRunner().invoke(lab_cli.app, ["reset", "--json", "--root", str(site_lab.cfg.root)])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["runbook"] == str(SITE_RUNBOOK)
    assert [(p["id"], p["dc"]["role"], p["streaming"], p["sync"]) for p in status["pairs"]] == [
        ("skp-db", "primary", True, True),
        ("perbendaharaan-db", "primary", True, True),
        ("manifest-db", "primary", True, True),
    ]
    after = {
        n: pg.query(site_lab.dsn(n), "SELECT system_identifier FROM pg_control_system()")
        for n in before
    }
    assert all(after[n] != before[n] for n in before)
    assert _routes(site_lab) == dict.fromkeys(SERVICES, "dc")
    assert all(app["up"] for app in status["apps"]) and len(status["apps"]) == 10
    assert site_lab.cluster("ops-db").postmaster_pid() == ops_pid
    # Every app again in front of its own, fresh, pair.
    for service in SERVICES:
        health = http_json(f"{site_lab.url('frontdoor')}/{service}/health")[1]
        assert (health["site"], health["service"], health["writable"]) == ("dc", service, True)


def test_reset_with_another_runbook_rebuilds_the_sites_in_its_shape(
    site_lab: Lab, tmp_path: Path
) -> None:
    tpb_pid = site_lab._state()["tpb_dc_app_pid"]
    other = _without_tpb(tmp_path)
    result = CliRunner().invoke(
        lab_cli.app, ["reset", "--runbook", str(other), "--json", "--root", str(site_lab.cfg.root)]
    )
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["runbook"] == str(other)
    assert [r["service"] for r in status["routes"]] == list(SERVICES[:-1])
    assert all(p["streaming"] and p["sync"] for p in status["pairs"])
    assert not pid_alive(tpb_pid)
    assert http_json(f"{site_lab.url('frontdoor')}/tpb/health")[0] != 200  # no route any more
    assert http_json(f"{site_lab.url('frontdoor')}/manifest/health")[1]["service"] == "manifest"


def test_down_purge_leaves_nothing(site_lab: Lab) -> None:
    state = site_lab._state()
    pids = [state[app.pid_key] for app in site_lab.shape.apps] + [state["uplink_pid"]]
    postmasters = [
        site_lab.cluster(n).postmaster_pid() for p in site_lab.shape.pairs for n in (p.dc, p.drc)
    ]
    server_dir = site_lab.cfg.server_root
    apps = {app.name for app in site_lab.shape.apps}
    stopped = site_lab.down(purge=True)
    assert apps <= set(stopped)
    assert {"perbendaharaan-db-dc", "manifest-db-drc", "uplink", "frontdoor"} <= set(stopped)
    assert not any(pid_alive(pid) for pid in [*pids, *postmasters] if pid)
    assert not any(owned(pid, site_lab.marker) for pid in pids)
    assert not site_lab.cfg.root.exists()
    assert server_dir is None or not server_dir.exists()
