"""``drp evidence``: verify a run's ledger and read it, for operators and auditors.

``verify`` answers one question with its exit status, so that scripts and auditors can rely on
it: 0 the ledger is intact, 1 it is tampered with or incomplete (every problem listed, the first
bad record named), 2 the path holds no ledger at all (or one that cannot be read). ``show``
lists the records as a table. The rules live in :mod:`drp.domain.evidence`; this module only
reads files and prints.

Off-site copies (issue 9): ``verify s3://bucket/prefix/<run>`` verifies an archived run straight
from S3, reading the object versions its archive manifest recorded (an overwrite is reported,
never read); ``verify PATH --against s3://...`` also names every local file that differs from the
archive; ``archive PATH --runbook R`` copies a closed run there with Object Lock. The S3 endpoint
comes from ``DRP_S3_ENDPOINT_URL`` and the credentials from the standard ``AWS_*`` variables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.markup import escape
from rich.table import Table

from drp.commands._output import console, emit_json, fail
from drp.domain.evidence import Record, VerificationResult, summarize
from drp.errors import DrpError, EvidenceError
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
TargetArg = Annotated[
    str,
    typer.Argument(
        help="A run's ledger directory, the ledger.jsonl inside it, or an archived run "
        "s3://bucket/prefix/<run>."
    ),
]
AgainstOpt = Annotated[
    str | None,
    typer.Option(
        "--against", help="Also compare the local run with its archive at s3://bucket/prefix/<run>."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@app.command()
def verify(target: TargetArg, against: AgainstOpt = None, json_out: JsonOpt = False) -> None:
    """Check the chain, the manifest and every attachment; exit 0 intact, 1 not, 2 no ledger."""
    if target.startswith("s3://"):
        _verify_archive(target, None, json_out)
    path = Path(target)
    try:
        result = verify_ledger(path)
    except EvidenceError as exc:  # no ledger there, or one that cannot be read at all
        _not_a_ledger(path, exc, json_out)
    if against is not None:
        _verify_archive(against, resolve_ledger_dir(path), json_out, local_result=result)
    if json_out:
        emit_json({"path": str(path), **result.to_dict()})
    else:
        _print_verdict(path, result)
    raise typer.Exit(INTACT if result.ok else TAMPERED)


@app.command()
def archive(
    path: PathArg,
    runbook: Annotated[
        Path, typer.Option(help="The runbook whose evidence policy (bucket, retention) applies.")
    ] = Path("runbooks/lab.yaml"),
    json_out: JsonOpt = False,
) -> None:
    """Copy a closed run to S3 with Object Lock (compliance mode), recording each version id."""
    from drp.runbooks import load_runbook
    from drp.tasks.evidence_archive import archive_run, s3_repository

    try:
        policy = load_runbook(runbook).evidence
        if policy is None:
            raise EvidenceError(
                f"{runbook}: the runbook has no evidence section (hint: evidence: with bucket, "
                "prefix and retention_days)"
            )
        manifest = archive_run(resolve_ledger_dir(path), s3_repository(policy.bucket), policy)
    except DrpError as exc:
        _not_a_ledger(path, exc, json_out)
    location = f"s3://{manifest.bucket}/{manifest.prefix}"
    if json_out:
        emit_json(
            {
                "path": str(path),
                "location": location,
                "retain_until": manifest.retain_until.isoformat(),
                "lock_mode": manifest.lock_mode,
                "objects": [o.__dict__ for o in manifest.objects],
            }
        )
        return
    console.print(
        f"[bold green]archived[/] {escape(str(path))} to {escape(location)}: "
        f"{len(manifest.objects)} objects, {manifest.lock_mode} lock until "
        f"{manifest.retain_until:%Y-%m-%d %H:%M} UTC",
        highlight=False,
    )
    console.print(f"Check it with [bold]drp evidence verify {escape(location)}[/].")


def _verify_archive(
    url: str,
    local: Path | None,
    json_out: bool,
    local_result: VerificationResult | None = None,
) -> NoReturn:
    """Verify an archived run (and the local copy against it, when given), then exit."""
    from drp.domain.evidence_archive import parse_s3_url
    from drp.tasks.evidence_archive import s3_repository, verify_archive

    try:
        location = parse_s3_url(url)
        report = verify_archive(s3_repository(location.bucket), location, local)
    except DrpError as exc:
        _not_a_ledger(Path(url), exc, json_out, shown=url)
    ok = report.ok and (local_result is None or local_result.ok)
    if json_out:
        data = report.to_dict()
        if local is not None and local_result is not None:
            data = {**data, "ok": ok, "local": {"path": str(local), **local_result.to_dict()}}
        emit_json(data)
        raise typer.Exit(INTACT if ok else TAMPERED)
    if local is not None and local_result is not None:
        _print_verdict(local, local_result)
    if report.ledger is not None:
        _print_verdict(Path(url), report.ledger, shown=url)
    if report.manifest is not None:
        console.print(
            f"archived {report.manifest.archived_at:%Y-%m-%d %H:%M} UTC, "
            f"{report.manifest.lock_mode} lock until "
            f"{report.manifest.retain_until:%Y-%m-%d %H:%M} UTC; the recorded versions were read",
            highlight=False,
        )
    for finding in report.problems:
        console.print(f"  [red]-[/] {escape(str(finding))}", highlight=False)
    for finding in report.notes:
        console.print(f"  [yellow]note:[/] {escape(str(finding))}", highlight=False)
    verdict = "[bold green]OK[/]" if ok else "[bold red]FAILED[/]"
    scope = " (local copy compared with the archive)" if local is not None else ""
    console.print(f"{verdict} {escape(url)}{scope}", highlight=False)
    raise typer.Exit(INTACT if ok else TAMPERED)


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


def _not_a_ledger(path: Path, exc: Exception, json_out: bool, shown: str | None = None) -> NoReturn:
    if json_out:
        emit_json({"path": shown or str(path), "ok": False, "error": str(exc)})
        raise typer.Exit(NOT_A_LEDGER)
    fail(escape(str(exc)), code=NOT_A_LEDGER)


def _print_verdict(path: Path, result: VerificationResult, shown: str | None = None) -> None:
    state = "closed" if result.closed else "open (not closed)"
    name = shown or str(path)
    if result.ok:
        console.print(
            f"[bold green]OK[/] {escape(name)}: {result.records} records, "
            f"head {result.head}, {state}",
            highlight=False,
        )
        return
    console.print(
        f"[bold red]FAILED[/] {escape(name)}: {len(result.problems)} problem(s) in "
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
