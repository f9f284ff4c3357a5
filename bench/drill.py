"""Benchmark: a full DR drill cycle on the lab, per phase, against the same cycle without the
drill around it.

    .venv/bin/python bench/drill.py [--runs 3] [--scenario dc-heat]

One lab (DC primary, DRC synchronous standby) is built once: a drill leaves the topology as it
found it, so the next run starts from the same place. Each round runs, in the same process and
through the same local Prefect server (started once, outside the timings):

- drill:    the drill flow (``flows/drill.py``): check, fault, failover, repair, resync, failback,
            topology and checksum verification, evaluation — with its per-phase breakdown;
- baseline: the same cycle by calling the three flows one after another (fault, failover,
            repair, resync, failback) with nothing around them: what the drill's own checks,
            measurements and subflow bookkeeping cost is the difference.

It prints the median of the runs for each phase and in all, and the ratio drill/baseline.
Figures, not thresholds: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from drp.domain.drill import SCENARIOS  # noqa: E402
from drp.lab.core import Lab  # noqa: E402

PORT_BASE = 25600
RUNBOOK = str(REPO / "runbooks" / "lab.yaml")
PHASES = ("failover", "resync", "failback")


def drill_round(scenario: str) -> dict[str, float]:
    from drp.flows import load

    started = time.perf_counter()
    summary = load("drill").drill(
        runbook=RUNBOOK,
        scenario=scenario,
        operator="bench",
        approved_by="bench",
        confirm_dc_isolated_by="bench",
        incident_id=f"bench-drill-{uuid.uuid4().hex[:6]}",
    )
    total = time.perf_counter() - started
    if summary.verdict != "passed":
        raise SystemExit(f"the drill did not pass: {summary.findings}")
    out = {p["phase"]: p["duration_s"] for p in summary.phases}
    out["total"] = total
    for p in summary.phases:
        if p["achieved_rto_s"] is not None:
            out[f"{p['phase']} RTO"] = p["achieved_rto_s"]
    return out


def baseline_round(lab: Lab, scenario: str) -> dict[str, float]:
    from drp.flows import load

    sc = SCENARIOS[scenario]
    incident = f"bench-base-{uuid.uuid4().hex[:6]}"
    common = {"runbook": RUNBOOK, "incident_id": incident, "mode": "drill"}
    out: dict[str, float] = {}
    started = time.perf_counter()
    lab.break_(sc.fault, **dict(sc.fault_options))
    t = time.perf_counter()
    load("failover").failover(
        declared_by="bench",
        category=sc.category,
        approved_by="bench",
        confirm_dc_isolated_by="bench",
        **common,
    )
    out["failover"] = time.perf_counter() - t
    if sc.old_primary_may_return_writable:
        lab.cluster("dc-db").stop(mode="fast")
    lab.repair()
    t = time.perf_counter()
    load("resync").resync(**common)
    out["resync"] = time.perf_counter() - t
    t = time.perf_counter()
    load("failback").failback(approved_by="bench", declared_by="bench", **common)
    out["failback"] = time.perf_counter() - t
    out["total"] = time.perf_counter() - started
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scenario", default="dc-heat", choices=sorted(SCENARIOS))
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="drp-bench-drill-", dir="/tmp"))
    os.chmod(root, 0o755)
    os.environ.update(
        {
            "DRP_LAB_ROOT": str(root / "lab"),
            "DRP_EVIDENCE_DIR": str(root / "evidence"),
            "PREFECT_HOME": str(root / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
    )
    from prefect.testing.utilities import prefect_test_harness

    lab = Lab.from_env(root=root / "lab", port_base=PORT_BASE)
    drills: list[dict[str, float]] = []
    bases: list[dict[str, float]] = []
    try:
        lab.up(sync=True)
        with prefect_test_harness(server_startup_timeout=60):
            for i in range(1, args.runs + 1):
                drills.append(drill_round(args.scenario))
                print(f"run {i}: drill {drills[-1]['total']:.1f} s", flush=True)
                bases.append(baseline_round(lab, args.scenario))
                print(f"run {i}: baseline {bases[-1]['total']:.1f} s", flush=True)
    finally:
        lab.down()
        shutil.rmtree(root, ignore_errors=True)

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows if key in r)

    print(f"\nDR drill cycle on the lab, scenario {args.scenario}, median of {args.runs} runs")
    print(f"{'phase':<16}{'drill':>10}{'baseline':>10}")
    for key in ("start", "inject", *PHASES, "repair", "verify"):
        base = f"{med(bases, key):9.2f}s" if key in bases[0] else f"{'-':>10}"
        print(f"{key:<16}{med(drills, key):9.2f}s{base}")
    for key in ("failover RTO", "failback RTO"):
        print(f"{key:<16}{med(drills, key):9.2f}s{'-':>10}")
    total_d, total_b = med(drills, "total"), med(bases, "total")
    print(f"{'total':<16}{total_d:9.2f}s{total_b:9.2f}s")
    print(f"ratio drill/baseline: {total_d / total_b:.2f}x")


if __name__ == "__main__":
    main()
