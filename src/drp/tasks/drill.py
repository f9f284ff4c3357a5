"""The drill's own steps: check the starting point, inject the scenario's fault, repair it
(fencing an old primary that comes back writable), check that the topology is back and the data
equal at both sites, and read the measurements back from the incident's ledgers.

The failover, resync and failback phases are the real flows (run by ``flows/drill.py`` as
subflows); this module only adds what a drill needs around them. Faults are injected into the
embedded lab only: a drill never breaks a production site.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drp.adapters import ansible
from drp.adapters import postgres as pg
from drp.domain import drill as rules
from drp.domain.failover import lsn_to_int
from drp.domain.runbook import Runbook
from drp.errors import PostgresError, PreconditionFailed
from drp.lab.core import Lab
from drp.ledger import Ledger, read_records
from drp.notify import Notifier
from drp.polling import poll
from drp.tasks.failover import frontdoor_site, primary_accepts_writes
from drp.tasks.recorded import run_recorded_playbook
from drp.tasks.steps import ALREADY_DONE, DONE, StepOutcome
from drp.topology import Topology

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
class DrillRun:
    """Everything one attempt of one drill works with."""

    incident_id: str
    runbook: Runbook
    scenario: rules.Scenario
    topology: Topology
    ledger: Ledger
    logger: logging.Logger | logging.LoggerAdapter
    lab: Lab | None
    attempt: int = 1
    results: list[dict[str, Any]] = field(default_factory=list)
    notifiers: list[Notifier] = field(default_factory=list)
    handled: list[str] = field(default_factory=list)
    phase_outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)


def lab_for(runbook: Runbook, lab_root: Path | None) -> Lab:
    """Drills inject faults into the embedded lab only: refuse any other environment."""
    if runbook.environment != "lab":
        raise PreconditionFailed(
            f"runbook environment {runbook.environment!r}: drills inject faults only into the "
            "embedded lab (a test environment needs fault-injection playbooks, not provided)"
        )
    lab = Lab.from_env(root=lab_root)
    if not lab.cfg.state_file.exists():
        raise PreconditionFailed(f"no lab at {lab.cfg.root} (hint: drp lab up --sync)")
    return lab


# -- the normal topology -----------------------------------------------------------------------
@dataclass(frozen=True)
class TopologyState:
    normal: bool
    reason: str


def observe_topology(topology: Topology) -> TopologyState:
    """Is it DC primary (writable), DRC streaming standby, users at the DC?"""
    dc_writable, dc_reason = primary_accepts_writes(topology.primary_dsn)
    if not dc_writable:
        return TopologyState(False, f"the DC is not the serving primary: {dc_reason}")
    try:
        drc = pg.server_role(topology.standby_dsn)
        streaming = pg.receiver(topology.standby_dsn).streaming if drc.in_recovery else False
    except PostgresError as exc:
        return TopologyState(False, f"the DRC database cannot be reached: {exc}")
    if not drc.in_recovery:
        return TopologyState(False, "the DRC database is a primary, not a standby")
    if not streaming:
        return TopologyState(False, "the DRC standby is not streaming from the DC")
    site = frontdoor_site(topology.frontdoor_url)
    if site != "dc":
        return TopologyState(False, f"the front door sends users to {site or 'nowhere'}, not DC")
    return TopologyState(True, "DC primary, DRC streaming standby, users at the DC")


def check_start(run: DrillRun) -> StepOutcome:
    """A drill starts from the normal topology, or it would rehearse the wrong thing."""
    state = observe_topology(run.topology)
    if not state.normal:
        raise PreconditionFailed(
            f"a drill starts from the normal topology, and this is not it: {state.reason} "
            "(hint: drp lab repair, or drp lab down --purge && drp lab up --sync)"
        )
    return StepOutcome(DONE, state.reason, {"checksums": site_checksums(run.topology)})


# -- the fault ---------------------------------------------------------------------------------
def inject(run: DrillRun, done_before: bool) -> StepOutcome:
    """Break the lab the way the scenario says (once per drill: a re-run does not break it
    again)."""
    if done_before:
        return StepOutcome(ALREADY_DONE, f"{run.scenario.fault} was injected in an earlier attempt")
    assert run.lab is not None
    sentence = run.lab.break_(run.scenario.fault, **dict(run.scenario.fault_options))
    return StepOutcome(
        DONE, sentence, {"fault": run.scenario.fault, "article": run.scenario.article}
    )


def repair(run: DrillRun) -> StepOutcome:
    """Clear the fault. A DC that was never stopped (network loss) comes back as a second
    writable primary: it is fenced at once, before anything else, and that is recorded."""
    assert run.lab is not None
    data: dict[str, Any] = {}
    if run.scenario.old_primary_may_return_writable and _writable_on_site(run.lab):
        # Reconnecting a DC that still runs as a primary would make two writable primaries
        # reachable: it is stopped on site first, as the runbook's network-loss procedure says.
        run.lab.cluster("dc-db").stop(mode="fast")
        sentence = (
            "the isolated DC database was still a writable primary: it was stopped on site "
            "before the network was restored (writes made there by local clients during the "
            "cut are discarded by the resync)"
        )
        run.handled.append(sentence)
        data["stopped_on_site"] = True
    done = run.lab.repair()
    data["repaired"] = done
    writable, why = primary_accepts_writes(run.topology.primary_dsn)
    if writable:
        call = ansible.PlaybookCall(
            playbook=Path(run.runbook.playbook_dir) / "fence_primary.yml",
            inventories=run.topology.inventories,
            extra_vars={"primary_group": _old_primary_group(run.runbook)},
            timeout_s=120,
        )
        result = run_recorded_playbook(run.ledger, call, step_id="repair", attempt=run.attempt)
        result.raise_for_failure()
        still, _ = primary_accepts_writes(run.topology.primary_dsn)
        if still:
            raise PreconditionFailed("the returning DC primary could not be fenced")
        sentence = (
            "the DC came back as a second writable primary after the repair; it was fenced at "
            "once (users were already at the DRC)"
        )
        run.handled.append(sentence)
        data["fenced_returning_primary"] = True
        done.append(sentence)
    else:
        data["dc_after_repair"] = why
    return StepOutcome(DONE, "; ".join(done), data)


def _writable_on_site(lab: Lab) -> bool:
    """Seen from the DC itself (not through its cut uplink): does dc-db accept writes?"""
    try:
        return pg.server_role(lab.dsn("dc-db") + " connect_timeout=2").writable
    except PostgresError:
        return False


def _old_primary_group(runbook: Runbook) -> str:
    return runbook.databases[0].primary_group if runbook.databases else "dc_db"


# -- the end state -----------------------------------------------------------------------------
def site_checksums(topology: Topology, cutoff: str | None = None) -> dict[str, Any]:
    """Row count and checksum of the SKP table at each site, over the rows created before
    ``cutoff`` (an ISO time; None: all rows); None where a site cannot be reached."""
    out: dict[str, Any] = {"cutoff": cutoff}
    for site, dsn in (("dc", topology.primary_dsn), ("drc", topology.standby_dsn)):
        try:
            count, digest = pg.query(dsn, CHECKSUM_SQL, (cutoff or "infinity",))[0]
            out[site] = {"rows": int(count), "md5": digest}
        except PostgresError as exc:
            out[site] = {"error": str(exc)}
    return out


def _cut(topology: Topology) -> tuple[str, str]:
    """A cut-off time (``SETTLE`` ago, by the DC's clock) and the DC's WAL position now."""
    cutoff, lsn = pg.query(
        topology.primary_dsn,
        f"SELECT (now() - interval '{SETTLE}')::text, pg_current_wal_lsn()::text",
    )[0]
    return str(cutoff), str(lsn)


def _replayed_to(topology: Topology, target: str, timeout_s: float) -> tuple[bool, str]:
    """Wait until the DRC has replayed the DC's WAL up to ``target`` (bounded)."""
    done, replay = poll(
        lambda: pg.receiver(topology.standby_dsn).replay_lsn,
        lambda lsn: bool(lsn) and lsn_to_int(lsn) >= lsn_to_int(target),
        timeout_s,
        interval=0.1,
    )
    if done:
        return True, f"the DRC replayed the DC's WAL up to {target}"
    return False, f"the DRC replayed only to {replay} of {target} within {timeout_s:.0f} s"


def verify_restored(run: DrillRun) -> StepOutcome:
    """The drill leaves the topology as it found it, with the same data at both sites."""
    state = observe_topology(run.topology)
    if not state.normal:
        raise PreconditionFailed(f"the topology is not back to normal: {state.reason}")
    cutoff, target = _cut(run.topology)
    caught_up, why = _replayed_to(run.topology, target, 30)
    sums = site_checksums(run.topology, cutoff)
    equal = caught_up and sums["dc"] == sums["drc"] and "error" not in sums["dc"]
    data = {
        "topology": state.reason,
        "replay": why,
        "checksums": sums,
        "data_equal": equal,
        "data": f"{TABLE}: the same {sums['dc'].get('rows')} rows and checksum at both sites "
        f"(rows created before {cutoff}; {why})",
    }
    if not equal:
        raise PreconditionFailed(
            f"the sites' data differ after the drill ({why}; DC {sums['dc']}, DRC {sums['drc']})"
        )
    return StepOutcome(
        DONE,
        f"{state.reason}; {TABLE}: {sums['dc']['rows']} rows, checksum {sums['dc']['md5'][:12]}… "
        "equal at both sites",
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
