"""``drp roster list|enroll|revoke|code``: who may answer the human gates, and their one-time
codes (docs/approvals.md).

- ``list``: the runbook's roster — name, role, whether they may approve or confirm, whether
  they are enrolled (never a secret);
- ``enroll NAME``: a new TOTP secret for a roster person, kept in ``DRP_APPROVER_SECRETS``
  (0600); prints the ``otpauth://`` URI once, for their authenticator app — it is not logged,
  recorded or shown again (``--replace`` gives a new one and voids the old);
- ``revoke NAME``: removes their secret (their codes stop working);
- ``code NAME``: the current code — only for the embedded lab's own roster file, so that a
  person trying the lab's UI (and the tests) can answer a gate; refused anywhere else.

Exit 0 on success, 1 when refused, 2 for bad arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from drp.commands._output import console, emit_json, fail
from drp.domain.approval import ISOLATION_ROLES
from drp.domain.runbook import Runbook
from drp.errors import DrpError
from drp.settings import Settings

app = typer.Typer(help="The roster's approvers and their one-time codes (docs/approvals.md).")

RunbookOpt = Annotated[Path, typer.Option("--runbook", help="The runbook whose roster this is.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def _runbook(path: Path) -> Runbook:
    from drp.runbooks import load_runbook

    try:
        return load_runbook(path)
    except DrpError as exc:
        fail(str(exc), code=2)


def _store():
    from drp.adapters.approvers import ApproverSecrets

    return ApproverSecrets(Settings().approver_secrets_file())


def _person(rb: Runbook, runbook: Path, name: str):
    person = rb.roster.by_name(name) if rb.roster else None
    if person is None:
        names = ", ".join(p.name for p in rb.roster.people) if rb.roster else "nobody"
        fail(
            f"{name!r} is not in the roster of {runbook} (roster.people: {names}); add them "
            "there first",
            code=2,
        )
    return person


@app.command("list")
def list_roster(runbook: RunbookOpt = Path("runbooks/lab.yaml"), json_out: JsonOpt = False) -> None:
    """Who is in the roster, what they may answer, and who is enrolled (no secrets)."""
    rb = _runbook(runbook)
    store = _store()
    try:
        enrolled = store.enrolled()
    except DrpError as exc:
        fail(str(exc))
    people = rb.roster.people if rb.roster else ()
    approver_roles = rb.roster.approver_roles if rb.roster else ()
    rows = [
        {
            "name": p.name,
            "role": p.role,
            "may_approve": p.role in approver_roles,
            "may_confirm_isolation": p.role in ISOLATION_ROLES,
            "slack_user_id": p.slack_user_id,
            "enrolled": p.name in enrolled,
            "enrolled_at": enrolled[p.name].enrolled_at if p.name in enrolled else None,
        }
        for p in people
    ]
    strays = sorted(set(enrolled) - {p.name for p in people})
    if json_out:
        emit_json({"secrets_file": str(store.path), "people": rows, "not_in_roster": strays})
        return
    table = Table(title=f"roster of {runbook} — secrets in {store.path}")
    for column in ("name", "role", "approve", "confirm isolation", "slack", "enrolled"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["name"],
            r["role"],
            "yes" if r["may_approve"] else "-",
            "yes" if r["may_confirm_isolation"] else "-",
            r["slack_user_id"] or "-",
            r["enrolled_at"] or "[yellow]not enrolled[/]",
        )
    console.print(table)
    if strays:
        console.print(
            f"enrolled but not in the roster (revoke them): {', '.join(strays)}", highlight=False
        )


@app.command("enroll")
def enroll(
    name: Annotated[str, typer.Argument(help="A name from the runbook's roster.people.")],
    runbook: RunbookOpt = Path("runbooks/lab.yaml"),
    replace: Annotated[
        bool, typer.Option("--replace", help="Give a new secret (the old codes stop working).")
    ] = False,
) -> None:
    """Create NAME's one-time-code secret and print, once, the URI for their authenticator."""
    rb = _runbook(runbook)
    person = _person(rb, runbook, name)
    store = _store()
    try:
        uri = store.enrol(person.name, replace=replace)
    except DrpError as exc:
        fail(str(exc))
    console.print(
        f"{person.name} ({person.role}) enrolled in {store.path}. Add this to their "
        "authenticator app now (as text, or as a QR code, e.g. with qrencode); it is shown "
        "only this once and recorded nowhere else:",
        highlight=False,
    )
    # Printed raw (not through rich): the URI must reach the terminal exactly as it is.
    typer.echo(uri)


@app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="Whose secret to remove.")],
) -> None:
    """Remove NAME's secret: their one-time codes stop working at once."""
    store = _store()
    try:
        removed = store.revoke(name)
    except DrpError as exc:
        fail(str(exc))
    if not removed:
        fail(f"{name} is not enrolled in {store.path}")
    console.print(f"{name}'s secret removed from {store.path}", highlight=False)


@app.command("code")
def code(
    name: Annotated[str, typer.Argument(help="A person of the lab's roster.")],
    runbook: RunbookOpt = Path("runbooks/lab.yaml"),
) -> None:
    """The current one-time code of NAME — for the embedded lab only (refused elsewhere)."""
    rb = _runbook(runbook)
    if rb.environment != "lab":
        fail(
            f"{runbook} is a {rb.environment} runbook: codes are shown only for the lab (a real "
            "approver reads theirs from their authenticator app)"
        )
    person = _person(rb, runbook, name)
    try:
        typer.echo(_store().code_now(person.name))
    except DrpError as exc:
        fail(str(exc))
