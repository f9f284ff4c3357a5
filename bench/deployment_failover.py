"""Benchmark: the failover through the production topology (Prefect server on PostgreSQL and the
DRC's process worker) beside the same failover run in-process.

    .venv/bin/python bench/deployment_failover.py [--runs 3] [--port-base 28600]
                                                  [--server-port 28790]

Each run builds a fresh lab (DC primary, DRC synchronous standby, the DC alive: it must be
fenced), brings up Prefect's server on the lab's ops-db, the dc and drc workers and the
``failover`` deployment (``prefect --no-prompt deploy --name failover``), all outside the
timings, then times one failover each way on a fresh lab:

- deployment: ``run_deployment("failover/failover")`` -> the run is scheduled on pool ``drc``,
  the DRC worker picks it up (polling every 2 s, as ``drp workers up`` sets), starts a flow-run
  process, runs the pull step and the flow;
- in-process: the flow function called in this process against the same server (the way
  ``drp failover`` and bench/failover.py run it).

Both are measured the same way: from the call to the moment the service is verified at the DRC
(the ``failover.completed`` record of the incident's ledger), and beside it the flow's own RTO
clock (declaration to verified); their difference, call to declaration, is the time before the
flow's first step. It prints the median of the runs and the difference: what the
distributed machinery costs. Figures, not thresholds: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from drp.lab.core import Lab  # noqa: E402
from drp.ledger import read_records  # noqa: E402
from drp.prefect_server import Orchestrator  # noqa: E402

PARAMS = {
    "runbook": "runbooks/lab.yaml",
    "declared_by": "bench",
    "approved_by": "bench",
    "mode": "drill",
    "category": "katastropik",
}


def verified_at(evidence: Path, incident: str) -> tuple[float, float]:
    """(epoch seconds of ``failover.completed``, the flow's achieved RTO in seconds)."""
    for _, rec in read_records(evidence / incident / "failover"):
        if not isinstance(rec, str) and rec.kind == "failover.completed":
            ts = datetime.fromisoformat(rec.ts.replace("Z", "+00:00")).timestamp()
            return ts, float(rec.data["achieved_rto_s"])
    raise RuntimeError(f"incident {incident}: no failover.completed record (not verified)")


def fresh(root: Path, port_base: int) -> Lab:
    lab = Lab.from_env(root=root / "lab", port_base=port_base)
    lab.down(purge=True)
    lab.up(sync=True)
    return lab


def up_orchestrator(lab: Lab, server_port: int) -> tuple[Orchestrator, str]:
    orch = Orchestrator(lab)
    api = orch.server_up(port=server_port)["api"]
    orch.workers_up()
    proc = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--name", "failover"],
        cwd=REPO,
        env={**os.environ, **orch.client_env()},  # the server's address and credential
        capture_output=True,
        text=True,
        timeout=180,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"prefect deploy failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return orch, api


def down_orchestrator(orch: Orchestrator) -> None:
    orch.workers_down()
    orch.server_down()


def time_deployment(evidence: Path) -> dict[str, Any]:
    from prefect.deployments import run_deployment

    incident = f"bench-dep-{uuid.uuid4().hex[:8]}"
    start = time.time()
    run = run_deployment(
        "failover/failover",
        parameters={**PARAMS, "incident_id": incident},
        timeout=600,
        poll_interval=1,
    )
    returned = time.time() - start
    if run.state is None or not run.state.is_completed():
        raise RuntimeError(f"deployment run {run.id} ended {run.state}")
    at, rto = verified_at(evidence, incident)
    return {
        "to_verified": at - start,
        "rto": rto,
        "to_declared": at - start - rto,
        "returned": returned,
    }


def time_in_process(evidence: Path) -> dict[str, Any]:
    from drp.flows import load

    incident = f"bench-inp-{uuid.uuid4().hex[:8]}"
    start = time.time()
    out = load("failover").failover(**{**PARAMS, "incident_id": incident})
    returned = time.time() - start
    if out.status != "verified":
        raise RuntimeError(f"in-process failover: {out.status}")
    at, rto = verified_at(evidence, incident)
    return {
        "to_verified": at - start,
        "rto": rto,
        "to_declared": at - start - rto,
        "returned": returned,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port-base", type=int, default=28600, help="the bench lab's ports")
    parser.add_argument("--server-port", type=int, default=28790, help="Prefect server port")
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="drp-bench-prefect-"))
    os.environ.pop("PREFECT_SERVER_DATABASE_CONNECTION_URL", None)
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    root = Path(tempfile.mkdtemp(prefix="drp-bench-deploy-", dir="/tmp"))
    os.chmod(root, 0o755)
    evidence = root / "evidence"
    os.environ["DRP_EVIDENCE_DIR"] = str(evidence)
    os.environ["DRP_LAB_ROOT"] = str(root / "lab")
    results: dict[str, list[dict[str, Any]]] = {"deployment": [], "in-process": []}
    orch: Orchestrator | None = None
    try:
        for i in range(1, args.runs + 1):
            # The same server and workers time both ways; the lab is rebuilt for each failover
            # (the server's database lives in the lab's ops-db, so they are rebuilt with it).
            for way, timed in (("deployment", time_deployment), ("in-process", time_in_process)):
                lab = fresh(root, args.port_base)
                orch, api = up_orchestrator(lab, args.server_port)
                auth = orch.client_env()["PREFECT_API_AUTH_STRING"]
                updates = {PREFECT_API_URL: api, PREFECT_API_AUTH_STRING: auth}
                with temporary_settings(updates=updates):
                    results[way].append(timed(evidence))
                down_orchestrator(orch)
                orch = None
            d, p = results["deployment"][-1], results["in-process"][-1]
            print(
                f"run {i}/{args.runs}: deployment {d['to_verified']:.2f} s, "
                f"in-process {p['to_verified']:.2f} s (call -> service verified)",
                flush=True,
            )
    finally:
        if orch is not None:
            down_orchestrator(orch)
        Lab.from_env(root=root / "lab", port_base=args.port_base).down()
        shutil.rmtree(root, ignore_errors=True)

    def med(way: str, key: str) -> float:
        return statistics.median(r[key] for r in results[way])

    dep, inp = med("deployment", "to_verified"), med("in-process", "to_verified")
    print()
    print(f"failover on the lab, median of {args.runs} runs (each on a fresh lab):")
    print(
        f"{'':34} {'call -> verified':>16} {'call -> declared':>16} {'RTO clock':>10}"
        f" {'call -> returned':>16}"
    )
    for way in ("deployment", "in-process"):
        print(
            f"  {way:<32} {med(way, 'to_verified'):14.2f} s {med(way, 'to_declared'):14.2f} s"
            f" {med(way, 'rto'):8.2f} s {med(way, 'returned'):14.2f} s"
        )
    print(f"  difference (deployment - in-process)  {dep - inp:+.2f} s   ratio {dep / inp:.2f}x")
    print(
        "\nthe difference is the distributed machinery: scheduling the run, the DRC worker's "
        "poll (2 s), a new flow-run process (Python, Prefect, the flow's imports) and the pull "
        "step; run_deployment itself notices the end only at its next poll (1 s)."
    )


if __name__ == "__main__":
    main()
