"""What an operator sees in the Prefect UI, through Prefect's own API (what the UI reads): runs
named after their incident, the incident's documents and its timeline on the incident's run, each
step logged once, the CLI naming the run's page, and a deployment that will not start a failover,
resync or failback until someone chooses drill or real.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import typer
from roster_codes import approval_input
from typer.testing import CliRunner

from drp.commands import resync as resync_command
from drp.flows import load
from drp.lab.core import Lab
from drp.ledger import read_records

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
RUNBOOK = str(REPO / "runbooks" / "lab.yaml")


def _records(ledger: Path, kind: str) -> list[dict[str, Any]]:
    if not (ledger / "ledger.jsonl").exists():
        return []
    return [r.data for _, r in read_records(ledger) if not isinstance(r, str) and r.kind == kind]


def _artifacts(keys: list[str]) -> dict[str, Any]:
    """The latest version of each key (keyed artifacts keep their history)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys))
        )
    return {a.key: a for a in sorted(found, key=lambda a: a.created)}


def _run(flow_run_id: str | UUID) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(str(flow_run_id)))


def _subflows(parent: UUID) -> list[Any]:
    """The flow runs started from a task run of ``parent`` (its subflows)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent])
            )
        )


def _logs(flow_run_id: UUID) -> list[str]:
    """Every log line of the run (its own and its tasks'), in order."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    logs: list[Any] = []
    with get_client(sync_client=True) as client:
        while batch := client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
            offset=len(logs),
        ):
            logs += batch
    return [entry.message for entry in sorted(logs, key=lambda e: e.timestamp)]


def _answer_approval(evidence: Path, stop: threading.Event) -> None:
    """Approve the failover the way the UI's form does (a roster choice and the person's
    one-time code), as soon as it asks (the only incident of this test's evidence directory:
    the run made its id itself)."""
    from prefect.flow_runs import resume_flow_run

    while not stop.is_set():
        for ledger in evidence.glob("*/failover"):
            for asked in _records(ledger, "approval.requested"):
                state = _run(asked["flow_run_id"]).state
                if not (state and state.is_paused()):
                    continue  # not paused yet: a code handed out now would go to waste
                try:
                    resume_flow_run(asked["flow_run_id"], run_input=approval_input("Sari"))
                    return
                except Exception:  # raced with the pause: try again
                    pass
        stop.wait(0.3)


def test_an_incident_run_is_named_after_it_and_its_page_holds_documents_and_timeline(
    prefect_server, fresh_lab: Lab
) -> None:
    evidence = Path(os.environ["DRP_EVIDENCE_DIR"])
    stop = threading.Event()
    approver = threading.Thread(target=_answer_approval, args=(evidence, stop), daemon=True)
    approver.start()
    try:
        # Started as from the UI: no incident id (the run makes one), the English category.
        outcome = load("failover").failover(
            mode="drill",
            runbook=RUNBOOK,
            declared_by="Budi",
            category="national",
            approved_by=None,
        )
    finally:
        stop.set()
        approver.join(timeout=10)
    assert outcome.status == "verified"
    incident = outcome.incident_id
    ledger = evidence / incident / "failover"
    (start,) = _records(ledger, "attempt.start")
    run = _run(start["flow_run_id"])

    # 1. The run is named after the incident it made, with the regulation's category name.
    assert run.name == f"failover/{incident}/parsial_nasional/drill"
    assert run.parent_task_run_id is None
    (reports,) = _subflows(run.id)
    assert reports.name == f"reports/{incident}"

    # 2. The documents and the timeline are on the failover's own run, not on the subflow's.
    documents = [f"report-{k}-{incident}" for k in ("kaji-cepat", "pemberitahuan", "pasca")]
    keys = [*documents, f"reports-{incident}", f"timeline-failover-{incident}"]
    found = _artifacts(keys)
    assert set(found) == set(keys)
    assert {a.flow_run_id for a in found.values()} == {run.id}
    assert all(a.task_run_id is None for a in found.values())

    # The timeline: who declared, who approved through which channel and how long the gate
    # waited, every step, the RTO verdict; offsets run from the declaration.
    timeline = found[f"timeline-failover-{incident}"]
    rows = json.loads(timeline.data) if isinstance(timeline.data, str) else timeline.data
    declared = next(r for r in rows if "declared" in r["what"])
    assert declared["who"] == "Budi (direktur)" and declared["RTO clock"] == "+00:00.0"
    approved = next(r for r in rows if "approved" in r["what"])
    (granted,) = _records(ledger, "approval.granted")
    assert approved["who"] == "Sari (pejabat_ditunjuk, prefect-ui)"
    assert approved["gate wait"] == f"{granted['waited_s']:.1f} s" and granted["waited_s"] > 0
    steps = [s["name"] for s in _records(ledger, "step.start")]
    assert [r["what"] for r in rows if " — started (budget" in r["what"]] == [
        f"{name} — started (budget {budget:.1f} s)"
        for name, budget in ((s["name"], s["budget_s"]) for s in _records(ledger, "step.start"))
    ]
    assert "service verified at the DRC; achieved RTO" in rows[-1]["what"]
    assert "approved by Sari (pejabat_ditunjuk, prefect-ui)" in timeline.description
    assert outcome.rto_verdict in timeline.description
    report = _artifacts([f"failover-{incident}"])[f"failover-{incident}"]
    assert report.flow_run_id == run.id
    assert "## Timeline" in report.data and "after a wait of" in report.data

    # 3. Each step is logged once when it starts and once when it ends.
    lines = _logs(run.id)
    for name in steps:
        assert sum(line.startswith(f"▶ {name} (budget") for line in lines) == 1, name
        ends = [line for line in lines if line[2:].startswith(f"{name}: ") and line[0] in "✓="]
        assert len(ends) == 1, (name, ends)
    assert not [line for line in lines if line.startswith("[notify]") and "▶" in line]

    # 4. The follow-up from the command line names its run's page; its timeline measures from
    # the failover's declaration, and its documents go on its own run (it runs alone).
    app = typer.Typer()
    app.callback()(lambda: None)
    resync_command.register(app)
    result = CliRunner().invoke(app, ["resync", "--runbook", RUNBOOK, "--incident-id", incident])
    assert result.exit_code == 0, result.output
    resync_ledger = evidence / incident / "resync"
    resync_run = _run(_records(resync_ledger, "attempt.start")[0]["flow_run_id"])
    assert resync_run.name == f"resync/{incident}/drill"
    from prefect.settings import PREFECT_API_URL

    ui = str(PREFECT_API_URL.value()).removesuffix("/api")
    url = f"{ui}/runs/flow-run/{resync_run.id}"
    # Named at the start (as soon as the run wrote its id) and in the final summary.
    assert result.output.count(f"run page: {url}") == 2, result.output
    assert result.output.index(f"run page: {url}") < result.output.index("the DC streams")
    resync_timeline = _artifacts([f"timeline-resync-{incident}"])[f"timeline-resync-{incident}"]
    assert resync_timeline.flow_run_id == resync_run.id
    resync_rows = json.loads(resync_timeline.data)
    assert all(r["RTO clock"].startswith("+") for r in resync_rows)  # after the declaration
    latest = _artifacts([f"reports-{incident}"])[f"reports-{incident}"]
    assert latest.flow_run_id == resync_run.id

    again = CliRunner().invoke(
        app, ["resync", "--runbook", RUNBOOK, "--incident-id", incident, "--json"]
    )
    assert again.exit_code == 0, again.output
    out = json.loads(again.output)
    assert out["status"] == "already_completed"
    assert out["run_url"].startswith(f"{ui}/runs/flow-run/") and out["run_url"] != url


# -- deployments --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def deployed(prefect_server) -> dict[str, UUID]:
    """failover, resync and failback deployed from prefect.yaml with Prefect's own CLI, as
    ``make deploy`` does, onto the test server (a work pool ``drc``, no worker: nothing runs)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.settings import PREFECT_API_URL

    # The pool may exist already (another module of this session made it).
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name="drc", type="process"))
    names = ("failover", "resync", "failback")
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "DRP_REPO_ROOT": str(REPO),
    }
    args = [sys.executable, "-m", "prefect", "--no-prompt", "deploy"]
    for name in names:
        args += ["--name", name]
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with get_client(sync_client=True) as client:
        return {n: client.read_deployment_by_name(f"{n}/{n}").id for n in names}


def _start(deployment_id: UUID, **parameters: Any) -> Any:
    """Create a run of the deployment as `prefect deployment run -p ...` does; delete it (no
    worker would run it anyway) and return it, or raise the server's refusal."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(deployment_id, parameters=parameters)
        client.delete_flow_run(run.id)
    return run


def test_a_deployment_will_not_start_without_drill_or_real(deployed: dict[str, UUID]) -> None:
    from prefect.exceptions import PrefectHTTPStatusError

    with pytest.raises(PrefectHTTPStatusError, match="'mode' is a required property"):
        _start(deployed["failover"], declared_by="Budi", approved_by="Budi")
    with pytest.raises(PrefectHTTPStatusError, match="'mode' is a required property"):
        _start(deployed["resync"], incident_id="inc-1")
    with pytest.raises(PrefectHTTPStatusError, match="'mode' is a required property"):
        _start(deployed["failback"], incident_id="inc-1", approved_by="Sari")
    with pytest.raises(PrefectHTTPStatusError, match="'maybe' is not one of"):
        _start(deployed["failover"], declared_by="Budi", mode="maybe")


def test_the_documented_deployment_example_is_accepted_with_its_choices(
    deployed: dict[str, UUID],
) -> None:
    """docs/flows.md: ``prefect deployment run failover/failover -p mode=drill
    -p category=parsial_nasional -p declared_by=Budi -p approved_by=Budi``."""
    from prefect.exceptions import PrefectHTTPStatusError

    run = _start(
        deployed["failover"],
        mode="drill",
        category="parsial_nasional",
        declared_by="Budi",
        approved_by="Budi",
    )
    assert run.parameters["runbook"] == "runbooks/lab.yaml"  # the deployment's default
    assert _start(deployed["failover"], mode="real", category="national", declared_by="B")
    with pytest.raises(PrefectHTTPStatusError) as refused:
        _start(deployed["failover"], mode="drill", category="partial", declared_by="Budi")
    for choice in ("parsial_lokal", "parsial_nasional", "katastropik", "national"):
        assert choice in str(refused.value)
