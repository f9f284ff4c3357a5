"""Fixtures that give integration tests a real lab: PostgreSQL primary and standby, apps, nginx,
sshd — started here, never skipped.

The test lab lives in its own directory under /tmp, made by ``mkdtemp`` (mode 0700: the
unprivileged PostgreSQL user cannot enter it, so its servers' state goes to a server directory
outside it, as from a checkout in root's home; see drp.lab.placement), on its own port base
(``DRP_TEST_PORT_BASE``, default 26400), so it never touches an operator's ``.lab/``. It is
purged afterwards: the root and the server directory go.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from drp.lab.core import Lab

TEST_PORT_BASE = int(os.environ.get("DRP_TEST_PORT_BASE", "26400"))


def _new_root() -> Path:
    return Path(tempfile.mkdtemp(prefix="drp-test-lab-", dir="/tmp"))


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """A running lab, shared by the session. Tests that break it must leave it repaired
    (use ``healthy_lab``)."""
    root = _new_root()
    the_lab = Lab.from_env(root=root / "lab", port_base=TEST_PORT_BASE)
    try:
        the_lab.up()
        yield the_lab
    finally:
        the_lab.down(purge=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def healthy_lab(lab: Lab) -> Iterator[Lab]:
    """The session lab, repaired after the test (faults cleared, every component back up)."""
    yield lab
    lab.repair()
    st = lab.status()["components"]
    down = [n for n, c in st.items() if n != "facility" and not c.get("up")]
    assert not down, f"lab not repaired after the test: {down} still down"
