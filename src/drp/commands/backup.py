"""``drp backup take|verify``: backups that really restore, from the terminal.

These run the same functions as the ``backup-take`` and ``backup-verify`` flows, directly (no
Prefect server), with progress on stderr and a ledger under ``<evidence>/backups/``. Exit 0 when
the backup was taken / verified, 1 when verification found a problem, 2 when the input (runbook,
lab, settings, repository) is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from drp.commands._output import console, emit_json, err_console, fail
from drp.errors import DrpError

app = typer.Typer(no_args_is_help=True, help="Backups: take them, and prove them by restoring.")

RunbookOpt = Annotated[Path, typer.Option(help="The runbook whose backup policy applies.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")]


def _progress(message: str) -> None:
    """Progress for people, on stderr (stdout stays clean for --json)."""
    err_console.print(f"[dim]…[/] {escape(message)}", highlight=False)


@app.command()
def take(runbook: RunbookOpt = Path("runbooks/lab.yaml"), json_out: JsonOpt = False) -> None:
    """Take a base backup of the primary (WAL included) and store it with its manifest."""
    from drp.tasks import backups
    from drp.tasks.evidence_archive import archive_after_run

    try:
        ctx = backups.prepare(runbook)
    except DrpError as exc:
        fail(escape(str(exc)), code=2)
    ledger = backups.open_ledger(ctx, "take")
    try:
        manifest = backups.take_backup(ctx, ledger, _progress)
    except DrpError as exc:
        ledger.append("error", {"during": "backup-take", "error": str(exc)})
        ledger.close({"status": "failed", "error": str(exc)})
        fail(f"{escape(str(exc))} (evidence: {ledger.directory})", code=2)
    ledger.close({"status": "taken", "backup_id": manifest.backup_id})
    result = backups.take_summary(manifest, ctx.location)
    result["ledger"] = str(ledger.directory)
    result["archive"] = archive_after_run(ctx.runbook, ledger.directory)
    if json_out:
        emit_json(result)
        return
    console.print(
        f"[bold green]taken[/] {manifest.backup_id}: {len(manifest.objects)} objects, "
        f"{manifest.size} bytes, {len(manifest.wal_segments)} WAL segment(s) in "
        f"{escape(ctx.location)}",
        highlight=False,
    )
    for table in manifest.tables:
        console.print(f"  {table.table}: {table.rows_after} rows recorded", highlight=False)
    console.print(f"evidence: {ledger.directory}", highlight=False)


@app.command()
def verify(
    runbook: RunbookOpt = Path("runbooks/lab.yaml"),
    backup_id: Annotated[
        str | None, typer.Option("--backup-id", help="Verify this backup instead of the newest.")
    ] = None,
    no_restore: Annotated[
        bool, typer.Option("--no-restore", help="Skip the restore test (integrity checks only).")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Present, fresh, intact, pg_verifybackup, and a real restore test; exit 0 only if all pass."""
    from drp.tasks import backups
    from drp.tasks.evidence_archive import archive_after_run

    try:
        ctx = backups.prepare(runbook)
        ledger = backups.open_ledger(ctx, "verify")
    except DrpError as exc:
        fail(escape(str(exc)), code=2)
    try:
        result = backups.verify_backup(
            ctx, ledger, _progress, backup_id=backup_id, restore=not no_restore
        )
    except DrpError as exc:
        ledger.append("error", {"during": "backup-verify", "error": str(exc)})
        ledger.close({"ok": False, "error": str(exc)})
        fail(f"{escape(str(exc))} (evidence: {ledger.directory})", code=2)
    ledger.close({"ok": result.ok, "backup_id": result.backup_id, "reasons": result.reasons})
    data = {**result.as_dict(), "ledger": str(ledger.directory)}
    data["archive"] = archive_after_run(ctx.runbook, ledger.directory)
    if json_out:
        emit_json(data)
    else:
        verdict = "[bold green]verified[/]" if result.ok else "[bold red]FAILED[/]"
        table = Table(
            title=f"Backup {escape(result.backup_id or '(none)')}: {verdict}", show_lines=False
        )
        for column in ("Check", "Result", "Detail"):
            table.add_column(column)
        for c in result.checks:
            mark = (
                "[dim]skipped[/]" if c.skipped else ("[green]ok[/]" if c.ok else "[red]FAILED[/]")
            )
            table.add_row(escape(c.name), mark, escape(c.detail))
        console.print(table)
        timings = ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items())
        if timings:
            console.print(f"timings (s): {timings}", highlight=False)
        console.print(f"evidence: {ledger.directory}", highlight=False)
    raise typer.Exit(0 if result.ok else 1)
