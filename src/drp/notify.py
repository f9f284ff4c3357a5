"""Notifications: one interface, several channels. A notification never stops a failover.

The default :class:`LedgerLogNotifier` writes to the run's log and to the evidence ledger; the
Slack notifier (:class:`drp.tasks.chatops.SlackNotifier`, added by :func:`build_notifiers` when
ChatOps is configured) is another :class:`Notifier`. :func:`notify_safely` is what
flows call: any exception from a channel is caught and recorded, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from drp.ledger import Ledger


class Notifier(Protocol):
    """Anything that can tell people about an event."""

    def send(self, event: str, text: str, data: Mapping[str, Any]) -> None: ...


STEP_EVENT_PREFIX = "step."
"""A step's start and end (``step.started``, ``step.done``, ...): the run's log has them once,
from :func:`drp.tasks.steps.record_step`, so the log channel does not write them a second time."""


class LedgerLogNotifier:
    """Writes each notification to the ledger (``notification`` record) and to the run's log
    (but for a step's start and end, which the step recorder logs itself)."""

    def __init__(self, ledger: Ledger, logger: logging.Logger | logging.LoggerAdapter) -> None:
        self.ledger = ledger
        self.logger = logger

    def send(self, event: str, text: str, data: Mapping[str, Any]) -> None:
        if not event.startswith(STEP_EVENT_PREFIX):  # the step recorder logged it already
            self.logger.info("[notify] %s", text)
        self.ledger.append(
            "notification", {"event": event, "text": text, "channel": "log", **dict(data)}
        )


def build_notifiers(
    ledger: Ledger,
    logger: logging.Logger | logging.LoggerAdapter,
    *,
    flow: str,
    incident_id: str,
    mode: str,
    settings: Any = None,
    runbook: Any = None,
) -> list[Notifier]:
    """The notifiers a flow run uses: one place, so that a new channel (Slack) is added here
    and every flow (failover, resync, failback, drill, replication check) hears about it.

    ``flow``, ``incident_id`` and ``mode`` say which run is talking (a channel may group the
    messages of one incident into one thread); ``settings`` is a :class:`drp.settings.Settings`;
    ``runbook`` (a :class:`drp.domain.runbook.Runbook`, optional: otherwise the one named in the
    ledger is read) gives the chat channels and the roster.

    With ``DRP_SLACK_TOKEN`` and ``DRP_SLACK_CHANNEL`` set, a Slack notifier is added: it queues
    messages in the ``ops-db`` outbox and a background sender posts them (``drp.chatops``), so
    a slow or absent Slack never delays a step. Without them, nothing changes.
    """
    notifiers: list[Notifier] = [LedgerLogNotifier(ledger, logger)]
    from drp.tasks.chatops import slack_configured, slack_notifier

    if settings is not None and slack_configured(settings):
        try:
            slack = slack_notifier(
                ledger,
                logger,
                flow=flow,
                incident_id=incident_id,
                mode=mode,
                settings=settings,
                runbook=runbook,
            )
        except Exception as exc:  # ChatOps must never stop a flow from starting
            ledger.append("chatops.unavailable", {"reason": str(exc)})
            slack = None
        if slack is not None:
            notifiers.append(slack)
    return notifiers


def notify_safely(
    notifiers: list[Notifier], ledger: Ledger, event: str, text: str, **data: Any
) -> None:
    """Send through every notifier; a failure is recorded in the ledger and swallowed."""
    for notifier in notifiers:
        try:
            notifier.send(event, text, data)
        except Exception as exc:  # a notification failure must never stop a failover
            try:
                ledger.append(
                    "notification.failed",
                    {"event": event, "notifier": type(notifier).__name__, "error": str(exc)},
                )
            except Exception:
                logging.getLogger(__name__).exception("could not record a notification failure")
