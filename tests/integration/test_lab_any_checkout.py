"""The lab works from any checkout: a lab root in a directory only root can enter (root's home,
a ``mktemp -d`` folder) comes up, replicates, runs Ansible's steps as PostgreSQL's user, and
goes down leaving nothing; when its servers truly cannot reach their directory, ``up`` says so
before it starts anything."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from drp.adapters import ansible as a
from drp.adapters import postgres as pg
from drp.errors import LabError
from drp.lab import placement
from drp.lab.config import run_as_user
from drp.lab.core import Lab, http_json
from drp.lab.procs import pid_alive, wait_until

pytestmark = pytest.mark.integration

PORT_BASE = int(os.environ.get("DRP_TEST_PORT_BASE", "26400")) + 300
"""This module's labs (tests/conftest.py lists the ranges), one at a time."""

AS_ROOT = pytest.mark.skipif(
    os.geteuid() != 0, reason="only root switches to an unprivileged user for the servers"
)


@pytest.fixture
def closed_dir() -> Iterator[Path]:
    """A directory only its owner may enter, as ``mktemp -d`` makes them (and root's home is)."""
    path = Path(tempfile.mkdtemp(prefix="drp-closed-", dir="/tmp"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _lab_pids(lab: Lab) -> list[int]:
    state = lab._state()
    pids = [state[k] for k in ("dc_app_pid", "drc_app_pid", "uplink_pid")]
    pids += [lab.cluster(n).postmaster_pid() or 0 for n in ("dc-db", "drc-db", "ops-db")]
    return pids


def _large_write_through_the_front_door(lab: Lab) -> int:
    """A declaration with a 64 KiB payload: nginx's worker (``nobody`` when root runs the lab)
    buffers a request body that large in a temporary file, which it must be able to write."""
    body = {
        "nomor_aju": f"BIG-{uuid.uuid4().hex[:12]}",
        "doc_type": "PIB",
        "office": "040300",
        "payload": {"lines": "x" * 65536},
    }
    return http_json(f"{lab.url('frontdoor')}/declarations", body)[0]


def test_a_lab_in_a_directory_only_root_can_enter_comes_up_replicates_and_leaves_nothing(
    closed_dir: Path,
) -> None:
    root = closed_dir / "checkout" / ".lab"
    lab = Lab.from_env(root=root, port_base=PORT_BASE)
    user = run_as_user()
    if user:  # the premise: PostgreSQL's user cannot enter the checkout's directory
        assert placement.blocked_at(root, user) == closed_dir
    try:
        status = lab.up(sync=True)
        comps = status["components"]
        down = [name for name, c in comps.items() if name != "facility" and not c["up"]]
        assert not down, f"not up: {down}"
        assert comps["dc-db"]["writable"] and comps["drc-db"]["replication"]["streaming"]
        assert [(s["application_name"], s["sync_state"]) for s in comps["dc-db"]["standbys"]] == [
            ("drc_db", "sync")
        ]
        server_dir = lab.cfg.server_root
        if user:  # the servers' state is outside the checkout, linked from it
            assert server_dir is not None and closed_dir not in server_dir.parents
            assert status["server_dir"] == str(server_dir)
            assert (root / "pg").resolve() == server_dir / "pg"
            assert (root / "logs" / "dc-db.log").resolve() == server_dir / "logs" / "dc-db.log"
            assert lab.cfg.pgdata("dc-db").owner() == user
            assert placement.blocked_at(lab.cfg.pgdata("dc-db"), user) is None
        else:  # nobody to switch to: everything stays in the root
            assert server_dir is None
        # A declaration through the front door (nginx, the DC's app) is read at the DRC.
        nomor = f"ANY-{uuid.uuid4().hex[:12]}"
        code, row = http_json(
            f"{lab.url('frontdoor')}/declarations",
            {"nomor_aju": nomor, "doc_type": "PEB", "office": "040300"},
        )
        assert code == 201 and row["site"] == "dc"
        assert pg.query(
            lab.dsn("drc-db"), "SELECT site FROM declarations WHERE nomor_aju = %s", (nomor,)
        ) == [("dc",)]  # a synchronous standby has it as soon as the write is acknowledged
        assert _large_write_through_the_front_door(lab) == 201
        # Ansible's steps as PostgreSQL's user (`become`) reach the data directory: the
        # fence looks at the DC's server and changes nothing in check mode.
        call = a.PlaybookCall(
            a.playbook_path("fence_primary.yml"),
            a.lab_inventories(lab.cfg.root),
            check=True,
            timeout_s=90,
        )
        result = a.run_playbook(call)
        result.raise_for_failure()
        seen = result.stats_data["fence"]["dc-db1"]
        assert seen["was_running"] is True and seen["cluster_state"] == "in production"
        pids = _lab_pids(lab)
    finally:
        lab.down(purge=True)
    assert not any(pid_alive(p) for p in pids)
    assert not root.exists()
    if server_dir is not None:
        assert not server_dir.exists()
    leftovers = [
        d
        for d in placement.base_dir().glob("*")
        if (d / placement.MARKER).is_file() and str(root) in (d / placement.MARKER).read_text()
    ]
    assert not leftovers


@AS_ROOT
def test_up_refuses_before_starting_anything_when_the_servers_cannot_reach_their_directory(
    closed_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRP_LAB_SERVER_BASE", str(closed_dir / "servers"))
    root = closed_dir / "checkout" / ".lab"
    lab = Lab.from_env(root=root, port_base=PORT_BASE)
    with pytest.raises(LabError) as caught:
        lab.up()
    said = str(caught.value)
    assert f"cannot enter {closed_dir} " in said and "nothing was started" in said
    assert "DRP_LAB_SERVER_BASE" in said
    assert not lab.cfg.state_file.exists() and not (root / "pg").exists()
    assert list((closed_dir / "servers").iterdir()) == [closed_dir / "servers" / ".lock"]
    assert not pg.is_reachable(lab.dsn("ops-db"), timeout=1)


@AS_ROOT
def test_a_lab_kept_inside_a_root_its_servers_can_no_longer_enter_is_refused_with_a_way_out(
    closed_dir: Path,
) -> None:
    """Built in place when the way was open (state.json records no server directory), then
    the way closed (the checkout moved, a chmod): up stops before starting anything."""
    root = closed_dir / "checkout" / ".lab"
    root.mkdir(parents=True)
    (root / "state.json").write_text(json.dumps({"port_base": PORT_BASE, "server_dir": None}))
    lab = Lab.from_env(root=root)
    with pytest.raises(LabError) as caught:
        lab.up()
    said = str(caught.value)
    assert f"can no longer enter {closed_dir}" in said and "nothing was started" in said
    assert "drp lab down --purge" in said
    assert not (root / "pg").exists() and not pg.is_reachable(lab.dsn("ops-db"), timeout=1)


def test_server_directories_of_labs_that_are_gone_are_pruned_and_no_others(
    tmp_path: Path,
) -> None:
    base = tmp_path / "servers"
    base.mkdir()
    live_root = tmp_path / "live" / ".lab"
    live_root.mkdir(parents=True)
    live = placement.server_dir_for(live_root, base)
    (live_root / "state.json").write_text(f'{{"server_dir": "{live}"}}\n')
    gone = placement.server_dir_for(tmp_path / "deleted" / ".lab", base)
    unmarked = base / "not-a-lab"
    for directory, owner in ((live, live_root), (gone, tmp_path / "deleted" / ".lab")):
        (directory / "pg").mkdir(parents=True)
        (directory / placement.MARKER).write_text(f"{owner}\n")
    unmarked.mkdir()
    assert placement.server_dir_for(live_root, base) != gone  # two labs, two directories
    assert placement.prune_orphans(base, keep=base / "mine") == [gone]
    assert sorted(base.iterdir()) == sorted([live, unmarked])
    assert not placement.remove(live, tmp_path / "someone-else")  # the marker must match
    assert placement.remove(live, live_root) and not live.exists()


def test_a_lab_comes_up_ready_whatever_the_umask(closed_dir: Path) -> None:
    """With umask 077 every directory the lab makes is 0700 unless it says otherwise: the
    directories PostgreSQL's user enters get the modes it needs."""
    old = os.umask(0o077)
    root = closed_dir / "checkout" / ".lab"
    lab = Lab.from_env(root=root, port_base=PORT_BASE)
    try:
        lab.up()
        assert lab.status()["components"]["drc-db"]["replication"]["streaming"] is True
        assert _large_write_through_the_front_door(lab) == 201
        pids = _lab_pids(lab)
    finally:
        os.umask(old)
        lab.down(purge=True)
    assert not any(pid_alive(p) for p in pids)
    assert wait_until(lambda: not root.exists(), 1)
