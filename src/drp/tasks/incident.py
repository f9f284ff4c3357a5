"""How incident flows show themselves in Prefect: their run's name after the incident, their
report — a Markdown file beside the ledger and a Prefect artifact with the same text — their
timeline, and artifacts on the incident's own (top-level) run. The incident's life itself
(open, steps, close) is :mod:`drp.tasks.kernel`'s.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.context import FlowRunContext

from drp.domain.evidence import Record
from drp.domain.timeline import Timeline, build_timeline, parse_ts
from drp.ledger import Ledger, read_records


def ledger_dir(evidence_dir: Path, incident_id: str, flow: str) -> Path:
    return evidence_dir / incident_id / flow


def artifact_key(prefix: str, incident_id: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return f"{prefix}-" + "".join(c if c.isalnum() else "-" for c in incident_id.lower())


def steps_table(results: Iterable[Mapping[str, Any]]) -> list[str]:
    """The steps against their budgets, as Markdown table lines (⚠ marks an overrun)."""
    lines = ["| # | step | status | duration | budget | reason |", "|---|---|---|---|---|---|"]
    for i, row in enumerate(results, start=1):
        flag = " ⚠" if row["duration_s"] > row["budget_s"] else ""
        lines.append(
            f"| {i} | {row['name']} | {row['status']} | {row['duration_s']:.1f} s{flag}"
            f" | {row['budget_s']} s | {str(row['reason']).replace('|', '/')} |"
        )
    return lines


def publish_report(
    ledger: Ledger,
    flow: str,
    incident_id: str,
    markdown: str,
    description: str,
    key: str | None = None,
) -> Path:
    """Write ``<flow>-report.md`` beside the ledger and publish it as a keyed artifact on this
    flow's run (the Artifacts page keeps every version of it)."""
    report = ledger.directory.parent / f"{flow}-report.md"
    report.write_text(markdown)
    publish_markdown(markdown, key or artifact_key(flow, incident_id), description)
    return report


# -- Run names ---------------------------------------------------------------------------------
def run_name(flow: str, incident_id: str | None, *details: object) -> str:
    """A run's name in the UI: the flow, the incident, then what tells runs of it apart
    (``failover/inc-20261123-144000-1a2b/katastropik/real``, ``drill/drill-…/dc-heat``,
    ``reports/inc-…``). ``new`` stands for an incident id the run has yet to make."""
    parts = [flow, incident_id or "new", *(str(d) for d in details if d not in (None, ""))]
    return "/".join(parts)


def name_run(name: str) -> None:
    """Rename the current flow run: a run started without an incident id (from the UI, or a
    schedule) is named after the one it just made."""
    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    with get_client(sync_client=True) as client:
        client.set_flow_run_name(ctx.flow_run.id, name=name)
    ctx.flow_run.name = name


# -- The incident's own run --------------------------------------------------------------------
def is_nested() -> bool:
    """True when this flow runs as a subflow (a drill's failover, resync, failback)."""
    ctx = FlowRunContext.get()
    return bool(ctx and ctx.flow_run and ctx.flow_run.parent_task_run_id)


def incident_run_id() -> UUID | None:
    """The top-level run of the current one: the drill's for its failover, resync, failback
    and reports; the run itself when it runs alone. The incident's documents belong there,
    where people open the incident (a subflow's page is one click further down)."""
    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return None
    run = ctx.flow_run
    with get_client(sync_client=True) as client:
        for _ in range(16):  # a chain of subflows is short; never loop on a cycle
            if run.parent_task_run_id is None:
                break
            parent_task = client.read_task_run(run.parent_task_run_id)
            if parent_task.flow_run_id is None:
                break
            run = client.read_flow_run(parent_task.flow_run_id)
    return run.id


def _publish(kind: str, data: str, key: str, description: str, flow_run_id: UUID | None) -> None:
    """Create an artifact on ``flow_run_id`` (default: the current flow run), attached to no
    task run: ``prefect.artifacts`` takes both from the run context, so an artifact made in a
    subflow (or a task) would land on that subflow (or task) instead."""
    ctx = FlowRunContext.get()
    target = flow_run_id or (ctx.flow_run.id if ctx and ctx.flow_run else None)
    with get_client(sync_client=True) as client:
        client.create_artifact(
            ArtifactCreate(
                type=kind, key=key, description=description, data=data, flow_run_id=target
            )
        )


def publish_markdown(
    markdown: str, key: str, description: str, flow_run_id: UUID | None = None
) -> None:
    """A keyed markdown artifact (keys keep their versions on the Artifacts page)."""
    _publish("markdown", markdown, key, description, flow_run_id)


def publish_table(
    rows: Sequence[Mapping[str, Any]], key: str, description: str, flow_run_id: UUID | None = None
) -> None:
    """A keyed table artifact, one row per mapping."""
    _publish(
        "table", json.dumps([dict(r) for r in rows], default=str), key, description, flow_run_id
    )


# -- Timeline ----------------------------------------------------------------------------------
def _records(directory: Path) -> list[Record]:
    if not (directory / "ledger.jsonl").exists():
        return []
    return [r for _, r in read_records(directory) if not isinstance(r, str)]


def _declared_at(records: Iterable[Record]) -> datetime | None:
    for r in records:
        if r.kind == "incident.declared":
            return parse_ts(str(r.data.get("declared_at") or r.ts))
    return None


def incident_timeline(evidence_dir: Path, incident_id: str, flows: Sequence[str]) -> Timeline:
    """The timeline of ``flows``' ledgers of the incident (a drill: its own and its subflows'),
    measured from the incident's declaration (in the failover's ledger, wherever it runs)."""
    ledgers = {f: _records(ledger_dir(evidence_dir, incident_id, f)) for f in flows}
    ledgers = {f: rs for f, rs in ledgers.items() if rs}
    declared = None
    if not any(_declared_at(rs) for rs in ledgers.values()):
        declared = _declared_at(_records(ledger_dir(evidence_dir, incident_id, "failover")))
    return build_timeline(incident_id, ledgers, declared)


def publish_timeline(
    evidence_dir: Path, incident_id: str, flow: str, flows: Sequence[str] | None = None
) -> Timeline:
    """Publish the timeline of ``flow`` (and of ``flows``, for a drill) on this flow's run: a
    table (``timeline-<flow>-<incident>``) whose description is the summary (declaration, who
    approved and how long the gate waited, the RTO verdict)."""
    timeline = incident_timeline(evidence_dir, incident_id, flows or (flow,))
    title = f"**Timeline of the {flow} of {incident_id}**"
    publish_table(
        timeline.rows(),
        artifact_key(f"timeline-{flow}", incident_id),
        "\n".join([title, "", *timeline.summary()]),
    )
    return timeline
