"""``drp lab``: build, inspect, break, repair and remove the embedded DC/DRC lab."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from drp.commands._output import console, emit_json, fail
from drp.errors import DrpError
from drp.lab.core import FAULTS, Lab

app = typer.Typer(no_args_is_help=True, help="The embedded DC/DRC lab on this machine.")

RootOpt = Annotated[
    Path | None, typer.Option("--root", help="Lab directory (default .lab/ or DRP_LAB_ROOT).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
RunbookOpt = Annotated[
    Path | None,
    typer.Option(
        "--runbook",
        help="Build the site a lab runbook describes (runbooks/lab-site.yaml): a database pair "
        "per `databases` entry, an app per service per site, a front-door route per service. "
        "Remembered: later commands keep the shape.",
    ),
]
ReadyTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--ready-timeout",
        help="Seconds to wait until every standby streams (and commits wait for it with "
        "--sync) before failing (default DRP_LAB_READY_TIMEOUT_S or 60).",
        min=1,
    ),
]


def _lab(root: Path | None, verbose: bool = True) -> Lab:
    def say(msg: str) -> None:
        if verbose:
            console.print(f"[cyan]•[/] {msg}", highlight=False)

    return Lab.from_env(root=root, progress=say)


@app.command()
def up(
    sync: Annotated[
        bool, typer.Option("--sync", help="Synchronous replication to drc-db.")
    ] = False,
    extra_pairs: Annotated[
        int | None,
        typer.Option(
            "--extra-pairs",
            help="Also run N more database pairs (primary + streaming standby each) for "
            "readiness checks at scale; remembered by later `lab up` (0 stops them).",
            min=0,
            max=40,
        ),
    ] = None,
    ready_timeout: ReadyTimeoutOpt = None,
    runbook: RunbookOpt = None,
    root: RootOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Build (once) and start the lab: dc-db, drc-db, ops-db, apps, front door, sshd.

    With --runbook, the site that runbook describes (every pair, app and route). Returns when
    the lab is ready: every standby streams from its primary and, with --sync, a commit on
    each DC primary waits for its DRC standby."""
    lab = _lab(root, verbose=not json_out)
    try:
        status = lab.up(
            sync=sync, extra_pairs=extra_pairs, ready_timeout=ready_timeout, runbook=runbook
        )
    except DrpError as exc:
        fail(str(exc))
    if json_out:
        emit_json(status)
    else:
        _print_status(status)


@app.command()
def reset(
    sync: Annotated[
        bool | None,
        typer.Option(
            "--sync/--async",
            help="Synchronous or asynchronous replication to drc-db (default: as the lab was).",
        ),
    ] = None,
    ready_timeout: ReadyTimeoutOpt = None,
    runbook: Annotated[
        Path | None,
        typer.Option(
            "--runbook",
            help="Rebuild the sites in the shape of this lab runbook (default: the lab's).",
        ),
    ] = None,
    root: RootOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Rebuild the DC and DRC sites fresh, keep ops-db and the Prefect server and workers.

    Database pairs (extra pairs too), apps, uplink and front-door routes (to the DC) are
    rebuilt and the facility is back to normal; ops-db (the Prefect server's database, the
    registry, the outbox) is never stopped. Returns when ready, as `drp lab up` does; builds a
    lab if none."""
    lab = _lab(root, verbose=not json_out)
    try:
        status = lab.reset(sync=sync, ready_timeout=ready_timeout, runbook=runbook)
    except DrpError as exc:
        fail(str(exc))
    if json_out:
        emit_json(status)
    else:
        _print_status(status)


@app.command()
def status(root: RootOpt = None, json_out: JsonOpt = False) -> None:
    """Each component: endpoint, up/down, database role, replication and lag, active site."""
    st = _lab(root, verbose=False).status()
    if json_out:
        emit_json(st)
        return
    if not st["built"]:
        fail(f"no lab at {st['root']} (hint: drp lab up)")
    _print_status(st)


@app.command("break")
def break_(
    fault: Annotated[str, typer.Argument(help=f"One of: {', '.join(FAULTS)}.")],
    percent: Annotated[float, typer.Option(help="dc-heat: share of server area, %.")] = 50.0,
    celsius: Annotated[float, typer.Option(help="dc-heat: temperature, °C.")] = 35.0,
    pair: Annotated[
        str | None,
        typer.Option(
            "--pair", help="dc-db-crash: crash only this database pair's DC primary (its id)."
        ),
    ] = None,
    root: RootOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Inject a fault the way it happens (a crash is pg_ctl stop -m immediate).

    DC faults hit the whole DC: every DC database and app of a site lab; dc-db-crash crashes
    every DC primary unless --pair names one."""
    if fault not in FAULTS:
        fail(f"unknown fault {fault!r}; choose one of: {', '.join(FAULTS)}", code=2)
    try:
        what = _lab(root, verbose=False).break_(fault, percent=percent, celsius=celsius, pair=pair)
    except DrpError as exc:
        fail(str(exc))
    if json_out:
        emit_json({"fault": fault, "effect": what})
    else:
        console.print(f"[yellow]⚡[/] {what}", highlight=False)


@app.command()
def repair(root: RootOpt = None, json_out: JsonOpt = False) -> None:
    """Clear every injected fault (never starts the old primary beside a promoted DRC)."""
    try:
        done = _lab(root, verbose=not json_out).repair()
    except DrpError as exc:
        fail(str(exc))
    if json_out:
        emit_json({"repaired": done})
    else:
        for line in done:
            console.print(f"[green]✓[/] {line}", highlight=False)


@app.command()
def down(
    purge: Annotated[bool, typer.Option("--purge", help="Also delete the lab directory.")] = False,
    root: RootOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Stop everything the lab started, by process id."""
    stopped = _lab(root, verbose=False).down(purge=purge)
    if json_out:
        emit_json({"stopped": stopped, "purged": purge})
    else:
        console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


def _print_status(st: dict) -> None:
    comps = st["components"]
    table = Table(title=f"drp lab at {st['root']}", show_lines=False)
    for col in ("component", "endpoint", "up", "role / state", "detail"):
        table.add_column(col)
    for name in ("dc-db", "drc-db", "ops-db"):
        c = comps[name]
        detail = _replication_detail(c)
        role = c["role"] + (" (writable)" if c.get("writable") else "")
        table.add_row(name, f"127.0.0.1:{c['port']}", _yn(c["up"]), role, detail)
    for pair in (st.get("pairs") or [])[1:]:  # a site lab's other pairs
        for side in ("dc", "drc"):
            name = pair[side]["name"]
            c = comps[name]
            role = c["role"] + (" (writable)" if c.get("writable") else "")
            endpoint = f"127.0.0.1:{c['port']}"
            table.add_row(name, endpoint, _yn(c["up"]), role, _replication_detail(c))
    for app in st.get("apps") or []:
        h = app.get("health") or {}
        table.add_row(
            app["name"],
            app["url"],
            _yn(app["up"]),
            h.get("db_role", "-"),
            (f"service={app['service']} " if st.get("runbook") else "")
            + (f"writable={h.get('writable')}" if h else ""),
        )
    fd = comps["frontdoor"]
    table.add_row(
        "frontdoor",
        fd["url"],
        _yn(fd["up"]),
        f"→ {fd['serving_site']}",
        f"configured={fd['configured_site']}",
    )
    table.add_row(
        "uplink",
        ",".join(map(str, comps["uplink"]["ports"])),
        _yn(comps["uplink"]["up"]),
        "",
        "DC network link",
    )
    ssh = comps["sshd"]
    table.add_row("sshd", f"{ssh['host']}:{ssh['port']}", _yn(ssh["up"]), "", ssh["user"])
    f = comps["facility"]
    temps = ", ".join(f"{z['zone']}={z['celsius']}°C" for z in f["server_zones"])
    table.add_row(
        "facility",
        f["file"],
        "",
        f"power={'on' if f['dc_power'] else 'OFF'}",
        f"network={'up' if f['national_network'] else 'DOWN'} {temps}",
    )
    for pair in st.get("extra_pairs") or []:
        for side in ("dc", "drc"):
            c = pair[side]
            detail = _replication_detail(c)
            role = c["role"] + (" (writable)" if c.get("writable") else "")
            table.add_row(c["name"], f"127.0.0.1:{c['port']}", _yn(c["up"]), role, detail)
    console.print(table)
    if st.get("runbook"):
        console.print(f"site lab of {st['runbook']}", highlight=False)
        pairs = Table(title="database pairs", show_lines=False)
        for col in ("pair", "groups", "dc", "drc", "streaming", "sync", "lag"):
            pairs.add_column(col)
        for p in st["pairs"]:
            pairs.add_row(
                p["id"],
                f"{p['primary_group']} / {p['standby_group']}",
                f"{p['dc']['name']}: {p['dc']['role']}",
                f"{p['drc']['name']}: {p['drc']['role']}",
                _yes(p["streaming"]),
                p["sync_state"] or "-",
                "-" if p["lag_bytes"] is None else f"{p['lag_bytes']} B",
            )
        console.print(pairs)
        routes = Table(title="front-door routes", show_lines=False)
        for col in ("service", "url", "serving", "configured"):
            routes.add_column(col)
        for r in st["routes"]:
            routes.add_row(
                r["service"], r["url"], str(r["serving_site"]), str(r["configured_site"])
            )
        console.print(routes)
    console.print(f"active site behind the front door: [bold]{st['active_site']}[/]")
    if st.get("server_dir"):
        console.print(
            f"server directory (PostgreSQL data and logs, outside the root): {st['server_dir']}",
            highlight=False,
        )


def _replication_detail(c: dict) -> str:
    """A standby's streaming and lag, or a primary's standbys and their sync state."""
    if "replication" in c:
        r = c["replication"]
        return (
            f"streaming={r['streaming']} lag={r['lag_bytes']} B "
            f"replay_delay={_fmt_s(r['replay_delay_s'])}"
        )
    if c.get("standbys"):
        return "; ".join(
            f"{s['application_name']}: {s['state']}/{s['sync_state']} lag={s['lag_bytes']} B"
            for s in c["standbys"]
        )
    return ""


def _yes(flag: bool) -> str:
    return "[green]yes[/]" if flag else "[red]no[/]"


def _yn(flag: bool) -> str:
    return "[green]up[/]" if flag else "[red]down[/]"


def _fmt_s(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}s"
