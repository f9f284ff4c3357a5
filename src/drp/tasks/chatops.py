"""The Slack notifier a flow gets from :func:`drp.notify.build_notifiers` when ChatOps is set up.

It never talks to Slack itself: each event becomes messages (``drp.domain.chatops``) that are
queued in ``ops-db`` in one short transaction, recorded in the ledger (``chatops.queued``, with
their idempotency keys) and handed to the process's background sender
(:mod:`drp.chatops.sender`). A step therefore waits at most for a local insert, bounded at two
seconds, and a failed insert is caught by :func:`drp.notify.notify_safely` like any other
notification failure.

What the thread says about the incident (category, declarer, basis, the flow run to resume)
is read from the run's own ledger, which the flow writes before it notifies: the ledger is the
record of what happened, so the chat cannot say something the evidence does not.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drp.adapters.chatops import SlackChat
from drp.adapters.outbox import IncidentRecord, Outbox
from drp.domain.chatops import (
    IncidentFacts,
    OutgoingMessage,
    ThreadProgress,
    plan_messages,
    status_message,
)
from drp.domain.runbook import Runbook
from drp.errors import DrpError, PreconditionFailed
from drp.ledger import Ledger, read_records

log = logging.getLogger("drp.chatops")

# Events whose ledger record (same kind, written just before) completes what the event says.
_FROM_LEDGER = ("failover.completed", "failover.stopped", "approval.granted", "rto.warning")


def slack_configured(settings: Any) -> bool:
    """ChatOps is on when a token and a channel are set (the base URL has Slack's default)."""
    return bool(getattr(settings, "slack_token", None) and getattr(settings, "slack_channel", None))


def chat_for(settings: Any) -> SlackChat:
    """The Slack client the settings describe (the token stays inside it)."""
    return SlackChat(
        settings.slack_token,
        base_url=settings.slack_base_url,
        timeout_s=int(
            getattr(settings, "slack_timeout_s", 0) or _env_float("DRP_SLACK_TIMEOUT_S", 10)
        ),
    )


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def ops_dsn_for(settings: Any, runbook: Runbook | None = None) -> str | None:
    """The platform's own database: ``DRP_OPS_DSN``, or the lab's ``ops-db`` (None: none)."""
    from drp.topology import platform_dsn

    try:
        return platform_dsn(
            getattr(settings, "ops_dsn", None),
            getattr(settings, "lab_root", None),
            runbook.environment if runbook is not None else None,
        )
    except PreconditionFailed:
        return None


def run_url(flow_run_id: str) -> str:
    """The run's page in the Prefect UI (empty when no UI address is known)."""
    if not flow_run_id or "prefect" not in sys.modules:  # no Prefect here: no run to link
        return ""
    try:
        from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

        ui = PREFECT_UI_URL.value() or ""
        if not ui and PREFECT_API_URL.value():
            ui = str(PREFECT_API_URL.value()).removesuffix("/api")
    except Exception:  # no Prefect settings: the link is a nicety
        return ""
    return f"{str(ui).rstrip('/')}/runs/flow-run/{flow_run_id}" if ui else ""


def _load_runbook(path: str) -> Runbook | None:
    if not path:
        return None
    try:
        from drp.runbooks import load_runbook

        return load_runbook(path)
    except (DrpError, OSError) as exc:
        log.warning("chatops: cannot read runbook %s: %s", path, exc)
        return None


class SlackNotifier:
    """Queues an incident's messages in the outbox; the background sender posts them."""

    def __init__(
        self,
        outbox: Outbox,
        ledger: Ledger,
        *,
        flow: str,
        incident_id: str,
        mode: str,
        default_channel: str,
        runbook: Runbook | None = None,
        wake: Any = None,
    ) -> None:
        self.outbox = outbox
        self.ledger = ledger
        self.flow = flow
        self.incident_id = incident_id
        self.mode = mode
        self.default_channel = default_channel
        self.runbook = runbook
        self._wake = wake
        self._progress = ThreadProgress()
        self._facts: IncidentFacts | None = None
        self._runbook_path = ""
        self._lock = threading.Lock()
        self.clock_s = _env_float("DRP_SLACK_CLOCK_S", 60.0)
        self._done = threading.Event()
        self._ticker: threading.Thread | None = None

    # -- the live RTO clock ---------------------------------------------------------------------
    def _start_clock(self) -> None:
        """Refresh the status message every ``clock_s`` (``DRP_SLACK_CLOCK_S``, default 60 s)
        while the run goes on, so the RTO clock moves during a long step too. Refreshes are
        status updates: a queued one is superseded by the next, so an outage never piles up."""
        if self.clock_s <= 0 or self._ticker is not None:
            return
        self._ticker = threading.Thread(
            target=self._tick_loop, name="drp-chatops-clock", daemon=True
        )
        self._ticker.start()

    def _tick_loop(self) -> None:
        while not self._done.wait(self.clock_s):
            try:
                self._tick()
            except Exception as exc:  # a clock refresh is a nicety: never raise from here
                log.debug("chatops clock refresh not queued: %s", exc)

    def _tick(self) -> None:
        with self._lock:
            if self._done.is_set() or self._facts is None:
                return
            facts = self._facts
            fallback, blocks = status_message(facts, self._progress, datetime.now(UTC))
        key = f"{facts.thread_key}:status:clock-{uuid.uuid4().hex[:12]}"
        update = OutgoingMessage(
            key, "update", facts.incident_channel, facts.thread_key, fallback, blocks, "clock"
        )
        self.outbox.enqueue([update], incident_id=self.incident_id)
        if self._wake is not None:
            self._wake()

    def _final(self, event: str) -> bool:
        head, _, tail = event.partition(".")
        return head in (self.flow, "failover") and tail in (
            "completed",
            "stopped",
            "failed",
            "refused",
        )

    # -- facts --------------------------------------------------------------------------------
    def _ledger_facts(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for _, rec in read_records(self.ledger.directory):
            if isinstance(rec, str):
                continue
            if rec.kind == "ledger.open":
                found["runbook"] = (rec.data.get("meta") or {}).get("runbook") or ""
            elif rec.kind == "incident.declared":
                found["declaration"] = dict(rec.data)
            elif rec.kind == "declaration.reused":
                found.setdefault("declaration", {})
            elif rec.kind == "attempt.start":
                found["flow_run_id"] = rec.data.get("flow_run_id") or ""
                found.setdefault("runbook", rec.data.get("runbook") or "")
            elif rec.kind == "approval.requested":
                # The gate says which run pauses and, when given, whose declaration it judges.
                found["flow_run_id"] = rec.data.get("flow_run_id") or found.get("flow_run_id")
                for key in ("declared_by", "mode"):
                    if rec.data.get(key):
                        found.setdefault("declaration", {})[key] = rec.data[key]
        return found

    def _refresh_facts(self) -> IncidentFacts:
        seen = self._ledger_facts()
        self._runbook_path = seen.get("runbook") or self._runbook_path
        if self.runbook is None:
            self.runbook = _load_runbook(self._runbook_path)
        rb = self.runbook
        decl = seen.get("declaration") or {}
        declared_at = decl.get("declared_at")
        chat = rb.chat if rb else None
        coord = rb.coordination if rb else None
        channel = (
            (chat.incident if chat else "")
            or (coord.incident_channel if coord else "")
            or self.default_channel
        )
        parties: list[tuple[str, str]] = []
        if coord is not None:
            for field_name in (
                "teknis_kepabeanan",
                "teknis_fasilitas_cukai",
                "fasilitas_kepabeanan",
                "penindakan_penyidikan",
                "komunikasi_pengguna_jasa",
                "kepatuhan_internal",
            ):
                contact = getattr(coord, field_name)
                if contact is not None and contact.channel:
                    parties.append((contact.name or field_name, contact.channel))
            parties += [(c.name, c.channel) for c in coord.instansi_terkait if c.channel]
        flow_run_id = str(seen.get("flow_run_id") or "")
        previous = self._facts
        self._facts = IncidentFacts(
            incident_id=self.incident_id,
            flow=self.flow,
            mode=decl.get("mode") or self.mode,
            incident_channel=channel,
            category=decl.get("category") or (previous.category if previous else ""),
            declared_by=decl.get("declared_by") or (previous.declared_by if previous else ""),
            declarer_role=decl.get("declarer_role") or "",
            basis=_basis(decl),
            declared_at=datetime.fromisoformat(declared_at) if declared_at else None,
            rto_budget_s=min(s.rto_minutes for s in rb.services) * 60.0
            if rb and rb.services
            else None,
            steps_total=rb.step_count if rb and self.flow == "failover" else None,
            flow_run_id=flow_run_id,
            run_url=run_url(flow_run_id),
            user_channel=chat.user_notices if chat else "",
            coordination=tuple(parties),
        )
        return self._facts

    def _event_record(self, event: str) -> dict[str, Any]:
        last: dict[str, Any] = {}
        for _, rec in read_records(self.ledger.directory):
            if not isinstance(rec, str) and rec.kind == event:
                last = dict(rec.data)
        return last

    # -- Notifier ------------------------------------------------------------------------------
    def send(self, event: str, text: str, data: Mapping[str, Any]) -> None:
        with self._lock:
            first = self._facts is None
            if first or event in ("incident.declared", "approval.requested"):
                self._refresh_facts()
            facts = self._facts
            assert facts is not None
            merged = dict(data)
            if event in _FROM_LEDGER:
                merged = {**self._event_record(event), **merged}
                if event.startswith("failover.") and "report" not in merged:
                    merged["report"] = str(self.ledger.directory.parent / f"{self.flow}-report.md")
            now = datetime.now(UTC)
            messages = list(plan_messages(event, text, merged, facts, self._progress, now))
            if first and event != "incident.declared":
                # A flow that joins an incident (resync, failback) opens its thread if needed;
                # the root's key is fixed per incident, so an existing thread is reused.
                fallback, blocks = status_message(facts, self._progress, now)
                root_key = f"{facts.thread_key}:root"
                root = OutgoingMessage(
                    root_key, "root", facts.incident_channel, facts.thread_key, fallback, blocks
                )
                messages.insert(0, root)
            added = self.outbox.enqueue(messages, incident_id=self.incident_id)
            if first or event == "approval.requested":
                self.outbox.remember_incident(
                    IncidentRecord(
                        incident_id=self.incident_id,
                        flow=self.flow,
                        flow_run_id=facts.flow_run_id,
                        declared_by=facts.declared_by,
                        mode=facts.mode,
                        runbook=str(Path(self._runbook_path).resolve())
                        if self._runbook_path
                        else "",
                        channel=facts.incident_channel,
                    )
                )
            self.ledger.append(
                "chatops.queued",
                {
                    "event": event,
                    "channel": facts.incident_channel,
                    "keys": [m.key for m in messages],
                    "new": len(added),
                    "step_id": data.get("step_id"),
                },
            )
        if self._final(event):
            self._done.set()
        else:
            self._start_clock()
        if self._wake is not None:
            self._wake()


def _basis(declaration: Mapping[str, Any]) -> str:
    """The declaration's basis in one line: the given basis, else the triggers' articles."""
    basis = declaration.get("basis")
    if basis:
        return str(basis)
    triggers = declaration.get("triggers") or []
    return "; ".join(f"{t.get('article')}: {t.get('reason')}" for t in triggers)[:500]


def slack_notifier(
    ledger: Ledger,
    logger: logging.Logger | logging.LoggerAdapter,
    *,
    flow: str,
    incident_id: str,
    mode: str,
    settings: Any,
    runbook: Runbook | None = None,
) -> SlackNotifier | None:
    """The Slack notifier for this run, with its background sender started; None (and a
    ``chatops.unavailable`` record saying why) when the outbox cannot be reached."""
    from drp.chatops.sender import background_sender

    ledger.add_known_secrets(
        *(s for s in (settings.slack_token, getattr(settings, "slack_signing_secret", None)) if s)
    )
    dsn = ops_dsn_for(settings, runbook)
    if dsn is None:
        reason = "no ops-db: set DRP_OPS_DSN (or start the lab) for the ChatOps outbox"
        ledger.append("chatops.unavailable", {"reason": reason})
        logger.warning("Slack is configured but %s; notifications go to the log only", reason)
        return None
    outbox = Outbox(dsn)
    try:
        outbox.ensure_schema()
    except DrpError as exc:
        ledger.append("chatops.unavailable", {"reason": str(exc)})
        logger.warning("Slack outbox unavailable (%s); notifications go to the log only", exc)
        return None
    sender = background_sender(outbox, lambda: chat_for(settings), base_url=settings.slack_base_url)
    return SlackNotifier(
        outbox,
        ledger,
        flow=flow,
        incident_id=incident_id,
        mode=mode,
        default_channel=settings.slack_channel,
        runbook=runbook,
        wake=sender.wake,
    )
