"""fence_primary.yml then promote_standby.yml, on a lab of their own (they change the topology).

The shared session lab must keep dc-db as its primary, so this module builds a fresh lab on its
own port base (``DRP_TEST_FAILOVER_PORT_BASE``, default ``DRP_TEST_PORT_BASE`` + 600) and
removes it afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drp.adapters import ansible as a
from drp.adapters import postgres as pg
from drp.errors import PostgresError
from drp.lab.core import Lab

pytestmark = pytest.mark.integration

# Beside the session lab (DRP_TEST_PORT_BASE) and the other fresh labs (+200, +400), and below
# the kernel's ephemeral port range (32768+), where an outgoing connection can hold a lab port.
FAILOVER_PORT_BASE = int(
    os.environ.get(
        "DRP_TEST_FAILOVER_PORT_BASE", int(os.environ.get("DRP_TEST_PORT_BASE", "26400")) + 600
    )
)


@pytest.fixture(scope="module")
def fresh_lab() -> Iterator[Lab]:
    root = Path(tempfile.mkdtemp(prefix="drp-failover-lab-", dir="/tmp"))
    os.chmod(root, 0o755)  # the unprivileged PostgreSQL user must reach the data directories
    lab = Lab.from_env(root=root / "lab", port_base=FAILOVER_PORT_BASE)
    try:
        lab.up()
        yield lab
    finally:
        lab.down()
        shutil.rmtree(root, ignore_errors=True)


def _writable(dsn: str) -> bool:
    try:
        return pg.server_role(dsn).writable
    except PostgresError:
        return False


class WritableWatch:
    """Samples both servers' writability in the background for the whole failover."""

    def __init__(self, lab: Lab) -> None:
        self.dsns = (lab.dsn("dc-db"), lab.dsn("drc-db"))
        self.samples: list[tuple[bool, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append((_writable(self.dsns[0]), _writable(self.dsns[1])))
            self._stop.wait(0.02)

    def __enter__(self) -> WritableWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _run(lab: Lab, playbook: str) -> a.PlaybookResult:
    call = a.PlaybookCall(a.playbook_path(playbook), a.lab_inventories(lab.cfg.root), timeout_s=90)
    return a.run_playbook(call)


def test_fence_then_promote_never_leaves_two_writable_primaries(fresh_lab: Lab) -> None:
    lab = fresh_lab
    last_word = f"BEFORE-FENCE-{time.time_ns()}"
    pg.query(
        lab.dsn("dc-db"),
        "INSERT INTO declarations (nomor_aju, doc_type, office, site)"
        " VALUES (%s, 'BC 2.0', 'TEST', 'dc')",
        (last_word,),
    )
    with WritableWatch(lab) as watch:
        fenced = _run(lab, "fence_primary.yml")
        fenced.raise_for_failure()
        fence = fenced.stats_data["fence"]["dc-db1"]
        assert fenced.changed
        assert fence["signal_written"] and fence["stopped"]
        assert fence["proof"] == "connection refused"
        assert (lab.cfg.pgdata("dc-db") / "standby.signal").exists()
        assert not pg.is_reachable(lab.dsn("dc-db"))

        again = _run(lab, "fence_primary.yml")
        again.raise_for_failure()
        assert not again.changed
        assert again.stats_data["fence"]["dc-db1"]["already_fenced"] is True

        # Whoever restarts the old primary gets a read-only standby, not a second primary.
        lab.cluster("dc-db").start()
        role = pg.server_role(lab.dsn("dc-db"))
        assert role.in_recovery and not role.writable

        promoted = _run(lab, "promote_standby.yml")
        promoted.raise_for_failure()
        promote = promoted.stats_data["promote"]["drc-db1"]
        assert promoted.changed
        assert promote["promoted"] is True
        assert promote["before"]["in_recovery"] is True
        assert promote["before"]["replay_lsn"] == promote["before"]["receive_lsn"]
        assert promote["timeline"] == promote["before"]["timeline"] + 1
        assert promote["write_probe"]["id"] >= 1
        assert pg.server_role(lab.dsn("drc-db")).writable

        twice = _run(lab, "promote_standby.yml")
        twice.raise_for_failure()
        assert not twice.changed
        assert twice.stats_data["promote"]["drc-db1"]["already_primary"] is True

    assert watch.samples[0] == (True, False)
    assert watch.samples[-1] == (False, True)
    assert (True, True) not in watch.samples
    # The fast shutdown shipped the last write to the standby before it stopped: nothing lost.
    rows = pg.query(
        lab.dsn("drc-db"), "SELECT site FROM declarations WHERE nomor_aju = %s", (last_word,)
    )
    assert rows == [("dc",)]
