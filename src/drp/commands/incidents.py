"""``drp incidents``: the incident registry (ops-db, schema ``registry``), derived from ledgers.

The registry is an index of the evidence: ``--rescan`` rebuilds it from the evidence directory
(idempotent). Each row says what happened (category, declarer, basis, times), which ledgers and
flow runs belong to it, whether their chains verify, and what people still have to record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from drp.adapters import registry
from drp.commands._output import console, emit_json, fail
from drp.domain.report import WIB
from drp.errors import DrpError
from drp.settings import Settings


def register(app: typer.Typer) -> None:
    app.command("incidents")(incidents)


def ops_dsn(settings: Settings) -> str:
    """The registry's database (``DRP_OPS_DSN``, or the lab's ops-db)."""
    return registry.resolve_ops_dsn(settings.ops_dsn, settings.lab_root)


def index_quietly(settings: Settings, incident_id: str) -> str | None:
    """Re-index one incident after a change; returns a warning instead of failing the command
    (the ledgers are the truth; a later ``drp incidents --rescan`` catches up)."""
    try:
        registry.index_incident(ops_dsn(settings), settings.evidence_dir, incident_id)
    except DrpError as exc:
        return f"the incident registry was not updated ({exc}); run drp incidents --rescan later"
    return None


def incidents(
    rescan: Annotated[
        bool, typer.Option("--rescan", help="Rebuild the registry from the evidence first.")
    ] = False,
    year: Annotated[int | None, typer.Option(help="Only incidents declared in this year.")] = None,
    drills: Annotated[
        bool | None, typer.Option("--drills/--real", help="Only drills, or only real incidents.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """List the incidents in the registry, newest first."""
    settings = Settings()
    try:
        dsn = ops_dsn(settings)
        if rescan:
            rows = registry.rescan(dsn, settings.evidence_dir)
            if not json_out:
                console.print(f"rescanned {settings.evidence_dir}: {len(rows)} incident(s) indexed")
        found = registry.list_incidents(dsn, year=year, drills=drills)
    except DrpError as exc:
        fail(escape(str(exc)))
    if json_out:
        emit_json([row.to_dict() for row in found])
        return
    if not found:
        console.print(
            "no incidents in the registry (hint: drp incidents --rescan indexes the evidence in "
            f"{escape(str(settings.evidence_dir))})"
        )
        return
    table = Table(title="Incidents (registry in ops-db; times WIB)", title_justify="left")
    for column in ("incident", "mode", "category", "declared", "RTO", "ended", "Pasal 11", "ok"):
        table.add_column(column, overflow="fold")
    for row in found:
        table.add_row(
            escape(row.incident_id),
            "drill" if row.is_drill else row.mode,
            escape(row.category or "-"),
            escape(f"{_short(row.declared_at)} by {row.declared_by or '-'}"),
            f"{row.achieved_rto_s:.1f} s" if row.achieved_rto_s is not None else "-",
            _short(row.ended_at),
            _short(row.resync_deadline),
            "[green]✓[/]" if row.evidence_verified else "[red]✗ tampered[/]",
        )
    console.print(table)
    console.print(
        "ledgers, flow runs and gaps: drp incidents --json; documents: drp report INCIDENT",
        highlight=False,
    )


def _short(moment: datetime | None) -> str:
    """A time as ``2026-11-23 21:41`` in WIB (the directorate's clock), or ``-``."""
    return moment.astimezone(WIB).strftime("%Y-%m-%d %H:%M") if moment else "-"
