"""``drp manual ...``: manual service while SKP is down (Pasal 8–11), from the terminal.

These run the steps directly (:mod:`drp.tasks.manual`, no Prefect server), so that a counter
clerk's ``submit`` answers in about a second; the ``manual-mode``, ``manual-submit`` and
``resync-manual-declarations`` flows run the same code under Prefect. Exit codes: 0 done,
1 the submission (or resync) was refused or is incomplete, 2 bad input (options, files, setup).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from drp.commands._output import console, emit_json, err_console, fail
from drp.errors import DrpError

app = typer.Typer(help="Manual mode: spreadsheet declarations while SKP is down (Pasal 8–11).")

RunbookOpt = Annotated[
    Path, typer.Option(help="The runbook (where ops-db and SKP are; the lab by default).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
IncidentOpt = Annotated[str, typer.Option("--incident", help="The incident (e.g. inc-20261123-…).")]
ByOpt = Annotated[str, typer.Option("--by", help="Who does this (recorded in the evidence).")]
DEFAULT_RUNBOOK = Path("runbooks/lab.yaml")


def _cfg(runbook: Path) -> Any:
    from drp.tasks import manual as steps

    try:
        return steps.manual_config(runbook=str(runbook))
    except DrpError as exc:
        fail(str(exc), code=2)


def _run(call: Any) -> Any:
    try:
        return call()
    except DrpError as exc:
        fail(str(exc), code=2)


@app.command("activate")
def activate(
    incident: IncidentOpt,
    offices: Annotated[
        str, typer.Option(help="Affected offices: six-digit codes, comma-separated.")
    ],
    types: Annotated[str, typer.Option(help="Document types: pib,peb.")] = "pib,peb",
    by: ByOpt = "operator",
    runbook: RunbookOpt = DEFAULT_RUNBOOK,
    json_out: JsonOpt = False,
) -> None:
    """Open manual intake for the offices and document types a declared disaster affects."""
    from drp.tasks import manual as steps

    cfg = _cfg(runbook)
    result = _run(lambda: steps.activate(cfg, incident, offices, types, by))
    if json_out:
        emit_json(result)
        return
    state = "active" if result["changed"] else "already active"
    console.print(
        f"[bold green]manual mode {state}[/] for {incident}: offices "
        f"{', '.join(result['offices'])}, documents {', '.join(result['doc_types'])}",
        highlight=False,
    )
    for path in result["templates"]:
        console.print(f"  template: {path}", highlight=False)
    console.print(f"evidence: {result['ledger']}", highlight=False)


@app.command("deactivate")
def deactivate(
    incident: IncidentOpt,
    by: ByOpt = "operator",
    runbook: RunbookOpt = DEFAULT_RUNBOOK,
    json_out: JsonOpt = False,
) -> None:
    """Close manual intake at the end of the abnormal condition (Pasal 9)."""
    from drp.tasks import manual as steps

    cfg = _cfg(runbook)
    result = _run(lambda: steps.deactivate(cfg, incident, by))
    if json_out:
        emit_json(result)
        return
    if result["status"] == "not_active":
        console.print(f"manual mode was not active for {incident}; nothing to close")
    else:
        console.print(
            f"[bold]manual intake closed[/] for {incident}; {result['pending']} registered "
            "declaration(s) still to serve. Next: drp manual served, then drp manual resync "
            "(within 30 days, Pasal 11)",
            highlight=False,
        )


@app.command("template")
def template(
    doc_type: Annotated[str, typer.Argument(help="pib (import) or peb (export).")],
    fmt: Annotated[str, typer.Option("--format", help="xlsx or xls.")] = "xlsx",
    out: Annotated[Path | None, typer.Option("--out", help="Where to write it.")] = None,
) -> None:
    """Write the empty declaration form (header and items sheets, input help)."""
    from drp.tasks import manual as steps

    target = out or Path(f"template-{doc_type.lower()}.{fmt}")
    path = _run(lambda: steps.write_template(doc_type, fmt, target))
    console.print(f"wrote {path}", highlight=False)


@app.command("submit")
def submit(
    file: Annotated[Path, typer.Argument(help="The declaration file (.xls or .xlsx).")],
    office: Annotated[str, typer.Option(help="The office receiving it (six digits).")],
    by: ByOpt = "operator",
    runbook: RunbookOpt = DEFAULT_RUNBOOK,
    json_out: JsonOpt = False,
) -> None:
    """Validate and register a declaration file, whole or not at all (exit 1 when refused)."""
    from drp.tasks import manual as steps

    if not file.is_file():
        fail(f"no file at {file}", code=2)
    cfg = _cfg(runbook)
    outcome = _run(lambda: steps.submit(cfg, file, office, by))
    if json_out:
        emit_json(outcome.as_dict())
    elif outcome.ok:
        console.print(
            f"[bold green]registered[/] {len(outcome.registered)} {outcome.doc_type} "
            f"declaration(s) from {file.name}:",
            highlight=False,
        )
        for r in outcome.registered:
            console.print(
                f"  {r['registration_number']}  nomor aju {r['nomor_aju']}", highlight=False
            )
    else:
        err_console.print(
            f"[bold red]rejected[/] {file.name}: {len(outcome.problems)} problem(s); nothing "
            "was registered (the file is kept as evidence)",
            highlight=False,
        )
        for p in outcome.problems:
            err_console.print(f"  {p}", highlight=False)
    if not json_out:
        console.print(f"evidence: {outcome.ledger}", highlight=False)
    raise typer.Exit(0 if outcome.ok else 1)


@app.command("queue")
def queue(
    office: Annotated[str | None, typer.Option(help="Only this office.")] = None,
    incident: Annotated[str | None, typer.Option("--incident", help="Only this incident.")] = None,
    runbook: RunbookOpt = DEFAULT_RUNBOOK,
    json_out: JsonOpt = False,
) -> None:
    """The work queue: declarations to serve, exports by closing time first."""
    from drp.tasks import manual as steps

    cfg = _cfg(runbook)
    ranked = _run(lambda: steps.work_queue(cfg, office=office, incident_id=incident))
    rows = [steps.ranked_as_dict(r) for r in ranked]
    if json_out:
        emit_json(rows)
        return
    table = Table(title=f"Manual work queue: {len(rows)} to serve")
    for column in ("#", "Registration number", "Type", "Office", "Nomor aju"):
        table.add_column(column, no_wrap=True)
    table.add_column("Why here")
    colours = {"closing-passed": "red", "urgent": "yellow"}
    for r in rows:
        colour = colours.get(r["urgency"])
        reason = f"[{colour}]{r['reason']}[/]" if colour else r["reason"]
        table.add_row(
            str(r["position"]),
            r["registration_number"],
            r["doc_type"],
            r["office"],
            r["nomor_aju"],
            reason,
        )
    console.print(table)


@app.command("serve")
def serve(
    registration_number: Annotated[str, typer.Argument(help="The manual registration number.")],
    by: ByOpt = "operator",
    evidence: Annotated[
        list[Path] | None, typer.Option(help="A file that proves the service (repeatable).")
    ] = None,
    note: Annotated[str | None, typer.Option(help="What was done.")] = None,
    runbook: RunbookOpt = DEFAULT_RUNBOOK,
    json_out: JsonOpt = False,
) -> None:
    """Record that a declaration was served (it leaves the queue), with its evidence."""
    from drp.tasks import manual as steps

    cfg = _cfg(runbook)
    result = _run(lambda: steps.serve(cfg, registration_number, by, evidence or [], note))
    if json_out:
        emit_json(result)
        return
    console.print(
        f"served {registration_number} by {result['served_by']} at {result['served_at']} "
        f"({len(result['evidence'])} evidence file(s)); evidence: {result['ledger']}",
        highlight=False,
    )


@app.command("note")
def note(
    registration_number: Annotated[str, typer.Argument(help="The declaration it is about.")],
    to: Annotated[str, typer.Option("--to", help="The office it is for (six digits).")],
    text: Annotated[str, typer.Option("--text", help="The note.")],
    by: ByOpt = "operator",
    from_office: Annotated[
        str | None, typer.Option("--from", help="Sending office (default: the declaration's).")
    ] = None,
    runbook: RunbookOpt = DEFAULT_RUNBOOK,
    json_out: JsonOpt = False,
) -> None:
    """Send a note about a declaration to another office (Pasal 8(4)(d)); it is stored too."""
    from drp.tasks import manual as steps

    cfg = _cfg(runbook)
    saved = _run(
        lambda: steps.send_note(
            cfg, registration_number, to_office=to, text=text, author=by, from_office=from_office
        )
    )
    if json_out:
        emit_json(saved)
        return
    console.print(
        f"note {saved['id']} {saved['from_office']} → {saved['to_office']} about "
        f"{registration_number} stored and sent",
        highlight=False,
    )


@app.command("served")
def served(
    incident: IncidentOpt,
    out: Annotated[Path, typer.Option("--out", help="The .xlsx to write.")],
    runbook: RunbookOpt = DEFAULT_RUNBOOK,
    json_out: JsonOpt = False,
) -> None:
    """Export the documents served during the incident with their evidence (Pasal 10)."""
    from drp.tasks import manual as steps

    cfg = _cfg(runbook)
    result = _run(lambda: steps.export_served(cfg, incident, out))
    if json_out:
        emit_json(result)
        return
    console.print(
        f"wrote {out}: {result['documents']} document(s), {result['served']} marked served, "
        f"{result['registered_only']} registered only",
        highlight=False,
    )


@app.command("resync")
def resync(
    incident: IncidentOpt,
    restored_at: Annotated[
        str | None,
        typer.Option(help="Service-restored time (ISO, with zone); default: the failover's."),
    ] = None,
    runbook: RunbookOpt = DEFAULT_RUNBOOK,
    json_out: JsonOpt = False,
) -> None:
    """Write the incident's manual declarations into SKP (Pasal 11); exit 1 when any is left."""
    from drp.runbooks import load_runbook
    from drp.settings import Settings
    from drp.tasks import manual_resync
    from drp.topology import resolve

    cfg = _cfg(runbook)

    def go() -> dict[str, Any]:
        rb = load_runbook(runbook)
        topology = resolve(rb, Path(rb.inventory), Settings())
        return manual_resync.resync_declarations(cfg, topology, incident, restored_at=restored_at)

    report = _run(go)
    if json_out:
        emit_json(report)
    else:
        colour = "green" if report["status"] == "complete" else "red"
        console.print(
            f"[bold {colour}]{report['status']}[/]: {len(report['synced'])} written, "
            f"{len(report['already'])} already in SKP, {len(report['not_synced'])} not "
            f"synchronised ({report['skp']})",
            highlight=False,
        )
        console.print(f"deadline: {report['deadline_note']}", highlight=False)
        for n in report["not_synced"]:
            console.print(
                f"  not synced: {n['registration_number']}: {n['reason']}", highlight=False
            )
        if report["intake_open"]:
            console.print("note: manual intake is still open (drp manual deactivate)")
        console.print(f"evidence: {report['ledger']}", highlight=False)
    raise typer.Exit(0 if report["status"] == "complete" else 1)
