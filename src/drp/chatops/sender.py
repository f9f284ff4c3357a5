"""The sender: drains the ChatOps outbox to Slack, off the failover's critical path.

A flow only *queues* (one insert in ``ops-db``); this sender posts, in queue order, from a
background thread of the flow's process (:func:`background_sender`) and/or from
``drp chatops serve`` / ``drp chatops drain``. One sender at a time holds the drainer lock, so
two of them never race on the same thread.

Never repeat: a message is marked ``sending`` *before* the Slack call and ``sent`` after it.
A message found ``sending`` (an earlier attempt crashed, timed out, or got a 5xx) may already be
in Slack, so the sender first looks for its idempotency key in the channel's history or the
thread's replies (Slack message metadata) and only posts when it is not there. Updates of the
status message are idempotent and need no lookup; an update overtaken by a newer one is
skipped (``superseded``).

Never lose: a 429, a 5xx, a timeout or a refused token leaves the message queued with the
reason; the sender waits (``Retry-After`` when Slack gives one, otherwise a capped backoff) and
tries the same message again, so the order holds. A message Slack refuses for what it is
(``channel_not_found``, ``invalid_blocks``...) is marked ``failed`` with Slack's reason, and the
queue moves on.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg

from drp.adapters.chatops import ChatError, SlackChat
from drp.adapters.outbox import Outbox, Row
from drp.errors import DrpError

log = logging.getLogger("drp.chatops")

CRASH_HOOK = "DRP_CHATOPS_CRASH_AFTER_SEND"
"""Fault injection for tests and drills: the process dies (exit 70) right after Slack accepted
the message with this key (or any message, with ``*``), before the outbox records it."""

MAX_BACKOFF_S = 30.0
LOOKBACK = timedelta(minutes=2)  # history read from a little before the first attempt


@dataclass
class DrainReport:
    """What one drain did."""

    sent: int = 0
    found_already_posted: int = 0
    failed: int = 0
    superseded: int = 0
    retries: int = 0
    locked_elsewhere: bool = False
    remaining: bool = False
    last_error: str = ""
    events: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "events"}


@dataclass(frozen=True)
class _Delivery:
    outcome: str  # sent | found | failed | superseded | retry
    why: str = ""
    wait_s: float = 0.0


class OutboxSender:
    """Delivers queued messages one by one, in order."""

    def __init__(
        self,
        outbox: Outbox,
        chat: SlackChat,
        *,
        backoff_base_s: float = 0.5,
        max_backoff_s: float = MAX_BACKOFF_S,
    ) -> None:
        self.outbox = outbox
        self.chat = chat
        self.backoff_base_s = backoff_base_s
        self.max_backoff_s = max_backoff_s
        self._failures = 0

    def drain(
        self, stop: threading.Event | None = None, *, deadline: float | None = None
    ) -> DrainReport:
        """Deliver until the queue is empty, ``stop`` is set or ``deadline`` (monotonic) passes."""
        stop = stop or threading.Event()
        report = DrainReport()
        with self.outbox.drainer_lock() as conn:
            if conn is None:
                report.locked_elsewhere = True
                return report
            while not stop.is_set():
                row = self.outbox.next_pending(conn)
                if row is None:
                    return report
                delivery = self._deliver(conn, row)
                report.events.append(f"{row.key}:{delivery.outcome}")
                if delivery.outcome == "retry":
                    report.retries += 1
                    report.last_error = delivery.why
                    if deadline is not None and time.monotonic() + delivery.wait_s > deadline:
                        report.remaining = True
                        return report
                    stop.wait(delivery.wait_s)
                    continue
                if self._failures:
                    log.warning("Slack answers again: delivering the queued messages in order")
                self._failures = 0
                if delivery.outcome == "sent":
                    report.sent += 1
                elif delivery.outcome == "found":
                    report.found_already_posted += 1
                elif delivery.outcome == "failed":
                    report.failed += 1
                    report.last_error = delivery.why
                else:
                    report.superseded += 1
                if deadline is not None and time.monotonic() > deadline:
                    report.remaining = self.outbox.next_pending(conn) is not None
                    return report
            report.remaining = True
        return report

    # -- one message ---------------------------------------------------------------------------
    def _deliver(self, conn: psycopg.Connection, row: Row) -> _Delivery:
        try:
            return self._deliver_or_raise(conn, row)
        except ChatError as exc:
            if exc.retryable or exc.auth:
                self._failures += 1
                wait = exc.retry_after or min(
                    self.max_backoff_s, self.backoff_base_s * 2 ** (self._failures - 1)
                )
                self.outbox.note(conn, row, str(exc))
                # Said once per outage, not at every retry: the outbox keeps the reason.
                level = logging.WARNING if self._failures == 1 else logging.DEBUG
                log.log(level, "chat message %s not delivered yet (will retry): %s", row.key, exc)
                return _Delivery("retry", str(exc), wait)
            self.outbox.mark(conn, row, "failed", str(exc))
            log.warning("chat message %s failed: %s", row.key, exc)
            return _Delivery("failed", str(exc))

    def _deliver_or_raise(self, conn: psycopg.Connection, row: Row) -> _Delivery:
        blocks = list(row.blocks) or None
        thread_ts: str | None = None
        channel = row.channel
        if row.kind in ("reply", "update"):
            root = self.outbox.thread_root(conn, row.thread_key)
            if root is None or root.state in ("failed", "superseded"):
                why = (
                    f"the thread's first message failed ({root.why})"
                    if root
                    else "the thread has no first message in the outbox"
                )
                self.outbox.mark(conn, row, "failed", why)
                return _Delivery("failed", why)
            if root.state != "sent" or not root.ts:
                # Cannot happen in id order (the root is queued first), but never post a reply
                # outside its thread: wait for the root.
                return _Delivery("retry", "waiting for the thread's first message", 1.0)
            channel, thread_ts = root.posted_channel or root.channel, root.ts
        if row.kind == "update":
            if self.outbox.newer_update_exists(conn, row):
                self.outbox.mark(conn, row, "superseded", "a newer status update is queued")
                return _Delivery("superseded")
            assert thread_ts is not None
            self.outbox.mark_sending(conn, row)
            self.chat.update(channel, thread_ts, row.text, blocks=blocks)
            self.outbox.mark_sent(conn, row, channel, thread_ts, "status message updated in place")
            return _Delivery("sent")
        if row.state == "sending":  # an earlier attempt may have landed: look before posting
            oldest = None
            if row.first_tried_at is not None:
                oldest = f"{(row.first_tried_at - LOOKBACK).timestamp():.6f}"
            found = self.chat.find_posted(channel, row.key, thread_ts=thread_ts, oldest=oldest)
            if found is not None:
                why = "found in Slack (posted by an earlier attempt): not posted again"
                self.outbox.mark_sent(conn, row, found.channel, found.ts, why)
                return _Delivery("found", why)
        self.outbox.mark_sending(conn, row)
        posted = self.chat.post(channel, row.text, blocks=blocks, thread_ts=thread_ts, key=row.key)
        hook = os.environ.get(CRASH_HOOK)
        if hook and hook in ("*", row.key):
            os._exit(70)
        self.outbox.mark_sent(conn, row, posted.channel, posted.ts, "")
        return _Delivery("sent")


# -- the background thread of a flow's process ------------------------------------------------


class BackgroundSender:
    """A daemon thread that drains whenever woken (after each enqueue) or every ``poll_s``.

    At interpreter exit it gets ``exit_grace_s`` to deliver what is left; anything still queued
    stays in the outbox for the next sender (``drp chatops serve`` or the next run).
    """

    def __init__(
        self,
        outbox: Outbox,
        chat_factory: Callable[[], SlackChat],
        *,
        poll_s: float = 2.0,
        exit_grace_s: float = 10.0,
    ) -> None:
        self.outbox = outbox
        self._chat_factory = chat_factory
        self.poll_s = poll_s
        self.exit_grace_s = exit_grace_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sender: OutboxSender | None = None
        self.last_report: DrainReport | None = None

    def start(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="drp-chatops-sender", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self._sender = self._sender or OutboxSender(
                    self.outbox,
                    self._chat_factory(),
                    max_backoff_s=float(os.environ.get("DRP_SLACK_MAX_BACKOFF_S", MAX_BACKOFF_S)),
                )
                self.last_report = self._sender.drain(self._stop)
            except DrpError as exc:
                log.warning("chat sender: %s", exc)
            except Exception:  # the sender must never die quietly
                log.exception("chat sender failed; retrying")
            self._wake.wait(self.poll_s)

    def stop(self, grace_s: float | None = None) -> DrainReport | None:
        """Stop the thread; with ``grace_s``, first give it that long to empty the queue."""
        if grace_s:
            deadline = time.monotonic() + grace_s
            self._stop.set()
            if self._thread:
                self._thread.join(timeout=grace_s)
            try:
                sender = OutboxSender(self.outbox, self._chat_factory())
                return sender.drain(deadline=deadline)
            except DrpError as exc:
                log.warning("chat sender at exit: %s", exc)
                return None
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)
        return None


_senders: dict[tuple[str, str], BackgroundSender] = {}
_lock = threading.Lock()


def background_sender(
    outbox: Outbox, chat_factory: Callable[[], SlackChat], *, base_url: str
) -> BackgroundSender:
    """The process's one background sender for this outbox and Slack endpoint (started)."""
    with _lock:
        key = (outbox.dsn, base_url)
        sender = _senders.get(key)
        if sender is None:
            grace = float(os.environ.get("DRP_SLACK_EXIT_GRACE_S", "10"))
            sender = BackgroundSender(outbox, chat_factory, exit_grace_s=grace)
            _senders[key] = sender
            if len(_senders) == 1:
                atexit.register(_drain_at_exit)
        sender.start()
        return sender


def stop_background_senders(grace_s: float | None = None) -> None:
    """Stop every background sender of this process (tests, and the exit hook)."""
    with _lock:
        senders = list(_senders.values())
        _senders.clear()
    for sender in senders:
        sender.stop(grace_s)


def _drain_at_exit() -> None:
    with _lock:
        senders = list(_senders.values())
        _senders.clear()
    for sender in senders:
        sender.stop(sender.exit_grace_s)
