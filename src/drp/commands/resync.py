"""``drp resync``: rebuild the old DC primary as a standby of the DRC, with live progress."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from drp.commands._flowrun import check_incident_args, run_flow_command
from drp.commands._output import console
from drp.settings import Settings

NOTABLE = ("resync.decision", "resync.stopped")
"""Ledger records worth a line of their own besides step starts and ends."""

OK_STATUSES = ("streaming", "already_completed")


def register(app: typer.Typer) -> None:
    app.command("resync")(resync)


def resync(
    incident_id: Annotated[
        str, typer.Option("--incident-id", help="The incident whose failover this resync ends.")
    ],
    runbook: Annotated[Path, typer.Option(help="The runbook (DRP).")] = Path("runbooks/lab.yaml"),
    mode: Annotated[str, typer.Option(help="drill | real.")] = "drill",
    force_basebackup: Annotated[
        bool,
        typer.Option(
            "--force-basebackup", help="Copy afresh instead of rewinding (old data kept aside)."
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Rebuild the old DC primary as a streaming standby of the DRC; exits 0 only when it
    streams from the DRC."""
    check_incident_args("resync", incident_id, mode, runbook)
    ledger_dir = Settings().evidence_dir / incident_id / "resync"
    if not json_out:
        console.print(f"[bold]resync {incident_id}[/] ({mode}) — evidence in {ledger_dir}")
    run_flow_command(
        flow_file="resync",
        flow_name="resync",
        params=dict(
            incident_id=incident_id,
            runbook=str(runbook),
            mode=mode,
            force_basebackup=force_basebackup,
        ),
        incident_id=incident_id,
        follow_dir=ledger_dir,
        notable=NOTABLE,
        ok_statuses=OK_STATUSES,
        print_outcome=_print_outcome,
        json_out=json_out,
    )


def _print_outcome(o: dict[str, Any]) -> None:
    if o.get("status") == "already_completed":
        console.print(
            f"incident {o['incident_id']}: resync already completed; the DC streams from the DRC"
            f" ({o['ledger']})"
        )
        return
    console.print(
        f"[bold green]the DC streams from the DRC[/] — {o['method']} in {o['duration_s']} s: "
        f"{o['decision_reason']}",
        highlight=False,
    )
    for drift in o.get("drifts") or []:
        console.print(f"  [yellow]drift:[/] {drift['reason']}", highlight=False)
    console.print(
        f"evidence: {o['ledger']} (head {o.get('ledger_head', '')[:16]}…); "
        f"check it with: drp evidence verify {o['ledger']}"
    )
