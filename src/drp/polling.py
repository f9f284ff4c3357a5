"""Waiting for something to become true, with a deadline: the one poll loop of the project.

Every wait in drp (a server accepting connections, a promoted database accepting writes, a
standby replaying up to a position) is a condition observed at an interval until it holds or a
deadline passes — never a fixed sleep. :func:`poll` also returns the last observation, so the
caller can say what it saw when the deadline passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(
    observe: Callable[[], T], done: Callable[[T], bool], timeout: float, interval: float = 0.05
) -> tuple[bool, T]:
    """Observe until ``done(observation)`` or ``timeout`` seconds pass (at least one look);
    return whether it was done, and the last observation."""
    deadline = time.monotonic() + timeout
    while True:
        seen = observe()
        if done(seen):
            return True, seen
        if time.monotonic() >= deadline:
            return False, seen
        time.sleep(interval)


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; return whether it held."""
    return poll(condition, bool, timeout, interval)[0]
