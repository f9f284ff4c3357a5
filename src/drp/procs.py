"""Start and stop background processes (the lab's servers, Prefect's server and workers),
tracked by process id.

A pid is only signalled after checking that its command line still names its owner (the lab's
root), so a recycled pid never kills a stranger's process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from drp.errors import LabError
from drp.polling import wait_until


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie counts as dead.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def read_pidfile(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def owned(pid: int | None, marker: str) -> bool:
    """True when ``pid`` is alive and its command line contains ``marker`` (the lab root)."""
    return bool(pid) and pid_alive(pid) and marker in cmdline(pid)  # type: ignore[arg-type]


def spawn(argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> int:
    """Start a detached process (own session) writing to ``log``; return its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    return proc.pid


def terminate(pid: int | None, marker: str, timeout: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after ``timeout``, only if the pid is ours; True if it was running."""
    if not owned(pid, marker):
        return False
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    if wait_until(lambda: not pid_alive(pid), timeout):
        _reap(pid)
        return True
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), 5.0)
    _reap(pid)
    return True


def terminate_all(pids: list[int | None], marker: str, timeout: float = 10.0) -> list[int]:
    """:func:`terminate` for many processes at once: SIGTERM to each that is ours, then one
    wait for all of them (SIGKILL for the ones still alive after ``timeout``). Returns the
    pids that were running."""
    mine = [pid for pid in pids if pid and owned(pid, marker)]
    for pid in mine:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    if not wait_until(lambda: not any(pid_alive(p) for p in mine), timeout):
        for pid in mine:
            if pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not any(pid_alive(p) for p in mine), 5.0)
    for pid in mine:
        _reap(pid)
    return mine


def kill_now(pid: int | None, marker: str) -> bool:
    """SIGKILL at once (a power cut): no chance to clean up. True when it was running."""
    if not owned(pid, marker):
        return False
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), 5.0)
    _reap(pid)
    return True


def _reap(pid: int) -> None:
    """Collect a child we spawned ourselves (in the same Python process), if it is one."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def run(
    argv: Sequence[str],
    *,
    user: str | None = None,
    timeout: float = 120.0,
    check: bool = True,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion (as ``user`` via runuser when given), capturing output."""
    full = ["runuser", "-u", user, "--", *argv] if user else list(argv)
    try:
        result = subprocess.run(
            full,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input_text,
            cwd="/",
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"`{' '.join(argv)}` did not finish within {timeout:.0f} s") from exc
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise LabError(f"`{' '.join(argv)}` failed ({result.returncode}): " + " | ".join(detail))
    return result
