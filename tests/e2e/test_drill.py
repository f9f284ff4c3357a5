"""DR drills end to end (Pasal 15): every scenario in a row on one lab — fault, failover,
repair, resync, failback, checks — with users writing through the front door the whole time.

After each drill the topology is back to DC primary / DRC streaming standby; every write the
SKP acknowledged is at both sites with equal checksums; the two databases were never both
writable as clients reach them; the response measurements are in the ledger and the summary.
The drills run once per session (``drilled`` in conftest.py); these tests read what they did.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from drp.lab.procs import wait_until
from drp.ledger import read_records, verify_ledger

pytestmark = pytest.mark.e2e


def _records(directory: str, kind: str) -> list[dict]:
    return [r.data for _, r in read_records(directory) if not isinstance(r, str) and r.kind == kind]


def test_every_scenario_drills_in_a_row_and_leaves_the_topology_as_it_found_it(
    drilled: Any,
) -> None:
    assert drilled.errors == {}, drilled.errors
    assert list(drilled.summaries) == list(drilled.scenarios)
    for scenario, summary in drilled.summaries.items():
        assert summary.verdict == "passed", (scenario, summary.findings)
        comps = drilled.after[scenario]["components"]
        assert comps["dc-db"]["role"] == "primary" and comps["dc-db"]["writable"], scenario
        assert comps["drc-db"]["role"] == "standby", scenario
        assert drilled.after[scenario]["active_site"] == "dc", scenario
        assert [p["phase"] for p in summary.phases] == [
            "start",
            "inject",
            "failover",
            "repair",
            "resync",
            "failback",
            "verify",
        ]
        sums = summary.checksums
        assert sums["dc"] == sums["drc"] and sums["dc"]["rows"] > 0, (scenario, sums)


def test_every_acknowledged_write_is_at_both_sites_and_never_two_writable_primaries(
    drilled: Any,
) -> None:
    keys = set(drilled.writer.acknowledged)
    assert len(keys) > 50, "the writer barely wrote: the test would prove little"
    assert drilled.writer.refused > 0, "a failover with no refused write was not a failover"
    for name in ("dc-db", "drc-db"):
        with psycopg.connect(drilled.lab.cluster(name).dsn("skp"), autocommit=True) as conn:
            present = {
                r[0]
                for r in conn.execute(
                    "SELECT nomor_aju FROM declarations WHERE office = 'drill-writer'"
                ).fetchall()
            }
        missing = keys - present
        assert not missing, f"{len(missing)} acknowledged writes missing at {name}"

    def checksums() -> list[tuple]:
        out = []
        for name in ("dc-db", "drc-db"):
            with psycopg.connect(drilled.lab.cluster(name).dsn("skp"), autocommit=True) as conn:
                out.append(
                    conn.execute(
                        "SELECT count(*), md5(string_agg(nomor_aju, ',' ORDER BY id)) "
                        "FROM declarations"
                    ).fetchone()
                )
        return out

    # The writer has stopped: once the standby has replayed the last commit, both sites agree.
    assert wait_until(lambda: len(set(checksums())) == 1, 10), checksums()
    assert drilled.watcher.polls > 100
    assert drilled.watcher.both_writable == [], "two writable primaries reachable by clients"


def test_the_drill_measures_phases_gates_and_rpo_and_its_evidence_verifies(
    drilled: Any,
) -> None:
    for scenario, summary in drilled.summaries.items():
        phases = {p["phase"]: p for p in summary.phases}
        for phase in ("failover", "failback"):
            assert 0 < phases[phase]["achieved_rto_s"] <= phases[phase]["rto_budget_s"]
        assert summary.rpo.get("reason"), scenario
        steps = {(s["flow"], s["step_id"]) for s in summary.steps}
        assert ("failover", "promote-drc-db") in steps and ("failback", "promote_dc") in steps
        for directory in (summary.ledger, *summary.ledgers.values()):
            result = verify_ledger(directory)
            assert result.ok, (directory, result.problems)
        assert _records(summary.ledger, "drill.completed")
        report = Path(summary.report).read_text()
        assert "Human gates" in report and summary.incident_id in report

    gates = drilled.summaries[drilled.interactive].gates
    assert {(g["flow"], g["gate"], g["channel"]) for g in gates} == {
        ("failover", "approval", "prefect-ui"),
        ("failback", "approval", "prefect-ui"),
    }
    assert all(g["waited_s"] >= 1.0 for g in gates), gates  # the answer came ~1 s late
    for scenario in ("dc-power-loss", "national-network-loss"):
        isolation = [g for g in drilled.summaries[scenario].gates if g["gate"] == "isolation"]
        assert isolation and isolation[0]["answered_by"] == "Budi", scenario


def test_each_scenario_is_declared_as_the_regulation_says(drilled: Any) -> None:
    expected = {
        "dc-db-crash": ("parsial_nasional", None),
        "dc-heat": ("katastropik", "7(1)(b)"),
        "dc-power-loss": ("katastropik", "7(1)(a)"),
        "national-network-loss": ("katastropik", "7(1)(c)"),
    }
    for scenario, (category, article) in expected.items():
        failover = drilled.summaries[scenario].ledgers["failover"]
        declared = _records(failover, "incident.declared")[0]
        assert declared["category"] == category, scenario
        if article:
            assert any(article in t["article"] for t in declared["triggers"]), declared


def test_the_network_loss_drill_stops_the_isolated_primary_before_reconnecting_it(
    drilled: Any,
) -> None:
    summary = drilled.summaries["national-network-loss"]
    assert any("stopped on site before the network was restored" in h for h in summary.handled)
    resync = _records(summary.ledgers["resync"], "resync.completed")[0]
    assert resync["method"] in ("rewind", "basebackup", "standby"), resync


def test_the_drill_run_page_holds_its_subflows_documents_and_whole_timeline(
    drilled: Any,
) -> None:
    """What the Prefect UI shows for the interactive drill: runs named after the incident, the
    documents on the drill's own run (not on a subflow's), one timeline of the whole cycle with
    both approvals, who gave them and how long they waited, each phase logged once."""
    import json
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )

    summary = drilled.summaries[drilled.interactive]
    incident = summary.incident_id
    (start,) = _records(summary.ledger, "attempt.start")
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(start["flow_run_id"]))
        subflows = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id])
            )
        )
        keys = [f"report-{k}-{incident}" for k in ("kaji-cepat", "simulasi", "pasca")]
        keys += [f"reports-{incident}", f"timeline-drill-{incident}", f"drill-summary-{incident}"]
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys))
        )
        logs = []
        while batch := client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])),
            offset=len(logs),
        ):
            logs += batch
    assert run.name == f"drill/{incident}/{drilled.interactive}"
    assert {r.name for r in subflows} == {
        f"failover/{incident}/katastropik/drill",
        f"resync/{incident}/drill",
        f"failback/{incident}/drill",
        f"reports/{incident}",
    }
    assert {a.key for a in artifacts if a.flow_run_id == run.id} == set(keys)
    assert not [a.key for a in artifacts if a.flow_run_id in {r.id for r in subflows}]

    timeline = next(a for a in artifacts if a.key == f"timeline-drill-{incident}")
    rows = json.loads(timeline.data)
    assert {r["flow"] for r in rows} == {"drill", "failover", "resync", "failback"}
    approvals = [r for r in rows if " approved: " in r["what"]]
    assert [(r["flow"], r["who"]) for r in approvals] == [
        ("failover", "Sari (pejabat_ditunjuk, prefect-ui)"),
        ("failback", "Sari (pejabat_ditunjuk, prefect-ui)"),
    ]
    assert all(float(r["gate wait"].removesuffix(" s")) >= 1.0 for r in approvals)
    assert rows[0]["RTO clock"].startswith("-")  # the drill checks and injects before declaring
    assert "drill passed" in rows[-1]["what"]

    lines = [entry.message for entry in logs]
    for phase in summary.phases:
        name = next(
            s["name"]
            for s in _records(summary.ledger, "step.start")
            if s["step_id"] == phase["phase"]
        )
        assert sum(line.startswith(f"▶ {name} (budget") for line in lines) == 1, name
