"""The README's main job, run as written: ``make drill``.

On a lab of its own (``DRP_LAB_ROOT`` and ``DRP_LAB_PORT_BASE`` point ``make`` there, as they
move any lab) and with no ``PREFECT_API_URL``: the drill builds the lab, starts the lab's own
Prefect server on ops-db (base + 70), drills, writes the documents, and its run stays on that
server afterwards — the history the README promises in the UI.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest

from drp.lab.config import repo_root
from drp.lab.core import Lab
from drp.prefect_server import Orchestrator

pytestmark = pytest.mark.e2e

BASE = int(os.environ.get("DRP_TEST_PORT_BASE", "26400"))
LAB_PORT_BASE = BASE + 300  # this module's lab (tests/conftest.py lists the ranges)
INCIDENT = "drill-make-e2e"


def test_make_drill_drills_the_lab_writes_its_documents_and_keeps_the_run_in_the_ui() -> None:
    root = Path(tempfile.mkdtemp(prefix="drp-e2e-make-drill-", dir="/tmp"))
    os.chmod(root, 0o755)
    lab_root, evidence = root / "lab", root / "evidence"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PREFECT_API") and key != "DRP_PREFECT_SERVER"
    }
    env.update(
        DRP_LAB_ROOT=str(lab_root),
        DRP_LAB_PORT_BASE=str(LAB_PORT_BASE),
        DRP_EVIDENCE_DIR=str(evidence),
        DRILL_INCIDENT=INCIDENT,
        DRILL_SCENARIO="dc-db-crash",
    )
    try:
        proc = subprocess.run(
            ["make", "drill"],
            cwd=repo_root(),
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-4000:]

        # The drill passed, with its phases' RTO, and said where its run page is.
        assert "passed" in out and "RTO" in out
        ui = f"http://127.0.0.1:{LAB_PORT_BASE + 70}"
        (page,) = set(re.findall(rf"run page: ({re.escape(ui)}/runs/flow-run/[0-9a-f-]+)", out))

        # The documents of the drill, every format.
        reports = evidence / INCIDENT / "reports"
        for kind in ("kaji-cepat", "simulasi", "pasca"):
            for fmt in ("md", "html", "xlsx", "pdf"):
                assert (reports / f"{INCIDENT}-{kind}.{fmt}").is_file(), (kind, fmt)

        # The run stays on the lab's server after make has ended: read it back with its login.
        lab = Lab.from_env(root=lab_root, port_base=LAB_PORT_BASE)
        auth = Orchestrator(lab).auth_file.read_text().strip()
        run_id = page.rsplit("/", 1)[1]
        request = urllib.request.Request(f"{ui}/api/flow_runs/{run_id}")
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
        with urllib.request.urlopen(request, timeout=30) as answer:
            run = json.load(answer)
        assert run["name"] == f"drill/{INCIDENT}/dc-db-crash"
        assert run["state_type"] == "COMPLETED"
    finally:
        Lab.from_env(root=lab_root, port_base=LAB_PORT_BASE).down(purge=True)
        shutil.rmtree(root, ignore_errors=True)
