"""``drp server up|down|status`` and ``drp workers up|down|status``: the orchestrator on the lab.

A DR platform that runs inside the DC it protects fails with it. These commands bring up the
production shape on this machine: Prefect's server on PostgreSQL (the lab's ``ops-db``) with the
UI on loopback, and one process worker per site polling its work pool (``dc``, ``drc``). Deploy
the flows with ``prefect --no-prompt deploy --all`` (``make deploy``); see docs/production.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from drp.adapters.prefect_server import DEFAULT_PORT, SITES
from drp.commands._output import console, emit_json, fail
from drp.errors import DrpError
from drp.prefect_server import Orchestrator, for_lab

server_app = typer.Typer(
    no_args_is_help=True, help="Prefect's server on PostgreSQL (the lab's ops-db), UI on loopback."
)
workers_app = typer.Typer(
    no_args_is_help=True, help="One Prefect process worker per site (work pools dc and drc)."
)

RootOpt = Annotated[
    Path | None, typer.Option("--root", help="Lab directory (default .lab/ or DRP_LAB_ROOT).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
SiteOpt = Annotated[
    list[str] | None, typer.Option("--site", help="Only this site (dc or drc); repeatable.")
]


def register(app: typer.Typer) -> None:
    app.add_typer(server_app, name="server")
    app.add_typer(workers_app, name="workers")


def _orchestrator(root: Path | None, verbose: bool) -> Orchestrator:
    def say(msg: str) -> None:
        if verbose:
            console.print(f"[cyan]•[/] {msg}", highlight=False)

    return for_lab(root, progress=say)


def _sites(given: list[str] | None) -> tuple[str, ...]:
    chosen = tuple(given or SITES)
    unknown = [s for s in chosen if s not in SITES]
    if unknown:
        fail(f"--site {', '.join(unknown)}: unknown site (choose from {', '.join(SITES)})", 2)
    return chosen


# -- server -----------------------------------------------------------------------------------
@server_app.command("up")
def server_up(
    port: Annotated[int, typer.Option(help="Port of the API and UI (loopback).")] = DEFAULT_PORT,
    host: Annotated[str, typer.Option(help="Loopback address to listen on.")] = "127.0.0.1",
    root: RootOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Start Prefect's server on PostgreSQL (creates database `prefect` with pg_trgm in ops-db)."""
    orch = _orchestrator(root, verbose=not json_out)
    try:
        status = orch.server_up(host=host, port=port)
    except DrpError as exc:
        fail(str(exc))
    if json_out:
        emit_json(status)
    else:
        _print_server(status)
        console.print(f"\n  export PREFECT_API_URL={status['api']}", highlight=False)


@server_app.command("status")
def server_status(root: RootOpt = None, json_out: JsonOpt = False) -> None:
    """Whether the server runs and answers, its database, UI address and the pools' workers."""
    status = _orchestrator(root, verbose=False).server_status()
    if json_out:
        emit_json(status)
    else:
        _print_server(status)
    if not status["healthy"]:
        raise typer.Exit(1)


@server_app.command("down")
def server_down(root: RootOpt = None, json_out: JsonOpt = False) -> None:
    """Stop the server this lab started (by process id); its database stays in ops-db."""
    stopped = _orchestrator(root, verbose=False).server_down()
    if json_out:
        emit_json({"stopped": stopped})
    else:
        console.print("Prefect server stopped" if stopped else "no Prefect server was running")


def _print_server(st: dict[str, Any]) -> None:
    if not st.get("pid"):
        console.print("no Prefect server started for this lab (hint: drp server up)")
        return
    state = "[green]healthy[/]" if st["healthy"] else "[red]not answering[/]"
    console.print(f"Prefect server {st.get('version') or ''}: {state} (pid {st['pid']})")
    console.print(f"  UI        {st.get('ui')}", highlight=False)
    console.print(f"  API       {st.get('api')}", highlight=False)
    console.print(
        f"  database  {st.get('database')} ({st.get('database_source')})", highlight=False
    )
    console.print(f"  log       {st.get('log')}", highlight=False)
    for pool, workers in (st.get("pools") or {}).items():
        names = ", ".join(f"{w['name']} ({w['status']})" for w in workers) or "no worker yet"
        console.print(f"  pool {pool:<4} {names}", highlight=False)


# -- workers ----------------------------------------------------------------------------------
@workers_app.command("up")
def workers_up(
    site: SiteOpt = None,
    poll: Annotated[float, typer.Option(help="Seconds between polls of the work pool.")] = 2.0,
    root: RootOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Start a process worker per site; flow runs inherit DRP_LAB_ROOT and DRP_EVIDENCE_DIR."""
    orch = _orchestrator(root, verbose=not json_out)
    try:
        status = orch.workers_up(_sites(site), poll_s=poll)
    except DrpError as exc:
        fail(str(exc))
    if json_out:
        emit_json(status)
    else:
        _print_workers(status)


@workers_app.command("status")
def workers_status(root: RootOpt = None, json_out: JsonOpt = False) -> None:
    """Each site's worker: process, what the server last heard from it, log."""
    status = _orchestrator(root, verbose=False).workers_status()
    if json_out:
        emit_json(status)
    else:
        _print_workers(status)


@workers_app.command("down")
def workers_down(site: SiteOpt = None, root: RootOpt = None, json_out: JsonOpt = False) -> None:
    """Stop the workers this lab started (by process id)."""
    stopped = _orchestrator(root, verbose=False).workers_down(_sites(site))
    if json_out:
        emit_json({"stopped": stopped})
    else:
        console.print(f"stopped: {', '.join(stopped) or 'no worker was running'}")


def _print_workers(st: dict[str, Any]) -> None:
    table = Table(title="Prefect workers")
    for col in ("site", "pool", "worker", "process", "server says", "last heartbeat", "log"):
        table.add_column(col)
    for site, w in st.items():
        table.add_row(
            site,
            w["pool"],
            w["name"],
            f"[green]pid {w['pid']}[/]" if w["running"] else "[red]down[/]",
            str(w["server_status"] or "-"),
            str(w["last_heartbeat"] or "-"),
            w["log"],
        )
    console.print(table)
