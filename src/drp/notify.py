"""Notifications: one interface, several channels. A notification never stops a failover.

The default :class:`LedgerLogNotifier` writes to the run's log and to the evidence ledger; the
Slack adapter (ChatOps issue) will be another :class:`Notifier`. :func:`notify_safely` is what
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


class LedgerLogNotifier:
    """Writes each notification to a logger and to the ledger (``notification`` record)."""

    def __init__(self, ledger: Ledger, logger: logging.Logger | logging.LoggerAdapter) -> None:
        self.ledger = ledger
        self.logger = logger

    def send(self, event: str, text: str, data: Mapping[str, Any]) -> None:
        self.logger.info("[notify] %s", text)
        self.ledger.append(
            "notification", {"event": event, "text": text, "channel": "log", **dict(data)}
        )


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
