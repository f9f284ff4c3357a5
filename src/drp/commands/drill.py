"""``drp drill``: one DR drill on the lab (Pasal 15) — fault, failover, repair, resync, failback,
checks — with live progress and the response measurements at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from drp.commands._flowrun import run_flow_command
from drp.commands._output import console, fail
from drp.domain.drill import SCENARIOS
from drp.settings import Settings
from drp.tasks.kernel import new_incident_id

NOTABLE = ("drill.failed", "approval.requested", "confirmation.requested")


def register(app: typer.Typer) -> None:
    app.command("drill")(drill)


def drill(
    scenario: Annotated[
        str, typer.Option(help=f"What to rehearse: {', '.join(SCENARIOS)}.")
    ] = "dc-db-crash",
    runbook: Annotated[Path, typer.Option(help="The runbook (DRP).")] = Path("runbooks/lab.yaml"),
    operator: Annotated[
        str, typer.Option(help="Who runs the drill (declares it, asks for the failback).")
    ] = "drill-operator",
    approved_by: Annotated[
        str | None,
        typer.Option(
            "--approved-by",
            help="Who approves the failover and the failback (required here; runs of the drill "
            "deployment may be approved in the Prefect UI, which measures the people).",
        ),
    ] = None,
    confirm_dc_isolated: Annotated[
        str | None,
        typer.Option(
            "--confirm-dc-isolated",
            help="NAME confirms the DC is down or isolated (power loss, network loss).",
        ),
    ] = None,
    incident_id: Annotated[
        str | None, typer.Option("--incident-id", help="Finish (or name) a drill.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run one DR drill on the lab and print what it measured; exits 0 only when it passed."""
    if scenario not in SCENARIOS:
        fail(f"--scenario {scenario!r}: choose one of {', '.join(SCENARIOS)}", code=2)
    if not approved_by or not approved_by.strip():
        fail(
            "--approved-by NAME is required (to answer the gates in the Prefect UI instead, "
            "run the drill deployment)",
            code=2,
        )
    if SCENARIOS[scenario].needs_isolation_confirmation and not confirm_dc_isolated:
        fail(
            f"--confirm-dc-isolated NAME is required for {scenario}: the DC becomes unreachable "
            "and promotion waits for a person to confirm it is down or isolated",
            code=2,
        )
    if not runbook.exists():
        fail(f"no runbook at {runbook}", code=2)
    _check_self_approval(runbook)
    incident = incident_id or new_incident_id("drill")
    ledger_dir = Settings().evidence_dir / incident / "drill"
    if not json_out:
        console.print(
            f"[bold]drill {incident}[/] — {scenario}: {SCENARIOS[scenario].description}; "
            f"evidence in {ledger_dir.parent}"
        )
    run_flow_command(
        flow_file="drill",
        flow_name="drill",
        params=dict(
            runbook=str(runbook),
            scenario=scenario,
            operator=operator,
            approved_by=approved_by,
            confirm_dc_isolated_by=confirm_dc_isolated,
            incident_id=incident,
        ),
        incident_id=incident,
        follow_dir=ledger_dir,
        notable=NOTABLE,
        ok_statuses=("passed", "already_completed"),
        print_outcome=_print_summary,
        json_out=json_out,
    )


def _check_self_approval(runbook: Path) -> None:
    """``--approved-by`` answers both of the drill's approvals without a code, which only a
    runbook that lets one person approve a drill allows (one code cannot serve two gates)."""
    from drp.errors import DrpError
    from drp.runbooks import load_runbook

    try:
        rb = load_runbook(runbook)
    except DrpError as exc:
        fail(str(exc), code=2)
    if rb.approval.two_person_rule:
        fail(
            f"{runbook} asks two people for drills too (approval.two_person_rule): each gate "
            "needs its approver's one-time code, so answer them in the Prefect UI (run the "
            "drill deployment) rather than with --approved-by",
            code=2,
        )


def _print_summary(s: dict[str, Any]) -> None:
    if s.get("status") == "already_completed":
        console.print(f"drill {s['incident_id']} already completed ({s['ledger']})")
        return
    colour = "green" if s["verdict"] == "passed" else "red"
    console.print(
        f"[bold {colour}]drill {s['verdict']}[/] — {s['scenario']} in {s['duration_s']} s"
    )
    for p in s["phases"]:
        rto = f", achieved RTO {p['achieved_rto_s']:.1f} s" if p["achieved_rto_s"] else ""
        console.print(f"  {p['phase']:<9} {p['status']:<12} {p['duration_s']:6.1f} s{rto}")
    for svc in s.get("services", ()):  # the failover's, each against its own RTO
        rto = (
            f"RTO {svc['achieved_rto_s']:.1f} s / {svc['rto_budget_s'] / 60:g} min"
            if svc.get("achieved_rto_s") is not None
            else svc.get("reason") or "not started"
        )
        pair = f" ({svc['pair']})" if svc.get("pair") else ""
        console.print(
            f"  {svc['service']:<15} {svc['status']:<9} {rto}{pair}",
            highlight=False,
            soft_wrap=True,
        )
    for g in s["gates"]:
        console.print(
            f"  gate: {g['flow']} {g['gate']} answered by {g['answered_by']} ({g['channel']}) "
            f"after {g['waited_s']:.1f} s",
            highlight=False,
        )
    for f in s["findings"]:
        if not f["ok"]:
            mark = "[red]✗[/]" if f["blocking"] else "[yellow]⚠ to improve:[/]"
            console.print(f"  {mark} {f['reason']}", highlight=False)
    for name, path in s.get("ledgers", {}).items():
        console.print(f"  evidence ({name}): {path}")
    console.print(f"  evidence (drill): {s['ledger']}; summary: {s.get('report')}")
