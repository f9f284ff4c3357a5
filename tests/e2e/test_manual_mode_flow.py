"""Manual mode end to end on a real lab, through Prefect and through the ``drp`` command:
activate (flow), submit both formats (command and flow), the queue (command), deactivate
(flow), resync into the lab's SKP database (flow, then the command again: idempotent), and the
served-documents export (command).

The lab is this module's own (``DRP_TEST_PORT_BASE + 700``), built once for the module.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import openpyxl
import pytest
from typer.testing import CliRunner

from drp.adapters import postgres as pg
from drp.adapters import spreadsheets as ss
from drp.cli import app
from drp.data.manual_samples import declarations
from drp.domain.manual.fields import DocType
from drp.flows import load
from drp.lab.config import repo_root
from drp.lab.core import Lab

pytestmark = pytest.mark.e2e

PORT_BASE = int(os.environ.get("DRP_TEST_PORT_BASE", "26400")) + 700
RUNBOOK = str(repo_root() / "runbooks" / "lab.yaml")
INCIDENT = "inc-manual-e2e"
OFFICE = "040300"


@pytest.fixture(scope="module")
def lab_env() -> Iterator[tuple[Lab, Path]]:
    root = Path(tempfile.mkdtemp(prefix="drp-manual-e2e-", dir="/tmp"))
    os.chmod(root, 0o755)
    lab = Lab.from_env(root=root / "lab", port_base=PORT_BASE)
    saved = {k: os.environ.get(k) for k in ("DRP_LAB_ROOT", "DRP_EVIDENCE_DIR")}
    os.environ["DRP_LAB_ROOT"] = str(lab.cfg.root)
    os.environ["DRP_EVIDENCE_DIR"] = str(root / "evidence")
    try:
        lab.up()
        yield lab, root
    finally:
        lab.down()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(root, ignore_errors=True)


def _drp(*args: str) -> tuple[int, dict | list]:
    result = CliRunner().invoke(app, [*args, "--runbook", RUNBOOK, "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_manual_mode_from_activation_to_resync_into_skp(
    prefect_server: None, lab_env: tuple[Lab, Path]
) -> None:
    lab, root = lab_env
    manual_mode = load("manual_mode")
    resync_flows = load("resync")

    activated = manual_mode.manual_mode(
        incident_id=INCIDENT,
        action="activate",
        offices=[OFFICE],
        types=["pib", "peb"],
        runbook=RUNBOOK,
    )
    assert activated["status"] == "active" and activated["offices"] == [OFFICE]
    assert all(Path(t).exists() for t in activated["templates"])

    today = date.today()
    files = []
    for doc, fmt in ((DocType.PIB, "xls"), (DocType.PEB, "xlsx"), (DocType.PEB, "xls")):
        headers, items = declarations(2, doc, prefix=f"E2E{fmt.upper()}{doc.value}", today=today)
        files.append(ss.write_workbook(root / f"{doc.value}.{fmt}", doc, fmt, headers, items))

    code, outcome = _drp("manual", "submit", str(files[0]), "--office", OFFICE)
    assert code == 0 and outcome["status"] == "registered", outcome
    code, outcome = _drp("manual", "submit", str(files[1]), "--office", OFFICE)
    assert code == 0 and len(outcome["registered"]) == 2
    by_flow = manual_mode.manual_submit(file=str(files[2]), office=OFFICE, runbook=RUNBOOK)
    assert by_flow["status"] == "registered"
    code, refused = _drp("manual", "submit", str(files[2]), "--office", OFFICE)
    assert code == 1 and refused["problems"][0]["code"] == "file.duplicate"

    code, queue = _drp("manual", "queue")
    assert code == 0 and len(queue) == 6
    assert [q["doc_type"] for q in queue] == ["PEB"] * 4 + ["PIB"] * 2
    closings = [q["closing_time"] for q in queue[:4]]
    assert closings == sorted(closings)

    closed = manual_mode.manual_mode(incident_id=INCIDENT, action="deactivate", runbook=RUNBOOK)
    assert closed["status"] == "closed" and closed["pending"] == 6
    code, late = _drp("manual", "submit", str(files[0]), "--office", OFFICE)
    assert code == 1 and late["problems"][0]["code"] == "intake.closed"

    report = resync_flows.resync_manual_declarations(
        incident_id=INCIDENT, runbook=RUNBOOK, restored_at="2026-11-20T09:00:00+07:00"
    )
    assert report["status"] == "complete" and report["skp_site"] == "dc"
    assert len(report["synced"]) == 6 and report["intake_open"] is False
    rows = pg.query(
        lab.dsn("dc-db"),
        "SELECT nomor_aju, nomor_pendaftaran_manual, id FROM declarations"
        " WHERE nomor_pendaftaran_manual IS NOT NULL ORDER BY id",
    )
    assert {r[1] for r in rows} == {q["registration_number"] for q in queue}
    # through the front door, SKP serves it like any declaration
    code, again = _drp(
        "manual", "resync", "--incident", INCIDENT, "--restored-at", "2026-11-20T09:00:00+07:00"
    )
    assert code == 0 and len(again["already"]) == 6 and again["synced"] == []

    out = root / "dilayani.xlsx"
    code, served = _drp("manual", "served", "--incident", INCIDENT, "--out", str(out))
    assert code == 0 and served["documents"] == 6
    sheet = openpyxl.load_workbook(out).active
    assert sheet is not None and sheet.max_row == 3 + 6

    # The runs are named after the incident (or the office and file) in the Prefect UI.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    names = [
        f"manual-mode/{INCIDENT}/activate",
        f"manual-submit/{OFFICE}/{files[2].name}",
        f"manual-mode/{INCIDENT}/deactivate",
        f"resync-manual-declarations/{INCIDENT}",
    ]
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=names))
        )
    assert sorted(r.name for r in runs) == sorted(names)
