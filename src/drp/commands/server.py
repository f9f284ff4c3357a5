"""``drp server up|down|status`` and ``drp workers up|down|status``: the orchestrator on the lab.

A DR platform that runs inside the DC it protects fails with it. These commands bring up the
production shape on this machine: Prefect's server on PostgreSQL (the lab's ``ops-db``) with the
UI on loopback, and one process worker per site polling its work pool (``dc``, ``drc``). Deploy
the flows with ``drp server exec -- prefect --no-prompt deploy --all`` (``make deploy``); see
docs/production.md.

The server requires a credential (Prefect's basic auth); these commands send it, and
``drp server exec -- CMD`` runs any Prefect client with it in its environment, so that it is
never typed, printed or put in shell history.
"""

from __future__ import annotations

import os
import subprocess
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
    port: Annotated[
        int | None,
        typer.Option(
            help=f"Port of the API and UI (loopback); default {DEFAULT_PORT} for the default lab, "
            "the lab's port base + 70 for a lab moved with DRP_LAB_PORT_BASE."
        ),
    ] = None,
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
        console.print(
            "\n  A Prefect client (prefect deploy, a script) with the server's address and "
            "credential:\n    drp server exec -- prefect --no-prompt deploy --all\n  or in "
            f"this shell:\n    export PREFECT_API_URL={status['api']}\n"
            f'    export PREFECT_API_AUTH_STRING="$(cat {orch.auth_file})"\n'
            f"  The UI asks for the same credential: {orch.auth_file}",
            highlight=False,
        )


@server_app.command("status")
def server_status(root: RootOpt = None, json_out: JsonOpt = False) -> None:
    """Whether the server runs, answers and accepts the lab's credential; its database, UI
    address, the pools' workers; and the scheduler's health: deployments with active
    schedules, the newest run it created, upcoming runs, its errors in the server's log.
    Exits 1 when the server is down or refuses us, or the scheduler fails."""
    try:
        status = _orchestrator(root, verbose=False).server_status()
    except DrpError as exc:
        fail(str(exc))
    if json_out:
        emit_json(status)
    else:
        _print_server(status)
    if not status["ok"]:
        raise typer.Exit(1)


@server_app.command(
    "exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def server_exec(
    ctx: typer.Context,
    root: RootOpt = None,
) -> None:
    """Run a command (after --) with PREFECT_API_URL and PREFECT_API_AUTH_STRING of the lab's
    server in its environment, e.g. `drp server exec -- prefect --no-prompt deploy --all`."""
    argv = list(ctx.args)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        fail("no command given (usage: drp server exec -- prefect deployment ls)", 2)
    try:
        env = {**os.environ, **_orchestrator(root, verbose=False).client_env()}
    except DrpError as exc:
        fail(str(exc))
    try:
        code = subprocess.run(argv, env=env).returncode
    except FileNotFoundError:
        fail(f"{argv[0]}: command not found", 127)
    raise typer.Exit(code)


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
    console.print(f"  auth      {st.get('auth') or 'none'}", highlight=False)
    for pool, workers in (st.get("pools") or {}).items():
        names = ", ".join(f"{w['name']} ({w['status']})" for w in workers) or "no worker yet"
        console.print(f"  pool {pool:<4} {names}", highlight=False)
    if st.get("problem"):
        console.print(f"  [red]{st['problem']}[/]", highlight=False)
    if st.get("scheduler"):
        _print_scheduler(st["scheduler"])


def _print_scheduler(sc: dict[str, Any]) -> None:
    colour = {"healthy": "green", "idle": "green", "pending": "yellow"}.get(sc["state"], "red")
    settings = sc["settings"]
    console.print(
        f"\nScheduler: [{colour}]{sc['state']}[/] (a loop every {settings['loop_seconds']:g} s; "
        f"runs expected within {sc['window_s']:.0f} s of a deploy or a start)",
        highlight=False,
    )
    for reason in sc["reasons"]:
        console.print(f"  - {reason}", highlight=False)
    newest = sc.get("newest_auto_scheduled")
    console.print(
        "  newest run created by the scheduler: "
        + (f"{newest['created']} ({newest['deployment']})" if newest else "none"),
        highlight=False,
    )
    errors = sc["log_errors"]
    console.print(  # the last error, if any, is among the reasons above
        f"  scheduler errors in the server's log since it started: {errors['count']}",
        highlight=False,
    )
    if sc["deployments"]:
        table = Table(title="Deployments with active schedules")
        for col in ("deployment", "schedule", "upcoming", "next run", "overdue", "last run"):
            table.add_column(col)
        for d in sc["deployments"]:
            last = d.get("last_auto_run")
            table.add_row(
                d["deployment"],
                ", ".join(d["schedules"]),
                str(d["upcoming"]),
                str(d["next_run"] or "-"),
                str(d["overdue"]),
                f"{last['state']} {last['started'] or ''}".strip() if last else "-",
            )
        console.print(table)
    if sc.get("hint"):
        console.print(f"  [bold]what to do:[/] {sc['hint']}", highlight=False)
        if errors.get("log"):
            console.print(f"  server log: {errors['log']}", highlight=False)


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
