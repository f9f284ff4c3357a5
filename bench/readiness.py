"""Benchmark: the readiness check of 20 database pairs against the check of one (issue 6: at most
2x), with the same 20 pairs checked one after another as the baseline that concurrency beats.

    .venv/bin/python bench/readiness.py [--pairs 20] [--runs 7]

A lab is built with its main pair plus ``pairs - 1`` extra pairs (each a primary with a
streaming standby, ``drp lab up --extra-pairs``). Each round times, in the same process:

- one:        ``check_all`` (readiness and drift, as the scheduled flow runs it) of a runbook
              with the main pair only;
- N pairs:    the same for a runbook with N pairs (every server observed at once);
- sequential: the N pairs observed one server after another (what the check did before).

It prints the median of the rounds and the ratios N/one and sequential/one, twice: on loopback
(every server on this machine: the check is bound by CPU — a PostgreSQL connection with scram
authentication costs about 9 ms of it — so twenty pairs cost about twenty times one, whatever
the concurrency), and with ``--delay-ms`` of one-way latency between the checker and every
server (a relay like the lab's uplink, delaying each chunk: the checker at one site, the
databases across a WAN), which is where checking the pairs at once pays. Figures, not
thresholds: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from drp.domain import readiness as rules  # noqa: E402
from drp.domain.runbook import DatabasePair  # noqa: E402
from drp.lab.core import Lab  # noqa: E402
from drp.runbooks import load_runbook  # noqa: E402
from drp.settings import Settings  # noqa: E402
from drp.tasks import replication as checks  # noqa: E402
from drp.topology import PairDsns, resolve  # noqa: E402

PORT_BASE = 25700
RUNBOOK = REPO / "runbooks" / "lab.yaml"


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--delay-ms", type=float, default=10.0, help="one-way WAN latency")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="drp-bench-readiness-", dir="/tmp"))
    os.chmod(root, 0o755)
    lab = Lab.from_env(root=root / "lab", port_base=PORT_BASE)
    try:
        started = time.perf_counter()
        lab.up(sync=True, extra_pairs=args.pairs - 1)
        print(f"lab with {args.pairs} pairs up in {time.perf_counter() - started:.1f} s")
        base = load_runbook(str(RUNBOOK))
        many = base.model_copy(
            update={
                "databases": (
                    *base.databases,
                    *(
                        DatabasePair(id=f"extra-{i}", primary_group="dc_db", standby_group="drc_db")
                        for i in range(1, args.pairs)
                    ),
                )
            }
        )
        settings = Settings(lab_root=lab.cfg.root)
        topo_one = resolve(base, Path(base.inventory), settings)
        topo_many = resolve(many, Path(many.inventory), settings)
        results = {"loopback": measure(base, many, topo_one, topo_many, args.runs)}
        relay, far_one, far_many = across_a_wan(topo_one, topo_many, args.delay_ms, root)
        try:
            results[f"{args.delay_ms:g} ms one-way"] = measure(
                base, many, far_one, far_many, args.runs
            )
        finally:
            relay.terminate()
            relay.wait(timeout=10)
    finally:
        lab.down()
        shutil.rmtree(root, ignore_errors=True)

    print(f"\nreadiness + drift check, median of {args.runs} rounds")
    for link, (one, n, seq) in results.items():
        print(f"{link}:")
        print(f"  one pair:                 {one * 1000:8.1f} ms")
        print(f"  {args.pairs} pairs, concurrent:     {n * 1000:8.1f} ms   ({n / one:.2f}x one)")
        print(
            f"  {args.pairs} pairs, one by one:     {seq * 1000:8.1f} ms   ({seq / one:.2f}x one)"
        )


def across_a_wan(topo_one, topo_many, delay_ms: float, root: Path):
    """Every server behind a relay that delays each chunk by ``delay_ms`` (drp.lab.uplink)."""
    routes: dict[int, int] = {}
    next_port = PORT_BASE + 200

    def relayed(dsn: str) -> str:
        nonlocal next_port
        port = int(dsn.split("port=")[1].split()[0])
        if port not in routes:
            routes[port] = next_port
            next_port += 1
        return dsn.replace(f"port={port}", f"port={routes[port]}")

    def far(topo):
        pairs = {
            pid: PairDsns(relayed(d.primary_dsn), relayed(d.standby_dsn))
            for pid, d in topo.pairs.items()
        }
        return replace(
            topo,
            primary_dsn=relayed(topo.primary_dsn),
            standby_dsn=relayed(topo.standby_dsn),
            pairs=pairs,
        )

    far_one, far_many = far(topo_one), far(topo_many)
    argv = [sys.executable, "-m", "drp.lab.uplink", "--delay-ms", str(delay_ms)]
    for target, listen in routes.items():
        argv += ["--route", f"{listen}:{target}"]
    relay = subprocess.Popen(argv, stderr=open(root / "relay.log", "w"))  # noqa: SIM115
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", max(routes.values())), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return relay, far_one, far_many


def measure(base, many, topo_one, topo_many, runs: int) -> tuple[float, float, float]:
    """Median seconds: one pair, all pairs at once, all pairs one server after another."""

    def check(rb, topo) -> None:
        report, _ = checks.check_all(rb, topo)
        if report.status is not rules.Readiness.READY:
            raise SystemExit(f"not ready: {[v.reasons for v in report.verdicts]}")

    def sequential() -> None:
        for p in many.databases:
            dsns = topo_many.pair(p.id)
            checks.survey_server("dc-db", "dc", dsns.primary_dsn, with_settings=True)
            checks.survey_server("drc-db", "drc", dsns.standby_dsn, with_settings=True)

    check(many, topo_many)  # warm-up: imports, first connections
    one_t, many_t, seq_t = [], [], []
    for _ in range(runs):
        one_t.append(timed(lambda: check(base, topo_one)))
        many_t.append(timed(lambda: check(many, topo_many)))
        seq_t.append(timed(sequential))
    return statistics.median(one_t), statistics.median(many_t), statistics.median(seq_t)


if __name__ == "__main__":
    main()
