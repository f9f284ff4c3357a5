"""``drp check replication|drift``: readiness of the normal condition, now, from the terminal.

These run the checks directly (the tasks' plain functions, no Prefect server) and change
nothing: alerts and their state belong to the scheduled ``replication-check`` flow. Exit 0 when
ready, 1 when degraded or not ready, 2 when the input (runbook, lab, settings) is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from drp.commands._output import console, emit_json, fail
from drp.domain.readiness import Readiness, Verdict, worst
from drp.domain.runbook import Runbook
from drp.errors import DrpError
from drp.runbooks import load_runbook
from drp.settings import Settings
from drp.topology import Topology, resolve

app = typer.Typer(help="Readiness checks of the normal condition (replication, drift).")

RunbookOpt = Annotated[Path, typer.Option(help="The runbook whose pairs are checked.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the verdicts as JSON.")]
COLOURS = {Readiness.READY: "green", Readiness.DEGRADED: "yellow", Readiness.NOT_READY: "red"}


def _load(runbook: Path) -> tuple[Runbook, Topology]:
    try:
        rb = load_runbook(runbook)
        return rb, resolve(rb, Path(rb.inventory), Settings())
    except DrpError as exc:
        fail(str(exc), code=2)


def _table(title: str, verdicts: tuple[Verdict, ...]) -> None:
    table = Table(title=title, show_lines=True)
    table.add_column("Subject")
    table.add_column("Status")
    table.add_column("Reasons")
    for v in verdicts:
        why = "\n".join([*v.reasons, *(f"note: {n}" for n in v.notes)]) or "—"
        table.add_row(v.subject, f"[{COLOURS[v.status]}]{v.status.value}[/]", why)
    console.print(table)


@app.command("replication")
def replication(runbook: RunbookOpt = Path("runbooks/lab.yaml"), json_out: JsonOpt = False) -> None:
    """Each database pair and service: ready, degraded or not ready against its RPO."""
    from drp.tasks.replication import check_readiness

    rb, topology = _load(runbook)
    report = check_readiness(rb, topology)
    if json_out:
        emit_json(report.as_dict())
    else:
        _table(f"Replication readiness of {rb.name}: {report.status.value}", report.verdicts)
    raise typer.Exit(0 if report.status is Readiness.READY else 1)


@app.command("drift")
def drift(runbook: RunbookOpt = Path("runbooks/lab.yaml"), json_out: JsonOpt = False) -> None:
    """The takeover settings that differ between the DC and the DRC, with both values."""
    from drp.tasks.replication import check_drift

    rb, topology = _load(runbook)
    verdicts = check_drift(rb, topology)
    status = worst(v.status for v in verdicts)
    drifts = [d for v in verdicts for d in v.data.get("drifts", [])]  # type: ignore[attr-defined]
    if json_out:
        emit_json({"status": status.value, "pairs": [v.as_dict() for v in verdicts]})
    else:
        _table(f"Configuration drift of {rb.name}: {status.value}", verdicts)
        if drifts:
            table = Table(title="Settings that differ")
            for col in ("Setting", "Primary (DC)", "Standby (DRC)", "Severity"):
                table.add_column(col)
            for d in drifts:
                table.add_row(d["setting"], str(d["primary"]), str(d["standby"]), d["severity"])
            console.print(table)
    raise typer.Exit(0 if status is Readiness.READY else 1)
