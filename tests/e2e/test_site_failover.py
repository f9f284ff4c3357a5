"""A whole data center fails over, on the site lab of ``runbooks/lab-site.yaml``: five services in
three priority groups over three database pairs, real replication, real playbooks, real fences.

Every scenario runs under a writer per database pair (through the front-door route of a service
on that pair, as users write) and a watcher per pair that polls both of its servers the way
clients reach them (the DC through its uplink, the DRC directly) for two writable primaries:

- the whole site fails over, resyncs and fails back: 0 moments with two writable primaries,
  0 acknowledged writes lost, equal checksums at both sites after each phase;
- one service (``perbendaharaan``, its own pair) fails over, resyncs and fails back on its own
  while every other service keeps serving from the DC;
- ``skp``'s promotion is made to fail (its standby comes up read-only): ``skp`` and every
  service that depends on it (``portal``, ``manifest``, ``tpb``) stop, ``manifest``'s pair is
  never touched, ``perbendaharaan`` fails over; once the cause is mended, re-running the
  incident finishes every service without doing a step twice;
- the failover is killed in the middle of the first priority group (right after ``skp``'s
  promotion, while ``perbendaharaan`` recovers beside it); the re-run finishes with every step
  done exactly once.

One site lab for the module, on ``DRP_TEST_PORT_BASE + 900`` (the integration site lab's range:
modules on one worker run one after another, and each tears its lab down); each test starts from
fresh sites (``Lab.reset``: DC primaries, DRC synchronous standbys, every route at the DC).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from observers import ClientPathWatcher, FrontDoorWriter

from drp.flows import load
from drp.lab import frontdoor
from drp.lab.core import Lab
from drp.ledger import read_records, verify_ledger
from drp.polling import wait_until
from drp.tasks.kernel import IncidentStopped

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SITE_RUNBOOK = REPO / "runbooks" / "lab-site.yaml"
PORT_BASE = int(os.environ.get("DRP_TEST_PORT_BASE", "26400")) + 900
SERVICES = ("skp", "perbendaharaan", "portal", "manifest", "tpb")
PAIRS = ("skp-db", "perbendaharaan-db", "manifest-db")
WRITES_THROUGH = {"skp-db": "skp", "perbendaharaan-db": "perbendaharaan", "manifest-db": "manifest"}
"""The service whose route each pair's writer writes through."""


@dataclass
class Site:
    lab: Lab
    evidence: Path
    runbook: str


@pytest.fixture(scope="module")
def site_lab(prefect_server) -> Iterator[Site]:
    root = Path(tempfile.mkdtemp(prefix="drp-site-e2e-", dir="/tmp"))  # 0700: drp.lab.placement
    lab = Lab.from_env(root=root / "lab", port_base=PORT_BASE)
    with pytest.MonkeyPatch.context() as env:  # the flows find the lab and evidence here
        env.setenv("DRP_LAB_ROOT", str(lab.cfg.root))
        env.setenv("DRP_EVIDENCE_DIR", str(root / "evidence"))
        env.setenv("DRP_APPROVAL_POLL_S", "1")
        try:
            lab.up(sync=True, runbook=SITE_RUNBOOK)
            yield Site(lab, root / "evidence", str(SITE_RUNBOOK))
        finally:
            lab.down(purge=True)
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def site(site_lab: Site) -> Site:
    """Fresh sites for every test (the platform kept): DC primaries, DRC standbys, routes at
    the DC."""
    site_lab.lab.reset(sync=True)
    return site_lab


# -- what the clients see ----------------------------------------------------------------------
def _server_dsn(lab: Lab, pair: str, side: str, client_path: bool = False) -> str:
    """A DSN to a pair's server at ``side``; with ``client_path`` the DC's is reached through
    its uplink relay, as clients outside the DC reach it."""
    shape = lab.shape.pair(pair)
    name = shape.server(side)
    dsn = lab.dsn(name)
    if client_path and side == "dc":
        dsn = dsn.replace(f"port={lab.cfg.port(name)}", f"port={lab.cfg.port(shape.uplink)}")
    return dsn + " connect_timeout=1"


@dataclass
class Observers:
    writers: dict[str, FrontDoorWriter] = field(default_factory=dict)
    watchers: dict[str, ClientPathWatcher] = field(default_factory=dict)


@contextmanager
def observed(lab: Lab) -> Iterator[Observers]:
    """A writer and a two-primaries watcher per pair, for the duration of the block."""
    obs = Observers()
    for pair in PAIRS:
        # Three writers and three watchers at once: a write every 0.1 s per pair and a poll
        # every 0.1 s still give hundreds of each per phase, and leave the two cores to the
        # failover they watch.
        obs.writers[pair] = FrontDoorWriter(lab.route_url(WRITES_THROUGH[pair]), interval_s=0.1)
        obs.watchers[pair] = ClientPathWatcher(
            (_server_dsn(lab, pair, "dc", client_path=True), _server_dsn(lab, pair, "drc")),
            interval_s=0.1,
        )
    threads = [
        threading.Thread(target=w.run, daemon=True)
        for w in (*obs.writers.values(), *obs.watchers.values())
    ]
    for t in threads:
        t.start()
    try:
        yield obs
    finally:
        for w in (*obs.writers.values(), *obs.watchers.values()):
            w.stop()
        for t in threads:
            t.join(timeout=10)


def _keys_at(lab: Lab, pair: str, side: str) -> set[str]:
    with psycopg.connect(_server_dsn(lab, pair, side), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT nomor_aju FROM declarations WHERE office = 'drill-writer'"
        ).fetchall()
    return {r[0] for r in rows}


def _checksum(lab: Lab, pair: str, side: str) -> tuple[Any, ...]:
    with psycopg.connect(_server_dsn(lab, pair, side), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), md5(string_agg(nomor_aju, ',' ORDER BY nomor_aju)) FROM declarations"
        ).fetchone()
    assert row is not None
    return tuple(row)


def assert_safe(obs: Observers, lab: Lab, pairs: tuple[str, ...], moved: tuple[str, ...]) -> None:
    """Never two writable primaries on any pair; every acknowledged write of a pair is on its
    current primary; where both servers run (streaming), both hold the same rows."""
    for pair in PAIRS:
        watcher = obs.watchers[pair]
        assert watcher.polls > 20, (pair, watcher.polls)
        assert watcher.both_writable == [], f"{pair}: two writable primaries reachable by clients"
    for pair in pairs:
        writer = obs.writers[pair]
        acknowledged = set(writer.acknowledged)
        assert len(acknowledged) > 20, f"{pair}'s writer barely wrote: the test would prove little"
        primary = "drc" if pair in moved else "dc"
        missing = acknowledged - _keys_at(lab, pair, primary)
        assert not missing, f"{len(missing)} acknowledged writes missing at {pair}'s {primary}"


def assert_both_sites_agree(lab: Lab, pairs: tuple[str, ...]) -> None:
    """Once the standby has replayed the last commit, a pair's two servers hold the same rows."""
    for pair in pairs:
        sums = lambda p=pair: {_checksum(lab, p, "dc"), _checksum(lab, p, "drc")}  # noqa: E731
        assert wait_until(lambda s=sums: len(s()) == 1, 15), (pair, sums())


def _routes(lab: Lab) -> dict[str, str | None]:
    return {s: frontdoor.served_site(lab.cfg, s) for s in SERVICES}


def _role(lab: Lab, pair: str, side: str) -> str | None:
    return lab.status()["components"][lab.shape.pair(pair).server(side)].get("role")


def _step_ends(ledger: str) -> list[dict[str, Any]]:
    return [
        r.data for _, r in read_records(ledger) if not isinstance(r, str) and r.kind == "step.end"
    ]


FINISHED = ("done", "already_done")
"""A step that did its work, or found it done (an app already running at the DRC)."""


def assert_every_step_once(outcome: Any, steps: set[str]) -> None:
    """Across every attempt of the incident, no step did its work twice; in the last attempt
    every step of the selection finished, and nothing else ran."""
    done = [e["step_id"] for e in _step_ends(outcome.ledger) if e["status"] == "done"]
    assert len(done) == len(set(done)), f"a step done twice: {sorted(done)}"
    last = {s["step_id"]: s["status"] for s in outcome.steps}
    assert set(last) == steps, sorted(last)
    assert all(status in FINISHED for status in last.values()), last


def _steps_of(runbook: str, services: tuple[str, ...] = SERVICES) -> set[str]:
    doc = yaml.safe_load(Path(runbook).read_text())
    return {s["id"] for svc in doc["services"] if svc["id"] in services for s in svc["steps"]}


def _failover(site: Site, incident: str, **params: Any) -> Any:
    return load("failover").failover(
        runbook=params.pop("runbook", site.runbook),
        declared_by="Budi",
        declarer_role="direktur",
        mode="drill",
        approved_by="Budi",
        category="katastropik",
        incident_id=incident,
        **params,
    )


def _failback(site: Site, incident: str) -> Any:
    return load("failback").failback(
        runbook=site.runbook,
        incident_id=incident,
        mode="drill",
        approved_by="Sari",
        declared_by="Budi",
    )


# -- the whole site ----------------------------------------------------------------------------
def test_the_whole_site_fails_over_resyncs_and_fails_back_without_losing_a_write(
    site: Site,
) -> None:
    lab = site.lab
    incident = f"inc-site-{uuid.uuid4().hex[:6]}"
    with observed(lab) as obs:
        failover = _failover(site, incident)
    assert failover.status == "verified", failover
    assert {s.service: s.status for s in failover.services} == dict.fromkeys(SERVICES, "verified")
    for s in failover.services:  # each service against its own clock and budget
        assert 0 < s.achieved_rto_s <= s.rto_budget_s, s
    assert failover.achieved_rto_s >= max(s.achieved_rto_s for s in failover.services)
    pairs = {p.pair: p for p in failover.pairs}
    assert set(pairs) == set(PAIRS)
    for p in pairs.values():  # each pair fenced, proven, promoted, its RPO recorded
        assert p.promoted and p.fence_outcome and p.rpo is not None, p
    assert _routes(lab) == dict.fromkeys(SERVICES, "drc")
    assert {_role(lab, p, "drc") for p in PAIRS} == {"primary"}
    assert_safe(obs, lab, PAIRS, moved=PAIRS)
    assert sum(w.refused for w in obs.writers.values()) > 0, "no write was refused: no failover"
    assert_every_step_once(failover, _steps_of(site.runbook))
    # Services of a priority group overlapped in time (the graph, not a queue).
    by_service = {s.service: s for s in failover.services}
    skp, treasury = by_service["skp"], by_service["perbendaharaan"]
    assert skp.started_at < treasury.ended_at and treasury.started_at < skp.ended_at
    # A dependant started only after everything it depends on was verified.
    assert by_service["tpb"].started_at >= max(
        by_service["portal"].ended_at, by_service["perbendaharaan"].ended_at
    )

    with observed(lab) as obs:
        resync = load("resync").resync(runbook=site.runbook, incident_id=incident, mode="drill")
    assert resync.status == "streaming", resync
    assert {p["pair"] for p in resync.pairs} == set(PAIRS)
    assert {_role(lab, p, "dc") for p in PAIRS} == {"standby"}
    assert_safe(obs, lab, PAIRS, moved=PAIRS)
    assert_both_sites_agree(lab, PAIRS)

    with observed(lab) as obs:
        failback = _failback(site, incident)
    assert failback.status == "verified", failback
    assert _routes(lab) == dict.fromkeys(SERVICES, "dc")
    assert {_role(lab, p, "dc") for p in PAIRS} == {"primary"}
    assert {_role(lab, p, "drc") for p in PAIRS} == {"standby"}
    assert_safe(obs, lab, PAIRS, moved=())
    assert_both_sites_agree(lab, PAIRS)
    for outcome in (failover, resync, failback):
        result = verify_ledger(outcome.ledger)
        assert result.ok, (outcome.flow, result.problems)


# -- one service -------------------------------------------------------------------------------
def test_one_service_fails_over_alone_while_the_others_keep_serving_from_the_dc(
    site: Site,
) -> None:
    lab = site.lab
    incident = f"inc-partial-{uuid.uuid4().hex[:6]}"
    moved = ("perbendaharaan-db",)
    stayed = ("skp-db", "manifest-db")
    with observed(lab) as obs:
        failover = _failover(site, incident, services=["perbendaharaan"])
    assert failover.status == "verified", failover
    assert [s.service for s in failover.services] == ["perbendaharaan"]
    assert failover.selection and failover.selection["services"] == ["perbendaharaan"]
    assert [p.pair for p in failover.pairs] == list(moved)
    assert _routes(lab) == {**dict.fromkeys(SERVICES, "dc"), "perbendaharaan": "drc"}
    assert _role(lab, "perbendaharaan-db", "drc") == "primary"
    for pair in stayed:
        assert (_role(lab, pair, "dc"), _role(lab, pair, "drc")) == ("primary", "standby")
        # The services left at the DC kept serving: not one of their writes was refused.
        assert obs.writers[pair].refused == 0, (pair, obs.writers[pair].refused)
    assert_safe(obs, lab, PAIRS, moved=moved)
    assert_every_step_once(failover, _steps_of(site.runbook, ("perbendaharaan",)))

    # Resync and failback take the failover's selection: only that pair, only that route.
    with observed(lab) as obs:
        resync = load("resync").resync(runbook=site.runbook, incident_id=incident, mode="drill")
        assert resync.status == "streaming", resync
        assert [p["pair"] for p in resync.pairs] == list(moved)
        failback = _failback(site, incident)
    assert failback.status == "verified", failback
    assert _routes(lab) == dict.fromkeys(SERVICES, "dc")
    for pair in stayed:
        assert obs.writers[pair].refused == 0, (pair, obs.writers[pair].refused)
    assert_safe(obs, lab, PAIRS, moved=())
    assert_both_sites_agree(lab, PAIRS)


# -- one service failing -----------------------------------------------------------------------
def _with_short_write_probe(directory: Path) -> str:
    """runbooks/lab-site.yaml with skp's promotion waiting 5 s (not 30) for its first write:
    the test makes that promotion fail, and need not wait for it longer."""
    doc = yaml.safe_load(SITE_RUNBOOK.read_text())
    doc["inventory"] = str(REPO / "inventory" / "lab-site.yml")
    doc["playbook_dir"] = str(REPO / "playbooks")
    skp = next(s for s in doc["services"] if s["id"] == "skp")
    promote = next(s for s in skp["steps"] if s["id"] == "skp-promote")
    promote["extra_vars"] = {**promote.get("extra_vars", {}), "write_timeout": 5}
    path = directory / "lab-site.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def _read_only_after_promotion(lab: Lab, pair: str, on: bool) -> None:
    """Leave (or mend) a setting that makes the pair's DRC standby refuse writes once promoted:
    a real misconfiguration, and the promotion's write probe finds it."""
    name = lab.shape.pair(pair).drc
    with psycopg.connect(lab.dsn(name, "postgres"), autocommit=True) as conn:
        if on:
            conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        else:
            conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
        conn.execute("SELECT pg_reload_conf()")


def test_a_failed_promotion_stops_its_dependants_and_spares_the_independent(
    site: Site, tmp_path: Path
) -> None:
    lab = site.lab
    runbook = _with_short_write_probe(tmp_path)
    incident = f"inc-fail-{uuid.uuid4().hex[:6]}"
    _read_only_after_promotion(lab, "skp-db", on=True)
    with observed(lab) as obs, pytest.raises(IncidentStopped) as stopped:
        _failover(site, incident, runbook=runbook)
    failover = stopped.value.outcome
    assert failover is not None and failover.status != "verified", failover
    assert "not every service recovered" in str(stopped.value)
    services = {s.service: s for s in failover.services}
    assert services["skp"].status == "failed", services["skp"]
    assert services["skp"].reason.startswith("Promote skp's DRC standby"), services["skp"]
    assert services["perbendaharaan"].status == "verified", services["perbendaharaan"]
    for dependant in ("portal", "manifest", "tpb"):
        assert services[dependant].status == "blocked", services[dependant]
    ends = _step_ends(failover.ledger)
    started = {e["step_id"] for e in ends}
    assert not started & _steps_of(runbook, ("portal", "manifest", "tpb")), started
    # manifest's pair was never touched: its DC primary kept serving, its writer kept writing.
    assert (_role(lab, "manifest-db", "dc"), _role(lab, "manifest-db", "drc")) == (
        "primary",
        "standby",
    )
    assert obs.writers["manifest-db"].refused == 0
    assert _routes(lab) == {**dict.fromkeys(SERVICES, "dc"), "perbendaharaan": "drc"}
    assert_safe(obs, lab, ("perbendaharaan-db", "manifest-db"), moved=("perbendaharaan-db",))
    assert obs.watchers["skp-db"].both_writable == []

    # The cause mended, the same incident re-run finishes what did not, and nothing twice.
    _read_only_after_promotion(lab, "skp-db", on=False)
    with observed(lab) as obs:
        again = _failover(site, incident, runbook=runbook)
    assert again.status == "verified", again
    assert {s.service: s.status for s in again.services} == dict.fromkeys(SERVICES, "verified")
    assert _routes(lab) == dict.fromkeys(SERVICES, "drc")
    assert_safe(obs, lab, PAIRS, moved=PAIRS)
    assert_every_step_once(again, _steps_of(runbook))
    assert verify_ledger(again.ledger).ok


# -- killed in the middle of a group -----------------------------------------------------------
def test_a_failover_killed_in_the_middle_of_a_group_finishes_on_rerun_exactly_once(
    site: Site,
) -> None:
    lab = site.lab
    incident = f"inc-kill-{uuid.uuid4().hex[:6]}"
    from prefect.settings import PREFECT_API_URL

    env = {
        **os.environ,
        "DRP_CRASH_AFTER_STEP": "skp-promote",
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
    }
    cli = [sys.executable, "-m", "drp.cli", "failover", "--runbook", site.runbook]
    args = ["--incident-id", incident, "--declared-by", "Budi", "--approved-by", "Budi"]
    with observed(lab) as obs:
        proc = subprocess.run(
            [*cli, *args, "--category", "katastropik", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 70, (proc.stdout[-2000:], proc.stderr[-2000:])
        first = _step_ends(str(site.evidence / incident / "failover"))
        assert "skp-promote" in {e["step_id"] for e in first if e["status"] == "done"}
        # Killed in the middle of group 1: the other service of the group had not finished.
        assert "perbendaharaan-verify" not in {e["step_id"] for e in first}, first
        again = _failover(site, incident)
    assert again.status == "verified", again
    assert _routes(lab) == dict.fromkeys(SERVICES, "drc")
    assert_safe(obs, lab, PAIRS, moved=PAIRS)
    assert_every_step_once(again, _steps_of(site.runbook))
    last = {s["step_id"]: s["status"] for s in again.steps}
    assert last["skp-promote"] == "already_done", last  # done before the kill, not again
    assert verify_ledger(again.ledger).ok
