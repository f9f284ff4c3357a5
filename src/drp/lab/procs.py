"""The lab's processes are managed with :mod:`drp.procs` (nothing about them is lab-specific);
the names stay importable from here for the lab's modules."""

from drp.procs import (  # noqa: F401
    cmdline,
    kill_now,
    owned,
    pid_alive,
    read_pidfile,
    run,
    spawn,
    terminate,
    terminate_all,
    wait_until,
)
