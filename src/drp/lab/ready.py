"""When is the lab ready: every standby it keeps streams from its primary, and where synchronous
replication was asked, a commit on the primary really waits for the standby.

``drp lab up`` returns only then (or fails, naming the standby that did not get there and
showing the end of its log), so that whatever comes next — ``drp lab status``, a readiness
check, a drill — sees a lab that is what it claims, with no sleep in between.

"Really waits" is observed, not inferred from settings: ``synchronous_standby_names`` and
``pg_stat_replication.sync_state = 'sync'`` can both be in place a moment before commits start
waiting (the checkpointer publishes the new setting to the backends after a reload). So the
check pauses replay on the standby, commits one transaction on the primary (a logical
decoding message: WAL, and no table touched) with
``synchronous_commit = remote_apply``, and looks for that commit waiting (``wait_event =
'SyncRep'``); then replay resumes and the commit completes. A commit that does not wait
would return at once: then synchronous replication is not in effect, and the check says so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg

from drp.adapters import postgres as pg
from drp.errors import LabError, PostgresError
from drp.lab.pgcluster import Cluster
from drp.polling import poll

LOG_TAIL_LINES = 15


@dataclass(frozen=True)
class Link:
    """One replication link the lab keeps: ``standby`` streams from ``primary`` under
    ``application_name`` (its slot's name), synchronously when ``sync``."""

    standby: Cluster
    primary: Cluster
    application_name: str
    sync: bool = False


def missing(link: Link) -> str | None:
    """What keeps ``link`` from being ready (a sentence), or None when it is."""
    try:
        receiver = pg.receiver(link.standby.dsn())
        if not receiver.streaming:
            return f"{link.standby.name} has no streaming WAL receiver"
        if link.sync and receiver.replay_paused:  # someone's pause: not ours to lift
            return (
                f"replay on {link.standby.name} is paused, so the lab cannot show that commits "
                "wait for it (hint: SELECT pg_wal_replay_resume() on it)"
            )
        senders = {s.application_name: s for s in pg.senders(link.primary.dsn())}
    except PostgresError as exc:
        return str(exc)
    sender = senders.get(link.application_name)
    if sender is None or sender.state != "streaming":
        state = sender.state if sender else "not connected"
        return f"{link.primary.name} sees {link.application_name} as {state}"
    if link.sync and sender.sync_state != "sync":
        return f"{link.primary.name} lists {link.application_name} as {sender.sync_state}, not sync"
    try:
        if link.sync and not commits_wait(link):
            return f"a commit on {link.primary.name} did not wait for {link.standby.name}"
    except PostgresError as exc:
        return str(exc)
    return None


def commits_wait(link: Link, timeout: float = 5.0) -> bool:
    """Does a commit on the primary wait for the standby? Pause the standby's replay, commit
    with ``remote_apply`` and look for the commit waiting in ``SyncRep``; always resume (the
    caller has checked that replay was not paused already)."""
    primary_dsn = link.primary.dsn()
    pg.query(link.standby.dsn(), "SELECT pg_wal_replay_pause()")
    done = threading.Event()
    failure: list[BaseException] = []
    pid: list[int] = []

    def commit() -> None:
        try:
            with psycopg.connect(primary_dsn, autocommit=False, connect_timeout=3) as conn:
                pid.append(conn.info.backend_pid)
                conn.execute("SET LOCAL synchronous_commit = remote_apply")
                # WAL with an xid (an xid alone is committed without waiting for anyone)
                conn.execute("SELECT pg_logical_emit_message(true, 'drp-lab', 'sync probe')")
                conn.commit()
        except psycopg.Error as exc:
            failure.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=commit, name="drp-lab-sync-probe", daemon=True)
    worker.start()
    try:
        with pg.session(primary_dsn) as watcher:

            def waiting() -> bool | None:
                if done.is_set():
                    return False  # the commit came back without waiting
                if not pid:
                    return None
                rows = pg.query(
                    watcher,
                    "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event = 'SyncRep'",
                    (pid[0],),
                )
                return True if rows else None

            _, seen = poll(waiting, lambda v: v is not None, timeout, interval=0.01)
    finally:
        pg.query(link.standby.dsn(), "SELECT pg_wal_replay_resume()")
        worker.join(timeout=timeout)
    if failure:
        raise PostgresError(f"{link.primary.name}: the probe commit failed: {failure[0]}")
    return seen is True


def tail(path: object, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log (or a sentence saying it cannot be read)."""
    try:
        with open(str(path), errors="replace") as fh:
            return "".join(fh.readlines()[-lines:]).rstrip()
    except OSError as exc:
        return f"(cannot read {path}: {exc.strerror})"


def wait_ready(
    links: Sequence[Link], timeout: float, progress: Callable[[str], None] = lambda _: None
) -> float:
    """Return (the seconds it took) when every link is ready; raise LabError naming the first
    standby that is not when ``timeout`` seconds have passed, with what it lacks and the end of
    its log."""
    start = time.monotonic()
    pending = list(links)
    if pending:
        sync = [link.standby.name for link in pending if link.sync]
        progress(
            f"waiting until {len(pending)} standby server(s) stream"
            + (f" ({', '.join(sync)} synchronously)" if sync else "")
        )

    def still_missing() -> list[tuple[Link, str]]:
        out = []
        for link in list(pending):
            why = missing(link)
            if why is None:
                pending.remove(link)
            else:
                out.append((link, why))
        return out

    ok, seen = poll(still_missing, lambda m: not m, timeout, interval=0.1)
    if not ok:
        link, why = seen[0]
        others = [lk.standby.name for lk, _ in seen[1:]]
        raise LabError(
            f"{link.standby.name} does not stream from {link.primary.name} after {timeout:.0f} s"
            f" ({why})"
            + (f"; not ready either: {', '.join(others)}" if others else "")
            + f". Last lines of {link.standby.log}:\n{tail(link.standby.log)}"
        )
    return time.monotonic() - start
