"""Settings shared by every test: nothing writes outside a temporary directory, and test
processes running side by side (``pytest -n 2``, pytest-xdist) never share a port.

Every fixture that starts a server takes its port from ``DRP_TEST_PORT_BASE`` (default 26400)
plus its own offset (see tests/integration/conftest.py, tests/e2e/conftest.py and the modules
with servers of their own: +0 integration lab and its extra pairs, +200, +400 e2e labs, +500
drills, +600, +700 manual-mode lab, +800..+899 stand-ins and scratch servers, +900..+999 the
site labs of tests/integration/test_lab_site.py and tests/e2e/test_site_failover.py, one module
after the other). Worker N of
pytest-xdist adds N x 1000, before any test module reads it.

Under xdist, the tests of one file stay on one worker (their module-scoped servers are built
once), and the drill tests and the report tests share one worker: both read the session's drills.
"""

from __future__ import annotations

import os
import tempfile

import pytest

# Prefect (used by the e2e tests) must never write into ~/.prefect or phone home.
_prefect_home = tempfile.mkdtemp(prefix="drp-prefect-home-")
os.environ.setdefault("PREFECT_HOME", _prefect_home)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw") and _worker[2:].isdigit():
    _base = int(os.environ.get("DRP_TEST_PORT_BASE", "26400")) + 1000 * int(_worker[2:])
    os.environ["DRP_TEST_PORT_BASE"] = str(_base)

SHARED_FILES = {"tests/e2e/test_reports.py": "tests/e2e/test_drill.py"}
"""Test files whose tests must run in the same process as another file's (they share the
session's drills): scheduled as one unit."""


@pytest.hookimpl(optionalhook=True)  # xdist's hook: absent when pytest runs without it
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Under ``pytest -n``: one unit of work per test file (its module-scoped servers are built
    once), with the files of ``SHARED_FILES`` joined to their partner's unit."""
    from xdist.scheduler import LoadScopeScheduling

    class FileScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return SHARED_FILES.get(path, path)

    return FileScheduling(config, log)
