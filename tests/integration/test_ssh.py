"""The SSH adapter against the lab's sshd: host keys verified, commands run, failures named."""

from __future__ import annotations

import socket
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from drp.adapters import ssh
from drp.lab.core import Lab

pytestmark = pytest.mark.integration


@pytest.fixture
def target(lab: Lab) -> ssh.SshTarget:
    sshd = lab.status()["components"]["sshd"]
    return ssh.SshTarget(
        host=sshd["host"],
        port=sshd["port"],
        user=sshd["user"],
        key_file=Path(sshd["private_key"]),
        known_hosts=Path(sshd["known_hosts"]),
    )


def _new_key(directory: Path, name: str) -> Path:
    path = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True
    )
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_runs_a_command_on_a_host_whose_key_is_known(target: ssh.SshTarget) -> None:
    result = ssh.run(target, ["sh", "-c", 'printf "%s|" "$1" "$2"; echo oops >&2', "-", "a b", "c"])
    assert result.rc == 0
    assert result.stdout == "a b|c|"
    assert result.stderr == "oops\n"
    assert 0 < result.duration_s < 10


def test_a_failing_command_is_data_not_an_error(target: ssh.SshTarget) -> None:
    result = ssh.run(target, ["sh", "-c", "exit 7"])
    assert result.rc == 7
    assert not result.ok


def test_refuses_a_host_whose_key_changed(target: ssh.SshTarget, tmp_path: Path) -> None:
    other = _new_key(tmp_path, "impostor")
    kind, blob = Path(f"{other}.pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"{ssh.host_key_name(target.host, target.port)} {kind} {blob}\n")
    with pytest.raises(ssh.HostKeyChanged) as err:
        ssh.run(replace(target, known_hosts=known), ["true"])
    message = str(err.value)
    assert "CHANGED" in message
    assert str(known) in message
    assert "verified out of band" in message


def test_refuses_an_unknown_host(target: ssh.SshTarget, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    with pytest.raises(ssh.HostKeyUnknown) as err:
        ssh.run(replace(target, known_hosts=known), ["true"])
    assert "unknown host" in str(err.value)
    assert "SHA256:" in str(err.value)  # the fingerprint to compare out of band


def test_a_key_the_host_does_not_accept_is_an_auth_failure(
    target: ssh.SshTarget, tmp_path: Path
) -> None:
    stranger = _new_key(tmp_path, "stranger")
    with pytest.raises(ssh.SshAuthFailed, match="authorized_keys"):
        ssh.run(replace(target, key_file=stranger), ["true"])


def test_a_command_that_outlives_its_timeout_is_stopped_waiting_for(
    target: ssh.SshTarget,
) -> None:
    with pytest.raises(ssh.SshCommandTimeout, match="did not finish within 1 s"):
        ssh.run(target, ["sleep", "30"], timeout=1)


def test_probe_says_yes_for_the_lab_and_no_when_nothing_listens(target: ssh.SshTarget) -> None:
    assert ssh.probe(target)
    assert not ssh.probe(replace(target, port=_free_port()), timeout=2)


def test_probe_does_not_hide_a_changed_key_behind_false(
    target: ssh.SshTarget, tmp_path: Path
) -> None:
    other = _new_key(tmp_path, "impostor")
    kind, blob = Path(f"{other}.pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"{ssh.host_key_name(target.host, target.port)} {kind} {blob}\n")
    with pytest.raises(ssh.HostKeyChanged):
        ssh.probe(replace(target, known_hosts=known))
