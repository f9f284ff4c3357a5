"""Which Prefect server a ``drp`` flow command reports to, so that its run stays in the UI.

A DR run whose history disappears is no evidence to show anyone, so the flow commands (``drp
failover|resync|failback|drill``) do not use Prefect's temporary server by default:

1. ``PREFECT_API_URL`` set (environment or Prefect profile): that server — production's, at the
   DRC, or any other. Nothing else is started.
2. ``DRP_PREFECT_SERVER=temporary``: Prefect's temporary server for this one run (no UI
   afterwards); its start-up is given time enough on two loaded cores.
3. Otherwise, for a lab runbook: the lab's own server on ops-db (``drp server up``), started
   when it does not run, and used with its credentials. A runbook of another environment
   without ``PREFECT_API_URL`` is refused: a real failover must be recorded where the operators
   look, not in a throw-away server.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from drp.errors import DrpError, PreconditionFailed

MODE_ENV = "DRP_PREFECT_SERVER"
TEMPORARY = "temporary"
EPHEMERAL_STARTUP_S = "90"
"""Prefect's default (20 s) was seen to time out on two loaded cores ("Timed out while
attempting to connect to ephemeral Prefect API server"); a start takes 5-11 s unloaded."""


@dataclass(frozen=True)
class PrefectTarget:
    """Where the run goes: ``kind`` is ``given`` (PREFECT_API_URL), ``lab`` or ``temporary``;
    ``settings`` are the Prefect settings the run needs (none when Prefect has them already)."""

    kind: str
    api_url: str | None
    ui_url: str | None
    settings: Mapping[str, str] = field(default_factory=dict)

    @property
    def keeps_history(self) -> bool:
        return self.kind != TEMPORARY

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Prefect reads its settings once, at import: a change to ``os.environ`` now would be
        ignored, so the run's settings go through Prefect's own ``temporary_settings``."""
        if not self.settings:
            yield
            return
        import prefect.settings

        updates = {getattr(prefect.settings, name): value for name, value in self.settings.items()}
        with prefect.settings.temporary_settings(updates=updates):
            yield


def _configured_api() -> str | None:
    """PREFECT_API_URL as Prefect sees it (environment, profile, or a test harness)."""
    from prefect.settings import PREFECT_API_URL

    value = PREFECT_API_URL.value()
    return str(value) if value else None


def _runbook_environment(runbook: Path) -> str | None:
    try:
        from drp.runbooks import read_runbook

        data = read_runbook(runbook).data
    except (DrpError, OSError):
        return None  # the flow itself refuses a bad runbook, with every problem
    env = data.get("environment") if isinstance(data, dict) else None
    return str(env) if env else None


def ui_of(api_url: str) -> str:
    """The UI that belongs to an API (``PREFECT_UI_URL`` when set)."""
    given = os.environ.get("PREFECT_UI_URL")
    return given.rstrip("/") if given else api_url.rstrip("/").removesuffix("/api")


def use_prefect_server(runbook: Path, say: Callable[[str], None]) -> PrefectTarget:
    """Choose the server (see the module's docstring) and set this process up to use it."""
    given = _configured_api()
    if given:
        return PrefectTarget("given", given, ui_of(given))
    mode = os.environ.get(MODE_ENV, "").strip().lower()
    if mode == TEMPORARY:
        return PrefectTarget(
            TEMPORARY,
            None,
            None,
            {"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": EPHEMERAL_STARTUP_S},
        )
    if mode not in ("", "lab"):
        raise PreconditionFailed(
            f"{MODE_ENV}={mode!r}: choose 'lab' (the lab's server, the default) or "
            "'temporary' (no history), or set PREFECT_API_URL"
        )
    environment = _runbook_environment(runbook)
    if environment not in (None, "lab"):
        raise PreconditionFailed(
            f"{runbook} is a {environment} runbook and PREFECT_API_URL is not set: the run must "
            "be recorded on the DRC's Prefect server (export PREFECT_API_URL=https://.../api and "
            f"PREFECT_API_AUTH_STRING), or, knowingly without history, {MODE_ENV}=temporary"
        )
    from drp.prefect_server import for_lab

    orchestrator = for_lab(progress=say)
    status = orchestrator.server_status()
    if not status.get("healthy"):
        say("starting the lab's Prefect server on ops-db, so that this run stays in its UI")
        orchestrator.server_up()
    env = dict(orchestrator.client_env())
    api = env["PREFECT_API_URL"]
    return PrefectTarget("lab", api, ui_of(api), env)
