"""Where PostgreSQL's programs are, and which user runs them: the lab's servers and the backup
verification's scratch restore both start PostgreSQL, which refuses to run as root."""

from __future__ import annotations

import glob
import os
import pwd
from pathlib import Path

from drp.errors import LabError


def find_pg_bin() -> Path:
    """PostgreSQL's binaries: ``DRP_PG_BIN`` or the newest ``/usr/lib/postgresql/<major>/bin``."""
    env = os.environ.get("DRP_PG_BIN")
    if env:
        return Path(env)
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda p: int(Path(p).parts[-3]),
    )
    if not found:
        raise LabError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql "
            "(hint: run `make setup`, which installs Debian's postgresql package)"
        )
    return Path(found[-1]).parent


def run_as_user() -> str | None:
    """The unprivileged user that runs the lab's servers when we are root, else None.

    PostgreSQL refuses to run as root; Debian's package creates ``postgres``.
    """
    if os.geteuid() != 0:
        return None
    name = os.environ.get("DRP_LAB_USER", "postgres")
    try:
        pwd.getpwnam(name)
    except KeyError as exc:
        raise LabError(
            f"running as root, the lab needs an unprivileged user {name!r} for PostgreSQL "
            "(hint: install Debian's postgresql package, or set DRP_LAB_USER)"
        ) from exc
    return name
