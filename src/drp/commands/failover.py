"""``drp failover``: run the failover flow from the command line, with live progress."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from drp.commands._flowrun import (
    ask_code_if_needed,
    checked_category,
    checked_role,
    run_flow_command,
)
from drp.commands._output import console, emit_json, fail
from drp.domain.plan import SelectionRefused
from drp.domain.plan import plan as make_plan
from drp.errors import DrpError
from drp.runbooks import load_runbook
from drp.settings import Settings
from drp.tasks.failover import dry_run_report
from drp.tasks.kernel import new_incident_id

NOTABLE = (
    "approval.granted",
    "incident.declared",
    "rto.warning",
    "failover.stopped",
    "isolation.confirmed",
    "preflight.override",
)


def register(app: typer.Typer) -> None:
    app.command("failover")(failover)


def failover(
    runbook: Annotated[Path, typer.Option(help="The runbook (DRP) to execute.")] = Path(
        "runbooks/lab.yaml"
    ),
    category: Annotated[
        str | None,
        typer.Option(
            help="Declared category: parsial_lokal | parsial_nasional | katastropik (or local | "
            "national | catastrophic). Left out, the signals decide."
        ),
    ] = None,
    declared_by: Annotated[str, typer.Option("--declared-by", help="Who declares.")] = "",
    declarer_role: Annotated[
        str,
        typer.Option(help="Declarer's role: direktur | kepala_kantor (or director | office_head)."),
    ] = "direktur",
    approved_by: Annotated[
        str | None,
        typer.Option(
            "--approved-by",
            help="Approve non-interactively (else wait for the Prefect UI): a roster name; "
            "the role comes from the roster.",
        ),
    ] = None,
    approval_code: Annotated[
        str | None,
        typer.Option(
            "--approval-code",
            help="The approver's one-time code (required in real mode: asked for on a "
            "terminal when left out; optional for a drill the runbook lets one person approve).",
        ),
    ] = None,
    mode: Annotated[str, typer.Option(help="drill | real.")] = "drill",
    confirm_dc_isolated: Annotated[
        str | None,
        typer.Option("--confirm-dc-isolated", help="NAME confirms the DC is down or isolated."),
    ] = None,
    override_preflight: Annotated[
        str | None,
        typer.Option("--override-preflight", help="NAME overrides a failed pre-flight (recorded)."),
    ] = None,
    incident_id: Annotated[
        str | None, typer.Option("--incident-id", help="Continue (or name) an incident.")
    ] = None,
    detected_at: Annotated[
        str | None, typer.Option(help="ISO time the fault was detected.")
    ] = None,
    services: Annotated[
        str | None,
        typer.Option(
            "--services",
            help="Move only these services (comma-separated) and what they need: a partial "
            "failover (Pasal 5-6). Left out, the whole site.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan, change nothing.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Fail over from the DC to the DRC; exits 0 only when service is verified at the DRC."""
    declared_category = checked_category("--category", category)
    declarer = checked_role("--declarer-role", declarer_role).value
    if mode not in ("drill", "real"):
        fail(f"--mode {mode!r}: choose drill or real", code=2)
    if not dry_run and not declared_by.strip():
        fail("--declared-by NAME is required (who declares the disaster)", code=2)
    try:
        rb = load_runbook(runbook)
    except DrpError as exc:
        fail(str(exc), code=2)
    chosen = [x.strip() for x in (services or "").split(",") if x.strip()]
    try:
        plan = make_plan(rb, chosen or None)
    except SelectionRefused as refused:
        fail(f"--services: {refused}", code=2)
    if dry_run:
        report = dry_run_report(rb, plan, str(runbook))
        emit_json(report) if json_out else _print_dry_run(report)
        raise typer.Exit(0)
    approval_code = ask_code_if_needed(approved_by, approval_code, mode, rb)
    incident = incident_id or new_incident_id()
    ledger_dir = Settings().evidence_dir / incident / "failover"
    if not json_out:
        console.print(f"[bold]failover {incident}[/] ({mode}) — evidence in {ledger_dir}")
    run_flow_command(
        flow_file="failover",
        flow_name="failover",
        params=dict(
            runbook=str(runbook),
            declared_by=declared_by,
            declarer_role=declarer,
            category=declared_category,
            mode=mode,
            approved_by=approved_by,
            approval_code=approval_code,
            confirm_dc_isolated_by=confirm_dc_isolated,
            override_preflight_by=override_preflight,
            services=chosen or None,
            dry_run=dry_run,
            incident_id=incident,
            detected_at=detected_at,
        ),
        incident_id=incident,
        follow_dir=ledger_dir,
        notable=NOTABLE,
        ok_statuses=("verified", "already_completed"),
        print_outcome=_print_outcome,
        json_out=json_out,
    )


def _print_outcome(o: dict[str, Any]) -> None:
    if o.get("status") == "already_completed":
        console.print(f"incident {o['incident_id']}: failover already completed ({o['ledger']})")
        return
    console.print(f"[bold green]service verified at the DRC[/] — {o['rto_verdict']}")
    for s in o.get("services") or []:
        rto = f"{s['achieved_rto_s']:.1f} s" if s.get("achieved_rto_s") is not None else "-"
        console.print(
            f"  {s['service']:<24} {s['status']:<9} RTO {rto} (objective "
            f"{s['rto_budget_s']:.0f} s)",
            highlight=False,
        )
    for p in o.get("pairs") or []:
        if p.get("rpo"):
            console.print(f"RPO {p['pair']}: {p['rpo']['reason']}", highlight=False)
    console.print(
        f"evidence: {o['ledger']} (head {o.get('ledger_head', '')[:16]}…); "
        f"check it with: drp evidence verify {o['ledger']}"
    )


def _print_dry_run(o: dict[str, Any]) -> None:
    console.print(f"[bold]dry run[/] of {o['runbook']} — nothing will change")
    for row in o["steps"]:
        console.print(
            f"  {row['position']}. {row['name']} — {row['playbook']} on "
            f"{row['targets']}, budget {row['budget_s']} s (from {row['starts_at_s']} s to "
            f"{row['cumulative_s']} s)",
            highlight=False,
        )
    console.print(
        f"predicted RTO: {o['predicted_rto_s']} s with services in parallel "
        f"({o['predicted_rto_serial_s']} s one step after another)"
    )
    console.print("checks that would run:")
    for c in o["checks"]:
        console.print(f"  - {c}", highlight=False)
