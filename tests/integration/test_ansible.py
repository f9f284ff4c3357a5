"""The Ansible adapter running real playbooks: events, results, timeouts, clean-up, SSH."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from drp.adapters import ansible as a
from drp.errors import RunbookError
from drp.lab.core import Lab

pytestmark = pytest.mark.integration


def _local_inventory(tmp_path: Path, **hosts: dict[str, Any]) -> Path:
    """An inventory of its own, so these tests depend on nothing but Ansible."""
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts or {"here": {}}}}))
    return path


def _local_host() -> dict[str, Any]:
    return {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}


def _playbook(tmp_path: Path, tasks: list[dict[str, Any]], hosts: str = "all") -> Path:
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump([{"hosts": hosts, "gather_facts": False, "tasks": tasks}]))
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _process_with(marker: str) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                    return True
            except OSError:
                continue
    return False


def test_check_replication_returns_the_state_as_data(lab: Lab) -> None:
    call = a.PlaybookCall(
        a.playbook_path("check_replication.yml"), a.lab_inventories(lab.cfg.root), timeout_s=60
    )
    result = a.run_playbook(call)
    result.raise_for_failure()
    standby = result.stats_data["standbys"]["drc-db1"]
    assert standby["role"] == "standby"
    assert standby["streaming"] is True
    assert standby["lag_bytes"] >= 0
    assert standby["receive_lsn"] and standby["replay_lsn"]
    primary = result.stats_data["primaries"]["dc-db1"]
    assert primary["role"] == "primary"
    assert [s["state"] for s in primary["senders"]] == ["streaming"]
    assert not result.changed  # read-only


def test_check_replication_reaches_a_host_over_ssh_with_strict_host_keys(
    lab: Lab, tmp_path: Path
) -> None:
    # lab-ssh1 is this machine through the lab's sshd (StrictHostKeyChecking=yes, the lab's own
    # known_hosts); a third inventory gives it the standby's database, as production would.
    extra = tmp_path / "ssh-standby.yml"
    extra.write_text(
        yaml.safe_dump(
            {
                "lab_ssh": {
                    "hosts": {
                        "lab-ssh1": {
                            "pg_port": lab.cfg.port("drc-db"),
                            "pg_data": str(lab.cfg.pgdata("drc-db")),
                        }
                    }
                }
            }
        )
    )
    events: list[dict[str, Any]] = []
    call = a.PlaybookCall(
        a.playbook_path("check_replication.yml"),
        (*a.lab_inventories(lab.cfg.root), extra),
        extra_vars={"standby_group": "lab_ssh"},
        timeout_s=60,
    )
    result = a.run_playbook(call, event_handler=events.append)
    result.raise_for_failure()
    assert result.stats_data["standbys"]["lab-ssh1"]["role"] == "standby"
    assert result.stats_data["primaries"]["dc-db1"]["role"] == "primary"
    ssh_oks = [
        e
        for e in events
        if e["event"] == "runner_on_ok" and e["event_data"].get("host") == "lab-ssh1"
    ]
    assert ssh_oks, "no task ran on lab-ssh1"


def test_event_handler_receives_every_event_as_it_happens(lab: Lab) -> None:
    seen: list[tuple[str, float]] = []
    call = a.PlaybookCall(
        a.playbook_path("check_replication.yml"), a.lab_inventories(lab.cfg.root), timeout_s=60
    )
    started = time.monotonic()
    result = a.run_playbook(
        call, event_handler=lambda e: seen.append((e["event"], time.monotonic()))
    )
    kinds = [k for k, _ in seen]
    assert kinds[0] == "playbook_on_start"
    assert kinds[-1] == "playbook_on_stats"
    assert "runner_on_ok" in kinds
    # Streamed during the run, not handed over at the end.
    assert seen[0][1] - started < result.duration_s * 0.8


def test_the_database_password_never_reaches_an_event(lab: Lab) -> None:
    password = lab.password()
    events: list[dict[str, Any]] = []
    for playbook in ("check_replication.yml", "preflight.yml"):
        call = a.PlaybookCall(
            a.playbook_path(playbook), a.lab_inventories(lab.cfg.root), verbosity=3, timeout_s=60
        )
        a.run_playbook(call, event_handler=events.append).raise_for_failure()
    assert password not in json.dumps(events, default=str)


def test_the_timeout_really_stops_the_run(tmp_path: Path) -> None:
    marker = "61.2718"
    call = a.PlaybookCall(
        _playbook(tmp_path, [{"command": f"sleep {marker}"}]),
        (_local_inventory(tmp_path, here=_local_host()),),
        timeout_s=2,
    )
    started = time.monotonic()
    result = a.run_playbook(call)
    assert result.status == "timeout"
    assert time.monotonic() - started < 6
    # ansible-core 2.19 workers live in sessions of their own; the adapter stops them too.
    assert result.stopped_processes
    assert not _process_with(f"sleep {marker}")
    with pytest.raises(a.PlaybookRunFailed, match="did not finish within 2 s"):
        result.raise_for_failure()


def test_an_unreachable_host_is_told_apart_from_a_failed_task(tmp_path: Path) -> None:
    gone = {
        "ansible_connection": "ssh",
        "ansible_host": "127.0.0.1",
        "ansible_port": _free_port(),
        "ansible_python_interpreter": sys.executable,
    }
    inventory = _local_inventory(tmp_path, gone=gone, here=_local_host())
    call = a.PlaybookCall(
        _playbook(tmp_path, [{"command": "true"}], hosts="gone"), (inventory,), timeout_s=60
    )
    lost = a.run_playbook(call)
    assert lost.unreachable_hosts == ("gone",)
    assert not lost.failed_tasks
    with pytest.raises(a.PlaybookUnreachable, match="could not reach gone"):
        lost.raise_for_failure()

    failing = a.PlaybookCall(
        _playbook(tmp_path, [{"name": "Fence", "fail": {"msg": "still writable"}}], hosts="here"),
        (inventory,),
        timeout_s=60,
    )
    failed = a.run_playbook(failing)
    assert failed.failed_tasks == (a.TaskFailure("here", "Fence", "still writable"),)
    assert not failed.unreachable_hosts
    with pytest.raises(a.PlaybookRunFailed) as err:
        failed.raise_for_failure()
    assert not isinstance(err.value, a.PlaybookUnreachable)


def test_the_private_data_dir_is_removed_unless_artifacts_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRP_TEST_SLACK_TOKEN", "xoxb-not-for-artifacts")
    root = tmp_path / "runs"
    inventory = _local_inventory(tmp_path, here=_local_host())
    playbook = _playbook(tmp_path, [{"command": "true"}])
    gone = a.run_playbook(a.PlaybookCall(playbook, (inventory,), artifacts_root=root))
    assert gone.ok
    assert gone.events_path is None
    assert list(root.iterdir()) == []

    kept = a.run_playbook(
        a.PlaybookCall(playbook, (inventory,), artifacts_root=root, keep_artifacts=True)
    )
    assert kept.events_path is not None and kept.private_data_dir is not None
    assert any(kept.events_path.glob("*.json"))
    command = json.loads((kept.events_path.parent / "command").read_text())
    assert "DRP_TEST_SLACK_TOKEN" not in command["env"]
    assert command["env"]["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    assert os.environ["DRP_TEST_SLACK_TOKEN"] not in json.dumps(command)


def test_a_handler_that_fails_cancels_the_run_and_its_error_comes_back(tmp_path: Path) -> None:
    def ledger_full(event: dict[str, Any]) -> None:
        if event["event"] == "playbook_on_task_start":
            raise OSError("evidence disk full")

    call = a.PlaybookCall(
        _playbook(tmp_path, [{"command": "sleep 30.5"}]),
        (_local_inventory(tmp_path, here=_local_host()),),
        timeout_s=60,
    )
    started = time.monotonic()
    with pytest.raises(OSError, match="evidence disk full"):
        a.run_playbook(call, event_handler=ledger_full)
    assert time.monotonic() - started < 10
    assert not _process_with("sleep 30.5")


def test_a_misspelt_group_fails_instead_of_checking_nothing(lab: Lab) -> None:
    call = a.PlaybookCall(
        a.playbook_path("preflight.yml"),
        a.lab_inventories(lab.cfg.root),
        extra_vars={"standby_group": "drc_dbb"},
        timeout_s=60,
    )
    result = a.run_playbook(call)
    assert not result.ok
    assert "Could not match supplied host pattern" in result.failure_message()
    assert "drc_dbb" in result.failure_message()


def test_a_missing_lab_inventory_says_how_to_make_it(tmp_path: Path) -> None:
    call = a.PlaybookCall(a.playbook_path("preflight.yml"), a.lab_inventories(tmp_path))
    with pytest.raises(RunbookError, match="drp lab up"):
        a.run_playbook(call)
