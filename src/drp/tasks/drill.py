"""The drill's own steps: check the starting point, inject the scenario's fault, repair it
(fencing an old primary that comes back writable), check that the topology is back and the data
equal at both sites, and read the measurements back from the incident's ledgers.

The failover, resync and failback phases are the real flows (run by ``flows/drill.py`` as
subflows); this module only adds what a drill needs around them. Faults are injected into the
embedded lab only: a drill never breaks a production site.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drp.adapters import ansible
from drp.adapters import postgres as pg
from drp.domain import drill as rules
from drp.domain import runs
from drp.domain.failover import lsn_to_int
from drp.domain.outcomes import Outcome
from drp.errors import PostgresError, PreconditionFailed
from drp.ledger import read_records
from drp.polling import poll
from drp.tasks.kernel import IncidentRun
from drp.tasks.observe import frontdoor_site, primary_accepts_writes
from drp.tasks.recorded import run_recorded_playbook
from drp.tasks.steps import ALREADY_DONE, DONE, StepOutcome
from drp.topology import FaultInjector, PairDsns, Topology

TABLE = "declarations"
"""The SKP table whose contents must be equal at both sites after a drill."""

CHECKSUM_SQL = (
    "SELECT count(*), coalesce(md5(string_agg(id::text || ':' || nomor_aju || ':' || doc_type"
    " || ':' || office, ',' ORDER BY id)), '') FROM declarations WHERE created_at < %s"
)
SETTLE = "5 seconds"
"""Users keep writing while a drill checks the data, so both sites are compared over the rows
created before a cut-off this long before the check: every such row (one short transaction
each) is committed before the DC's WAL position is read, hence at the DRC once it has replayed
that far. Younger rows are compared by the next drill."""


@dataclass
class DrillState:
    """What a drill works with beyond the incident run: its scenario, the faults it hands
    to the site, what it handled, its subflows' outcomes."""

    scenario: rules.Scenario
    faults: FaultInjector
    handled: list[str] = field(default_factory=list)
    phase_outcomes: dict[str, Outcome] = field(default_factory=dict)


def faults_for(run: IncidentRun) -> FaultInjector:
    """Drills inject real faults: only into the embedded lab, through its fault injector."""
    runs.drill_target(run.runbook.environment)
    if run.topology.faults is None:
        raise PreconditionFailed(
            "this site has no fault injector: drills run on the embedded lab (drp lab up --sync)"
        )
    return run.topology.faults


def _pairs(topology: Topology) -> list[tuple[str, PairDsns]]:
    """Every database pair of the runbook (the one pair of a one-pair runbook)."""
    return list(topology.pairs.items()) or [("main", topology.pair(None))]


def _routes(topology: Topology) -> list[str | None]:
    """Every route of the front door (its only one on a one-route site)."""
    routed = [ep.route for ep in topology.services.values() if ep.route]
    return routed or [None]


# -- the normal topology -----------------------------------------------------------------------
@dataclass(frozen=True)
class TopologyState:
    normal: bool
    reason: str


def observe_topology(topology: Topology) -> TopologyState:
    """For every pair: DC primary (writable), DRC streaming standby; users at the DC."""
    for pair_id, dsns in _pairs(topology):
        dc_writable, dc_reason = primary_accepts_writes(dsns.primary_dsn)
        if not dc_writable:
            return TopologyState(
                False, f"{pair_id}: the DC is not the serving primary: {dc_reason}"
            )
        try:
            drc = pg.server_role(dsns.standby_dsn)
            streaming = pg.receiver(dsns.standby_dsn).streaming if drc.in_recovery else False
        except PostgresError as exc:
            return TopologyState(False, f"{pair_id}: the DRC database cannot be reached: {exc}")
        if not drc.in_recovery:
            return TopologyState(False, f"{pair_id}: the DRC database is a primary, not a standby")
        if not streaming:
            return TopologyState(False, f"{pair_id}: the DRC standby is not streaming from the DC")
    for route in _routes(topology):
        site = frontdoor_site(topology.frontdoor_url, route)
        if site != "dc":
            where = f"route {route}" if route else "the front door"
            return TopologyState(False, f"{where} sends users to {site or 'nowhere'}, not the DC")
    return TopologyState(True, "DC primary, DRC streaming standby, users at the DC")


def check_start(run: IncidentRun) -> StepOutcome:
    """A drill starts from the normal topology, or it would rehearse the wrong thing."""
    state = observe_topology(run.topology)
    if not state.normal:
        raise PreconditionFailed(
            f"a drill starts from the normal topology, and this is not it: {state.reason} "
            "(hint: drp lab repair, or drp lab reset --sync)"
        )
    return StepOutcome(DONE, state.reason, {"checksums": site_checksums(run.topology)})


# -- the fault ---------------------------------------------------------------------------------
def inject(run: IncidentRun, ds: DrillState) -> StepOutcome:
    """Break the lab the way the scenario says (once per drill: a re-run does not break it
    again)."""
    if "inject" in run.done_before:
        return StepOutcome(ALREADY_DONE, f"{ds.scenario.fault} was injected in an earlier attempt")
    sentence = ds.faults.inject(ds.scenario.fault, **dict(ds.scenario.fault_options))
    return StepOutcome(DONE, sentence, {"fault": ds.scenario.fault, "article": ds.scenario.article})


def repair(run: IncidentRun, ds: DrillState) -> StepOutcome:
    """Clear the fault. A DC that was never stopped (network loss) comes back as a second
    writable primary: it is fenced at once, before anything else, and that is recorded."""
    data: dict[str, Any] = {}
    if ds.scenario.old_primary_may_return_writable and ds.faults.writable_on_site():
        # Reconnecting a DC that still runs as a primary would make two writable primaries
        # reachable: it is stopped on site first, as the runbook's network-loss procedure says.
        ds.faults.stop_on_site()
        sentence = (
            "the isolated DC database was still a writable primary: it was stopped on site "
            "before the network was restored (writes made there by local clients during the "
            "cut are discarded by the resync)"
        )
        ds.handled.append(sentence)
        data["stopped_on_site"] = True
    done = ds.faults.repair()
    data["repaired"] = done
    for pair_id, dsns in _pairs(run.topology):
        writable, why = primary_accepts_writes(dsns.primary_dsn)
        if not writable:
            data[f"dc_after_repair:{pair_id}"] = why
            continue
        db = run.runbook.database(pair_id)
        call = ansible.PlaybookCall(
            playbook=Path(run.runbook.playbook_dir) / "fence_primary.yml",
            inventories=run.topology.inventories,
            extra_vars={"primary_group": db.primary_group if db else "dc_db"},
            timeout_s=120,
        )
        result = run_recorded_playbook(run.ledger, call, step_id="repair", attempt=run.attempt)
        result.raise_for_failure()
        still, _ = primary_accepts_writes(dsns.primary_dsn)
        if still:
            raise PreconditionFailed(f"{pair_id}: the returning DC primary could not be fenced")
        sentence = (
            f"{pair_id}: the DC came back as a second writable primary after the repair; it was "
            "fenced at once (users were already at the DRC)"
        )
        ds.handled.append(sentence)
        data[f"fenced_returning_primary:{pair_id}"] = True
        done.append(sentence)
    return StepOutcome(DONE, "; ".join(done), data)


# -- the end state -----------------------------------------------------------------------------
def site_checksums(topology: Topology, cutoff: str | None = None) -> dict[str, Any]:
    """Row count and checksum of the SKP table at each site of every pair, over the rows
    created before ``cutoff`` (an ISO time; None: all rows); an error where a site cannot be
    reached. A one-pair runbook keeps the flat shape {"dc": ..., "drc": ...}."""
    per_pair: dict[str, Any] = {}
    for pair_id, dsns in _pairs(topology):
        sums: dict[str, Any] = {}
        for site, dsn in (("dc", dsns.primary_dsn), ("drc", dsns.standby_dsn)):
            try:
                count, digest = pg.query(dsn, CHECKSUM_SQL, (cutoff or "infinity",))[0]
                sums[site] = {"rows": int(count), "md5": digest}
            except PostgresError as exc:
                sums[site] = {"error": str(exc)}
        per_pair[pair_id] = sums
    if len(per_pair) == 1:
        return {"cutoff": cutoff, **next(iter(per_pair.values()))}
    return {"cutoff": cutoff, "pairs": per_pair}


def _cut(dsn: str) -> tuple[str, str]:
    """A cut-off time (``SETTLE`` ago, by the DC's clock) and the DC's WAL position now."""
    cutoff, lsn = pg.query(
        dsn, f"SELECT (now() - interval '{SETTLE}')::text, pg_current_wal_lsn()::text"
    )[0]
    return str(cutoff), str(lsn)


def _replayed_to(standby_dsn: str, target: str, timeout_s: float) -> tuple[bool, str]:
    """Wait until the DRC has replayed the DC's WAL up to ``target`` (bounded)."""
    done, replay = poll(
        lambda: pg.receiver(standby_dsn).replay_lsn,
        lambda lsn: bool(lsn) and lsn_to_int(lsn) >= lsn_to_int(target),
        timeout_s,
        interval=0.1,
    )
    if done:
        return True, f"the DRC replayed the DC's WAL up to {target}"
    return False, f"the DRC replayed only to {replay} of {target} within {timeout_s:.0f} s"


def verify_restored(run: IncidentRun) -> StepOutcome:
    """The drill leaves the topology as it found it, with the same data at both sites of
    every pair."""
    state = observe_topology(run.topology)
    if not state.normal:
        raise PreconditionFailed(f"the topology is not back to normal: {state.reason}")
    pairs = _pairs(run.topology)
    cutoff = ""
    whys: list[str] = []
    caught_all = True
    for _, dsns in pairs:
        cutoff, target = _cut(dsns.primary_dsn)
        caught_up, why = _replayed_to(dsns.standby_dsn, target, 30)
        caught_all = caught_all and caught_up
        whys.append(why)
    sums = site_checksums(run.topology, cutoff)
    each = sums.get("pairs") or {"main": sums}
    equal = caught_all and all(
        p["dc"] == p["drc"] and "error" not in p["dc"] for p in each.values()
    )
    rows = sum(int(p["dc"].get("rows") or 0) for p in each.values())
    why = "; ".join(whys)
    data = {
        "topology": state.reason,
        "replay": why,
        "checksums": sums,
        "data_equal": equal,
        "data": f"{TABLE}: the same {rows} rows and checksum at both sites of "
        f"{len(each)} pair(s) (rows created before {cutoff}; {why})",
    }
    if not equal:
        raise PreconditionFailed(f"the sites' data differ after the drill ({why}; {each})")
    first = next(iter(each.values()))
    return StepOutcome(
        DONE,
        f"{state.reason}; {TABLE}: {rows} rows, checksum {first['dc']['md5'][:12]}… equal at "
        "both sites" + (f" of {len(each)} pairs" if len(each) > 1 else ""),
        data,
    )


# -- measurements, read back from the incident's ledgers ---------------------------------------
def _records(directory: Path) -> list[tuple[str, Mapping[str, Any]]]:
    if not (directory / "ledger.jsonl").exists():
        return []
    return [(r.kind, r.data) for _, r in read_records(directory) if not isinstance(r, str)]


def measurements(
    evidence_dir: Path,
    incident_id: str,
    flows: tuple[str, ...] = ("failover", "resync", "failback"),
) -> tuple[list[rules.StepResult], list[rules.GateResponse]]:
    """Every step (with its budget) and every human gate of the drill's flows, from their
    ledgers: the numbers come from the evidence, not from memory."""
    steps: list[rules.StepResult] = []
    gates: list[rules.GateResponse] = []
    for flow in flows:
        records = _records(evidence_dir / incident_id / flow)
        names = {d["step_id"]: d.get("name", d["step_id"]) for k, d in records if k == "step.start"}
        for kind, d in records:
            if kind == "step.end":
                steps.append(
                    rules.StepResult(
                        flow,
                        d["step_id"],
                        str(names.get(d["step_id"], d["step_id"])),
                        d["status"],
                        float(d["duration_s"]),
                        float(d["budget_s"]),
                    )
                )
        gates.extend(rules.gates_from_records(flow, records))
    return steps, gates
