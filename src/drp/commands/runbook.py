"""``drp runbook check`` and ``drp plan``: a runbook that is wrong fails before anything runs.

Exit codes, so that scripts and CI can tell the cases apart: 0 valid, 1 the runbook has
problems (all listed, each with file, line and path), 2 the file cannot be read at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from drp.commands._output import console, emit_json, fail
from drp.domain.plan import RecoveryPlan, SelectionRefused, plan
from drp.domain.runbook import Problem, Runbook
from drp.errors import RunbookError
from drp.runbooks import check_runbook, format_problem, read_runbook

app = typer.Typer(no_args_is_help=True, help="Check runbooks: the DRP as data.")

EXIT_PROBLEMS = 1
EXIT_UNREADABLE = 2
PIPED_WIDTH = 160

FileArg = Annotated[Path, typer.Argument(help="The runbook YAML file.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def duration(seconds: int) -> str:
    """``2775`` -> ``46m 15s``: budgets are seconds, people think in minutes."""
    minutes, rest = divmod(seconds, 60)
    if not minutes:
        return f"{rest}s"
    return f"{minutes}m {rest:02d}s" if rest else f"{minutes}m"


def _load(file: Path, as_json: bool) -> Runbook:
    """Read and validate ``file``, or report why not and exit 1 (problems) or 2 (unreadable)."""
    try:
        source = read_runbook(file)
    except RunbookError as error:
        if as_json:
            emit_json({"file": str(file), "valid": False, "error": str(error)})
            raise typer.Exit(EXIT_UNREADABLE) from error
        fail(escape(str(error)), EXIT_UNREADABLE)
    result = check_runbook(source)
    if result.ok and result.runbook is not None:
        return result.runbook
    _report_problems(file, result.problems, as_json)
    raise typer.Exit(EXIT_PROBLEMS)


def _report_problems(file: Path, problems: tuple[Problem, ...], as_json: bool) -> None:
    if as_json:
        emit_json({"file": str(file), "valid": False, "problems": [p.as_dict() for p in problems]})
        return
    for problem in problems:
        console.print(format_problem(file, problem), highlight=False, markup=False, soft_wrap=True)
    console.print(
        f"{file}: {_count(len(problems), 'problem')}; fix them before running this runbook.",
        highlight=False,
        markup=False,
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@app.command("check")
def check(file: FileArg, as_json: JsonOpt = False) -> None:
    """Validate a runbook: shape, Pasal 3(1)(b) limits, dependencies, playbooks, groups, fencing.

    Exits 0 when valid, 1 with every problem listed, 2 when the file cannot be read.
    """
    runbook = _load(file, as_json)
    recovery = plan(runbook)
    if as_json:
        emit_json(
            {
                "file": str(file),
                "valid": True,
                "name": runbook.name,
                "services": len(runbook.services),
                "steps": runbook.step_count,
                "predicted_rto_seconds": recovery.predicted_rto_seconds,
                "predicted_rto_parallel_s": recovery.predicted_rto_seconds,
                "predicted_rto_serial_s": recovery.predicted_rto_serial_seconds,
                "rto_limit_seconds": recovery.rto_limit_seconds,
            }
        )
        return
    console.print(
        f"{file}: valid: {_count(len(runbook.services), 'service')}, "
        f"{_count(runbook.step_count, 'step')}, "
        f"predicted RTO {duration(recovery.predicted_rto_seconds)} "
        f"({duration(recovery.predicted_rto_serial_seconds)} one step after another; "
        f"limit {duration(recovery.rto_limit_seconds)})",
        highlight=False,
    )


ServicesOpt = Annotated[
    str | None,
    typer.Option(
        "--services",
        help="Plan only these services (comma-separated) and what they need: a partial failover.",
    ),
]


def plan_command(
    runbook_file: FileArg, services: ServicesOpt = None, as_json: JsonOpt = False
) -> None:
    """Show the recovery plan: steps in order, when each runs, and the predicted RTO — with
    services in parallel as the runbook's graph allows, and one after another beside it.

    Exits 1 when the runbook has problems (listed) or the selection cannot move on its own,
    2 when it cannot be read.
    """
    runbook = _load(runbook_file, as_json)
    wanted = [s for s in (services or "").split(",") if s.strip()]
    try:
        recovery = plan(runbook, wanted or None)
    except SelectionRefused as refused:
        if as_json:
            emit_json({"file": str(runbook_file), "valid": True, "refused": str(refused)})
            raise typer.Exit(EXIT_PROBLEMS) from refused
        fail(f"--services: {escape(str(refused))}", EXIT_PROBLEMS)
    if as_json:
        emit_json(recovery.as_dict())
        return
    out = _table_console()
    out.print(_steps_table(recovery))
    out.print(_services_table(recovery))
    for service_id, why in recovery.selection.added:
        console.print(f"added to the selection: {service_id} — {why}", highlight=False)
    verdict = "[green]within[/]" if recovery.within_limit else "[bold red]past[/]"
    path = " → ".join(recovery.critical_path)
    console.print(
        f"Predicted RTO {duration(recovery.predicted_rto_seconds)} with services in parallel "
        f"(at most {recovery.policy.max_parallel} at once; critical path {path}), "
        f"{duration(recovery.predicted_rto_serial_seconds)} one step after another: "
        f"{verdict} the {duration(recovery.rto_limit_seconds)} limit of Pasal 3(1)(b).",
        highlight=False,
    )


def _table_console() -> Console:
    """A terminal keeps its width; piped output (files, CI logs) is not squeezed to 80 columns."""
    return console if console.is_terminal else Console(width=PIPED_WIDTH, highlight=False)


def _steps_table(recovery: RecoveryPlan) -> Table:
    table = Table(title=f"Recovery plan: {recovery.runbook.name}")
    for header in ("#", "Group"):
        table.add_column(header, justify="right", no_wrap=True)
    for header in ("Service", "Criticality", "Step", "Action", "Playbook", "Targets"):
        table.add_column(header, overflow="fold")
    for header in ("Budget", "Starts", "Ends"):
        table.add_column(header, justify="right", no_wrap=True)
    for planned in recovery.steps:
        approval = " (approval)" if planned.step.requires_approval else ""
        table.add_row(
            str(planned.position),
            str(planned.service.priority_group),
            planned.service.id,
            planned.service.criticality.value,
            planned.step.id + approval,
            planned.step.action,
            planned.step.playbook,
            planned.step.targets,
            duration(planned.budget_seconds),
            duration(planned.starts_at_seconds),
            duration(planned.cumulative_seconds),
        )
    return table


def _services_table(recovery: RecoveryPlan) -> Table:
    table = Table(title="Services against their RTO")
    for header in ("Service", "Criticality", "Starts", "Recovered", "RTO", ""):
        right = header in ("Starts", "Recovered", "RTO")
        table.add_column(header, justify="right" if right else "left")
    for item in recovery.services:
        mark = "[green]ok[/]" if item.within_rto else "[bold red]late[/]"
        table.add_row(
            item.service.id,
            item.criticality.value,
            duration(item.starts_at_seconds),
            duration(item.predicted_seconds),
            duration(item.rto_seconds),
            mark,
        )
    return table


def register_top_level(parent: typer.Typer) -> None:
    """Add ``drp plan`` at the top level: it is used often enough to deserve the short name."""
    parent.command("plan")(plan_command)
