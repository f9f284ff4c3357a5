"""``drp chatops status|drain|serve|setup``: the Slack side of the platform (docs/chatops.md).

- ``status``: what the outbox holds: queued, sending, sent, failed, and why;
- ``drain``: deliver what is queued now, then exit (what a flow's process leaves behind when
  Slack was down is delivered by the next sender: this, ``serve`` or the next run);
- ``serve``: the interactivity endpoint (Approve / Reject buttons) plus a sender;
- ``setup``: the Prefect automation that reports failed or crashed DR flow runs.

Exit 0 on success, 1 when something is refused or left undelivered, 2 when the settings are
incomplete (which variable is missing is said).
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from drp.commands._output import console, emit_json, fail
from drp.errors import DrpError
from drp.settings import Settings

app = typer.Typer(help="ChatOps: Slack threads, the outbox, approvals from Slack, alerts.")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def _outbox(settings: Settings) -> Any:
    from drp.adapters.outbox import Outbox
    from drp.tasks.chatops import ops_dsn_for

    dsn = ops_dsn_for(settings)
    if not dsn:
        fail("no ops-db: set DRP_OPS_DSN (or start the lab with `drp lab up`)", code=2)
    return Outbox(dsn)


def _need(settings: Settings, *names: str) -> None:
    missing = [f"DRP_{n.upper()}" for n in names if not getattr(settings, n)]
    if missing:
        fail(f"set {', '.join(missing)} (see docs/chatops.md)", code=2)


def _record(command: str, settings: Settings, data: dict[str, Any]) -> None:
    """What a one-shot command did, in its own small ledger under evidence/chatops/."""
    from drp.ledger import Ledger

    run_id = f"{command}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"
    secrets = [s for s in (settings.slack_token, settings.slack_signing_secret) if s]
    ledger = Ledger.create(
        settings.evidence_dir / "chatops" / run_id,
        run_id,
        {"command": f"drp chatops {command}"},
        known_secrets=secrets,
    )
    ledger.append(f"chatops.{command}", data)
    ledger.close({"status": "done"})


@app.command("status")
def status(
    incident: Annotated[str | None, typer.Option(help="Only this incident's messages.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """What is queued, sent and failed in the outbox, and why."""
    settings = Settings()
    try:
        report = _outbox(settings).status(incident_id=incident)
    except DrpError as exc:
        fail(str(exc), code=2)
    report["slack"] = {
        "configured": bool(settings.slack_token and settings.slack_channel),
        "base_url": settings.slack_base_url,
        "channel": settings.slack_channel,
    }
    if json_out:
        emit_json(report)
    else:
        counts = report["counts"]
        console.print(
            "Outbox: "
            + ", ".join(f"{n} {state}" for state, n in counts.items())
            + f" — Slack {'configured' if report['slack']['configured'] else 'NOT configured'}"
            f" ({settings.slack_base_url})",
            highlight=False,
        )
        if report["pending"]:
            table = Table(title="Not sent (oldest first)")
            for col in ("id", "state", "tries", "incident", "event", "channel", "why"):
                table.add_column(col)
            for row in report["pending"]:
                table.add_row(
                    str(row["id"]),
                    row["state"],
                    str(row["attempts"]),
                    row["incident_id"],
                    row["event"],
                    row["channel"],
                    row["why"] or "waiting for the sender",
                )
            console.print(table)
        for row in report["recently_sent"]:
            console.print(
                f"  sent {row['sent_at']}  {row['incident_id']}  {row['event']}  {row['why']}",
                highlight=False,
            )
    raise typer.Exit(1 if report["counts"]["failed"] else 0)


@app.command("drain")
def drain(
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 60.0,
    json_out: JsonOpt = False,
) -> None:
    """Deliver every queued message now (in order), then exit."""
    from drp.chatops.sender import OutboxSender
    from drp.tasks.chatops import chat_for

    settings = Settings()
    _need(settings, "slack_token")
    try:
        sender = OutboxSender(_outbox(settings), chat_for(settings))
        report = sender.drain(deadline=time.monotonic() + timeout)
        _record("drain", settings, {"report": report.as_dict(), "delivered": report.events})
    except DrpError as exc:
        fail(str(exc), code=2)
    if json_out:
        emit_json(report.as_dict())
    else:
        console.print(
            f"sent {report.sent}, found already posted {report.found_already_posted}, "
            f"failed {report.failed}, superseded {report.superseded}, retries {report.retries}"
            + (" — another sender holds the outbox" if report.locked_elsewhere else "")
            + (f" — still queued: {report.last_error}" if report.remaining else ""),
            highlight=False,
        )
    raise typer.Exit(1 if report.remaining or report.failed else 0)


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Listen address (put a TLS proxy in front).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Listen port.")] = 3080,
    runbook: Annotated[
        Path | None, typer.Option(help="Judge clicks with this runbook's roster.")
    ] = None,
    sender: Annotated[bool, typer.Option(help="Also drain the outbox to Slack.")] = True,
) -> None:
    """The interactivity endpoint (POST /slack/interactivity) for Approve / Reject buttons."""
    from drp.chatops.interact import PATH, Interactions, make_server
    from drp.chatops.sender import BackgroundSender
    from drp.ledger import Ledger
    from drp.tasks.chatops import chat_for

    settings = Settings()
    _need(settings, "slack_signing_secret")
    if sender:
        _need(settings, "slack_token")
    outbox = _outbox(settings)
    secrets = [s for s in (settings.slack_token, settings.slack_signing_secret) if s]
    run_id = f"serve-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"
    try:
        outbox.ensure_schema()
        ledger = Ledger.create(
            settings.evidence_dir / "chatops" / run_id,
            run_id,
            {"command": "drp chatops serve", "host": host, "port": port},
            known_secrets=secrets,
        )
    except DrpError as exc:
        fail(str(exc), code=2)
    background = None
    if sender:
        background = BackgroundSender(outbox, lambda: chat_for(settings))
        background.start()
    interactions = Interactions(
        outbox,
        settings.slack_signing_secret or "",
        ledger,
        runbook_override=runbook,
        wake=background.wake if background else None,
    )
    server = make_server(interactions, host, port)
    stop = threading.Event()

    def _stop(*_: Any) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    console.print(
        f"listening on http://{host}:{port}{PATH} (interactivity URL: put it behind HTTPS); "
        f"sender {'on' if background else 'off'}; evidence {ledger.directory}",
        highlight=False,
    )
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        if background:
            background.stop(grace_s=5)
        ledger.close({"stopped": datetime.now(UTC).isoformat()})
        console.print("stopped", highlight=False)


@app.command("setup")
def setup(json_out: JsonOpt = False) -> None:
    """Create the Prefect automation that reports failed or crashed DR flow runs to Slack."""
    from drp.chatops import alerts

    settings = Settings()
    _need(settings, "slack_token", "slack_channel")
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        fail(
            "set PREFECT_API_URL to your Prefect server (e.g. http://127.0.0.1:4200/api): an "
            "automation needs a running server, and a temporary one would forget it",
            code=2,
        )
    try:
        result = alerts.setup(
            settings.slack_token or "", settings.slack_base_url, settings.slack_channel or ""
        )
    except Exception as exc:  # Prefect's client raises many kinds; say which and stop
        fail(f"cannot create the Prefect automation: {type(exc).__name__}: {exc}", code=1)
    _record("setup", settings, result.as_dict())
    if json_out:
        emit_json(result.as_dict())
    else:
        console.print(
            f"{'replaced' if result.replaced else 'created'} automation "
            f"{result.automation_name} ({result.automation_id}): failed or crashed runs of "
            f"{', '.join(result.flows)} are reported to {result.channel} by Prefect's block "
            f"{result.block_name}",
            highlight=False,
        )
