"""Where a lab's servers keep what their unprivileged users must reach.

Run as root, the lab starts PostgreSQL as ``postgres`` (it refuses to run as root) and nginx
with workers as ``nobody``. Those users must *enter* every directory on the way to what they
open: a data directory, PostgreSQL's log, initdb's password file, nginx's temporary files. A
checkout in root's home (mode 0700) or in a ``mktemp -d`` folder (0700) is closed to them, and
opening it up (a chmod of the user's home, an ACL on it) is not ours to do.

So the lab decides once, at its first ``drp lab up``, and records it in ``state.json``:

- the users can enter the lab's root: everything stays inside it (as before);
- they cannot: that state lives in a *server directory* of its own,
  ``/var/lib/drp-lab/<name>-<12 hex of sha256(root)>/`` (base ``DRP_LAB_SERVER_BASE``), owned by
  root, mode 0755, its ``pg/`` owned by ``postgres``; ``<root>/pg`` and
  ``<root>/logs/<server>.log`` are links to it, and a ``lab-root`` file in it names the lab it
  belongs to. ``drp lab down --purge`` removes it with the root; a server directory whose lab
  root is gone (deleted without ``--purge``) is removed by the next ``drp lab up`` that places
  one, unless one of its servers still runs.

When even that cannot work (the base itself is closed to the users), ``drp lab up`` stops with
an error that names the directory in the way, before anything starts.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from drp.errors import LabError
from drp.lab.procs import cmdline, pid_alive, read_pidfile, run

DEFAULT_BASE = Path("/var/lib/drp-lab")
MARKER = "lab-root"
"""File in a server directory holding the lab root it belongs to (for --purge and clean-up)."""

_SEARCH = 'for d in "$@"; do [ -x "$d" ] || { printf "%s" "$d"; exit 1; }; done'


def base_dir() -> Path:
    """Where server directories are made: ``DRP_LAB_SERVER_BASE`` or /var/lib/drp-lab."""
    raw = os.environ.get("DRP_LAB_SERVER_BASE")
    if not raw:
        return DEFAULT_BASE
    path = Path(raw)
    if not path.is_absolute():
        raise LabError(
            f"DRP_LAB_SERVER_BASE={raw!r} must be an absolute path (hint: /var/lib/drp-lab)"
        )
    return path


def server_dir_for(root: Path, base: Path | None = None) -> Path:
    """The server directory of the lab at ``root``: readable name, and a hash of the whole path
    so that two labs (two checkouts, two test roots) never share one."""
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{root.parent.name}-{root.name}").strip("._-")
    return (base or base_dir()) / f"{name[:48] or 'lab'}-{digest}"


def blocked_at(path: Path, user: str) -> Path | None:
    """The first directory on the way to ``path`` (``path`` included) that ``user`` may not
    enter, asked as that user (so ACLs and groups count), or None when the way is open."""
    chain = [*reversed(path.parents), path]
    res = run(["sh", "-c", _SEARCH, "sh", *map(str, chain)], user=user, check=False)
    if res.returncode == 0:
        return None
    return Path(res.stdout) if res.stdout else path


def first_block(path: Path, users: Sequence[str]) -> tuple[str, Path] | None:
    """(user, directory) for the first of ``users`` who cannot reach ``path``, or None."""
    for user in users:
        where = blocked_at(path, user)
        if where is not None:
            return user, where
    return None


def _safe_dir(path: Path, what: str) -> None:
    """Refuse a directory another user could have planted: it must be ours, not a link, and
    writable by nobody else."""
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise LabError(f"{what} {path} is not a plain directory (hint: remove it)")
    if st.st_uid != os.geteuid():
        raise LabError(f"{what} {path} belongs to uid {st.st_uid}, not to us (hint: remove it)")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise LabError(
            f"{what} {path} is writable by others (mode {stat.S_IMODE(st.st_mode):o}): anyone "
            "could plant a lab's files there (hint: chmod 755 it)"
        )


@contextmanager
def locked(base: Path) -> Iterator[None]:
    """Hold the base's lock: one lab at a time places, prunes or purges server directories
    there (test labs come and go in parallel)."""
    if not base.exists():
        base.mkdir(parents=True)
        os.chmod(base, 0o755)  # ours, made just now: whatever the umask, the users may enter
    _safe_dir(base, "the base of the lab's server directories")
    fd = os.open(base / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def prepare(server_root: Path, root: Path) -> bool:
    """Make the server directory and mark whose it is; link ``<root>/pg`` to it. Call it under
    :func:`locked`. True when the directory was made just now."""
    made = not server_root.exists()
    if made:
        server_root.mkdir()
        os.chmod(server_root, 0o755)
    _safe_dir(server_root, "the lab's server directory")
    marker = server_root / MARKER
    if marker.exists():
        owner = marker.read_text().strip()
        if owner != str(root):
            raise LabError(
                f"{server_root} belongs to the lab at {owner}, not {root} (hint: drp lab down "
                f"--purge --root {owner}, or set DRP_LAB_SERVER_BASE)"
            )
    else:
        marker.write_text(f"{root}\n")
    link(root / "pg", server_root / "pg")
    return made


def link(at: Path, target: Path) -> None:
    """``at`` becomes a symbolic link to ``target`` (so that the root still shows where things
    are); a real file or directory there is left alone."""
    if at.is_symlink():
        if Path(os.readlink(at)) == target:
            return
        at.unlink()
    elif at.exists():
        return
    at.parent.mkdir(parents=True, exist_ok=True)
    at.symlink_to(target)


def _recorded(root: Path) -> str | None:
    try:
        return json.loads((root / "state.json").read_text()).get("server_dir")
    except (OSError, ValueError, AttributeError):
        return None


def _running_postmasters(server_root: Path) -> list[int]:
    pids = []
    for pidfile in server_root.glob("pg/*/postmaster.pid"):
        pid = read_pidfile(pidfile)
        if pid and pid_alive(pid) and "postgres" in cmdline(pid):
            pids.append(pid)
    return pids


def prune_orphans(base: Path, keep: Path) -> list[Path]:
    """Remove the server directories under ``base`` whose lab is gone (its root no longer
    records it) and whose servers are all stopped; return what was removed. Call it under
    :func:`locked`, after recording the lab's own server directory in its state."""
    removed: list[Path] = []
    if not base.is_dir():
        return removed
    for candidate in sorted(base.iterdir()):
        marker = candidate / MARKER
        if candidate == keep or candidate.is_symlink() or not marker.is_file():
            continue
        owner = Path(marker.read_text().strip())
        if _recorded(owner) == str(candidate) or _running_postmasters(candidate):
            continue
        shutil.rmtree(candidate, ignore_errors=True)
        removed.append(candidate)
    return removed


def remove(server_root: Path, root: Path) -> bool:
    """Delete the lab's server directory (``drp lab down --purge``), only if its marker names
    this lab. True when it was removed."""
    if not server_root.parent.is_dir():
        return False
    with locked(server_root.parent):
        return remove_unlocked(server_root, root)


def remove_unlocked(server_root: Path, root: Path) -> bool:
    """:func:`remove`, for a caller that holds the lock."""
    try:
        owner = (server_root / MARKER).read_text().strip()
    except OSError:
        return False
    if owner != str(root):
        return False
    shutil.rmtree(server_root)
    return True
