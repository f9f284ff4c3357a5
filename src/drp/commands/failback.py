"""``drp failback``: the planned switchover back to the DC with zero data loss, live progress."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from drp.commands._flowrun import ask_code_if_needed, check_incident_args, run_flow_command
from drp.commands._output import console, fail
from drp.domain.runbook import Runbook
from drp.errors import DrpError
from drp.settings import Settings

NOTABLE = (
    "approval.refused",
    "failback.zero_loss",
    "failback.sync_relaxed",
    "failback.sync_restored",
    "resync.decision",
    "failback.stopped",
)
"""Ledger records worth a line of their own besides step starts and ends."""

OK_STATUSES = ("verified", "already_completed")


def register(app: typer.Typer) -> None:
    app.command("failback")(failback)


def failback(
    incident_id: Annotated[
        str, typer.Option("--incident-id", help="The incident whose failover this failback ends.")
    ],
    approved_by: Annotated[
        str,
        typer.Option(
            "--approved-by",
            help="Who approves (required here; runs of the failback deployment may instead "
            "be approved in the Prefect UI).",
        ),
    ],
    runbook: Annotated[Path, typer.Option(help="The runbook (DRP).")] = Path("runbooks/lab.yaml"),
    declared_by: Annotated[
        str | None,
        typer.Option("--declared-by", help="Who asks for it (real mode: not the approver)."),
    ] = None,
    mode: Annotated[str, typer.Option(help="drill | real.")] = "drill",
    approval_code: Annotated[
        str | None,
        typer.Option(
            "--approval-code",
            help="The approver's one-time code (required in real mode: asked for on a "
            "terminal when left out).",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Switch service back to the DC with zero data loss (DRC fenced, LSNs compared, DC
    promoted, DRC rejoined as its standby); exits 0 only when verified at the DC."""
    check_incident_args("failback", incident_id, mode, runbook)
    if not approved_by.strip():
        fail(
            "--approved-by NAME is required (to approve in the Prefect UI instead, run the "
            "failback deployment)",
            code=2,
        )
    approval_code = ask_code_if_needed(approved_by, approval_code, mode, _load(runbook))
    ledger_dir = Settings().evidence_dir / incident_id / "failback"
    if not json_out:
        console.print(f"[bold]failback {incident_id}[/] ({mode}) — evidence in {ledger_dir}")
    run_flow_command(
        flow_file="failback",
        flow_name="failback",
        params=dict(
            incident_id=incident_id,
            approved_by=approved_by,
            runbook=str(runbook),
            declared_by=declared_by,
            mode=mode,
            approval_code=approval_code,
        ),
        incident_id=incident_id,
        follow_dir=ledger_dir,
        notable=NOTABLE,
        ok_statuses=OK_STATUSES,
        print_outcome=_print_outcome,
        json_out=json_out,
    )


def _load(runbook: Path) -> Runbook:
    from drp.runbooks import load_runbook

    try:
        return load_runbook(runbook)
    except DrpError as exc:
        fail(str(exc), code=2)


def _print_outcome(o: dict[str, Any]) -> None:
    if o.get("status") == "already_completed":
        console.print(
            f"incident {o['incident_id']}: failback already completed; the DC serves"
            f" ({o['ledger']})"
        )
        return
    console.print(
        f"[bold green]service verified at the DC[/] — {o['rto_verdict']}", highlight=False
    )
    console.print(f"data: {o['zero_loss']}; the DRC rejoined by {o['rejoin_method']}")
    console.print(
        f"evidence: {o['ledger']} (head {o.get('ledger_head', '')[:16]}…); "
        f"report: {o.get('report')}; check it with: drp evidence verify {o['ledger']}"
    )
