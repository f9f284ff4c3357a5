"""End-to-end fixtures: one Prefect test server per session, and a fresh lab per test (a
failover changes the topology, so every test starts from DC primary / DRC standby)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from drp.lab.core import Lab

E2E_PORT_BASE = int(os.environ.get("DRP_TEST_PORT_BASE", "26400")) + 400


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    from prefect.settings import temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with (
        prefect_test_harness(server_startup_timeout=60),
        temporary_settings(updates={"flows.heartbeat_frequency": None}),
    ):
        yield


@pytest.fixture
def fresh_lab(monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    """A new lab (DC primary, DRC standby, synchronous), its own evidence directory, torn down
    after the test. The flow finds both through DRP_LAB_ROOT and DRP_EVIDENCE_DIR."""
    root = Path(tempfile.mkdtemp(prefix="drp-e2e-", dir="/tmp"))
    os.chmod(root, 0o755)
    lab = Lab.from_env(root=root / "lab", port_base=E2E_PORT_BASE)
    monkeypatch.setenv("DRP_LAB_ROOT", str(lab.cfg.root))
    monkeypatch.setenv("DRP_EVIDENCE_DIR", str(root / "evidence"))
    monkeypatch.setenv("DRP_APPROVAL_POLL_S", "1")
    try:
        lab.up(sync=True)
        yield lab
    finally:
        lab.down()
        shutil.rmtree(root, ignore_errors=True)
