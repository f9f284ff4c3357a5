"""Benchmark: whole-site failover on a site lab — how the RTO scales with the number of
services recovering at once, the predicted RTO of the reference runbook, and the write gap.

    .venv/bin/python bench/site_failover.py [--runs 3] [--services 1,4,8] [--json]

In one process, through one local Prefect server (started once, outside the timings):

1. scaling: for each N, a lab runbook of N services, each with its OWN database pair and the
   same six steps (preflight, fence, promote, start, switch, verify), all in ONE priority
   group with ``execution.max_parallel: N``, generated with its inventory in a temporary
   directory and loaded as ``drp runbook check`` loads it. Each run starts from a fresh site
   (``Lab.reset``: new clusters, DC primary, DRC synchronous standby, routes to the DC; nothing
   broken, so every DC primary must be fenced) and calls the failover flow directly with
   ``approved_by``. It records the flow's achieved RTO and the wall time, the median of the
   runs per N, the ratios RTO(N)/RTO(1) against the issue's goals (4 services within 1.3x, 8
   within 1.5x), and where the time goes per step kind — from the ledger: the step as recorded,
   the ``ansible-playbook`` run inside it (start-up until the playbook starts, its tasks, the
   exit), the rest of the step (drp's own checks around the playbook), the wait between a
   service being started and its first step, and Prefect's task start between steps — with the
   CPU the run used against what two cores give;
2. the predicted RTO of ``runbooks/ceisa.yaml`` (``drp plan --json``), serial and parallel,
   against the goal of 35 minutes;
3. the write gap of one service (the N=1 site): a writer posts a declaration through the front
   door every ~20 ms during the failover; the gap is from the last write the DC acknowledged to
   the first the DRC acknowledged (the site in the SKP's answer), laid against the steps' times.

Progress goes to stderr. Figures, not thresholds: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from drp.adapters.http import http_json  # noqa: E402
from drp.domain.plan import plan as make_plan  # noqa: E402
from drp.lab.core import Lab  # noqa: E402
from drp.lab.site import from_runbook  # noqa: E402
from drp.ledger import ATTACHMENTS_DIR, read_records  # noqa: E402
from drp.runbooks import load_runbook  # noqa: E402

PORT_BASE = int(os.environ.get("DRP_LAB_PORT_BASE", "10400"))
"""Each N gets its own lab, at PORT_BASE + 200 * index (a site lab uses base+1..base+99)."""
PREFECT_PORT = int(os.environ.get("DRP_BENCH_PREFECT_PORT", str(PORT_BASE + 3500)))
"""The harness's Prefect server: in our port range, not a random ephemeral port."""
GOALS = {4: 1.3, 8: 1.5}
CEISA_GOAL_S = 35 * 60
STEP_KINDS = ("preflight", "fence", "promote", "start", "switch", "verify")
BUDGETS = {"preflight": 8, "fence": 15, "promote": 10, "start": 8, "switch": 6, "verify": 8}


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the N-service site ------------------------------------------------------------------------
def service_ids(n: int) -> list[str]:
    return [f"svc{i}" for i in range(1, n + 1)]


def _groups(index: int, sid: str) -> tuple[str, str]:
    """The pair's inventory groups: the first pair is the lab's main pair (dc_db / drc_db)."""
    return ("dc_db", "drc_db") if index == 0 else (f"{sid}_dc_db", f"{sid}_drc_db")


def _steps(sid: str, primary: str, standby: str) -> list[dict[str, Any]]:
    """The six steps of runbooks/lab-site.yaml's skp, for service ``sid`` and its own pair."""
    common = {"timeout_seconds": 60}
    return [
        {"id": f"{sid}-preflight", "name": f"Check that the DRC can take over {sid}'s database",
         "action": "check", "playbook": "preflight.yml", "targets": standby,
         "budget_seconds": BUDGETS["preflight"], **common},
        {"id": f"{sid}-fence", "name": f"Fence {sid}'s DC primary", "action": "fence",
         "playbook": "fence_primary.yml", "targets": primary,
         "budget_seconds": BUDGETS["fence"], "requires_approval": True, **common},
        {"id": f"{sid}-promote", "name": f"Promote {sid}'s DRC standby", "action": "promote",
         "playbook": "promote_standby.yml", "targets": standby, "timeout_seconds": 90,
         "budget_seconds": BUDGETS["promote"]},
        {"id": f"{sid}-start", "name": f"Start the {sid} application at the DRC",
         "action": "start", "playbook": "start_app.yml", "targets": f"{sid}_drc_app",
         "budget_seconds": BUDGETS["start"], "extra_vars": {"app_service": sid}, **common},
        {"id": f"{sid}-switch", "name": f"Route {sid}'s users to the DRC at the front door",
         "action": "switch_traffic", "playbook": "switch_traffic.yml", "targets": "frontdoor",
         "budget_seconds": BUDGETS["switch"], "extra_vars": {"route": sid}, **common},
        {"id": f"{sid}-verify", "name": f"Verify {sid} through its route", "action": "verify",
         "playbook": "verify_service.yml", "targets": "frontdoor",
         "budget_seconds": BUDGETS["verify"], "extra_vars": {"service": sid}, **common},
    ]  # fmt: skip


def site_runbook(n: int, directory: Path) -> Path:
    """Write a lab runbook of ``n`` independent services (each its own pair, one priority
    group, ``max_parallel: n``) and its inventory into ``directory``; return the runbook."""
    directory.mkdir(parents=True, exist_ok=True)
    ids = service_ids(n)
    databases, services = [], []
    for index, sid in enumerate(ids):
        primary, standby = _groups(index, sid)
        databases.append({"id": f"{sid}-db", "primary_group": primary, "standby_group": standby})
        services.append(
            {
                "id": sid,
                "name": f"Service {sid} (lab stand-in)",
                "impact": {"financial": 5, "legal": 5, "reputation": 5, "users": 5},
                "rto_minutes": 10,
                "rpo_seconds": 0,
                "mtdp_minutes": 240,
                "priority_group": 1,
                "depends_on": [],
                "database": f"{sid}-db",
                "steps": _steps(sid, primary, standby),
            }
        )
    runbook = {
        "apiVersion": "drp/v1",
        "name": f"Bench site of {n} services",
        "description": f"{n} independent services, each on its own database pair, in one "
        "priority group: how the failover scales (bench/site_failover.py).",
        "environment": "lab",
        "inventory": str(site_inventory(ids, directory / f"site-{n}.yml")),
        "playbook_dir": str(REPO / "playbooks"),
        "approval": {"timeout_minutes": 10, "two_person_rule": False},
        "execution": {"max_parallel": n, "on_failure": "continue_independent"},
        "databases": databases,
        "services": services,
        "coordination": {"incident_channel": "#drp-lab"},
    }
    path = directory / f"site-{n}.yaml"
    path.write_text(yaml.safe_dump(runbook, sort_keys=False))
    return path


def site_inventory(ids: Sequence[str], path: Path) -> Path:
    """The runbook's inventory, shaped like inventory/lab-site.yml: per pair its primary and
    standby groups, per service and site ``<service>_<site>_app``, and the lab's usual groups.
    Hosts are named as the lab names them (``inventory-vars.yml`` places them)."""
    groups: dict[str, Any] = {}
    children: dict[str, dict[str, None]] = {"dc": {}, "drc": {}}
    for index, sid in enumerate(ids):
        primary, standby = _groups(index, sid)
        main = index == 0
        hosts = {
            primary: "dc-db1" if main else f"{sid}-db-dc1",
            standby: "drc-db1" if main else f"{sid}-db-drc1",
            f"{sid}_dc_app": "dc-app1" if main else f"{sid}-dc-app1",
            f"{sid}_drc_app": "drc-app1" if main else f"{sid}-drc-app1",
        }
        if main:
            hosts.update({"dc_app": "dc-app1", "drc_app": "drc-app1"})
        for group, host in hosts.items():
            groups[group] = {"hosts": {host: None}}
            children["drc" if "drc" in group else "dc"][group] = None
    groups.update(
        {name: {"hosts": {host: None}} for name, host in
         (("ops_db", "ops-db1"), ("frontdoor", "lb1"), ("lab_ssh", "lab-ssh1"))}
    )  # fmt: skip
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": "{{ drp_python }}",
                "drp_environment": "lab",
            },
            "children": {
                "dc": {"children": children["dc"]},
                "drc": {"children": children["drc"]},
                **groups,
            },
        }
    }
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


# -- one failover and what its ledger says -----------------------------------------------------
def ts(value: str) -> float:
    """Epoch seconds of an ISO time; one without a zone is UTC (ansible-runner's events)."""
    moment = datetime.fromisoformat(value)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@dataclass
class Run:
    """One failover: the flow's RTO, the wall time of the call, the ledger's breakdown."""

    rto_s: float
    wall_s: float
    cpu_s: float
    parts: dict[str, list[float]] = field(default_factory=dict)
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)
    """step id -> (start, end) epoch seconds, from the ledger."""


_CREATED = re.compile(r'"created": "([^"]+)"')
_EVENT = re.compile(r'"event": "([^"]+)"')


def _event_times(ledger: Path, record: Any) -> dict[str, float]:
    """When the playbook's run started and ended its stats (``playbook_on_start``,
    ``playbook_on_stats``), from its event log attached to the ledger. Read by pattern, not
    as JSON: the ledger masks secrets in attachments as text, which may leave a line that is
    no longer JSON."""
    found: dict[str, float] = {}
    for ref in record.attachments:
        file = ledger / ATTACHMENTS_DIR / ref.sha256
        if not file.exists():
            continue
        for line in file.read_text().splitlines():
            event, created = _EVENT.search(line), _CREATED.search(line)
            if event and created and event[1] in ("playbook_on_start", "playbook_on_stats"):
                found.setdefault(event[1], ts(created[1]))
    return found


def breakdown(ledger: Path) -> tuple[dict[str, list[float]], dict[str, tuple[float, float]]]:
    """Per step kind: the step, its playbook (start-up, tasks, exit), the step's own checks;
    per service: the wait before its first step and Prefect's task start between steps."""
    parts: dict[str, list[float]] = {}
    windows: dict[str, tuple[float, float]] = {}
    starts: dict[str, float] = {}
    service_started: dict[str, float] = {}
    per_service: dict[str, list[tuple[float, float]]] = {}
    playbooks: dict[str, list[Any]] = {}
    for _, rec in read_records(ledger):
        if isinstance(rec, str):
            continue
        if rec.kind == "service.started":
            service_started[rec.data["service"]] = ts(rec.ts)
        elif rec.kind == "step.start":
            starts[rec.data["step_id"]] = ts(rec.ts)
        elif rec.kind == "step.end":
            step_id = rec.data["step_id"]
            windows[step_id] = (starts[step_id], ts(rec.ts))
        elif rec.kind == "ansible.playbook":
            playbooks.setdefault(rec.data["step_id"], []).append(rec)

    def add(key: str, value: float) -> None:
        parts.setdefault(key, []).append(value)

    for step_id, (begin, end) in windows.items():
        service, _, kind = step_id.rpartition("-")
        per_service.setdefault(service, []).append((begin, end))
        add(f"{kind}: step", end - begin)
        ran = 0.0
        for rec in playbooks.get(step_id, []):
            runner_end = ts(rec.ts)
            duration = float(rec.data["duration_s"])
            ran += duration
            named = _event_times(ledger, rec)
            if "playbook_on_start" in named and "playbook_on_stats" in named:
                runner_start = runner_end - duration
                add(f"{kind}:   ansible start-up", named["playbook_on_start"] - runner_start)
                add(
                    f"{kind}:   ansible tasks",
                    named["playbook_on_stats"] - named["playbook_on_start"],
                )
                add(f"{kind}:   ansible exit", runner_end - named["playbook_on_stats"])
        add(f"{kind}:   around the playbook", (end - begin) - ran)
    for service, spans in per_service.items():
        spans.sort()
        if service in service_started:
            add("service: wait before its first step", spans[0][0] - service_started[service])
        add(
            "service: between its steps (task start)",
            sum(b[0] - a[1] for a, b in itertools.pairwise(spans)),
        )
    return parts, windows


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def failover(runbook: Path, evidence: Path) -> tuple[Any, float, float]:
    """The failover flow, called directly with its approver (as bench/failover.py does)."""
    from drp.flows import load

    os.environ["DRP_EVIDENCE_DIR"] = str(evidence)
    cpu, started = cpu_seconds(), time.perf_counter()
    out = load("failover").failover(
        runbook=str(runbook),
        declared_by="bench",
        approved_by="bench",
        mode="drill",
        category="katastropik",
    )
    wall = time.perf_counter() - started
    if out.status != "verified":
        raise SystemExit(f"the failover did not verify: {out.status}: {out.reason}")
    return out, wall, cpu_seconds() - cpu


# -- the write gap -----------------------------------------------------------------------------
@dataclass
class Writer:
    """Posts a declaration through the front door every ~20 ms; keeps (time, site) of every
    write the SKP acknowledged (201, the site from its answer)."""

    url: str
    acks: list[tuple[float, str]] = field(default_factory=list)
    refused: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            status, body = http_json(
                f"{self.url}/declarations",
                {"nomor_aju": f"GAP-{uuid.uuid4().hex[:12]}", "doc_type": "PEB", "office": "b"},
                timeout=3,
            )
            if status == 201 and isinstance(body, dict):
                self.acks.append((time.time(), str(body.get("site"))))
            else:
                self.refused += 1
            self.stop.wait(0.02)


def write_gap(lab: Lab, runbook: Path, evidence: Path) -> dict[str, Any]:
    sid = service_ids(1)[0]
    writer = Writer(lab.route_url(sid))
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    time.sleep(1.0)  # a few writes at the DC first
    try:
        out, _, _ = failover(runbook, evidence)
        time.sleep(1.0)
    finally:
        writer.stop.set()
        thread.join(10)
    dc = [t for t, site in writer.acks if site == "dc"]
    drc = [t for t, site in writer.acks if site == "drc"]
    if not dc or not drc:
        raise SystemExit(f"the writer saw no write at one site: dc {len(dc)}, drc {len(drc)}")
    last_dc, first_drc = max(dc), min(drc)
    _, windows = breakdown(Path(out.ledger))
    steps = {
        kind: (windows[f"{sid}-{kind}"][0] - last_dc, windows[f"{sid}-{kind}"][1] - last_dc)
        for kind in STEP_KINDS
    }
    return {
        "gap_s": first_drc - last_dc,
        "acknowledged_dc": len(dc),
        "acknowledged_drc": len(drc),
        "refused": writer.refused,
        "rto_s": out.achieved_rto_s,
        "steps_from_last_dc_write": steps,
    }


# -- main --------------------------------------------------------------------------------------
def med(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def scaling(n: int, index: int, root: Path, runs: int, labs: list[Lab]) -> dict[str, Any]:
    runbook = site_runbook(n, root / "runbooks")
    rb = load_runbook(runbook)  # as `drp runbook check` does: RunbookError on any problem
    shape = from_runbook(rb, str(runbook))
    lab = Lab.from_env(root=root / f"lab-n{n}", port_base=PORT_BASE + 200 * index)
    os.environ["DRP_LAB_ROOT"] = str(lab.cfg.root)
    labs.append(lab)  # stopped by main's clean-up whatever happens
    offsets = sorted(port for _, port in shape.ports)
    say(
        f"N={n}: {len(shape.pairs)} pairs, {len(shape.services)} services, ports "
        f"{lab.cfg.port_base}+{offsets[0] if offsets else '-'}..+{offsets[-1] if offsets else '-'}"
    )
    results: list[Run] = []
    for i in range(1, runs + 1):
        t = time.perf_counter()
        if i == 1:
            lab.up(sync=True, runbook=runbook)
        else:
            lab.reset()
        say(f"N={n} run {i}/{runs}: site ready in {time.perf_counter() - t:.1f} s")
        out, wall, cpu = failover(runbook, root / f"evidence-n{n}-{i}")
        parts, windows = breakdown(Path(out.ledger))
        declared = ts(out.declared_at)
        first = min(begin for begin, _ in windows.values())
        last = max(end for _, end in windows.values())
        parts["flow: declaration, approval, until the first step"] = [first - declared]
        parts["flow: after the last step, until the RTO clock stops"] = [
            out.achieved_rto_s - (last - declared)
        ]
        results.append(Run(out.achieved_rto_s, wall, cpu, parts, windows))
        say(
            f"N={n} run {i}/{runs}: RTO {out.achieved_rto_s:.2f} s, wall {wall:.2f} s, "
            f"CPU {cpu:.1f} s ({cpu / wall:.2f} cores)"
        )
    keys = list(results[0].parts)
    return {
        "n": n,
        "lab": lab,
        "runbook": runbook,
        "rto_s": med(r.rto_s for r in results),
        "wall_s": med(r.wall_s for r in results),
        "cpu_cores": med(r.cpu_s / r.wall_s for r in results),
        "runs_rto_s": [r.rto_s for r in results],
        "parts": {k: med(v for r in results for v in r.parts.get(k, [])) for k in keys},
    }


def ceisa() -> dict[str, Any]:
    recovery = make_plan(load_runbook(REPO / "runbooks" / "ceisa.yaml"))
    data = recovery.as_dict()
    return {
        "predicted_rto_parallel_s": data["predicted_rto_parallel_s"],
        "predicted_rto_serial_s": data["predicted_rto_serial_s"],
        "critical_path": data["critical_path"],
        "max_parallel": data["execution"]["max_parallel"],
        "goal_s": CEISA_GOAL_S,
    }


def report(
    scale: list[dict[str, Any]],
    plan: dict[str, Any],
    gap: dict[str, Any] | None,
    load: Sequence[float],
) -> None:
    print(
        f"\nwhole-site failover on the site lab ({os.cpu_count()} cores, load average now "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f})"
    )
    print("\n1. scaling: N services, each its own pair, one priority group, max_parallel = N")
    print(f"   {'N':>3} {'RTO (median)':>13} {'wall':>8} {'CPU used':>9}   runs")
    base = next((s["rto_s"] for s in scale if s["n"] == 1), None)
    for s in scale:
        runs = ", ".join(f"{v:.1f}" for v in s["runs_rto_s"])
        print(
            f"   {s['n']:>3} {s['rto_s']:>12.2f}s {s['wall_s']:>7.2f}s "
            f"{s['cpu_cores']:>6.2f} cores   {runs}"
        )
    if base:
        for s in scale:
            if s["n"] == 1:
                continue
            ratio, goal = s["rto_s"] / base, GOALS.get(s["n"])
            against = (
                f" (goal <= {goal:.1f}x: {'met' if ratio <= goal else 'NOT met'})" if goal else ""
            )
            print(f"   RTO({s['n']})/RTO(1) = {ratio:.2f}x{against}")
    print("\n   where the time goes (median per step kind across services and runs, seconds):")
    keys = list(dict.fromkeys(k for s in scale for k in s["parts"]))
    print(f"   {'':44}" + "".join(f"{'N=' + str(s['n']):>9}" for s in scale))
    for key in keys:
        row = "".join(
            f"{s['parts'][key]:>9.2f}" if key in s["parts"] else f"{'-':>9}" for s in scale
        )
        print(f"   {key:44}{row}")
    print("\n2. predicted RTO of runbooks/ceisa.yaml (drp plan --json)")
    print(
        f"   parallel (max_parallel {plan['max_parallel']}, critical path "
        f"{' -> '.join(plan['critical_path'])}): {plan['predicted_rto_parallel_s'] / 60:.0f} min"
    )
    print(
        f"   serial: {plan['predicted_rto_serial_s'] / 60:.0f} min; goal <= 35 min: parallel "
        f"{'met' if plan['predicted_rto_parallel_s'] <= CEISA_GOAL_S else 'NOT met'}, serial "
        f"{'met' if plan['predicted_rto_serial_s'] <= CEISA_GOAL_S else 'NOT met'}"
    )
    if gap:
        print(
            "\n3. write gap of one service (N=1 site, a write every ~20 ms through the front door)"
        )
        print(
            f"   gap (last write acknowledged by the DC -> first by the DRC): "
            f"{gap['gap_s']:.2f} s (median of {gap['runs']}: "
            f"{', '.join(f'{g:.2f}' for g in gap['runs_gap_s'])}); "
            f"the flow's RTO {gap['rto_s']:.2f} s"
        )
        print(
            f"   writes acknowledged: {gap['acknowledged_dc']} at the DC, "
            f"{gap['acknowledged_drc']} at the DRC, {gap['refused']} refused (last run)"
        )
        print("   steps, from the last DC write (median start .. end, seconds):")
        for kind, (begin, end) in gap["steps_from_last_dc_write"].items():
            print(f"   {kind:10} {begin:>7.2f} .. {end:>6.2f}  ({end - begin:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--services", default="1,4,8", help="comma-separated N (default 1,4,8)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--no-gap", action="store_true", help="skip the write-gap runs")
    parser.add_argument(
        "--from-json", type=Path, help="print the figures of an earlier --json run; run nothing"
    )
    args = parser.parse_args()
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        report(saved["scaling"], saved["ceisa"], saved["write_gap"], saved["load_average"])
        return
    counts = sorted({int(x) for x in args.services.split(",") if x.strip()})
    root = Path(tempfile.mkdtemp(prefix="drp-bench-site-", dir="/tmp"))
    os.chmod(root, 0o755)
    os.environ.update(
        {
            "PREFECT_HOME": str(root / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
    )
    from prefect.settings import temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    plan = ceisa()
    scale: list[dict[str, Any]] = []
    gap: dict[str, Any] | None = None
    labs: list[Lab] = []
    try:
        say(f"starting a Prefect server on 127.0.0.1:{PREFECT_PORT} (outside the timings)")
        with (
            mock.patch("prefect.testing.utilities._find_available_port", return_value=PREFECT_PORT),
            prefect_test_harness(server_startup_timeout=90),
            temporary_settings(updates={"flows.heartbeat_frequency": None}),
        ):
            for index, n in enumerate(counts):
                result = scaling(n, index, root, args.runs, labs)
                scale.append(result)
                if n == 1 and not args.no_gap:
                    gap = gap_runs(result["lab"], result["runbook"], root, args.runs)
                if n != 1:
                    result["lab"].down(purge=True)
                    say(f"N={n}: lab down")
    finally:
        for lab in labs:
            lab.down(purge=True)
        shutil.rmtree(root, ignore_errors=True)
    for s in scale:
        s.pop("lab")
        s["runbook"] = f"site-{s['n']}.yaml (generated)"
    if args.json:
        print(
            json.dumps(
                {
                    "scaling": scale,
                    "ceisa": plan,
                    "write_gap": gap,
                    "load_average": os.getloadavg(),
                    "cores": os.cpu_count(),
                },
                indent=2,
            )
        )
    else:
        report(scale, plan, gap, os.getloadavg())


def gap_runs(lab: Lab, runbook: Path, root: Path, runs: int) -> dict[str, Any]:
    found: list[dict[str, Any]] = []
    for i in range(1, runs + 1):
        lab.reset()
        found.append(write_gap(lab, runbook, root / f"evidence-gap-{i}"))
        say(f"write gap run {i}/{runs}: {found[-1]['gap_s']:.2f} s")
    steps: Mapping[str, tuple[float, float]] = {
        kind: (
            med(g["steps_from_last_dc_write"][kind][0] for g in found),
            med(g["steps_from_last_dc_write"][kind][1] for g in found),
        )
        for kind in STEP_KINDS
    }
    last = found[-1]
    return {
        "gap_s": med(g["gap_s"] for g in found),
        "runs": runs,
        "runs_gap_s": [g["gap_s"] for g in found],
        "rto_s": med(g["rto_s"] for g in found),
        "acknowledged_dc": last["acknowledged_dc"],
        "acknowledged_drc": last["acknowledged_drc"],
        "refused": last["refused"],
        "steps_from_last_dc_write": dict(steps),
    }


if __name__ == "__main__":
    main()
