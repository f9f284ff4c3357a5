"""The lab's two inventories: local connections for the DRC (fast) and all-SSH (as production).

The same playbooks run through both against the real lab; in the SSH variant every host is
reached through the lab's sshd, with its host key checked, so a wrong key makes it refuse.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from drp.adapters import ansible as a
from drp.lab import sshd
from drp.lab.core import Lab

pytestmark = pytest.mark.integration

LOCAL = a.INVENTORY_DIR / "lab.yml"
SSH = a.INVENTORY_DIR / "lab-ssh.yml"
ALL_HOSTS = ("dc-db1", "dc-app1", "drc-db1", "drc-app1", "ops-db1", "lb1", "lab-ssh1")

WHO_CONNECTED = [
    {
        "name": "Report how each host was reached",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {
                "name": "the SSH session, if there is one",
                "shell": 'echo "${SSH_CONNECTION:-none}"',
                "register": "conn",
                "changed_when": False,
            },
            {
                "set_stats": {
                    "data": {"connections": "{{ {inventory_hostname: conn.stdout} }}"},
                    "per_host": False,
                    "aggregate": True,
                }
            },
        ],
    }
]


def _run(lab: Lab, inventory: Path, playbook: Path, *extra: Path, **kw: Any) -> a.PlaybookResult:
    inventories = (inventory, lab.cfg.inventory_vars, *extra)
    return a.run_playbook(a.PlaybookCall(playbook, inventories, timeout_s=90, **kw))


@pytest.fixture(scope="module")
def who_connected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plays") / "who_connected.yml"
    path.write_text(yaml.safe_dump(WHO_CONNECTED, sort_keys=False))
    return path


def _server_port(ssh_connection: str) -> int | None:
    """``SSH_CONNECTION`` is 'client_ip client_port server_ip server_port'."""
    parts = ssh_connection.split()
    return int(parts[3]) if len(parts) == 4 else None


def test_the_ssh_variant_reaches_every_host_through_the_lab_sshd(
    lab: Lab, who_connected: Path
) -> None:
    result = _run(lab, SSH, who_connected)
    assert result.ok, result.failure_message()
    seen = result.stats_data["connections"]
    assert set(seen) == set(ALL_HOSTS)
    ssh_port = lab.cfg.port("ssh")
    assert {h: _server_port(c) for h, c in seen.items()} == dict.fromkeys(ALL_HOSTS, ssh_port)


def test_the_local_variant_reaches_only_the_dc_over_ssh(lab: Lab, who_connected: Path) -> None:
    result = _run(lab, LOCAL, who_connected)
    assert result.ok, result.failure_message()
    seen = result.stats_data["connections"]
    ssh_port = lab.cfg.port("ssh")
    over_ssh = {h for h, c in seen.items() if _server_port(c) == ssh_port}
    assert over_ssh == {"dc-db1", "dc-app1", "lab-ssh1"}


def test_both_variants_run_a_real_playbook_to_the_same_answer(lab: Lab) -> None:
    play = a.playbook_path("check_replication.yml")
    answers = {}
    for name, inventory in (("local", LOCAL), ("ssh", SSH)):
        result = _run(lab, inventory, play)
        assert result.ok, f"{name}: {result.failure_message()}"
        standby = result.stats_data["standbys"]["drc-db1"]
        primary = result.stats_data["primaries"]["dc-db1"]
        answers[name] = (standby["role"], standby["streaming"], primary["senders"][0]["state"])
    assert answers["local"] == answers["ssh"] == ("standby", True, "streaming")


def test_the_ssh_variant_refuses_a_host_whose_key_does_not_match(
    lab: Lab, who_connected: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, key = Path(f"{other}.pub").read_text().split()[:2]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(
        "".join(f"[127.0.0.1]:{lab.cfg.port(p)} {kind} {key}\n" for p in ("ssh", "uplink-ssh"))
    )
    override = tmp_path / "override.yml"
    override.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "vars": {
                        "lab_ssh_known_hosts": str(wrong),
                        # No shared master connection: an earlier run's master would skip the
                        # handshake, and with it the host-key check this test is about.
                        "ansible_ssh_args": "-o ControlMaster=no -o ControlPath=none "
                        "-o BatchMode=yes",
                    }
                }
            }
        )
    )
    result = _run(lab, SSH, who_connected, override, limit="drc_db")
    assert not result.ok
    assert result.unreachable_hosts == ("drc-db1",)
    detail = " ".join(t.msg for t in result.unreachable_tasks)
    assert "host key" in detail.lower(), detail
    # The real key is still the one the lab trusts: the same run with it succeeds.
    assert Path(sshd.paths(lab.cfg)["known_hosts"]).read_text() != wrong.read_text()
    assert _run(lab, SSH, who_connected, limit="drc_db").ok
