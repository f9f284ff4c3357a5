"""``drp evidence``: verify a run's ledger and read it, for operators and auditors.

``verify`` answers one question with its exit status, so that scripts and auditors can rely on
it: 0 the ledger is intact, 1 it is tampered with or incomplete (every problem listed, the first
bad record named), 2 the path holds no ledger at all (or one that cannot be read). ``show``
lists the records as a table. The rules live in :mod:`drp.domain.evidence`; this module only
reads files and prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.markup import escape
from rich.table import Table

from drp.commands._output import console, emit_json, fail
from drp.domain.evidence import Record, VerificationResult, summarize
from drp.errors import EvidenceError
from drp.ledger import read_records, resolve_ledger_dir, verify_ledger

INTACT, TAMPERED, NOT_A_LEDGER = 0, 1, 2
"""Exit statuses of ``drp evidence verify``."""

SHOWN_PROBLEMS = 20
"""How many problems the human output lists before summing up the rest (JSON lists all)."""

app = typer.Typer(
    no_args_is_help=True, help="Run evidence: verify a hash-chained ledger and read its records."
)

PathArg = Annotated[
    Path, typer.Argument(help="A run's ledger directory, or the ledger.jsonl inside it.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@app.command()
def verify(path: PathArg, json_out: JsonOpt = False) -> None:
    """Check the chain, the manifest and every attachment; exit 0 intact, 1 not, 2 no ledger."""
    try:
        result = verify_ledger(path)
    except EvidenceError as exc:  # no ledger there, or one that cannot be read at all
        _not_a_ledger(path, exc, json_out)
    if json_out:
        emit_json({"path": str(path), **result.to_dict()})
    else:
        _print_verdict(path, result)
    raise typer.Exit(INTACT if result.ok else TAMPERED)


@app.command()
def show(path: PathArg, json_out: JsonOpt = False) -> None:
    """List the records: seq, time, kind and a short summary (nothing is verified here)."""
    try:
        resolve_ledger_dir(path)
        entries = list(read_records(path))
    except (EvidenceError, OSError) as exc:
        _not_a_ledger(path, exc, json_out)
    if json_out:
        emit_json([_entry_json(line, entry) for line, entry in entries])
        return
    table = Table(title=f"Ledger {escape(str(path))}", title_justify="left")
    for column in ("seq", "time (UTC)", "kind", "summary"):
        table.add_column(column, no_wrap=column != "summary")
    for line, entry in entries:
        table.add_row(*_entry_row(line, entry))
    console.print(table)
    console.print("Check it with [bold]drp evidence verify[/] before relying on it.")


def _not_a_ledger(path: Path, exc: Exception, json_out: bool) -> NoReturn:
    if json_out:
        emit_json({"path": str(path), "ok": False, "error": str(exc)})
        raise typer.Exit(NOT_A_LEDGER)
    fail(escape(str(exc)), code=NOT_A_LEDGER)


def _print_verdict(path: Path, result: VerificationResult) -> None:
    state = "closed" if result.closed else "open (not closed)"
    if result.ok:
        console.print(
            f"[bold green]OK[/] {escape(str(path))}: {result.records} records, "
            f"head {result.head}, {state}",
            highlight=False,
        )
        return
    console.print(
        f"[bold red]FAILED[/] {escape(str(path))}: {len(result.problems)} problem(s) in "
        f"{result.records} records, {state}",
        highlight=False,
    )
    if result.first_bad_seq is not None:
        console.print(
            f"first bad record: line {result.first_bad_line} "
            f"(where seq {result.first_bad_seq} belongs)",
            highlight=False,
        )
    for problem in result.problems[:SHOWN_PROBLEMS]:
        console.print(f"  - {escape(str(problem))}", highlight=False)
    hidden = len(result.problems) - SHOWN_PROBLEMS
    if hidden > 0:
        console.print(f"  ... and {hidden} more (use --json to list them all)", highlight=False)


def _entry_row(line: int, entry: Record | str) -> tuple[str, str, str, str]:
    if isinstance(entry, str):
        return ("?", "", "[red](unreadable)[/]", escape(f"line {line}: {entry}"))
    return (str(entry.seq), entry.ts, escape(entry.kind), escape(summarize(entry.data)))


def _entry_json(line: int, entry: Record | str) -> dict[str, object]:
    if isinstance(entry, str):
        return {"line": line, "error": entry}
    return {"line": line, **entry.to_dict()}
