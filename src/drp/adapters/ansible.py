"""Ansible adapter (ansible-runner): a playbook call as data, its run, its result as data.

Commands as data, the way ansible-runner itself is built: a frozen :class:`PlaybookCall` says
what to run; pure functions (:func:`build_envvars`, :func:`build_runner_kwargs`,
:func:`build_command`) turn it into the environment and the ``ansible_runner.run`` arguments,
and unit tests check those directly. :func:`run_playbook` executes it, hands every runner event
to an ``event_handler`` as it happens (so a flow can stream them into the evidence ledger), and
returns a :class:`PlaybookResult`: per-host counts, failed tasks, unreachable hosts (kept apart:
"the DC cannot be reached" is not "fencing failed"), and the data plays publish with
``set_stats`` (``per_host: false``; ansible-runner only carries that part in its final event).

What a run may depend on is pinned here rather than inherited: ``ANSIBLE_CONFIG`` points at a
file written for the run (so no ``ansible.cfg`` in the working directory, the home directory or
``/etc/ansible`` changes a failover), host keys are checked, temp files stay inside the run's
private directory, and ansible-runner's job timeout really stops the run (the process group is
killed). The private directory is removed afterwards unless the caller keeps the artifacts.

Secrets never travel as extra vars (they would sit in the run's files and in events): playbooks
read the password file on the host. :class:`PlaybookCall` refuses extra vars that look secret.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from drp.errors import PlaybookFailed, RunbookError
from drp.polling import wait_until

REPO_ROOT = Path(__file__).resolve().parents[3]
PLAYBOOKS_DIR = REPO_ROOT / "playbooks"
INVENTORY_DIR = REPO_ROOT / "inventory"

DEFAULT_TIMEOUT_S = 300
DEFAULT_FORKS = 10
CONNECT_TIMEOUT_S = 10
# How often ansible-runner wakes up to check the job timeout and cancellation (its default, 5 s,
# would let a run overshoot its timeout by that much).
RUNNER_POLL_S = 0.5
RUNNER_STATUSES = ("successful", "failed", "timeout", "canceled")
# Every process of a run carries this in its environment (value: the run's private directory),
# so that what a stopped run leaves behind can be found and stopped (see _stop_leftovers).
RUN_MARKER_VAR = "DRP_ANSIBLE_RUN"

# Extra-var names that look like they carry a secret; ``*_file``/``*_path``/``*_dir`` name a
# place where a secret lives on the host, which is how playbooks are meant to get one.
_SECRET_NAME = re.compile(r"pass(word|wd|phrase)|secret|token|private_?key|api_?key|credential")
_PLACE_SUFFIXES = ("_file", "_path", "_dir")

EventHandler = Callable[[dict[str, Any]], None]


def _looks_secret(name: str) -> bool:
    lowered = name.lower()
    return bool(_SECRET_NAME.search(lowered)) and not lowered.endswith(_PLACE_SUFFIXES)


@dataclass(frozen=True)
class PlaybookCall:
    """One ``ansible-playbook`` run, described completely.

    ``timeout_s`` bounds the whole run (ansible-runner kills it and reports ``timeout``).
    ``artifacts_root`` is where the run's private directory is created (default: the system
    temp dir); with ``keep_artifacts`` it is left there and named in the result.
    """

    playbook: Path
    inventories: tuple[Path, ...]
    limit: str | None = None
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    check: bool = False
    timeout_s: int = DEFAULT_TIMEOUT_S
    forks: int = DEFAULT_FORKS
    verbosity: int = 0
    keep_artifacts: bool = False
    artifacts_root: Path | None = None

    def __post_init__(self) -> None:
        # Absolute: ansible-playbook runs in the playbook's directory, not the caller's.
        object.__setattr__(self, "playbook", Path(self.playbook).absolute())
        object.__setattr__(self, "inventories", tuple(Path(p).absolute() for p in self.inventories))
        object.__setattr__(self, "extra_vars", MappingProxyType(dict(self.extra_vars)))
        problems: list[str] = []
        if not self.inventories:
            problems.append("inventories: at least one inventory is needed")
        if self.timeout_s <= 0:
            problems.append(f"timeout_s: {self.timeout_s} must be positive")
        if self.forks < 1:
            problems.append(f"forks: {self.forks} must be at least 1")
        if not 0 <= self.verbosity <= 4:
            problems.append(f"verbosity: {self.verbosity} must be within 0..4")
        if self.limit is not None and not self.limit.strip():
            problems.append("limit: empty (use None for no limit)")
        for name in self.extra_vars:
            if not isinstance(name, str) or not name.isidentifier():
                problems.append(f"extra_vars: {name!r} is not a valid variable name")
            elif _looks_secret(name):
                problems.append(
                    f"extra_vars.{name}: looks like a secret; extra vars end up in the run's "
                    "files and events, so pass the path of a file on the host instead"
                )
        try:
            json.dumps(dict(self.extra_vars))
        except (TypeError, ValueError) as exc:
            problems.append(f"extra_vars: not JSON-serialisable ({exc})")
        if problems:
            raise RunbookError(
                f"invalid playbook call for {self.playbook.name}: " + "; ".join(problems),
                problems,
            )

    @property
    def name(self) -> str:
        return self.playbook.name


# -- pure builders -------------------------------------------------------------------------------
ANSIBLE_CFG = """\
# Written by drp for one playbook run. Every setting comes from the environment that
# drp.adapters.ansible.build_envvars builds; this file exists so that no ansible.cfg in the
# working directory, the home directory or /etc/ansible can change what a failover does.
[defaults]
"""

# One SSH connection per host is reused by every task of a run (ControlPersist): a new SSH
# handshake per task made fencing the DC over the uplink take 12 s instead of 3 s. The master
# dies with its TCP connection, so a cut network still makes the host unreachable.
SSH_ARGS = (
    "-o ControlMaster=auto -o ControlPersist=30s -o ControlPath=/tmp/drp-ssh-%C "
    "-o BatchMode=yes -o ServerAliveInterval=5 -o ServerAliveCountMax=3"
)


def build_envvars(
    call: PlaybookCall,
    private_data_dir: Path,
    *,
    bin_dir: Path,
    inherited_path: str,
) -> dict[str, str]:
    """The environment ansible-playbook runs with (on top of the caller's).

    - ``ANSIBLE_CONFIG``: the run's own, nearly empty, ``ansible.cfg``;
    - host keys checked; SSH never prompts (``BatchMode``); one master connection per host is
      shared by the run's tasks and lingers 30 s (``ControlPersist``);
    - pipelining on: modules go through stdin, no temp files on the host (and ``become`` to an
      unprivileged user needs no ACL tricks);
    - local temp inside the private data dir; no retry files, no colour, no cows;
    - an inventory source that does not parse is fatal, not a warning (a missing
      ``inventory-vars.yml`` must not silently run with no addresses), and so is a host pattern
      that names no group or host (a misspelt ``standby_group`` must not "pass" a preflight
      by checking nothing);
    - ``bin_dir`` first on PATH so the ``ansible-playbook`` beside this Python is the one used;
    - ``DRP_ANSIBLE_RUN``: marks every process of the run (see :func:`run_playbook`).
    """
    pdd = Path(private_data_dir)
    return {
        "ANSIBLE_CONFIG": str(pdd / "ansible.cfg"),
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_SSH_ARGS": SSH_ARGS,
        "ANSIBLE_SSH_RETRIES": "0",
        "ANSIBLE_TIMEOUT": str(CONNECT_TIMEOUT_S),
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_LOCAL_TEMP": str(pdd / "tmp"),
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_FORCE_COLOR": "False",
        "ANSIBLE_NOCOWS": "True",
        "ANSIBLE_GATHERING": "explicit",
        "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_ENABLED": "yaml,ini",
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True",
        "ANSIBLE_HOST_PATTERN_MISMATCH": "error",
        "PATH": os.pathsep.join(p for p in (str(bin_dir), inherited_path) if p),
        RUN_MARKER_VAR: str(pdd),
    }


def build_cmdline(call: PlaybookCall) -> str:
    """Options ansible-runner has no keyword for (``--check``)."""
    return "--check" if call.check else ""


def build_runner_kwargs(
    call: PlaybookCall,
    private_data_dir: Path,
    *,
    bin_dir: Path,
    inherited_path: str,
) -> dict[str, Any]:
    """Keyword arguments for ``ansible_runner.run`` (callbacks are added by :func:`run_playbook`).

    Extra vars go to ``env/extravars`` inside the private directory (ansible-runner's default),
    not onto the command line, where ``ps`` would show them.
    """
    kwargs: dict[str, Any] = {
        "private_data_dir": str(private_data_dir),
        "project_dir": str(call.playbook.parent),
        "playbook": str(call.playbook),
        "inventory": [str(p) for p in call.inventories],
        "envvars": build_envvars(
            call, private_data_dir, bin_dir=bin_dir, inherited_path=inherited_path
        ),
        "settings": {"pexpect_timeout": RUNNER_POLL_S},
        "timeout": call.timeout_s,
        "forks": call.forks,
        "quiet": True,
        "rotate_artifacts": 0,
    }
    if call.extra_vars:
        kwargs["extravars"] = dict(call.extra_vars)
    if call.limit:
        kwargs["limit"] = call.limit
    if call.verbosity:
        kwargs["verbosity"] = call.verbosity
    cmdline = build_cmdline(call)
    if cmdline:
        kwargs["cmdline"] = cmdline
    return kwargs


def build_command(call: PlaybookCall, *, syntax_check: bool = False) -> list[str]:
    """The equivalent ``ansible-playbook`` argument vector (for syntax checks and for the record).

    Extra vars appear as one JSON ``-e`` argument; they never hold secrets.
    """
    argv = ["ansible-playbook"]
    for inventory in call.inventories:
        argv += ["-i", str(inventory)]
    if call.limit:
        argv += ["--limit", call.limit]
    if call.extra_vars:
        argv += ["-e", json.dumps(dict(call.extra_vars), sort_keys=True)]
    if call.check:
        argv.append("--check")
    if call.forks != DEFAULT_FORKS:
        argv += ["--forks", str(call.forks)]
    if call.verbosity:
        argv.append("-" + "v" * call.verbosity)
    if syntax_check:
        argv.append("--syntax-check")
    argv.append(str(call.playbook))
    return argv


def lab_inventories(lab_root: Path) -> tuple[Path, Path]:
    """The two inventories of a lab: the groups (repo) and the variables ``drp lab up`` wrote.

    ``DRP_LAB_INVENTORY=ssh`` picks ``inventory/lab-ssh.yml``: every lab host over SSH through
    the lab's sshd with host-key checking, exactly as against remote hosts; the default
    (``lab.yml``) reaches the DRC's hosts with a local connection, which is faster."""
    name = "lab-ssh.yml" if os.environ.get("DRP_LAB_INVENTORY", "local") == "ssh" else "lab.yml"
    return (INVENTORY_DIR / name, Path(lab_root) / "inventory-vars.yml")


def playbook_path(name: str) -> Path:
    """A playbook of this repository by file name (``fence_primary.yml``)."""
    return PLAYBOOKS_DIR / name


# -- results -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HostStats:
    """The play recap of one host."""

    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


@dataclass(frozen=True)
class TaskFailure:
    """A task that failed (or could not reach its host), with Ansible's message."""

    host: str
    task: str
    msg: str


@dataclass(frozen=True)
class PlaybookResult:
    """What a playbook run did, as data.

    ``status`` is ansible-runner's: ``successful``, ``failed``, ``timeout`` or ``canceled``.
    ``stats_data`` is what the plays published with ``set_stats`` (``per_host: false``).
    ``error_output`` is Ansible's own error text when it stopped before running any play
    (syntax error, bad inventory). ``events_path``/``private_data_dir`` are set only when the
    artifacts were kept.
    """

    playbook: str
    status: str
    rc: int
    duration_s: float
    timeout_s: int
    stats: Mapping[str, HostStats]
    failed_tasks: tuple[TaskFailure, ...]
    unreachable_hosts: tuple[str, ...]
    unreachable_tasks: tuple[TaskFailure, ...] = ()
    stats_data: Mapping[str, Any] = field(default_factory=dict)
    error_output: str = ""
    events_path: Path | None = None
    private_data_dir: Path | None = None
    stopped_processes: tuple[int, ...] = ()

    @property
    def ok(self) -> bool:
        return (
            self.status == "successful"
            and self.rc == 0
            and not self.failed_tasks
            and not self.unreachable_hosts
        )

    @property
    def changed(self) -> bool:
        """True when any task on any host reported a change."""
        return any(s.changed for s in self.stats.values())

    @property
    def changed_hosts(self) -> tuple[str, ...]:
        return tuple(h for h, s in self.stats.items() if s.changed)

    def failure_message(self) -> str:
        """One paragraph naming what went wrong and what to do next ('' when it went well)."""
        if self.ok:
            return ""
        parts: list[str] = []
        if self.status == "timeout":
            stopped = (
                f" (with {len(self.stopped_processes)} leftover local process(es))"
                if self.stopped_processes
                else ""
            )
            parts.append(
                f"{self.playbook} did not finish within {self.timeout_s} s and was stopped"
                f"{stopped}; commands it had started on remote hosts may still be running, so "
                "check the hosts it was working on before running it again"
            )
        elif self.status == "canceled":
            parts.append(f"{self.playbook} was cancelled before it finished")
        if self.unreachable_tasks:
            detail = "; ".join(f"{u.host} ({u.msg})" for u in self.unreachable_tasks)
            parts.append(
                f"{self.playbook} could not reach {', '.join(self.unreachable_hosts)}: {detail}. "
                "Check the host, its network and SSH access; whether an unreachable site counts "
                "as lost is the flow's decision"
            )
        elif self.unreachable_hosts:
            parts.append(f"{self.playbook} could not reach {', '.join(self.unreachable_hosts)}")
        if self.failed_tasks:
            detail = "; ".join(f"{f.host}: task '{f.task}': {f.msg}" for f in self.failed_tasks)
            parts.append(f"{self.playbook} failed — {detail}")
        if not parts:
            tail = self.error_output.strip() or "no output"
            parts.append(
                f"{self.playbook}: ansible-playbook exited with rc {self.rc} before running any "
                f"task: {tail}"
            )
        return ". ".join(parts)

    def raise_for_failure(self) -> None:
        """Raise :class:`PlaybookRunFailed` (:class:`PlaybookUnreachable`) unless all went well."""
        if self.ok:
            return
        if self.unreachable_hosts and not self.failed_tasks and self.status == "failed":
            raise PlaybookUnreachable(self.failure_message(), self)
        raise PlaybookRunFailed(self.failure_message(), self)


class PlaybookRunFailed(PlaybookFailed):
    """A playbook run that did not succeed; ``result`` holds the whole :class:`PlaybookResult`."""

    def __init__(self, message: str, result: PlaybookResult) -> None:
        super().__init__(message)
        self.result = result


class PlaybookUnreachable(PlaybookRunFailed):
    """Every problem was an unreachable host: nothing on a reached host failed."""


# -- events --------------------------------------------------------------------------------------
def _task_msg(res: Any) -> str:
    """The most useful one-line message of a task result."""
    if not isinstance(res, Mapping):
        return str(res)[:500]
    if res.get("censored"):
        return str(res["censored"])
    msg = res.get("msg")
    if not msg and res.get("results"):
        msgs = [_task_msg(r) for r in res["results"] if isinstance(r, Mapping) and r.get("failed")]
        msg = "; ".join(m for m in msgs if m)
    stderr = str(res.get("stderr") or res.get("module_stderr") or "").strip()
    if not msg:
        msg = stderr or res.get("stdout") or ""
    elif stderr and stderr not in str(msg):
        # "non-zero return code" alone says nothing; the command's own words do.
        msg = f"{msg}: {stderr}"
    text = str(msg).strip()
    return text if len(text) <= 2000 else text[:2000] + " …"


class _EventCollector:
    """Receives ansible-runner events: keeps what the result needs, forwards each to the caller."""

    def __init__(self, handler: EventHandler | None) -> None:
        self.handler = handler
        self.failed: list[TaskFailure] = []
        self.unreachable: list[TaskFailure] = []
        self.final: dict[str, Any] | None = None
        self.handler_error: BaseException | None = None

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event")
        data = event.get("event_data") or {}
        if kind == "runner_on_failed" and not data.get("ignore_errors"):
            self.failed.append(
                TaskFailure(
                    str(data.get("host")), str(data.get("task")), _task_msg(data.get("res"))
                )
            )
        elif kind == "runner_on_unreachable":
            self.unreachable.append(
                TaskFailure(
                    str(data.get("host")), str(data.get("task")), _task_msg(data.get("res"))
                )
            )
        elif kind == "playbook_on_stats":
            self.final = data
        if self.handler is not None and self.handler_error is None:
            try:
                self.handler(event)
            except Exception as exc:  # the run is cancelled and the error re-raised afterwards
                self.handler_error = exc
        return True  # keep the event in the artifacts as well

    def stats(self) -> dict[str, HostStats]:
        data = self.final or {}
        hosts: set[str] = set()
        for key in ("processed", "ok", "changed", "failures", "dark", "skipped"):
            hosts.update((data.get(key) or {}).keys())

        def count(key: str, host: str) -> int:
            return int((data.get(key) or {}).get(host, 0))

        return {
            host: HostStats(
                ok=count("ok", host),
                changed=count("changed", host),
                failed=count("failures", host),
                unreachable=count("dark", host),
                skipped=count("skipped", host),
                rescued=count("rescued", host),
                ignored=count("ignored", host),
            )
            for host in sorted(hosts)
        }


@contextmanager
def _cancel_on_signals() -> Iterator[Callable[[], bool]]:
    """Turn SIGINT/SIGTERM during a run into a clean cancel, then deliver the signal.

    ansible-runner would install handlers of its own and never restore them; instead ours
    cancel the run (ansible-runner kills the playbook's process group) and, once the run is
    cleaned up and the previous handlers are back, the signal is raised again so the caller
    sees it as if it arrived afterwards. Outside the main thread (Prefect task threads) signals
    cannot be handled and nothing is installed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    received: list[int] = []

    def _handler(signum: int, _frame: Any) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: bool(received)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            signal.raise_signal(received[0])


def _scrub_command_artifact(artifact_dir: Path, keep: Sequence[str]) -> None:
    """ansible-runner saves the whole inherited environment beside the events; keep only ours.

    The caller's environment may hold tokens (Slack, S3) that must not land in kept artifacts.
    """
    path = artifact_dir / "command"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    env = record.get("env") or {}
    record["env"] = {k: v for k, v in env.items() if k in keep}
    path.write_text(json.dumps(record))


def _stop_leftovers(marker: str) -> tuple[int, ...]:
    """Kill what a finished run left running on this machine; return the process ids.

    ansible-core 2.19 puts every worker in a session of its own (``os.setsid``), so when
    ansible-runner kills the playbook's process group on a timeout or a cancel, the workers and
    the commands they run live on. Each of them carries ``DRP_ANSIBLE_RUN=<private dir>``; the
    process groups led by such ``ansible-playbook`` processes are killed, by id. A daemon a
    playbook started on purpose (``start_app.yml``) runs in a session of its own and is left
    alone. After a run that ended normally there is nothing to find.
    """
    proc_root = Path("/proc")
    if not proc_root.is_dir():
        return ()
    entry = f"{RUN_MARKER_VAR}={marker}".encode()
    me = os.getpid()
    groups: set[int] = set()
    singles: set[int] = set()
    for proc in proc_root.iterdir():
        if not proc.name.isdigit() or int(proc.name) == me:
            continue
        pid = int(proc.name)
        try:
            if entry not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            if b"ansible-playbook" not in (proc / "cmdline").read_bytes():
                continue
            pgid = os.getpgid(pid)
        except (OSError, ProcessLookupError):
            continue
        (groups if pgid == pid else singles).add(pid)
    members = _group_members(proc_root, groups) | singles
    stopped: list[int] = []
    for pgid in sorted(groups):
        try:
            os.killpg(pgid, signal.SIGKILL)
            stopped.append(pgid)
        except (OSError, ProcessLookupError):
            pass
    for pid in sorted(singles):
        try:
            os.kill(pid, signal.SIGKILL)
            stopped.append(pid)
        except (OSError, ProcessLookupError):
            pass
    # A SIGKILL takes effect when the process is next scheduled: on a loaded machine that is
    # not at once. "Stopped" must mean stopped (a command the playbook ran must not act after
    # the step has been reported as timed out), so wait, briefly, until each one has exited.
    wait_until(lambda: not any(_running(proc_root, pid) for pid in members), 5.0, 0.02)
    return tuple(stopped)


def _group_members(proc_root: Path, groups: set[int]) -> set[int]:
    """Every process in the process groups ``groups``."""
    found: set[int] = set()
    if not groups:
        return found
    for proc in proc_root.iterdir():
        if proc.name.isdigit():
            try:
                if os.getpgid(int(proc.name)) in groups:
                    found.add(int(proc.name))
            except (OSError, ProcessLookupError):
                continue
    return found


def _running(proc_root: Path, pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (a zombie has exited; it waits to be
    reaped by its parent and runs nothing)."""
    try:
        stat = (proc_root / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def _check_inputs(call: PlaybookCall) -> None:
    missing = [str(p) for p in (call.playbook, *call.inventories) if not p.is_file()]
    if missing:
        hint = ""
        if any(m.endswith("inventory-vars.yml") for m in missing):
            hint = " (`drp lab up` writes the lab's inventory-vars.yml)"
        raise RunbookError(
            f"{call.name}: file(s) not found: {', '.join(missing)}{hint}",
            [f"missing: {m}" for m in missing],
        )


def _result(
    call: PlaybookCall,
    collector: _EventCollector,
    runner: Any,
    duration_s: float,
    stopped: tuple[int, ...],
    private_data_dir: Path,
) -> PlaybookResult:
    """The result of a finished run, from what the collector kept and what the runner reports."""
    artifact_dir = Path(runner.config.artifact_dir)
    stats = collector.stats()
    unreachable = {u.host for u in collector.unreachable} | {
        host for host, s in stats.items() if s.unreachable
    }
    final = collector.final or {}
    return PlaybookResult(
        playbook=call.name,
        status=str(runner.status),
        rc=int(runner.rc if runner.rc is not None else -1),
        duration_s=duration_s,
        timeout_s=call.timeout_s,
        stats=MappingProxyType(stats),
        failed_tasks=tuple(collector.failed),
        unreachable_hosts=tuple(sorted(unreachable)),
        unreachable_tasks=tuple(collector.unreachable),
        stats_data=MappingProxyType(dict(final.get("artifact_data") or {})),
        # Ansible's own words when it stopped before the recap (syntax, inventory, pattern).
        error_output="" if collector.final else _tail(artifact_dir / "stdout"),
        events_path=artifact_dir / "job_events" if call.keep_artifacts else None,
        private_data_dir=private_data_dir if call.keep_artifacts else None,
        stopped_processes=stopped,
    )


# -- execution -----------------------------------------------------------------------------------
def run_playbook(
    call: PlaybookCall,
    event_handler: EventHandler | None = None,
    cancel: Callable[[], bool] | None = None,
) -> PlaybookResult:
    """Run the playbook and return its result (a failed play is a result, not an exception).

    ``event_handler`` receives each ansible-runner event (a dict) as it happens; it must not
    block for long. If it raises, the run is cancelled and the exception re-raised here once
    the run is cleaned up. ``cancel`` is polled about twice a second; returning True stops the
    run. Call :meth:`PlaybookResult.raise_for_failure` to turn failure into an exception.
    """
    import ansible_runner  # local: importing it costs time and is only needed to run

    _check_inputs(call)
    root = call.artifacts_root
    if root is not None:
        Path(root).mkdir(parents=True, exist_ok=True)
    pdd = Path(tempfile.mkdtemp(prefix=f"drp-ansible-{call.playbook.stem}-", dir=root))
    collector = _EventCollector(event_handler)
    try:
        (pdd / "tmp").mkdir(mode=0o700)
        (pdd / "ansible.cfg").write_text(ANSIBLE_CFG)
        kwargs = build_runner_kwargs(
            call,
            pdd,
            bin_dir=Path(sys.executable).parent,
            inherited_path=os.environ.get("PATH", os.defpath),
        )
        with _cancel_on_signals() as signalled:

            def _cancelled() -> bool:
                return (
                    collector.handler_error is not None
                    or signalled()
                    or bool(cancel is not None and cancel())
                )

            started = time.monotonic()
            try:
                runner = ansible_runner.run(
                    **kwargs, event_handler=collector, cancel_callback=_cancelled
                )
            except Exception as exc:  # ansible-runner's own configuration errors
                raise PlaybookFailed(
                    f"{call.name}: ansible-runner could not start the run: {exc}"
                ) from exc
            finally:
                leftovers = _stop_leftovers(str(pdd))
            result = _result(call, collector, runner, time.monotonic() - started, leftovers, pdd)
            if call.keep_artifacts:
                _scrub_command_artifact(
                    Path(runner.config.artifact_dir), keep=list(kwargs["envvars"])
                )
    finally:
        if not call.keep_artifacts:
            shutil.rmtree(pdd, ignore_errors=True)
    if collector.handler_error is not None:
        raise collector.handler_error
    return result


def syntax_check(call: PlaybookCall) -> list[str]:
    """``ansible-playbook --syntax-check``: the problems Ansible reports (empty when none)."""
    _check_inputs(call)
    with tempfile.TemporaryDirectory(prefix="drp-ansible-syntax-", dir=call.artifacts_root) as d:
        pdd = Path(d)
        (pdd / "tmp").mkdir()
        (pdd / "ansible.cfg").write_text(ANSIBLE_CFG)
        bin_dir = Path(sys.executable).parent
        env = {
            **os.environ,
            **build_envvars(
                call, pdd, bin_dir=bin_dir, inherited_path=os.environ.get("PATH", os.defpath)
            ),
        }
        argv = build_command(call, syntax_check=True)
        exe = shutil.which(argv[0], path=env["PATH"]) or argv[0]
        try:
            proc = subprocess.run(
                [exe, *argv[1:]],
                capture_output=True,
                text=True,
                env=env,
                cwd=str(call.playbook.parent),
                timeout=call.timeout_s,
            )
        except subprocess.TimeoutExpired:
            return [f"{call.name}: syntax check did not finish within {call.timeout_s} s"]
    if proc.returncode == 0:
        return []
    return _error_blocks(proc.stderr + "\n" + proc.stdout) or [
        f"{call.name}: ansible-playbook --syntax-check exited with rc {proc.returncode}"
    ]


def _error_blocks(output: str) -> list[str]:
    """Split Ansible's output into its ERROR messages (each with its origin lines)."""
    blocks: list[str] = []
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith(("[ERROR]", "ERROR!")):
            if current:
                blocks.append("\n".join(current).strip())
            current = [line]
        elif line.startswith("[WARNING]") or line.startswith("[DEPRECATION"):
            if current:
                blocks.append("\n".join(current).strip())
            current = None
        elif current is not None:
            current.append(line)
    if current:
        blocks.append("\n".join(current).strip())
    return blocks
