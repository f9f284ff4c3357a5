"""SSH adapter (paramiko): run one command on a host whose identity has been verified.

Commands are data: :func:`build_command` turns an argument vector into the single shell-quoted
string SSH carries, and unit tests check it without a server. :func:`run` executes it.

Host keys come *only* from the ``known_hosts`` file named in the :class:`SshTarget` — never from
``~/.ssh`` or the system files, never added on first use — because in a disaster the one thing an
operator must not do is type commands into a machine that merely claims to be the DC. An unknown
host and a changed key are therefore errors with their own types (:class:`HostKeyUnknown`,
:class:`HostKeyChanged`) and messages that say how to verify the key out of band. Every failure
is an :class:`drp.errors.SshError`; the subclasses let a caller tell "the DC does not answer"
(:class:`SshUnreachable`) from "the DC answered but we must not or cannot log in".

Secrets: the private key file is read by paramiko and never appears in messages or results.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko

from drp.errors import SshError

DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_COMMAND_TIMEOUT_S = 60.0
_READ_CHUNK = 32768


class HostKeyUnknown(SshError):
    """The host is not in the given known_hosts file: refusing to trust it on first use."""


class HostKeyChanged(SshError):
    """The host offered a key other than the one in known_hosts (rebuilt host or an attacker)."""


class SshUnreachable(SshError):
    """Nothing answered SSH at the address (refused, timed out, no route, reset)."""


class SshAuthFailed(SshError):
    """The host answered but did not accept the key for that user."""


class SshCommandTimeout(SshError):
    """The command did not finish within its timeout (it may still be running on the host)."""


@dataclass(frozen=True)
class SshTarget:
    """Where to connect and how to prove both identities.

    ``key_file`` is the operator's private key; ``known_hosts`` the only file host keys are read
    from (OpenSSH format; ``[host]:port`` entries for ports other than 22).
    """

    host: str
    port: int
    user: str
    key_file: Path
    known_hosts: Path

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class CommandResult:
    """What a remote command did: exit status, its output, and the wall time (connect included)."""

    rc: int
    stdout: str
    stderr: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.rc == 0


# -- pure parts --------------------------------------------------------------------------------
def build_command(argv: Sequence[str]) -> str:
    """The one string SSH carries for ``argv``: every argument shell-quoted.

    SSH has no argument vector (the remote login shell parses a string), so quoting is what
    keeps ``pg_ctl -D '/data dir'`` or a value with ``;`` from turning into something else.
    """
    if isinstance(argv, str):
        raise ValueError("argv must be a sequence of arguments, not one string")
    if not argv:
        raise ValueError("argv is empty: there is no command to run")
    for arg in argv:
        if not isinstance(arg, str):
            raise ValueError(f"argument {arg!r} is not a string")
        if "\0" in arg:
            raise ValueError("an argument contains a NUL byte, which no shell can carry")
    return shlex.join(argv)


def host_key_name(host: str, port: int) -> str:
    """The name a host is filed under in known_hosts: ``host`` on port 22, else ``[host]:port``."""
    return host if port == 22 else f"[{host}]:{port}"


def known_hosts_entry(host: str, port: int, key: paramiko.PKey) -> str:
    """One known_hosts line for ``key`` at ``host:port`` (OpenSSH format)."""
    return f"{host_key_name(host, port)} {key.get_name()} {key.get_base64()}"


def load_known_hosts(path: Path) -> paramiko.HostKeys:
    """Read a known_hosts file; a missing or unreadable file is an error, not an empty trust."""
    keys = paramiko.HostKeys()
    try:
        keys.load(str(path))
    except FileNotFoundError as exc:
        raise SshError(
            f"known_hosts file {path} does not exist: create it with the verified host keys of "
            "the hosts you manage (this adapter never trusts a host on first use)"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SshError(f"cannot read known_hosts file {path}: {exc}") from exc
    return keys


def has_host_key(known_hosts: Path, host: str, port: int) -> bool:
    """True when ``known_hosts`` holds at least one key for ``host:port``."""
    return load_known_hosts(known_hosts).lookup(host_key_name(host, port)) is not None


# -- execution ---------------------------------------------------------------------------------
class _UnknownHostKey(paramiko.SSHException):
    def __init__(self, name: str, key: paramiko.PKey) -> None:
        super().__init__(f"{name} not found in known_hosts")
        self.name = name
        self.key = key


class _RejectUnknown(paramiko.RejectPolicy):
    """paramiko's RejectPolicy, raising a type of our own: the cause is never guessed from text."""

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        raise _UnknownHostKey(hostname, key)


def _connect(target: SshTarget, timeout: float) -> paramiko.SSHClient:
    """An authenticated client, or an :class:`SshError` that says which check failed."""
    known = load_known_hosts(target.known_hosts)
    if not target.key_file.is_file():
        raise SshError(
            f"private key {target.key_file} for {target.address} does not exist "
            "(check the inventory's key path)"
        )
    client = paramiko.SSHClient()
    for name in known:
        for key_type, key in known[name].items():
            client.get_host_keys().add(name, key_type, key)
    client.set_missing_host_key_policy(_RejectUnknown())
    name = host_key_name(target.host, target.port)
    try:
        client.connect(
            target.host,
            port=target.port,
            username=target.user,
            key_filename=str(target.key_file),
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            channel_timeout=timeout,
            allow_agent=False,
            look_for_keys=False,
        )
    except _UnknownHostKey as exc:
        client.close()
        raise HostKeyUnknown(
            f"{name} is not in {target.known_hosts}: refusing to connect to an unknown host. "
            f"It offered {exc.key.get_name()} {exc.key.fingerprint}; compare that fingerprint "
            "with the host's own (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub, read on its "
            f"console), then add the key to {target.known_hosts}"
        ) from None
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise HostKeyChanged(
            f"the host key of {name} has CHANGED: {target.known_hosts} expects "
            f"{exc.expected_key.get_name()} {exc.expected_key.fingerprint}, the host offered "
            f"{exc.key.get_name()} {exc.key.fingerprint}. This is a rebuilt host or someone "
            "in the middle: do not continue until the new key is verified out of band, then "
            f"replace the old entry in {target.known_hosts}"
        ) from None
    except paramiko.PasswordRequiredException as exc:
        client.close()
        raise SshError(
            f"private key {target.key_file} is encrypted: use an unencrypted key readable only "
            "by the platform's user (keys are never typed in during a failover)"
        ) from exc
    except paramiko.AuthenticationException as exc:
        client.close()
        raise SshAuthFailed(
            f"{target.address} refused the key {target.key_file}: check that its public half "
            f"is in ~{target.user}/.ssh/authorized_keys on the host and that the user is allowed "
            "to log in"
        ) from exc
    except TimeoutError as exc:
        client.close()
        raise SshUnreachable(
            f"no SSH answer from {target.host}:{target.port} within {timeout:.0f} s: check that "
            "the host is up and that the network and firewalls let SSH through"
        ) from exc
    except (paramiko.SSHException, OSError, EOFError) as exc:
        client.close()
        raise SshUnreachable(
            f"cannot open SSH to {target.host}:{target.port}: {_describe(exc)} (check that the "
            "host is up, that sshd listens on that port and that the network lets SSH through)"
        ) from exc
    return client


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def run(
    target: SshTarget,
    argv: Sequence[str],
    timeout: float = DEFAULT_COMMAND_TIMEOUT_S,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> CommandResult:
    """Run ``argv`` on ``target`` and wait at most ``timeout`` seconds for it to exit.

    Connecting has its own bound (``connect_timeout``), so a dead host fails fast. A non-zero
    exit status is data (``CommandResult.rc``), not an error: whether it matters is the
    caller's decision. SSH-level failures raise :class:`SshError` subclasses.
    """
    command = build_command(argv)
    started = time.monotonic()
    client = _connect(target, connect_timeout)
    try:
        transport = client.get_transport()
        if transport is None:  # pragma: no cover - connect() guarantees a transport
            raise SshUnreachable(f"SSH to {target.address} has no transport after connecting")
        try:
            channel = transport.open_session(timeout=connect_timeout)
            channel.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SshUnreachable(
                f"{target.address} accepted the login but not the command channel: {_describe(exc)}"
            ) from exc
        out, err = _collect(channel, time.monotonic() + timeout, target, argv, timeout)
        rc = channel.recv_exit_status()
    finally:
        client.close()
    return CommandResult(
        rc=rc,
        stdout=out.decode("utf-8", "replace"),
        stderr=err.decode("utf-8", "replace"),
        duration_s=time.monotonic() - started,
    )


def _collect(
    channel: paramiko.Channel,
    deadline: float,
    target: SshTarget,
    argv: Sequence[str],
    timeout: float,
) -> tuple[bytes, bytes]:
    """Read stdout and stderr together until the command exits (no pipe can fill and block)."""
    out = bytearray()
    err = bytearray()
    channel.settimeout(0.1)
    while True:
        progressed = False
        if channel.recv_ready():
            out += channel.recv(_READ_CHUNK)
            progressed = True
        if channel.recv_stderr_ready():
            err += channel.recv_stderr(_READ_CHUNK)
            progressed = True
        if (
            channel.exit_status_ready()
            and not channel.recv_ready()
            and not (channel.recv_stderr_ready())
        ):
            # Drain what arrived between the checks, then stop.
            return bytes(out), bytes(err)
        if time.monotonic() > deadline:
            channel.close()
            raise SshCommandTimeout(
                f"`{argv[0]}` on {target.address} did not finish within {timeout:.0f} s; it may "
                "still be running there (check before retrying)"
            )
        if not progressed:
            # Block briefly on stdout so a quiet command does not spin the CPU.
            try:
                chunk = channel.recv(_READ_CHUNK)
            except TimeoutError:
                continue
            if chunk:
                out += chunk
            else:
                time.sleep(0.02)  # stdout closed before exit: wait for the exit status


def probe(target: SshTarget, timeout: float = DEFAULT_CONNECT_TIMEOUT_S) -> bool:
    """Is the host reachable over SSH right now (a login and ``true`` succeed)?

    False only when nothing answers (refused, timed out, no route). A host that answers with
    an unknown or changed key, or refuses our key, raises: a ``False`` there would hide a
    security or configuration problem behind "the DC is down".
    """
    try:
        result = run(target, ["true"], timeout=timeout, connect_timeout=timeout)
    except (SshUnreachable, SshCommandTimeout):
        return False
    return result.ok
