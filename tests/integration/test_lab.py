"""The embedded lab does what it says: real replication, a front door that switches, faults that
have the effect they name, a repair that undoes them, and a `down` that leaves nothing running."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest

from drp.adapters import postgres as pg
from drp.lab import frontdoor
from drp.lab.core import Lab, http_json
from drp.lab.procs import pid_alive, wait_until

pytestmark = pytest.mark.integration


def _declaration(prefix: str = "T") -> dict:
    return {"nomor_aju": f"{prefix}-{uuid.uuid4().hex[:12]}", "doc_type": "PEB", "office": "040300"}


def test_a_row_written_at_the_dc_is_read_at_the_drc(lab: Lab) -> None:
    marker = uuid.uuid4().hex
    pg.query(
        lab.dsn("dc-db"),
        "INSERT INTO declarations (nomor_aju, doc_type, office, site)"
        " VALUES (%s, 'PIB', 'x', 'dc')",
        (marker,),
    )
    assert wait_until(
        lambda: bool(
            pg.query(
                lab.dsn("drc-db"), "SELECT 1 FROM declarations WHERE nomor_aju = %s", (marker,)
            )
        ),
        timeout=10,
    )


def test_the_standby_streams_and_refuses_writes(lab: Lab) -> None:
    st = lab.status()["components"]
    assert st["dc-db"]["role"] == "primary" and st["dc-db"]["writable"] is True
    assert st["drc-db"]["role"] == "standby" and st["drc-db"]["writable"] is False
    assert st["drc-db"]["replication"]["streaming"] is True
    assert [s["application_name"] for s in st["dc-db"]["standbys"]] == ["drc_db"]
    with (
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
        psycopg.connect(lab.dsn("drc-db"), autocommit=True) as conn,
    ):
        conn.execute(
            "INSERT INTO declarations (nomor_aju, doc_type, office, site)"
            " VALUES ('x', 'PIB', 'x', 'drc')"
        )


def test_each_site_app_reports_its_site_and_database_role(lab: Lab) -> None:
    assert http_json(f"{lab.url('dc-app')}/health") == (
        200,
        {"site": "dc", "db_role": "primary", "writable": True},
    )
    assert http_json(f"{lab.url('drc-app')}/health") == (
        200,
        {"site": "drc", "db_role": "standby", "writable": False},
    )


def test_the_front_door_routes_to_the_active_site_and_switches(healthy_lab: Lab) -> None:
    lab = healthy_lab
    decl = _declaration()
    status, row = http_json(f"{lab.url('frontdoor')}/declarations", decl)
    assert status == 201 and row["site"] == "dc"
    frontdoor.write_active_site(lab.cfg, "drc")
    frontdoor.reload(lab.cfg, expect_site="drc")
    try:
        assert http_json(f"{lab.url('frontdoor')}/health")[1]["site"] == "drc"
        # The DRC is a standby: a write through the front door is refused, not lost silently.
        status, body = http_json(f"{lab.url('frontdoor')}/declarations", _declaration())
        assert status == 503 and "read-only" in body["error"]
        # ...but the row written at the DC is readable there (replicated).
        assert wait_until(
            lambda: (
                http_json(f"{lab.url('frontdoor')}/declarations?nomor_aju={decl['nomor_aju']}")[1]
                not in (None, [])
            ),
            timeout=10,
        )
    finally:
        frontdoor.write_active_site(lab.cfg, "dc")
        frontdoor.reload(lab.cfg, expect_site="dc")
    assert lab.status()["active_site"] == "dc"


def test_dc_db_crash_stops_the_primary_and_repair_restarts_it(healthy_lab: Lab) -> None:
    lab = healthy_lab
    lab.break_("dc-db-crash")
    assert not pg.is_reachable(lab.dsn("dc-db"))
    assert http_json(f"{lab.url('dc-app')}/health")[1]["db_role"] == "down"
    assert lab.status()["components"]["drc-db"]["role"] == "standby"  # nothing promoted itself
    lab.repair()
    assert pg.server_role(lab.dsn("dc-db")).writable
    assert wait_until(lambda: pg.receiver(lab.dsn("drc-db")).streaming, 15)


def test_dc_power_loss_stops_every_dc_component_and_sets_the_signal(healthy_lab: Lab) -> None:
    lab = healthy_lab
    lab.break_("dc-power-loss")
    st = lab.status()["components"]
    assert st["dc-db"]["up"] is False
    assert st["dc-app"]["up"] is False
    assert st["uplink"]["up"] is False
    assert st["facility"]["dc_power"] is False
    assert st["drc-db"]["up"] and st["drc-app"]["up"] and st["ops-db"]["up"]  # DRC untouched
    lab.repair()
    st = lab.status()["components"]
    assert st["facility"]["dc_power"] is True
    assert st["dc-db"]["writable"] and st["dc-app"]["up"] and st["uplink"]["up"]


def test_dc_heat_raises_the_given_share_of_the_server_area(healthy_lab: Lab) -> None:
    lab = healthy_lab
    effect = lab.break_("dc-heat", percent=50, celsius=31.5)
    zones = lab.status()["components"]["facility"]["server_zones"]
    hot = sum(z["area_m2"] for z in zones if z["celsius"] > 30)
    total = sum(z["area_m2"] for z in zones)
    assert hot / total == pytest.approx(0.5)
    assert "50.0%" in effect
    lab.repair()
    zones = lab.status()["components"]["facility"]["server_zones"]
    assert all(z["celsius"] < 30 for z in zones)


def test_national_network_loss_cuts_the_dc_off_but_leaves_it_running(healthy_lab: Lab) -> None:
    lab = healthy_lab
    lab.break_("national-network-loss")
    st = lab.status()["components"]
    assert st["facility"]["national_network"] is False
    assert st["dc-db"]["writable"] is True  # still alive: fencing must not assume it is gone
    assert http_json(f"{lab.url('frontdoor')}/health")[0] == 502  # users cannot reach it
    assert wait_until(lambda: not pg.receiver(lab.dsn("drc-db")).streaming, 15)
    lab.repair()
    assert http_json(f"{lab.url('frontdoor')}/health")[0] == 200
    assert wait_until(lambda: pg.receiver(lab.dsn("drc-db")).streaming, 15)


def test_synchronous_mode_makes_the_primary_wait_for_the_standby(tmp_path: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="drp-test-sync-", dir="/tmp"))
    os.chmod(root, 0o755)  # open to PostgreSQL's user: this lab keeps everything in its root
    lab = Lab.from_env(
        root=root / "lab", port_base=int(os.environ.get("DRP_TEST_PORT_BASE", "26400")) + 200
    )
    try:
        lab.up(sync=True)
        assert lab.cfg.server_root is None and (lab.cfg.root / "pg" / "dc-db").is_dir()
        assert not (lab.cfg.root / "pg").is_symlink()
        standbys = lab.status()["components"]["dc-db"]["standbys"]
        assert [(s["application_name"], s["sync_state"]) for s in standbys] == [("drc_db", "sync")]
        # lab up again is idempotent: nothing rebuilt, still sync, same pids.
        before = lab._state()
        lab.up()
        assert lab._state()["dc_app_pid"] == before["dc_app_pid"]
        assert lab.status()["components"]["dc-db"]["standbys"][0]["sync_state"] == "sync"
        pids = [lab._state()[k] for k in ("dc_app_pid", "drc_app_pid", "uplink_pid")]
        pg_pids = [lab.cluster(n).postmaster_pid() for n in ("dc-db", "drc-db", "ops-db")]
    finally:
        stopped = lab.down()
        shutil.rmtree(root, ignore_errors=True)
    assert set(stopped) >= {
        "dc-db",
        "drc-db",
        "ops-db",
        "frontdoor",
        "sshd",
        "dc-app",
        "drc-app",
        "uplink",
    }
    assert not any(pid_alive(p) for p in pids + pg_pids)
