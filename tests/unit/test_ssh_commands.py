"""The SSH adapter's pure parts: command strings and known_hosts handling. No server needed."""

from __future__ import annotations

import shlex
from pathlib import Path

import paramiko
import pytest
from hypothesis import given
from hypothesis import strategies as st

from drp.adapters import ssh
from drp.errors import SshError

pytestmark = pytest.mark.unit


def test_arguments_with_spaces_and_shell_syntax_stay_single_arguments() -> None:
    argv = ["pg_ctl", "stop", "-D", "/data dir/main", "-m", "fast; rm -rf /"]
    command = ssh.build_command(argv)
    assert command == "pg_ctl stop -D '/data dir/main' -m 'fast; rm -rf /'"
    assert shlex.split(command) == argv


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\0")), min_size=1))
def test_the_remote_shell_sees_exactly_the_arguments_given(argv: list[str]) -> None:
    assert shlex.split(ssh.build_command(argv)) == argv


@pytest.mark.parametrize("bad", [[], "pg_ctl stop", ["ok", "nul\0byte"], ["ok", 3]])
def test_commands_that_cannot_be_carried_safely_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        ssh.build_command(bad)  # type: ignore[arg-type]


def test_known_hosts_names_a_non_standard_port_in_brackets() -> None:
    assert ssh.host_key_name("192.0.2.11", 22) == "192.0.2.11"
    assert ssh.host_key_name("127.0.0.1", 56422) == "[127.0.0.1]:56422"


def test_a_known_hosts_entry_is_found_only_for_its_host_and_port(tmp_path: Path) -> None:
    key = paramiko.ECDSAKey.generate()
    line = ssh.known_hosts_entry("127.0.0.1", 2222, key)
    assert line.startswith("[127.0.0.1]:2222 ecdsa-sha2-nistp256 ")
    known = tmp_path / "known_hosts"
    known.write_text(line + "\n")
    assert ssh.has_host_key(known, "127.0.0.1", 2222)
    assert not ssh.has_host_key(known, "127.0.0.1", 22)
    assert not ssh.has_host_key(known, "192.0.2.11", 2222)


def test_a_missing_known_hosts_file_is_an_error_not_an_empty_trust(tmp_path: Path) -> None:
    with pytest.raises(SshError, match="does not exist"):
        ssh.load_known_hosts(tmp_path / "nope")


def test_an_empty_known_hosts_file_trusts_nobody(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    assert not ssh.has_host_key(known, "127.0.0.1", 22)


def test_a_target_names_itself_without_its_key() -> None:
    target = ssh.SshTarget("192.0.2.11", 22, "drp-ops", Path("/k"), Path("/kh"))
    assert target.address == "drp-ops@192.0.2.11:22"
    with pytest.raises(AttributeError):
        target.port = 2222  # type: ignore[misc]


def test_every_ssh_failure_is_an_ssh_error() -> None:
    for cls in (
        ssh.HostKeyUnknown,
        ssh.HostKeyChanged,
        ssh.SshUnreachable,
        ssh.SshAuthFailed,
        ssh.SshCommandTimeout,
    ):
        assert issubclass(cls, SshError)
