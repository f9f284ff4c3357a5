"""Run one incident flow from the command line: load it, follow its ledger live, print the
outcome (or JSON), exit 0 only when the outcome's status is a success.

Shared by ``drp failover``, ``drp resync``, ``drp failback`` and ``drp drill``: each says which
flow, which ledger to follow, which records deserve a line, and how to print a success. When the
Prefect API is a real server (``PREFECT_API_URL``, or ``PREFECT_UI_URL``), the command names the
run's page in the UI as soon as the run writes its id into the ledger, and again at the end
(``run_url`` in ``--json``); with the temporary server there is no page to name.
"""

from __future__ import annotations

import contextvars
import os
import sys
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

import typer

from drp.commands._follow import following
from drp.commands._output import console, emit_json, err_console, fail
from drp.domain.classification import Role, UnknownChoice, category_from, role_from
from drp.errors import DrpError


def quiet_prefect() -> None:
    """Progress comes from the ledger; Prefect's own console lines would repeat it."""
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def check_incident_args(flow: str, incident_id: str, mode: str, runbook: Path) -> None:
    """The arguments every follow-up flow of an incident shares (resync, failback): refused
    with exit 2 and what to give instead."""
    if not incident_id.strip():
        fail(f"--incident-id ID is required: a {flow} belongs to an incident", code=2)
    if mode not in ("drill", "real"):
        fail(f"--mode {mode!r}: choose drill or real", code=2)
    if not runbook.exists():
        fail(f"no runbook at {runbook}", code=2)


def ask_code_if_needed(
    approved_by: str | None, code: str | None, mode: str, runbook: Any
) -> str | None:
    """An up-front approval that must be proven (real mode, or a drill the runbook wants two
    people for) needs the approver's one-time code: asked for, unechoed, on a terminal; without
    a terminal the flow refuses it and says to give ``--approval-code``."""
    if approved_by is None or code:
        return code
    needed = mode == "real" or bool(runbook.approval.two_person_rule)
    if not needed or not sys.stdin.isatty():
        return code
    import getpass

    return getpass.getpass(f"one-time code of {approved_by} (from their authenticator): ")


def checked_category(option: str, value: str | None) -> str | None:
    """A category option: the regulation's id for it (English accepted), or exit 2 with the
    choices."""
    if value is None:
        return None
    try:
        return category_from(value).value
    except UnknownChoice as exc:
        fail(f"{option}: {exc}", code=2)


def checked_role(option: str, value: str) -> Role:
    """A role option (``direktur``, ``kepala_kantor``; English accepted), or exit 2."""
    try:
        return role_from(value)
    except UnknownChoice as exc:
        fail(f"{option}: {exc}", code=2)


def run_page_url(flow_run_id: UUID | str | None) -> str | None:
    """``<ui>/runs/flow-run/<id>`` when the API is a real server (``PREFECT_UI_URL``, else
    derived from ``PREFECT_API_URL``); None with the temporary server, whose pages are gone
    when the command ends."""
    if flow_run_id is None:
        return None
    from prefect.utilities.urls import url_for

    return url_for("flow-run", obj_id=str(flow_run_id))


def run_flow_command(
    *,
    flow_file: str,
    flow_name: str,
    params: Mapping[str, Any],
    incident_id: str,
    follow_dir: Path,
    notable: Collection[str],
    ok_statuses: Collection[str],
    print_outcome: Callable[[dict[str, Any]], None],
    json_out: bool,
) -> None:
    """Run the flow in this process, reporting to the Prefect server that keeps its history
    (:mod:`drp.commands._orchestrator`: PREFECT_API_URL, else the lab's own server, started when
    needed), and exit with its verdict; a stop prints its reason (and the ledger) and exits 1."""
    quiet_prefect()
    from drp.commands._orchestrator import use_prefect_server
    from drp.flows import load

    def say(message: str) -> None:
        if not json_out:
            console.print(f"[cyan]•[/] {message}", highlight=False)

    try:
        target = use_prefect_server(Path(str(params.get("runbook", ""))), say)
    except DrpError as exc:
        fail(str(exc), code=2)
    with target.applied():
        _run_and_report(
            getattr(load(flow_file), flow_name),
            params,
            incident_id,
            follow_dir,
            notable,
            ok_statuses,
            print_outcome,
            json_out,
        )


def _run_and_report(
    flow_fn: Callable[..., Any],
    params: Mapping[str, Any],
    incident_id: str,
    follow_dir: Path,
    notable: Collection[str],
    ok_statuses: Collection[str],
    print_outcome: Callable[[dict[str, Any]], None],
    json_out: bool,
) -> None:
    outcome: dict[str, Any] | None = None
    error: str | None = None
    run_id: UUID | None = None

    # The follower thread does not inherit this thread's Prefect settings (a context variable):
    # it works out the URL in a copy of this context.
    here = contextvars.copy_context()

    def announce(flow_run_id: str) -> None:
        url = here.run(run_page_url, flow_run_id)
        if url:
            console.print(f"run page: {url}", highlight=False, soft_wrap=True)

    with following(follow_dir, notable, enabled=not json_out, on_run=announce):
        try:
            state = flow_fn(**params, return_state=True)
            run_id = state.state_details.flow_run_id
            result = state.result()
            # Flows hand back typed outcomes (drp.domain.outcomes); the command prints data.
            outcome = result.as_dict() if hasattr(result, "as_dict") else dict(result)
        except DrpError as exc:
            error = str(exc)
        except Exception as exc:  # Prefect wraps some failures (pause timeouts, crashes)
            error = f"{type(exc).__name__}: {exc}"
    url = run_page_url(run_id)
    if outcome is None:
        if json_out:
            emit_json(
                {
                    "incident_id": incident_id,
                    "status": "stopped",
                    "reason": error,
                    "ledger": str(follow_dir),
                    "run_url": url,
                }
            )
        err_console.print(f"[bold red]stopped:[/] {error}", highlight=False)
        if url:
            err_console.print(f"run page: {url}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    outcome = {**outcome, "run_url": url}
    if json_out:
        emit_json(outcome)
    else:
        print_outcome(outcome)
        if url:
            console.print(f"run page: {url}", highlight=False, soft_wrap=True)
    raise typer.Exit(0 if outcome.get("status") in ok_statuses else 1)
