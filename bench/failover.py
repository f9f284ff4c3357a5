"""Benchmark: end-to-end lab failover (declaration to verified service) against two baselines.

    .venv/bin/python bench/failover.py [--runs 5]

Each run builds a fresh lab (DC primary, DRC synchronous standby, nothing broken: the DC is
alive and must be fenced) and times one failover three ways, in the same process:

- drp:   the failover flow through Prefect (a local Prefect server is started once, outside the
         timings), from the declaration to the verified service (the flow's own RTO clock), with
         a per-step breakdown;
- (a) by hand: what an operator would do without drp — the same playbooks run one after another
         with ``ansible-playbook``, and the same checks with ``psql`` and ``curl``;
- (b) floor: the bare commands underneath — ``pg_ctl stop``, ``pg_ctl promote``, rewrite the
         front door's ``active-site.conf`` and ``nginx -s reload``, one write and one read with
         ``curl`` — no Ansible, no Prefect.

It prints the median of the runs for each, the ratios drp/(a) and drp/(b), and where drp's time
goes. Figures, not thresholds: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from drp.adapters.ansible import lab_inventories  # noqa: E402
from drp.lab import frontdoor  # noqa: E402
from drp.lab.config import find_pg_bin, run_as_user  # noqa: E402
from drp.lab.core import Lab  # noqa: E402
from drp.lab.procs import wait_until  # noqa: E402

PORT_BASE = 28400
BIN = Path(sys.executable).parent


def fresh_lab(root: Path) -> Lab:
    lab = Lab.from_env(root=root / "lab", port_base=PORT_BASE)
    lab.down(purge=True)
    lab.up(sync=True)
    return lab


def sh(argv: list[str], env: dict[str, str] | None = None, user: str | None = None) -> str:
    full = ["runuser", "-u", user, "--", *argv] if user else argv
    res = subprocess.run(
        full, capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd="/"
    )
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {res.stderr[-500:]}{res.stdout[-500:]}")
    return res.stdout


def psql(lab: Lab, name: str, sql: str) -> str:
    port = lab.cfg.port(name)
    return sh(
        [
            "psql",
            "-X",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "drp",
            "-d",
            "skp",
            "-c",
            sql,
        ],
        env={"PGPASSWORD": lab.password()},
    )


def curl_write_read(lab: Lab) -> None:
    key = f"BENCH-{uuid.uuid4().hex[:10]}"
    url = lab.url("frontdoor")
    body = json.dumps({"nomor_aju": key, "doc_type": "PEB", "office": "bench"})
    out = sh(
        [
            "curl",
            "-sf",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
            f"{url}/declarations",
        ]
    )
    assert json.loads(out)["site"] == "drc", out
    out = sh(["curl", "-sf", f"{url}/declarations?nomor_aju={key}"])
    assert json.loads(out)[0]["nomor_aju"] == key


# -- drp ---------------------------------------------------------------------------------------
def run_drp(lab: Lab, evidence: Path) -> tuple[float, dict[str, float]]:
    from drp.flows import load

    os.environ["DRP_LAB_ROOT"] = str(lab.cfg.root)
    os.environ["DRP_EVIDENCE_DIR"] = str(evidence)
    out = load("failover").failover(
        runbook=str(REPO / "runbooks" / "lab.yaml"),
        declared_by="bench",
        approved_by="bench",
        mode="drill",
        category="katastropik",
    )
    assert out.status == "verified", out
    return out.achieved_rto_s, {s["step_id"]: s["duration_s"] for s in out.steps}


# -- (a) by hand -------------------------------------------------------------------------------
def run_by_hand(lab: Lab) -> tuple[float, dict[str, float]]:
    inv = lab_inventories(lab.cfg.root)
    env = {
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_NOCOLOR": "True",
        "PATH": f"{BIN}:{os.environ['PATH']}",
    }
    parts: dict[str, float] = {}

    def playbook(name: str, **extra: str) -> None:
        argv = [
            str(BIN / "ansible-playbook"),
            "-i",
            str(inv[0]),
            "-i",
            str(inv[1]),
            str(REPO / "playbooks" / name),
        ]
        for k, v in extra.items():
            argv += ["-e", f"{k}={v}"]
        t = time.monotonic()
        sh(argv, env=env)
        parts[name] = time.monotonic() - t

    start = time.monotonic()
    assert psql(lab, "drc-db", "SELECT pg_is_in_recovery()").strip() == "t"
    playbook("preflight.yml", standby_group="drc_db", max_lag_bytes="0")
    playbook("fence_primary.yml", primary_group="dc_db")
    playbook("promote_standby.yml", standby_group="drc_db")
    assert psql(lab, "drc-db", "SELECT pg_is_in_recovery()").strip() == "f"
    playbook("start_app.yml", app_group="drc_app", require_writable="true")
    playbook("switch_traffic.yml", target_site="drc")
    playbook("verify_service.yml", expected_site="drc")
    t = time.monotonic()
    curl_write_read(lab)
    parts["curl write+read"] = time.monotonic() - t
    return time.monotonic() - start, parts


# -- (b) the floor -----------------------------------------------------------------------------
def run_floor(lab: Lab) -> tuple[float, dict[str, float]]:
    pg_ctl = str(find_pg_bin() / "pg_ctl")
    user = run_as_user()
    parts: dict[str, float] = {}

    def timed(label: str, fn: Callable[[], object]) -> None:
        t = time.monotonic()
        fn()
        parts[label] = time.monotonic() - t

    start = time.monotonic()
    timed(
        "pg_ctl stop -m fast",
        lambda: sh(
            [pg_ctl, "stop", "-D", str(lab.cfg.pgdata("dc-db")), "-m", "fast", "-w"], user=user
        ),
    )
    timed(
        "pg_ctl promote -w",
        lambda: sh([pg_ctl, "promote", "-D", str(lab.cfg.pgdata("drc-db")), "-w"], user=user),
    )

    def switch() -> None:
        frontdoor.write_active_site(lab.cfg, "drc")
        d = lab.cfg.frontdoor_dir
        sh(["/usr/sbin/nginx", "-p", str(d), "-c", str(d / "nginx.conf"), "-s", "reload"])
        assert wait_until(lambda: frontdoor.served_site(lab.cfg) == "drc", 10)

    timed("nginx reload", switch)
    timed("curl write+read", lambda: wait_until(lambda: _try(lambda: curl_write_read(lab)), 10))
    return time.monotonic() - start, parts


def _try(fn: Callable[[], object]) -> bool:
    try:
        fn()
        return True
    except (RuntimeError, AssertionError, ValueError, KeyError, IndexError):
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="drp-bench-prefect-"))
    from prefect.settings import temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    root = Path(tempfile.mkdtemp(prefix="drp-bench-", dir="/tmp"))
    os.chmod(root, 0o755)
    results: dict[str, list[float]] = {"drp": [], "a": [], "b": []}
    breakdown: dict[str, list[float]] = {}
    by_hand_parts: dict[str, list[float]] = {}
    floor_parts: dict[str, list[float]] = {}
    try:
        with (
            prefect_test_harness(server_startup_timeout=60),
            temporary_settings(updates={"flows.heartbeat_frequency": None}),
        ):
            for i in range(1, args.runs + 1):
                lab = fresh_lab(root)
                total, steps = run_drp(lab, root / f"evidence-{i}")
                results["drp"].append(total)
                for k, v in steps.items():
                    breakdown.setdefault(k, []).append(v)
                lab = fresh_lab(root)
                total, parts = run_by_hand(lab)
                results["a"].append(total)
                for k, v in parts.items():
                    by_hand_parts.setdefault(k, []).append(v)
                lab = fresh_lab(root)
                total, parts = run_floor(lab)
                results["b"].append(total)
                for k, v in parts.items():
                    floor_parts.setdefault(k, []).append(v)
                print(
                    f"run {i}/{args.runs}: drp {results['drp'][-1]:.2f} s, "
                    f"by hand {results['a'][-1]:.2f} s, floor {results['b'][-1]:.2f} s",
                    flush=True,
                )
    finally:
        Lab.from_env(root=root / "lab", port_base=PORT_BASE).down()
        shutil.rmtree(root, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    print()
    print(f"failover on the lab, median of {args.runs} runs (each on a fresh lab):")
    print(f"  drp (declaration -> verified service) {med['drp']:6.2f} s")
    print(
        f"  (a) by hand: ansible-playbook + psql + curl {med['a']:6.2f} s"
        f"   drp/(a) = {med['drp'] / med['a']:.2f}x"
    )
    print(f"  (b) floor: bare commands {med['b']:6.2f} s   drp/(b) = {med['drp'] / med['b']:.2f}x")
    print("\nwhere drp's time goes (median per step):")
    for k, v in breakdown.items():
        print(f"  {k:20s} {statistics.median(v):6.2f} s")
    accounted = sum(statistics.median(v) for v in breakdown.values())
    print(f"  {'(flow: declare, approve, records)':20s} {med['drp'] - accounted:6.2f} s")
    print("\n(a) by hand, per command (median):")
    for k, v in by_hand_parts.items():
        print(f"  {k:20s} {statistics.median(v):6.2f} s")
    print("\n(b) floor, per command (median):")
    for k, v in floor_parts.items():
        print(f"  {k:20s} {statistics.median(v):6.2f} s")


if __name__ == "__main__":
    main()
