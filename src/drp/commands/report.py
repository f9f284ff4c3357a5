"""``drp report``: the regulation's documents for an incident, made from its evidence.

Every document is rebuilt from the ledgers as they are now, and each ledger is verified first:
a document made from a tampered ledger says so on its first page. The files written are
recorded (SHA-256) in the incident's evidence as ``records/report-<time>/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from drp.commands._output import console, emit_json, err_console, fail
from drp.commands.incidents import index_quietly, ops_dsn
from drp.documents.issue import issue_reports
from drp.documents.served import served_documents
from drp.domain.report import FORMATS, KINDS
from drp.errors import DrpError
from drp.settings import Settings


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    incident_id: Annotated[str, typer.Argument(help="The incident (its evidence directory).")],
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind",
            help="kaji-cepat | pemberitahuan | berakhir | berita-acara | pasca | simulasi "
            "(repeat; default: all that apply).",
        ),
    ] = None,
    fmt: Annotated[
        list[str] | None,
        typer.Option("--format", help="md | html | xlsx | pdf (repeat; default: all)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Output directory (default: <evidence>/<incident>/reports)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Write the incident's documents (Lampiran B, C, E, F; Pasal 12, 15)."""
    for k in kind or ():
        if k not in KINDS:
            fail(f"--kind {escape(k)}: unknown (hint: one of {', '.join(KINDS)})", code=2)
    for f in fmt or ():
        if f not in FORMATS:
            fail(f"--format {escape(f)}: unknown (hint: one of {', '.join(FORMATS)})", code=2)
    settings = Settings()

    def served(incident: str) -> tuple[list[dict[str, Any]] | None, str]:
        try:
            dsn = ops_dsn(settings)
        except DrpError as exc:
            return None, str(exc)
        return served_documents(dsn, incident)

    if not json_out:
        console.print(f"[bold]reports for {escape(incident_id)}[/] from {settings.evidence_dir}")
    try:
        facts, _docs, issued = issue_reports(
            settings.evidence_dir,
            incident_id,
            kinds=kind,
            formats=fmt,
            out_dir=out,
            template_dir=settings.template_dir,
            served=served,
        )
    except DrpError as exc:
        fail(escape(str(exc)))
    warning = index_quietly(settings, incident_id)
    if json_out:
        emit_json(
            {
                "incident_id": incident_id,
                "evidence_verified": facts.evidence_verified,
                "missing": list(facts.missing),
                "files": [f.to_dict() for f in issued],
                "registry_warning": warning,
            }
        )
        return
    table = Table(title_justify="left")
    for column in ("document", "format", "file", "sha256"):
        table.add_column(column)
    for f in issued:
        table.add_row(f.kind, f.format, escape(str(f.path)), f.sha256[:16] + "…")
    console.print(table)
    if facts.evidence_verified:
        console.print(f"[green]evidence verified[/]: {len(facts.ledgers)} ledger(s) intact")
    else:
        console.print(
            "[bold red]EVIDENCE NOT VERIFIED[/]: the documents say so on their first page"
        )
    for gap in facts.missing:
        console.print(f"[yellow]missing[/]: {escape(gap)}")
    if warning:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}")
