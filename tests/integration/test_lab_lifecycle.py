"""`drp lab up` returns when the lab is ready (every standby streams, and with --sync a commit on
the DC really waits for the DRC), on every `up`; it names a standby that does not get there;
`drp lab reset` rebuilds both sites fresh and keeps ops-db and the Prefect processes."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from drp.adapters import postgres as pg
from drp.commands import lab as lab_cli
from drp.errors import LabError
from drp.lab import frontdoor
from drp.lab.core import Lab, http_json
from drp.lab.procs import owned, run, spawn, terminate
from drp.polling import poll

pytestmark = pytest.mark.integration

PORT_BASE = int(os.environ.get("DRP_TEST_PORT_BASE", "26400")) + 300
"""This module's lab, with two extra pairs on +400..+403 (tests/conftest.py lists the ranges)."""


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    root = Path(tempfile.mkdtemp(prefix="drp-lifecycle-", dir="/tmp"))
    the_lab = Lab.from_env(root=root / "lab", port_base=PORT_BASE)
    try:
        yield the_lab
    finally:
        the_lab.down(purge=True)
        shutil.rmtree(root, ignore_errors=True)


def _streaming_everywhere(status: dict[str, Any]) -> dict[str, Any]:
    """What the status says about each standby and its primary's view of it."""
    comps = status["components"]
    seen = {
        "drc-db": comps["drc-db"]["replication"]["streaming"],
        "dc-db": [
            (s["application_name"], s["state"], s["sync_state"]) for s in comps["dc-db"]["standbys"]
        ],
    }
    for pair in status["extra_pairs"]:
        seen[pair["drc"]["name"]] = pair["drc"]["replication"]["streaming"]
        seen[pair["dc"]["name"]] = [
            (s["application_name"], s["state"]) for s in pair["dc"]["standbys"]
        ]
    return seen


EVERY_PAIR_READY = {
    "drc-db": True,
    "dc-db": [("drc_db", "streaming", "sync")],
    "pair01-drc": True,
    "pair01-dc": [("drc_standby", "streaming")],
    "pair02-drc": True,
    "pair02-dc": [("drc_standby", "streaming")],
}


def _commit_waits_for_a_stopped_standby(lab: Lab) -> bool:
    """Stop drc-db, commit on dc-db: the commit must wait in SyncRep (then it is cancelled:
    PostgreSQL warns that it committed locally only). Restarts drc-db."""
    lab.cluster("drc-db").stop(mode="fast")
    notices: list[str] = []
    conn = psycopg.connect(lab.dsn("dc-db"), autocommit=True)
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    pid = conn.info.backend_pid
    table = f"sync_probe_{uuid.uuid4().hex[:8]}"
    worker = threading.Thread(target=conn.execute, args=(f"CREATE TABLE {table} (x int)",))
    worker.start()
    try:
        waited, _ = poll(
            lambda: pg.query(
                lab.dsn("dc-db", "postgres"),
                "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event = 'SyncRep'",
                (pid,),
            ),
            bool,
            timeout=30,
        )
        pg.query(lab.dsn("dc-db", "postgres"), "SELECT pg_cancel_backend(%s)", (pid,))
        worker.join(timeout=30)
    finally:
        conn.close()
        lab.cluster("drc-db").start()
    return waited and any("synchronous replication" in n for n in notices)


def test_up_returns_with_every_standby_streaming_and_commits_waiting(lab: Lab) -> None:
    status = lab.up(sync=True, extra_pairs=2)
    assert _streaming_everywhere(status) == EVERY_PAIR_READY
    assert _streaming_everywhere(lab.status()) == EVERY_PAIR_READY  # no sleep in between
    # Synchronous for real: with the standby away, a commit on the DC waits for it.
    assert _commit_waits_for_a_stopped_standby(lab)


def test_every_up_waits_not_only_the_first(lab: Lab) -> None:
    lab.down()
    status = lab.up()  # the lab keeps --sync and its two extra pairs
    assert _streaming_everywhere(status) == EVERY_PAIR_READY
    result = CliRunner().invoke(lab_cli.app, ["status", "--json", "--root", str(lab.cfg.root)])
    assert result.exit_code == 0, result.output
    assert _streaming_everywhere(json.loads(result.output)) == EVERY_PAIR_READY


def _slow_uplink(lab: Lab, delay_ms: int) -> int:
    """The DC's uplink with ``delay_ms`` of one-way latency (a DRC far away), in place of the
    lab's own: the DRC standby's connection to the DC takes several round trips."""
    cfg = lab.cfg
    terminate(lab._state().get("uplink_pid"), lab.marker)
    routes = [("uplink-app", "dc-app"), ("uplink-db", "dc-db"), ("uplink-ssh", "ssh")]
    argv = [sys.executable, "-m", "drp.lab.uplink", "--lab-root", lab.marker]
    for listen, target in routes:
        argv += ["--route", f"{cfg.port(listen)}:{cfg.port(target)}"]
    pid = spawn([*argv, "--delay-ms", str(delay_ms)], cfg.logs / "uplink.log")
    lab._update_state(uplink_pid=pid)
    return pid


def test_up_waits_for_a_standby_behind_a_slow_link(lab: Lab) -> None:
    """Without the wait, `up` would return while drc-db is still connecting (seconds, over a
    300 ms link) and the status would say streaming=False."""
    lab.up(sync=True, extra_pairs=2)
    slow = _slow_uplink(lab, delay_ms=300)
    try:
        lab.cluster("drc-db").stop()
        status = lab.up()
        assert owned(slow, lab.marker)  # the standby came back through the slow link
        assert _streaming_everywhere(status) == EVERY_PAIR_READY
        assert _streaming_everywhere(lab.status()) == EVERY_PAIR_READY
    finally:
        terminate(slow, lab.marker)
    assert _streaming_everywhere(lab.up()) == EVERY_PAIR_READY  # the lab's own uplink again


def test_up_names_the_standby_that_does_not_stream_with_the_end_of_its_log(lab: Lab) -> None:
    standby = lab.cluster("pair02-drc")
    auto = standby.data / "postgresql.auto.conf"
    good = auto.read_text()
    closed_port = PORT_BASE + 99  # nothing listens there
    standby.stop()
    auto.write_text(good.replace(f"port={lab.cfg.port('pair02-dc')}", f"port={closed_port}"))
    try:
        with pytest.raises(LabError) as caught:
            lab.up(ready_timeout=5)
        said = str(caught.value)
        assert said.startswith("pair02-drc does not stream from pair02-dc after 5 s")
        assert f"Last lines of {standby.log}" in said
        assert str(closed_port) in said.split("Last lines of", 1)[1]  # its log says why
        assert "pair01" not in said  # the others got there
    finally:
        standby.stop()
        auto.write_text(good)
    assert _streaming_everywhere(lab.up()) == EVERY_PAIR_READY


def _system_ids(lab: Lab, names: tuple[str, ...]) -> dict[str, int]:
    return {
        n: pg.query(lab.dsn(n, "postgres"), "SELECT system_identifier FROM pg_control_system()")[0][
            0
        ]
        for n in names
    }


def _stand_in(lab: Lab, name: str) -> int:
    """A long-running process marked as the lab's, standing where `drp server up` / `drp
    workers up` record theirs: reset must leave it alone."""
    code = "import time; time.sleep(600)"
    return spawn(
        [sys.executable, "-c", code, "--lab-root", lab.marker], lab.cfg.logs / f"{name}.log"
    )


def test_reset_rebuilds_both_sites_and_keeps_ops_db_and_the_prefect_processes(lab: Lab) -> None:
    lab.up(sync=True, extra_pairs=2)
    sites = ("dc-db", "drc-db", "pair01-dc", "pair01-drc", "pair02-dc", "pair02-drc")
    before = _system_ids(lab, sites)
    # The platform's own data, and a client connected to ops-db throughout.
    ops = lab.dsn("ops-db")
    marker = f"kept-{uuid.uuid4().hex[:8]}"
    pg.query(ops, "CREATE TABLE IF NOT EXISTS reset_probe (v text)")
    pg.query(ops, "INSERT INTO reset_probe VALUES (%s)", (marker,))
    held = psycopg.connect(ops, autocommit=True)
    ops_pid = lab.cluster("ops-db").postmaster_pid()
    prefect = {key: _stand_in(lab, key) for key in ("server", "dc_worker", "drc_worker")}
    lab._update_state(
        prefect_server={"pid": prefect["server"], "port": PORT_BASE + 90},
        dc_worker_pid=prefect["dc_worker"],
        drc_worker_pid=prefect["drc_worker"],
    )
    try:
        # The sites after a drill gone wrong: a row at the DC, the DRC promoted, users sent to
        # the DRC, the DC hot and cut off.
        pg.query(
            lab.dsn("dc-db"),
            "INSERT INTO declarations (nomor_aju, doc_type, office, site)"
            " VALUES ('OLD-1', 'PIB', 'x', 'dc')",
        )
        run(
            [
                str(lab.cluster("drc-db").pg_bin / "pg_ctl"),
                "promote",
                "-w",
                "-D",
                str(lab.cfg.pgdata("drc-db")),
            ],
            user=lab.cluster("drc-db").user,
        )
        frontdoor.write_active_site(lab.cfg, "drc")
        frontdoor.reload(lab.cfg, expect_site="drc")
        lab.break_("dc-heat", percent=60)
        lab.break_("national-network-loss")

        result = CliRunner().invoke(lab_cli.app, ["reset", "--json", "--root", str(lab.cfg.root)])
        assert result.exit_code == 0, result.output
        status = json.loads(result.output)

        # Fresh sites: new clusters, DC primary, DRC synchronous streaming standby, users at
        # the DC, the facility normal, the old row gone.
        assert _streaming_everywhere(status) == EVERY_PAIR_READY
        after = _system_ids(lab, sites)
        assert all(after[n] != before[n] for n in sites), (before, after)
        comps = status["components"]
        assert comps["dc-db"]["writable"] and comps["drc-db"]["role"] == "standby"
        assert status["active_site"] == "dc" and comps["uplink"]["up"]
        assert comps["facility"]["dc_power"] and comps["facility"]["national_network"]
        assert all(z["celsius"] < 30 for z in comps["facility"]["server_zones"])
        assert http_json(f"{lab.url('frontdoor')}/health")[1] == {
            "site": "dc",
            "db_role": "primary",
            "writable": True,
        }
        assert pg.query(lab.dsn("dc-db"), "SELECT count(*) FROM declarations") == [(0,)]
        # Kept: ops-db never restarted (the held connection still answers), its data, and
        # the Prefect processes with their places in the lab's state.
        assert lab.cluster("ops-db").postmaster_pid() == ops_pid
        assert held.execute("SELECT v FROM reset_probe WHERE v = %s", (marker,)).fetchall() == [
            (marker,)
        ]
        assert all(owned(pid, lab.marker) for pid in prefect.values())
        state = lab._state()
        assert state["prefect_server"]["pid"] == prefect["server"]
        assert (state["dc_worker_pid"], state["drc_worker_pid"]) == (
            prefect["dc_worker"],
            prefect["drc_worker"],
        )
    finally:
        held.close()
        for pid in prefect.values():
            terminate(pid, lab.marker)
        lab._update_state(prefect_server=None, dc_worker_pid=None, drc_worker_pid=None)
